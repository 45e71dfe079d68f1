using System.Text.Json.Nodes;
using PersonaWorkbook.Checkpoints;
using PersonaWorkbook.Sae;
using PersonaWorkbook.Tests.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace PersonaWorkbook.Tests.Sae;

public class SaeFilesTests
{
    [Theory]
    [InlineData(SaeArchitecture.TopK)]
    [InlineData(SaeArchitecture.BatchTopK)]
    [InlineData(SaeArchitecture.ReLU)]
    public void SaveLoadRoundTripFoldsTheInputScale(SaeArchitecture architecture)
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDirectory();
        using var sae = SaeTestData.TopK(dIn: 8, dSae: 24, k: 3, seed: 2, arch: architecture);
        using (no_grad())
        {
            sae.b_dec.copy_(randn(8));
            sae.b_enc.copy_(randn(24) * 0.1);
            sae.Threshold?.fill_(0.2);
        }
        sae.SetInputScale(2.5);
        SaeFiles.Save(sae, dir.Path);
        using var loaded = SaeFiles.Load(dir.Path);

        Assert.Equal(1.0, loaded.InputScale);
        Assert.Equal(architecture == SaeArchitecture.BatchTopK ? SaeArchitecture.JumpReLU : architecture, loaded.Config.Architecture);
        var x = randn(30, 8, generator: new Generator(3)) * 4;
        // The trained SAE works on x·s; the saved one takes raw x and gives the same latents and x̂ = x̂_scaled / s.
        var scaled = sae.PreActivationsScaled(x * 2.5);
        Assert.True(loaded.Encode(x).allclose(sae.Encode(x), rtol: 1e-4, atol: 1e-5));
        Assert.True(loaded.Reconstruct(x).allclose(sae.Reconstruct(x), rtol: 1e-4, atol: 1e-4));
        Assert.True(loaded.PreActivationsScaled(x).allclose(scaled, rtol: 1e-4, atol: 1e-4));

        var cfg = JsonNode.Parse(File.ReadAllText(Path.Combine(dir.Path, "cfg.json")))!;
        Assert.Equal("none", cfg["normalize_activations"]!.GetValue<string>());
        Assert.Equal("blocks.0.hook_resid_post", cfg["metadata"]!["hook_name"]!.GetValue<string>());
        var header = SafeTensors.ReadHeader(Path.Combine(dir.Path, "sae_weights.safetensors"));
        var shapes = header.Entries.ToDictionary(e => e.Name, e => e.Shape);
        Assert.Equal(new long[] { 8, 24 }, shapes["W_enc"]);
        Assert.Equal(new long[] { 24, 8 }, shapes["W_dec"]);
        Assert.Equal(architecture == SaeArchitecture.BatchTopK, shapes.ContainsKey("threshold"));
    }

    [Fact]
    public void SaeFolderIsReadableByNumpy()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDirectory();
        using var sae = SaeTestData.TopK(dIn: 8, dSae: 24, k: 3, arch: SaeArchitecture.BatchTopK);
        SaeFiles.Save(sae, dir.Path);
        var output = SystemPython.Run("""
import json, struct, sys
import numpy as np
d = sys.argv[1]
cfg = json.load(open(d + '/cfg.json'))
raw = open(d + '/sae_weights.safetensors', 'rb').read()
(n,) = struct.unpack('<Q', raw[:8])
header = json.loads(raw[8:8 + n]); header.pop('__metadata__', None)
data = raw[8 + n:]
arrays = {k: np.frombuffer(data[v['data_offsets'][0]:v['data_offsets'][1]], '<f4').reshape(v['shape']) for k, v in header.items()}
assert arrays['W_enc'].shape == (cfg['d_in'], cfg['d_sae'])
assert arrays['W_dec'].shape == (cfg['d_sae'], cfg['d_in'])
assert arrays['threshold'].shape == (cfg['d_sae'],)
assert np.allclose(arrays['W_enc'], arrays['W_dec'].T)
print(cfg['architecture'], cfg['metadata']['trained_architecture'], sorted(arrays))
""", dir.Path);
        Assert.Equal("jumprelu batchtopk ['W_dec', 'W_enc', 'b_dec', 'b_enc', 'threshold']", output.Trim());
    }

    [Fact]
    public void LoaderNamesTheFileAndTensorWhenWDecIsTransposed()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDirectory();
        using var sae = SaeTestData.TopK();
        SaeFiles.Save(sae, dir.Path);
        var path = Path.Combine(dir.Path, "sae_weights.safetensors");
        var tensors = SafeTensors.Load(path);
        tensors["W_dec"] = tensors["W_dec"].t().contiguous();
        SafeTensors.Save(path, tensors);
        var e = Assert.Throws<InvalidDataException>(() => SaeFiles.Load(dir.Path));
        Assert.Contains(path, e.Message);
        Assert.Contains("'W_dec'", e.Message);
        Assert.Contains("transposed", e.Message);

        File.WriteAllText(Path.Combine(dir.Path, "cfg.json"), """{"architecture": "topk", "d_in": 8}""");
        var missing = Assert.Throws<InvalidDataException>(() => SaeFiles.Load(dir.Path));
        Assert.Contains("'d_sae'", missing.Message);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void SparsifyImportDecidesDecoderOrientationByShape(bool transposed)
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDirectory();
        var encoder = randn(24, 8);
        var decoder = SaeTestData.Normalised(randn(24, 8));
        SafeTensors.Save(Path.Combine(dir.Path, "sae.safetensors"), new Dictionary<string, Tensor>
        {
            ["encoder.weight"] = encoder, ["encoder.bias"] = zeros(24),
            ["W_dec"] = transposed ? decoder.t().contiguous() : decoder, ["b_dec"] = zeros(8),
        });
        File.WriteAllText(Path.Combine(dir.Path, "cfg.json"), """{"d_in": 8, "k": 3, "num_latents": 24}""");
        using var sae = SaeFiles.LoadSparsify(dir.Path, "blocks.1.hook_resid_post");
        Assert.True(sae.W_dec.allclose(decoder));
        Assert.True(sae.W_enc.allclose(encoder.t()));
        Assert.Equal(3, sae.Config.K);
    }
}
