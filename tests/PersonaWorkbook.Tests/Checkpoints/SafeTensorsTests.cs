using System.Buffers.Binary;
using System.Text;
using PersonaWorkbook.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace PersonaWorkbook.Tests.Checkpoints;

public class SafeTensorsTests
{
    static Dictionary<string, Tensor> Sample()
    {
        var generator = new Generator(seed: 7);
        var wide = randn(new long[] { 3, 5 }, generator: generator);
        return new Dictionary<string, Tensor>
        {
            ["model.embed_tokens.weight"] = randn(new long[] { 6, 4 }, generator: generator),
            ["half"] = randn(new long[] { 2, 3, 2 }, generator: generator).to(ScalarType.Float16),
            ["brain"] = randn(new long[] { 7 }, generator: generator).to(ScalarType.BFloat16),
            ["double"] = randn(new long[] { 2 }, generator: generator, dtype: ScalarType.Float64),
            // A transposed view (not contiguous) and a narrowed one (storage offset > 0) must both save their logical values.
            ["transposed"] = wide.t(),
            ["narrowed"] = wide.narrow(0, 1, 2),
            ["ids"] = randint(-1000, 1000, new long[] { 5 }, dtype: ScalarType.Int64, generator: generator),
            ["i32"] = randint(-1000, 1000, new long[] { 3 }, dtype: ScalarType.Int32, generator: generator),
            ["i16"] = randint(-1000, 1000, new long[] { 3 }, dtype: ScalarType.Int16, generator: generator),
            ["i8"] = randint(-100, 100, new long[] { 3 }, dtype: ScalarType.Int8, generator: generator),
            ["u8"] = randint(0, 255, new long[] { 4 }, dtype: ScalarType.Byte, generator: generator),
            ["mask"] = tensor(new[] { true, false, true }),
            ["empty"] = zeros(new long[] { 0, 3 }),
            ["scalar"] = tensor(3.5f),
        };
    }

    static void AssertBitExact(IReadOnlyDictionary<string, Tensor> expected, IReadOnlyDictionary<string, Tensor> actual)
    {
        Assert.Equal(expected.Keys, actual.Keys);
        foreach (var (name, e) in expected)
        {
            var a = actual[name];
            Assert.Equal(e.dtype, a.dtype);
            Assert.Equal(e.shape, a.shape);
            using var dense = e.contiguous();
            Assert.True(dense.bytes.SequenceEqual(a.bytes), $"tensor {name} differs after the round trip");
            // Element-wise too, so a byte view that ignored a storage offset on both sides could not pass.
            Assert.True(e.eq(a).all().item<bool>(), $"tensor {name} has different values after the round trip");
        }
    }

    [Fact]
    public void RoundTripIsBitExactForEveryDtypeAndKeepsOrderAndMetadata()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDirectory();
        var tensors = Sample();
        var path = dir.File("model.safetensors");
        SafeTensors.Save(path, tensors, new Dictionary<string, string> { ["step"] = "12" });

        var header = SafeTensors.ReadHeader(path);
        Assert.Equal(tensors.Keys, header.Entries.Select(e => e.Name));
        Assert.Equal("12", header.Metadata["step"]);
        Assert.Equal("pt", header.Metadata["format"]);
        Assert.Equal(0, header.DataStart % 8);
        Assert.Equal("BF16", header.Entries.Single(e => e.Name == "brain").DType);
        Assert.Equal(new long[] { 5, 3 }, header.Entries.Single(e => e.Name == "transposed").Shape);

        AssertBitExact(tensors, SafeTensors.Load(path));
        Assert.Empty(Directory.GetFiles(dir.Path, "*.tmp*"));
    }

    [Fact]
    public void TensorsLargerThanTheCopyChunkMoveInSlices()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDirectory();
        var tensors = Sample();
        var path = dir.File("chunked.safetensors");
        SafeTensors.Save(path, tensors, null, chunkBytes: 6);
        AssertBitExact(tensors, SafeTensors.Load(path));
        AssertBitExact(tensors, SafeTensors.Load(path, chunkBytes: 10));
    }

    [Fact]
    public void ShardedRoundTripUsesHuggingFaceNamesAndAReplacingSingleFileRemovesStaleShards()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDirectory();
        var tensors = Sample();
        var written = SafeTensors.SaveSharded(dir.Path, tensors, maxShardBytes: 64);
        var shards = written.Where(p => p.EndsWith(".safetensors")).Select(Path.GetFileName).ToList();
        Assert.True(shards.Count > 2);
        Assert.Equal($"model-00001-of-{shards.Count:D5}.safetensors", shards[0]);
        Assert.True(File.Exists(dir.File(SafeTensors.IndexFileName)));
        Assert.False(File.Exists(dir.File(SafeTensors.SingleFileName)));
        var index = System.Text.Json.JsonDocument.Parse(File.ReadAllText(dir.File(SafeTensors.IndexFileName))).RootElement;
        Assert.Equal(tensors.Values.Sum(t => t.numel() * t.element_size()), index.GetProperty("metadata").GetProperty("total_size").GetInt64());
        Assert.Equal(tensors.Count, index.GetProperty("weight_map").EnumerateObject().Count());

        var loaded = SafeTensors.LoadCheckpoint(dir.Path);
        AssertBitExact(tensors, loaded.OrderBy(p => tensors.Keys.ToList().IndexOf(p.Key)).ToDictionary());

        SafeTensors.SaveSharded(dir.Path, tensors, maxShardBytes: 1 << 20);
        Assert.Equal(new[] { SafeTensors.SingleFileName }, Directory.GetFiles(dir.Path).Select(Path.GetFileName));
        AssertBitExact(tensors, SafeTensors.LoadCheckpoint(dir.Path));
    }

    /// <summary>Writes a safetensors file by hand: the header text as given, then <paramref name="dataBytes"/> zero bytes.</summary>
    static void WriteRaw(string path, string header, int dataBytes, ulong? declaredLength = null)
    {
        var headerBytes = Encoding.UTF8.GetBytes(header);
        using var stream = File.Create(path);
        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, declaredLength ?? (ulong)headerBytes.Length);
        stream.Write(length);
        stream.Write(headerBytes);
        stream.Write(new byte[dataBytes]);
    }

    static string LoadError(string path) => Assert.Throws<CheckpointException>(() => SafeTensors.Load(path)).Message;

    [Fact]
    public void TruncatedDataNamesFileAndTensor()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDirectory();
        var path = dir.File("cut.safetensors");
        SafeTensors.Save(path, new Dictionary<string, Tensor> { ["a"] = ones(4), ["b.weight"] = ones(3, 3) });
        using (var stream = new FileStream(path, FileMode.Open)) stream.SetLength(stream.Length - 5);
        var message = LoadError(path);
        Assert.Contains("truncated", message);
        Assert.Contains(path, message);
        Assert.Contains("b.weight", message);
    }

    [Fact]
    public void HeaderLengthBeyondTheFileIsReported()
    {
        using var dir = new TempDirectory();
        var path = dir.File("long.safetensors");
        WriteRaw(path, "{}", 0, declaredLength: 1_000_000);
        var message = LoadError(path);
        Assert.Contains("header length 1000000", message);
        Assert.Contains(path, message);

        var tiny = dir.File("tiny.safetensors");
        File.WriteAllBytes(tiny, new byte[] { 1, 2, 3 });
        Assert.Contains("fewer than the 8-byte header length", LoadError(tiny));
    }

    [Fact]
    public void MalformedJsonHeaderIsReported()
    {
        using var dir = new TempDirectory();
        var path = dir.File("json.safetensors");
        WriteRaw(path, "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], ", 4);
        var message = LoadError(path);
        Assert.Contains("malformed JSON header", message);
        Assert.Contains(path, message);
    }

    [Fact]
    public void UnknownDtypeNamesDtypeTensorAndFile()
    {
        using var dir = new TempDirectory();
        var path = dir.File("fp8.safetensors");
        WriteRaw(path, "{\"layer.weight\": {\"dtype\": \"F8_E4M3\", \"shape\": [2, 2], \"data_offsets\": [0, 4]}}", 4);
        Assert.StartsWith($"unsupported dtype F8_E4M3 for tensor layer.weight in file {path}", LoadError(path));
    }

    [Fact]
    public void OffsetsThatDoNotMatchTheShapeAreReported()
    {
        using var dir = new TempDirectory();
        var path = dir.File("offsets.safetensors");
        WriteRaw(path, "{\"w\": {\"dtype\": \"F32\", \"shape\": [2, 3], \"data_offsets\": [0, 20]}}", 20);
        var message = LoadError(path);
        Assert.Contains("data offsets [0, 20) (20 bytes) do not match shape [2, 3] x F32 (24 bytes)", message);
        Assert.Contains("tensor w", message);
        Assert.Contains(path, message);

        var overlap = dir.File("overlap.safetensors");
        WriteRaw(overlap,
            "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}, \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}", 12);
        Assert.Contains("tensor b", LoadError(overlap));
    }

    [Fact]
    public void MissingShardAndMissingCheckpointAreReported()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDirectory();
        Assert.Contains("no model.safetensors", Assert.Throws<CheckpointException>(() => SafeTensors.LoadCheckpoint(dir.Path)).Message);

        SafeTensors.SaveSharded(dir.Path, new Dictionary<string, Tensor> { ["a"] = ones(8), ["b"] = ones(8) }, maxShardBytes: 32);
        File.Delete(dir.File("model-00002-of-00002.safetensors"));
        var message = Assert.Throws<CheckpointException>(() => SafeTensors.LoadCheckpoint(dir.Path)).Message;
        Assert.Contains("missing shard", message);
        Assert.Contains("model-00002-of-00002.safetensors", message);
        Assert.Contains("tensor b", message);
    }
}
