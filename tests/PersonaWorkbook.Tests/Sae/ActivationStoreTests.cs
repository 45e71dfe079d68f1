using PersonaWorkbook.Hooks;
using PersonaWorkbook.Sae;
using PersonaWorkbook.Tests.Checkpoints;
using PersonaWorkbook.Tests.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace PersonaWorkbook.Tests.Sae;

public class ActivationStoreTests
{
    const string Site = "blocks.0.hook_resid_post";
    const int Bos = 1;

    static int[][] Corpus(int count, long seed)
    {
        var random = new Random((int)seed);
        return Enumerable.Range(0, count).Select(_ => new[] { Bos }.Concat(Enumerable.Range(0, random.Next(3, 9)).Select(_ => random.Next(2, 50))).ToArray()).ToArray();
    }

    [Fact]
    public void StreamDropsBosAndPaddingAndMatchesDirectCapture()
    {
        using var scope = NewDisposeScope();
        using var model = TinyModels.Build(TinyModels.Llama());
        var corpus = Corpus(5, 1);
        var options = new ActivationStoreOptions { HookName = Site, SequencesPerForward = 2, ExcludeTokenIds = [Bos], OutlierNormMultiple = 0 };
        var rows = cat(ActivationStore.Stream(model, corpus, options).ToList());
        Assert.Equal(corpus.Sum(s => s.Length - 1), rows.shape[0]);

        // Same rows as capturing each sequence alone (padding must not leak into real positions), BOS left out.
        var expected = cat(corpus.Select(s => ActivationCapture.Run(model, tensor(s.Select(t => (long)t).ToArray(), [1, s.Length]), [Site])[Site][0, 1..]).ToList());
        Assert.True(rows.allclose(expected, rtol: 1e-4, atol: 1e-5));
    }

    [Fact]
    public void StreamDropsTokensWithOutlierNorms()
    {
        using var scope = NewDisposeScope();
        using var model = TinyModels.Build(TinyModels.Llama());
        var corpus = Corpus(4, 2);
        // An attention-sink-like token: position 2 of every sequence gets 100× its activation.
        using var sink = Interventions.Replace(model.Hooks, Site, x =>
        {
            var scale = ones(1, x.shape[1], 1);
            scale[0, 2, 0] = tensor(100f);
            return x * scale;
        });
        var options = new ActivationStoreOptions { HookName = Site, SequencesPerForward = 4, ExcludeTokenIds = [Bos] };
        var rows = cat(ActivationStore.Stream(model, corpus, options).ToList());
        Assert.Equal(corpus.Sum(s => s.Length - 2), rows.shape[0]);
        var kept = cat(ActivationStore.Stream(model, corpus, new ActivationStoreOptions { HookName = Site, SequencesPerForward = 4, ExcludeTokenIds = [Bos], OutlierNormMultiple = 0 }).ToList());
        Assert.Equal(corpus.Sum(s => s.Length - 1), kept.shape[0]);
    }

    [Fact]
    public void MixingBufferServesEveryRowOnceWithBoundedMemory()
    {
        using var scope = NewDisposeScope();
        var pulled = 0;
        IEnumerable<Tensor> Chunks()
        {
            for (var i = 0; i < 100; i++)
            {
                pulled++;
                yield return (arange(i * 10, i * 10 + 10, dtype: ScalarType.Float32).unsqueeze(1) * ones(1, 4)).DetachFromDisposeScope(); // row id in every column
            }
        }
        var buffer = new MixingBuffer(capacityTokens: 64, batchSize: 16, seed: 3);
        var served = new List<float>();
        var pulledAtFirstBatch = -1;
        foreach (var batch in buffer.Batches(Chunks()))
        {
            using (batch)
            {
                if (pulledAtFirstBatch < 0) pulledAtFirstBatch = pulled;
                Assert.Equal(new long[] { 16, 4 }, batch.shape);
                served.AddRange(batch[.., 0].data<float>());
            }
        }
        Assert.True(buffer.PeakTokens <= 64 + 10, $"peak {buffer.PeakTokens}");
        Assert.Equal(7, pulledAtFirstBatch);                                             // lazy: 70 rows fill the 64-token buffer
        Assert.Equal(served.Count, served.Distinct().Count());
        Assert.Equal(992, served.Count);                                                 // 1000 rows, whole batches only
        Assert.NotEqual(served.Take(16).OrderBy(v => v), served.Take(16));               // shuffled
    }

    [Fact]
    public void CacheRoundTripsFloat16ShardsAndRefusesUnfinishedFolders()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDirectory();
        var chunks = Enumerable.Range(0, 6).Select(i => randn(10, 8, generator: new Generator((ulong)i))).ToList();
        var all = cat(chunks);
        var written = ActivationCache.Write(dir.Path, chunks.Select(c => c.clone()), shardTokens: 25, info: new Dictionary<string, string> { ["hook_name"] = Site });
        Assert.Equal(60, written);
        Assert.Equal(3, Directory.GetFiles(dir.Path, "shard_*.safetensors").Length);
        var (tokens, dIn, info) = ActivationCache.Describe(dir.Path);
        Assert.Equal((60L, 8, Site), (tokens, dIn, info["hook_name"]));
        var read = ActivationCache.Read(dir.Path).ToList();
        Assert.Equal(new long[] { 25, 25, 10 }, read.Select(t => t.shape[0]).ToArray());
        Assert.True(cat(read).allclose(all, rtol: 1e-3, atol: 1e-3));

        File.Delete(Path.Combine(dir.Path, ActivationCache.ManifestFile));
        Assert.Throws<FileNotFoundException>(() => ActivationCache.Read(dir.Path).ToList());
    }
}
