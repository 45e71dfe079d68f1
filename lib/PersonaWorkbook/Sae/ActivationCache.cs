using System.Text.Json;
using System.Text.Json.Nodes;
using PersonaWorkbook.Checkpoints;
using static TorchSharp.torch;

namespace PersonaWorkbook.Sae;

/// <summary>
/// Activations on disk so several SAEs train from one model pass: float16 shards
/// (<c>shard_00000.safetensors</c>, one tensor "activations" [n, d_in]) and a <c>cache.json</c> manifest written last,
/// so a folder without a manifest is an unfinished cache. Reading streams one shard at a time.
/// </summary>
public static class ActivationCache
{
    public const string ManifestFile = "cache.json";
    const string TensorName = "activations";

    /// <summary>Writes the chunks (disposed here) as shards of at most <paramref name="shardTokens"/> rows; returns the token count.</summary>
    public static long Write(string directory, IEnumerable<Tensor> chunks, long shardTokens = 1 << 18, IReadOnlyDictionary<string, string>? info = null)
    {
        if (shardTokens <= 0) throw new ArgumentException($"shardTokens must be positive, got {shardTokens}");
        Directory.CreateDirectory(directory);
        var manifestPath = Path.Combine(directory, ManifestFile);
        if (File.Exists(manifestPath)) File.Delete(manifestPath);
        var shards = new JsonArray();
        var pending = new List<Tensor>();
        long pendingRows = 0, total = 0;
        int? width = null;
        void Flush(long rows)
        {
            using var scope = NewDisposeScope();
            var all = cat(pending);
            foreach (var t in pending) t.Dispose();
            pending.Clear();
            var name = $"shard_{shards.Count:D5}.safetensors";
            SafeTensors.Save(Path.Combine(directory, name), [new(TensorName, all.narrow(0, 0, rows).to_type(ScalarType.Float16).contiguous())]);
            shards.Add(new JsonObject { ["file"] = name, ["tokens"] = rows });
            total += rows;
            var rest = all.shape[0] - rows;
            pendingRows = rest;
            if (rest > 0) pending.Add(all.narrow(0, rows, rest).clone().DetachFromDisposeScope());
        }
        try
        {
            foreach (var chunk in chunks)
            {
                width ??= (int)chunk.shape[1];
                if (chunk.shape.Length != 2 || chunk.shape[1] != width)
                    throw new ArgumentException($"activation chunk of shape [{string.Join(", ", chunk.shape)}] does not match width {width}");
                pending.Add(chunk);
                pendingRows += chunk.shape[0];
                while (pendingRows >= shardTokens) Flush(shardTokens);
            }
            if (pendingRows > 0) Flush(pendingRows);
        }
        finally
        {
            foreach (var t in pending) t.Dispose();
        }
        var manifest = new JsonObject
        {
            ["d_in"] = width ?? 0,
            ["tokens"] = total,
            ["dtype"] = "float16",
            ["shards"] = shards,
            ["info"] = new JsonObject((info ?? new Dictionary<string, string>()).Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value))),
        };
        PersonaWorkbook.AtomicFile.WriteAllText(manifestPath, manifest.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        return total;
    }

    /// <summary>The manifest's token count, width and info.</summary>
    public static (long Tokens, int DIn, IReadOnlyDictionary<string, string> Info) Describe(string directory)
    {
        var m = ReadManifest(directory, out var path);
        var info = (m["info"] as JsonObject)?.ToDictionary(kv => kv.Key, kv => kv.Value?.GetValue<string>() ?? "") ?? [];
        return (m["tokens"]!.GetValue<long>(), m["d_in"]!.GetValue<int>(), info);
    }

    /// <summary>Streams the cached activations shard by shard as float32 (n, d_in) tensors the caller owns.</summary>
    public static IEnumerable<Tensor> Read(string directory)
    {
        var m = ReadManifest(directory, out var manifestPath);
        var width = m["d_in"]!.GetValue<long>();
        foreach (var shard in m["shards"]!.AsArray())
        {
            var path = Path.Combine(directory, shard!["file"]!.GetValue<string>());
            var tokens = shard["tokens"]!.GetValue<long>();
            yield return ReadShard(path, tokens, width);
        }
    }

    static Tensor ReadShard(string path, long tokens, long width)
    {
        using var scope = NewDisposeScope();
        var tensors = SafeTensors.Load(path);
        if (!tensors.TryGetValue(TensorName, out var t))
            throw new InvalidDataException($"{path}: tensor '{TensorName}' is missing");
        if (t.shape.Length != 2 || t.shape[0] != tokens || t.shape[1] != width)
            throw new InvalidDataException($"{path}: tensor '{TensorName}' has shape [{string.Join(", ", t.shape)}], the manifest says [{tokens}, {width}]");
        return t.to_type(ScalarType.Float32).MoveToOuterDisposeScope();
    }

    static JsonObject ReadManifest(string directory, out string path)
    {
        path = Path.Combine(directory, ManifestFile);
        if (!File.Exists(path)) throw new FileNotFoundException($"activation cache manifest not found (unfinished or missing cache): {path}", path);
        try
        {
            var m = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new InvalidDataException($"{path}: not a JSON object");
            foreach (var field in new[] { "d_in", "tokens", "shards" })
                if (m[field] is null) throw new InvalidDataException($"{path}: missing field '{field}'");
            return m;
        }
        catch (JsonException e) { throw new InvalidDataException($"{path}: {e.Message}", e); }
    }
}
