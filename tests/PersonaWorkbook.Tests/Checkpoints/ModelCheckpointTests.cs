using System.Globalization;
using PersonaWorkbook.Checkpoints;
using PersonaWorkbook.Models;
using PersonaWorkbook.Tests.Models;
using PersonaWorkbook.Tokenizers;
using static TorchSharp.torch;

namespace PersonaWorkbook.Tests.Checkpoints;

public class ModelCheckpointTests
{
    static WordLevelTokenizer Tokenizer() =>
        WordLevelTokenizer.Train(["the cat sat on the mat .", "a dog ran to the park ."], [.. WordLevelTokenizer.DefaultSpecialTokens, "<q>", "<a>"]);

    /// <summary>Saves a tiny Llama checkpoint under dir/ckpt and returns its path.</summary>
    static string SaveTinyLlama(TempDirectory dir)
    {
        var tok = Tokenizer();
        using var model = TinyModels.Build(TinyModels.Llama(tok.VocabSize));
        var path = dir.File("ckpt");
        ModelCheckpoint.Save(path, model, tok);
        return path;
    }

    static bool Same(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();

    static readonly long[] Tokens = [1, 7, 8, 9, 10, 11, 12, 3];

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void RoundTripIsBitExact(bool qwen)
    {
        using var dir = new TempDirectory();
        var tok = Tokenizer();
        using var model = TinyModels.Build(qwen ? TinyModels.Qwen2(tok.VocabSize) : TinyModels.Llama(tok.VocabSize), seed: 3);
        var path = dir.File("ckpt");
        ModelCheckpoint.Save(path, model, tok);
        Assert.True(ModelCheckpoint.Exists(path));
        using var loaded = ModelCheckpoint.Load(path);
        var expected = model.state_dict();
        var actual = loaded.Model.state_dict();
        Assert.Equal(expected.Keys.OrderBy(k => k), actual.Keys.OrderBy(k => k));
        foreach (var (key, value) in expected) Assert.True(Same(value, actual[key]), $"{key} differs after reload");
        using var ids = tensor(Tokens).unsqueeze(0);
        Assert.True(Same(model.forward(ids), loaded.Model.forward(ids)));
        Assert.Equal(tok.Encode("the cat ran"), loaded.Tokenizer.Encode("the cat ran"));
        var header = SafeTensors.ReadHeader(Path.Combine(path, "model.safetensors"));
        Assert.Equal(qwen, header.Entries.All(e => e.Name != "lm_head.weight")); // tied head is not stored
        Assert.Empty(Directory.GetDirectories(dir.Path, ".*")); // no staging directory left behind
    }

    [Fact]
    public void SavingAgainReplacesTheDirectory()
    {
        using var dir = new TempDirectory();
        var tok = Tokenizer();
        var path = dir.File("ckpt");
        using (var a = TinyModels.Build(TinyModels.Llama(tok.VocabSize), seed: 1)) ModelCheckpoint.Save(path, a, tok, maxShardBytes: 20_000);
        Assert.True(File.Exists(Path.Combine(path, SafeTensors.IndexFileName)));
        using var b = TinyModels.Build(TinyModels.Llama(tok.VocabSize), seed: 2);
        ModelCheckpoint.Save(path, b, tok);
        Assert.False(File.Exists(Path.Combine(path, SafeTensors.IndexFileName)));
        using var loaded = ModelCheckpoint.Load(path);
        Assert.True(Same(loaded.Model.state_dict()["model.layers.0.mlp.up_proj.weight"], b.state_dict()["model.layers.0.mlp.up_proj.weight"]));
    }

    /// <summary>
    /// Independent check that the directory is a Hugging Face Llama/Qwen2 checkpoint: numpy reads config.json and the
    /// safetensors by itself and runs HF's LlamaForCausalLM forward pass (RMSNorm, rotate-half RoPE, GQA, SwiGLU,
    /// q/k/v bias when present, tied head when configured); its logits must equal ours.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void NumpyReimplementationOfHuggingFaceLlamaGivesOurLogits(bool qwen)
    {
        using var dir = new TempDirectory();
        var tok = Tokenizer();
        using var model = TinyModels.Build(qwen ? TinyModels.Qwen2(tok.VocabSize) : TinyModels.Llama(tok.VocabSize), seed: 5);
        var path = dir.File("ckpt");
        ModelCheckpoint.Save(path, model, tok);
        using var ids = tensor(Tokens).unsqueeze(0);
        var ours = model.forward(ids)[0].data<float>().ToArray();
        var output = SystemPython.Run(HfLlamaForward, path, string.Join(",", Tokens));
        var theirs = output.Trim().Split(' ').Select(s => float.Parse(s, CultureInfo.InvariantCulture)).ToArray();
        Assert.Equal(ours.Length, theirs.Length);
        var maxDiff = ours.Zip(theirs, (a, b) => Math.Abs(a - b)).Max();
        Assert.True(maxDiff < 1e-4, $"max |ours − numpy HF Llama| = {maxDiff}");
    }

    const string HfLlamaForward = """
import json, os, struct, sys
import numpy as np
d, ids = sys.argv[1], [int(t) for t in sys.argv[2].split(",")]
cfg = json.load(open(os.path.join(d, "config.json")))
assert cfg["architectures"][0] in ("LlamaForCausalLM", "Qwen2ForCausalLM"), cfg["architectures"]
json.load(open(os.path.join(d, "tokenizer.json")))
json.load(open(os.path.join(d, "generation_config.json")))
raw = open(os.path.join(d, "model.safetensors"), "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n])
assert header["__metadata__"]["format"] == "pt"
W = {}
for k, v in header.items():
    if k == "__metadata__": continue
    assert v["dtype"] == "F32", (k, v["dtype"])
    b, e = v["data_offsets"]
    W[k] = np.frombuffer(raw[8 + n + b: 8 + n + e], dtype="<f4").reshape(v["shape"]).astype(np.float64)
H, L, nh = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"]
nkv = cfg.get("num_key_value_heads", nh); hd = cfg.get("head_dim") or H // nh
eps, theta = cfg["rms_norm_eps"], cfg["rope_theta"]
bias = cfg.get("attention_bias", cfg["model_type"] == "qwen2")
expected = {"model.embed_tokens.weight": [cfg["vocab_size"], H], "model.norm.weight": [H]}
if not cfg.get("tie_word_embeddings", False): expected["lm_head.weight"] = [cfg["vocab_size"], H]
for i in range(L):
    p = f"model.layers.{i}."
    expected.update({p+"self_attn.q_proj.weight": [nh*hd, H], p+"self_attn.k_proj.weight": [nkv*hd, H], p+"self_attn.v_proj.weight": [nkv*hd, H],
        p+"self_attn.o_proj.weight": [H, nh*hd], p+"mlp.gate_proj.weight": [cfg["intermediate_size"], H], p+"mlp.up_proj.weight": [cfg["intermediate_size"], H],
        p+"mlp.down_proj.weight": [H, cfg["intermediate_size"]], p+"input_layernorm.weight": [H], p+"post_attention_layernorm.weight": [H]})
    if bias: expected.update({p+"self_attn.q_proj.bias": [nh*hd], p+"self_attn.k_proj.bias": [nkv*hd], p+"self_attn.v_proj.bias": [nkv*hd]})
assert {k: list(v.shape) for k, v in W.items()} == expected, sorted(set(W) ^ set(expected))
def rms(x, w): return w * (x / np.sqrt((x * x).mean(-1, keepdims=True) + eps))
def lin(x, p, b=False): return x @ W[p + ".weight"].T + (W[p + ".bias"] if b else 0)
T = len(ids); x = W["model.embed_tokens.weight"][ids]
inv = theta ** (-np.arange(0, hd, 2) / hd); f = np.outer(np.arange(T), inv); emb = np.concatenate([f, f], -1)
cos, sin = np.cos(emb), np.sin(emb)
def rope(q): return q * cos + np.concatenate([-q[..., hd//2:], q[..., :hd//2]], -1) * sin
causal = np.triu(np.full((T, T), -np.inf), 1)
for i in range(L):
    p = f"model.layers.{i}."
    h = rms(x, W[p + "input_layernorm.weight"])
    q = lin(h, p + "self_attn.q_proj", bias).reshape(T, nh, hd).transpose(1, 0, 2)
    k = lin(h, p + "self_attn.k_proj", bias).reshape(T, nkv, hd).transpose(1, 0, 2)
    v = lin(h, p + "self_attn.v_proj", bias).reshape(T, nkv, hd).transpose(1, 0, 2)
    q, k = rope(q), rope(k)
    k, v = np.repeat(k, nh // nkv, 0), np.repeat(v, nh // nkv, 0)
    a = q @ k.transpose(0, 2, 1) / np.sqrt(hd) + causal
    a = np.exp(a - a.max(-1, keepdims=True)); a /= a.sum(-1, keepdims=True)
    x = x + lin((a @ v).transpose(1, 0, 2).reshape(T, nh * hd), p + "self_attn.o_proj")
    h = rms(x, W[p + "post_attention_layernorm.weight"])
    g = lin(h, p + "mlp.gate_proj")
    x = x + lin(g / (1 + np.exp(-g)) * lin(h, p + "mlp.up_proj"), p + "mlp.down_proj")
x = rms(x, W["model.norm.weight"])
head = W["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings", False) else W["lm_head.weight"]
print(" ".join(repr(float(v)) for v in (x @ head.T).ravel()))
""";

    [Fact]
    public void MissingConfigFieldNamesFileAndField()
    {
        using var dir = new TempDirectory();
        var path = SaveTinyLlama(dir);
        var configPath = Path.Combine(path, "config.json");
        File.WriteAllText(configPath, File.ReadAllText(configPath).Replace("\"hidden_size\"", "\"hidden_sizes\""));
        var e = Assert.ThrowsAny<InvalidDataException>(() => ModelCheckpoint.Load(path));
        Assert.Contains("hidden_size", e.Message);
        Assert.Contains(configPath, e.Message);
    }

    [Fact]
    public void WrongShapeNamesTensorAndShapes()
    {
        using var dir = new TempDirectory();
        var path = SaveTinyLlama(dir);
        var configPath = Path.Combine(path, "config.json");
        File.WriteAllText(configPath, File.ReadAllText(configPath).Replace("\"intermediate_size\": 64", "\"intermediate_size\": 48"));
        var e = Assert.ThrowsAny<IOException>(() => ModelCheckpoint.Load(path));
        Assert.Contains("model.layers.0.mlp.gate_proj.weight", e.Message);
        Assert.Contains("48", e.Message);
        Assert.Contains("64", e.Message);
    }

    [Fact]
    public void TruncatedWeightsNameTheFile()
    {
        using var dir = new TempDirectory();
        var path = SaveTinyLlama(dir);
        var weights = Path.Combine(path, "model.safetensors");
        var bytes = File.ReadAllBytes(weights);
        File.WriteAllBytes(weights, bytes[..(bytes.Length / 2)]);
        var e = Assert.ThrowsAny<IOException>(() => ModelCheckpoint.Load(path));
        Assert.Contains(weights, e.Message);
    }

    [Fact]
    public void MissingDirectoryAndTokenizerAreClearErrors()
    {
        using var dir = new TempDirectory();
        Assert.Throws<DirectoryNotFoundException>(() => ModelCheckpoint.Load(dir.File("nope")));
        var path = SaveTinyLlama(dir);
        File.Delete(Path.Combine(path, "tokenizer.json"));
        var e = Assert.Throws<FileNotFoundException>(() => ModelCheckpoint.Load(path));
        Assert.Contains("tokenizer.json", e.Message);
    }
}
