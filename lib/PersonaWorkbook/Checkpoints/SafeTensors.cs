using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using TorchSharp;
using static TorchSharp.torch;

namespace PersonaWorkbook.Checkpoints;

/// <summary>One tensor's record in a safetensors header; offsets are relative to the start of the data section.</summary>
public sealed record SafeTensorsEntry(string Name, string DType, long[] Shape, long Begin, long End)
{
    public long ByteLength => End - Begin;
}

/// <summary>A parsed safetensors header: entries in data order, the <c>__metadata__</c> strings, and where the data starts.</summary>
public sealed record SafeTensorsHeader(
    string Path, long DataStart, IReadOnlyList<SafeTensorsEntry> Entries, IReadOnlyDictionary<string, string> Metadata);

/// <summary>
/// The safetensors format (8-byte little-endian header length, a JSON header, then raw little-endian tensor data),
/// single files and Hugging Face sharded checkpoints (<c>model.safetensors.index.json</c>).
/// </summary>
public static class SafeTensors
{
    public const string SingleFileName = "model.safetensors";
    public const string IndexFileName = "model.safetensors.index.json";
    const string MetadataKey = "__metadata__";
    // The reference implementation refuses larger headers; a bigger length is a corrupt file, not a real header.
    const long MaxHeaderBytes = 100_000_000;
    // Span-based copies are limited to int.MaxValue bytes; large tensors move in slices of this size.
    internal const long DefaultChunkBytes = 1L << 26;
    static readonly Regex ShardName = new(@"^model-\d{5}-of-\d{5}\.safetensors$", RegexOptions.CultureInvariant);

    public static SafeTensorsHeader ReadHeader(string path)
    {
        if (!File.Exists(path)) throw new CheckpointException($"safetensors file not found: {path}");
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        return ReadHeader(stream, path);
    }

    static SafeTensorsHeader ReadHeader(FileStream stream, string path)
    {
        var fileLength = stream.Length;
        if (fileLength < 8)
            throw new CheckpointException($"truncated safetensors file {path}: {fileLength} bytes, fewer than the 8-byte header length");
        Span<byte> lengthBytes = stackalloc byte[8];
        stream.ReadExactly(lengthBytes);
        var headerLength = BinaryPrimitives.ReadUInt64LittleEndian(lengthBytes);
        if (headerLength > (ulong)(fileLength - 8))
            throw new CheckpointException(
                $"truncated safetensors file {path}: header length {headerLength} bytes is beyond the file's {fileLength - 8} bytes after the length field");
        if (headerLength > MaxHeaderBytes)
            throw new CheckpointException($"corrupt safetensors file {path}: header length {headerLength} bytes exceeds the {MaxHeaderBytes}-byte limit");

        var headerBytes = new byte[headerLength];
        stream.ReadExactly(headerBytes);
        var dataStart = 8 + (long)headerLength;
        var dataLength = fileLength - dataStart;

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(headerBytes);
        }
        catch (JsonException e)
        {
            throw new CheckpointException($"malformed JSON header in safetensors file {path}: {e.Message}", e);
        }
        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
                throw new CheckpointException($"malformed JSON header in safetensors file {path}: expected an object, found {document.RootElement.ValueKind}");

            var metadata = new Dictionary<string, string>();
            var entries = new List<SafeTensorsEntry>();
            var names = new HashSet<string>();
            foreach (var property in document.RootElement.EnumerateObject())
            {
                if (!names.Add(property.Name))
                    throw new CheckpointException($"malformed JSON header in safetensors file {path}: tensor {property.Name} appears twice");
                if (property.Name == MetadataKey)
                {
                    ReadMetadata(property.Value, metadata, path);
                    continue;
                }
                entries.Add(ReadEntry(property.Name, property.Value, path));
            }

            // Data order, with header order breaking ties between empty tensors.
            var ordered = entries.Select((e, i) => (e, i)).OrderBy(p => p.e.Begin).ThenBy(p => p.i).Select(p => p.e).ToList();
            long expectedBegin = 0;
            foreach (var entry in ordered)
            {
                if (entry.Begin != expectedBegin)
                    throw new CheckpointException(
                        $"bad data offsets for tensor {entry.Name} in safetensors file {path}: it starts at byte {entry.Begin} of the data, expected {expectedBegin} (tensors must be contiguous and not overlap)");
                if (entry.End > dataLength)
                    throw new CheckpointException(
                        $"truncated safetensors file {path}: tensor {entry.Name} needs data bytes [{entry.Begin}, {entry.End}) but the file holds only {dataLength} data bytes");
                expectedBegin = entry.End;
            }
            if (expectedBegin != dataLength)
                throw new CheckpointException(
                    $"corrupt safetensors file {path}: the header describes {expectedBegin} data bytes but the file holds {dataLength}");
            return new SafeTensorsHeader(path, dataStart, ordered, metadata);
        }
    }

    static void ReadMetadata(JsonElement element, Dictionary<string, string> metadata, string path)
    {
        if (element.ValueKind == JsonValueKind.Null) return;
        if (element.ValueKind != JsonValueKind.Object)
            throw new CheckpointException($"malformed JSON header in safetensors file {path}: {MetadataKey} must be an object of strings");
        foreach (var item in element.EnumerateObject())
        {
            if (item.Value.ValueKind != JsonValueKind.String)
                throw new CheckpointException($"malformed JSON header in safetensors file {path}: {MetadataKey}.{item.Name} must be a string, found {item.Value.ValueKind}");
            metadata[item.Name] = item.Value.GetString()!;
        }
    }

    static SafeTensorsEntry ReadEntry(string name, JsonElement value, string path)
    {
        string Where() => $"tensor {name} in safetensors file {path}";
        if (value.ValueKind != JsonValueKind.Object)
            throw new CheckpointException($"malformed JSON header: {Where()} is {value.ValueKind}, expected an object with dtype, shape and data_offsets");
        if (!value.TryGetProperty("dtype", out var dtypeElement) || dtypeElement.ValueKind != JsonValueKind.String)
            throw new CheckpointException($"malformed JSON header: {Where()} has no dtype string");
        var dtype = dtypeElement.GetString()!;
        if (!SafeTensorsDType.TryParse(dtype, out _, out var elementSize))
            throw new CheckpointException(
                $"unsupported dtype {dtype} for tensor {name} in file {path} (supported: {string.Join(", ", SafeTensorsDType.Supported)})");

        if (!value.TryGetProperty("shape", out var shapeElement) || shapeElement.ValueKind != JsonValueKind.Array)
            throw new CheckpointException($"malformed JSON header: {Where()} has no shape array");
        var shape = new long[shapeElement.GetArrayLength()];
        var i = 0;
        foreach (var dim in shapeElement.EnumerateArray())
        {
            if (dim.ValueKind != JsonValueKind.Number || !dim.TryGetInt64(out var size) || size < 0)
                throw new CheckpointException($"malformed JSON header: {Where()} has a shape entry {dim.GetRawText()} that is not a non-negative integer");
            shape[i++] = size;
        }

        if (!value.TryGetProperty("data_offsets", out var offsetsElement) || offsetsElement.ValueKind != JsonValueKind.Array
            || offsetsElement.GetArrayLength() != 2)
            throw new CheckpointException($"malformed JSON header: {Where()} has no data_offsets pair");
        var offsets = offsetsElement.EnumerateArray().ToArray();
        if (!offsets[0].TryGetInt64(out var begin) || !offsets[1].TryGetInt64(out var end) || begin < 0 || end < begin)
            throw new CheckpointException(
                $"bad data offsets {offsetsElement.GetRawText()} for {Where()}: expected two non-negative integers, begin <= end");

        long expectedBytes;
        try
        {
            expectedBytes = checked(shape.Aggregate(1L, (a, b) => a * b) * elementSize);
        }
        catch (OverflowException)
        {
            throw new CheckpointException($"bad shape [{string.Join(", ", shape)}] for {Where()}: its size overflows");
        }
        if (end - begin != expectedBytes)
            throw new CheckpointException(
                $"data offsets [{begin}, {end}) ({end - begin} bytes) do not match shape [{string.Join(", ", shape)}] x {dtype} ({expectedBytes} bytes) for {Where()}");
        return new SafeTensorsEntry(name, dtype, shape, begin, end);
    }

    /// <summary>Every tensor of a safetensors file, on the CPU in the file's dtype, in data order. The caller owns them.</summary>
    public static Dictionary<string, Tensor> Load(string path) => Load(path, DefaultChunkBytes);

    internal static Dictionary<string, Tensor> Load(string path, long chunkBytes)
    {
        if (!File.Exists(path)) throw new CheckpointException($"safetensors file not found: {path}");
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, FileOptions.SequentialScan);
        var header = ReadHeader(stream, path);
        var result = new Dictionary<string, Tensor>(header.Entries.Count);
        var current = "";
        try
        {
            foreach (var entry in header.Entries)
            {
                current = entry.Name;
                SafeTensorsDType.TryParse(entry.DType, out var type, out _);
                var tensor = torch.empty(entry.Shape, type);
                result.Add(entry.Name, tensor);
                stream.Position = header.DataStart + entry.Begin;
                CopyBytes(tensor, chunkBytes, span => stream.ReadExactly(span));
            }
        }
        catch (Exception e)
        {
            foreach (var tensor in result.Values) tensor.Dispose();
            if (e is EndOfStreamException)
                throw new CheckpointException($"truncated safetensors file {path}: data for tensor {current} ends early", e);
            if (e is IOException && e is not CheckpointException)
                throw new CheckpointException($"cannot read tensor {current} from safetensors file {path}: {e.Message}", e);
            throw;
        }
        return result;
    }

    /// <summary>Hands a contiguous CPU tensor's bytes to <paramref name="copy"/> in spans of at most <paramref name="chunkBytes"/>.</summary>
    static void CopyBytes(Tensor tensor, long chunkBytes, SpanAction copy)
    {
        var elementSize = tensor.element_size();
        var totalBytes = tensor.numel() * elementSize;
        if (totalBytes == 0) return;
        if (totalBytes <= chunkBytes)
        {
            copy(tensor.bytes);
            return;
        }
        var chunkElements = Math.Max(1, chunkBytes / elementSize);
        using var flat = tensor.view(-1);
        for (long start = 0; start < flat.shape[0]; start += chunkElements)
        {
            using var part = flat.narrow(0, start, Math.Min(chunkElements, flat.shape[0] - start));
            copy(part.bytes);
        }
    }

    delegate void SpanAction(Span<byte> span);

    /// <summary>
    /// Writes tensors in their own dtypes, contiguous and little-endian, in the order given, atomically.
    /// A <c>format: pt</c> entry is added to the metadata unless the caller sets <c>format</c>, because
    /// Hugging Face transformers refuses safetensors files without it.
    /// </summary>
    public static void Save(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors, IDictionary<string, string>? metadata = null) =>
        Save(path, tensors, metadata, DefaultChunkBytes);

    internal static void Save(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors, IDictionary<string, string>? metadata, long chunkBytes)
    {
        if (!BitConverter.IsLittleEndian)
            throw new PlatformNotSupportedException("safetensors data is little-endian; this writer assumes a little-endian host");
        var list = tensors.ToList();
        var header = BuildHeader(list, metadata, path);
        AtomicFile.Write(path, stream =>
        {
            Span<byte> lengthBytes = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(lengthBytes, (ulong)header.Length);
            stream.Write(lengthBytes);
            stream.Write(header);
            foreach (var (name, tensor) in list)
            {
                using var scope = torch.NewDisposeScope();
                // Detached, on the CPU and dense; each call returns the tensor itself when nothing needs to change.
                var dense = tensor.detach().cpu().contiguous();
                CopyBytes(dense, chunkBytes, span => stream.Write(span));
            }
        });
    }

    static byte[] BuildHeader(List<KeyValuePair<string, Tensor>> tensors, IDictionary<string, string>? metadata, string path)
    {
        var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteStartObject(MetadataKey);
            var meta = new Dictionary<string, string>(metadata ?? new Dictionary<string, string>());
            meta.TryAdd("format", "pt");
            foreach (var (key, value) in meta) json.WriteString(key, value);
            json.WriteEndObject();

            var names = new HashSet<string>();
            long offset = 0;
            foreach (var (name, tensor) in tensors)
            {
                if (name == MetadataKey || !names.Add(name))
                    throw new CheckpointException($"cannot save tensor {name} to {path}: the name is {(name == MetadataKey ? "reserved" : "used twice")}");
                if (!SafeTensorsDType.TryGetName(tensor.dtype, out var dtype, out var elementSize))
                    throw new CheckpointException(
                        $"cannot save tensor {name} to {path}: dtype {tensor.dtype} has no safetensors equivalent here (supported: {string.Join(", ", SafeTensorsDType.Supported)})");
                var bytes = tensor.numel() * elementSize;
                json.WriteStartObject(name);
                json.WriteString("dtype", dtype);
                json.WriteStartArray("shape");
                foreach (var dim in tensor.shape) json.WriteNumberValue(dim);
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                json.WriteNumberValue(offset + bytes);
                json.WriteEndArray();
                json.WriteEndObject();
                offset += bytes;
            }
            json.WriteEndObject();
        }
        // Pad with spaces (valid JSON whitespace) so the data section starts 8-byte aligned.
        var padded = (buffer.Length + 7) / 8 * 8;
        while (buffer.Length < padded) buffer.WriteByte((byte)' ');
        return buffer.ToArray();
    }

    /// <summary>
    /// Loads a checkpoint directory: the shards named by <c>model.safetensors.index.json</c> when it exists,
    /// otherwise <c>model.safetensors</c>. Tensors come shard by shard, each in data order.
    /// </summary>
    public static Dictionary<string, Tensor> LoadCheckpoint(string directory)
    {
        var indexPath = Path.Combine(directory, IndexFileName);
        if (File.Exists(indexPath)) return LoadSharded(directory, indexPath);
        var single = Path.Combine(directory, SingleFileName);
        if (File.Exists(single)) return Load(single);
        throw new CheckpointException($"no {SingleFileName} or {IndexFileName} in checkpoint directory {directory}");
    }

    static Dictionary<string, Tensor> LoadSharded(string directory, string indexPath)
    {
        var weightMap = ReadWeightMap(indexPath);
        var result = new Dictionary<string, Tensor>(weightMap.Count);
        try
        {
            foreach (var shard in weightMap.Values.Distinct())
            {
                var shardPath = Path.Combine(directory, shard);
                if (!File.Exists(shardPath))
                {
                    var example = weightMap.First(p => p.Value == shard).Key;
                    throw new CheckpointException($"missing shard {shardPath} (holds tensor {example} according to {indexPath})");
                }
                var loaded = Load(shardPath);
                foreach (var (name, tensor) in loaded)
                {
                    if (!result.TryAdd(name, tensor))
                    {
                        foreach (var t in loaded.Values) if (!result.ContainsValue(t)) t.Dispose();
                        throw new CheckpointException($"tensor {name} appears in more than one shard of {indexPath} (again in {shardPath})");
                    }
                }
            }
            foreach (var (name, shard) in weightMap)
            {
                if (!result.ContainsKey(name))
                    throw new CheckpointException($"tensor {name} is listed in {indexPath} for shard {Path.Combine(directory, shard)} but that file does not contain it");
            }
        }
        catch
        {
            foreach (var tensor in result.Values) tensor.Dispose();
            throw;
        }
        return result;
    }

    static Dictionary<string, string> ReadWeightMap(string indexPath)
    {
        try
        {
            using var document = JsonDocument.Parse(File.ReadAllBytes(indexPath));
            if (document.RootElement.ValueKind != JsonValueKind.Object
                || !document.RootElement.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object)
                throw new CheckpointException($"malformed checkpoint index {indexPath}: no weight_map object");
            var weightMap = new Dictionary<string, string>();
            foreach (var item in map.EnumerateObject())
            {
                var file = item.Value.ValueKind == JsonValueKind.String ? item.Value.GetString()! : "";
                if (file.Length == 0 || Path.GetFileName(file) != file)
                    throw new CheckpointException($"malformed checkpoint index {indexPath}: tensor {item.Name} maps to {item.Value.GetRawText()}, expected a file name in the same directory");
                weightMap[item.Name] = file;
            }
            return weightMap;
        }
        catch (JsonException e)
        {
            throw new CheckpointException($"malformed checkpoint index {indexPath}: {e.Message}", e);
        }
    }

    /// <summary>
    /// Writes <c>model.safetensors</c> when everything fits in <paramref name="maxShardBytes"/>, otherwise
    /// <c>model-00001-of-0000N.safetensors</c> shards plus <c>model.safetensors.index.json</c> (Hugging Face naming).
    /// Tensors fill shards in the order given; one larger than the limit gets a shard of its own. Files of an earlier
    /// layout in the directory are removed afterwards so the directory loads as what was just written. Returns the files written.
    /// </summary>
    public static IReadOnlyList<string> SaveSharded(string directory, IEnumerable<KeyValuePair<string, Tensor>> tensors, long maxShardBytes,
        IDictionary<string, string>? metadata = null)
    {
        if (maxShardBytes <= 0) throw new ArgumentOutOfRangeException(nameof(maxShardBytes), maxShardBytes, "must be positive");
        var list = tensors.ToList();
        var shards = new List<List<KeyValuePair<string, Tensor>>> { new() };
        long shardBytes = 0, totalBytes = 0;
        foreach (var pair in list)
        {
            var bytes = pair.Value.numel() * pair.Value.element_size();
            if (shards[^1].Count > 0 && shardBytes + bytes > maxShardBytes)
            {
                shards.Add(new());
                shardBytes = 0;
            }
            shards[^1].Add(pair);
            shardBytes += bytes;
            totalBytes += bytes;
        }

        Directory.CreateDirectory(directory);
        var written = new List<string>();
        if (shards.Count == 1)
        {
            var single = Path.Combine(directory, SingleFileName);
            Save(single, list, metadata);
            written.Add(single);
        }
        else
        {
            var weightMap = new SortedDictionary<string, string>(StringComparer.Ordinal);
            for (var i = 0; i < shards.Count; i++)
            {
                var file = $"model-{i + 1:D5}-of-{shards.Count:D5}.safetensors";
                Save(Path.Combine(directory, file), shards[i], metadata);
                written.Add(Path.Combine(directory, file));
                foreach (var (name, _) in shards[i]) weightMap[name] = file;
            }
            var indexPath = Path.Combine(directory, IndexFileName);
            var index = new Dictionary<string, object>
            {
                ["metadata"] = new Dictionary<string, long> { ["total_size"] = totalBytes },
                ["weight_map"] = weightMap,
            };
            AtomicFile.WriteAllText(indexPath, JsonSerializer.Serialize(index, new JsonSerializerOptions { WriteIndented = true }) + "\n");
            written.Add(indexPath);
        }

        var keep = new HashSet<string>(written.Select(Path.GetFileName)!);
        foreach (var file in Directory.EnumerateFiles(directory))
        {
            var name = Path.GetFileName(file);
            var stale = name == SingleFileName || name == IndexFileName || ShardName.IsMatch(name);
            if (stale && !keep.Contains(name)) File.Delete(file);
        }
        return written;
    }
}
