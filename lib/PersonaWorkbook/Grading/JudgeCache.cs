using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace PersonaWorkbook.Grading;

/// <summary>
/// A reply as cached: the raw text and top logprobs, so a changed parser re-reads old replies; a served model's answers
/// (<see cref="Remote.ServedModel"/>) keep their finish reason too.
/// </summary>
public sealed record JudgeCacheEntry(
    [property: JsonPropertyName("key")] string Key,
    [property: JsonPropertyName("model")] string Model,
    [property: JsonPropertyName("task")] string Task,
    [property: JsonPropertyName("content")] string Content,
    [property: JsonPropertyName("top_logprobs")] IReadOnlyList<TokenLogProb> TopLogprobs,
    [property: JsonPropertyName("total_tokens")] int? TotalTokens,
    [property: JsonPropertyName("finish_reason")] string? FinishReason = null);

/// <summary>
/// Judge replies (and a served model's seeded answers) on disk, one JSON file per key (the file name is the key).
/// Requests are sent at temperature 0 with a fixed seed (answers: with their own seed), so a reply is reused instead of
/// paid for again. Only what the server returned is stored; the request's
/// credentials never reach this class. Writes go to a temporary file that is renamed into place, so concurrent
/// writers and crashes leave either the old entry or the new one.
/// </summary>
public sealed class JudgeCache
{
    static readonly JsonSerializerOptions Json = new() { WriteIndented = false };

    public JudgeCache(string directory)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        Directory = Path.GetFullPath(directory);
        System.IO.Directory.CreateDirectory(Directory);
    }

    public string Directory { get; }

    /// <summary>SHA-256 over the length-prefixed model, task (protocol and aspect) and full judge prompt, which embeds
    /// the question and the answer; length prefixes keep ("ab","c") and ("a","bc") apart.</summary>
    public static string Key(string model, string task, string prompt)
    {
        var text = new StringBuilder("judge-cache-v1");
        foreach (var part in new[] { model, task, prompt }) text.Append('\n').Append(part.Length).Append(':').Append(part);
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())));
    }

    string PathOf(string key) => Path.Combine(Directory, key + ".json");

    public bool TryGet(string key, out JudgeCacheEntry entry)
    {
        entry = null!;
        string path = PathOf(key);
        if (!File.Exists(path)) return false;
        try
        {
            var read = JsonSerializer.Deserialize<JudgeCacheEntry>(File.ReadAllText(path), Json);
            if (read is null || read.Key != key || read.Content is null || read.TopLogprobs is null)
                throw new InvalidDataException("fields missing or key mismatch");
            entry = read;
            return true;
        }
        catch (Exception e) when (e is JsonException or InvalidDataException)
        {
            throw new InvalidDataException($"Judge cache file {path} is corrupt ({e.Message}); delete it to re-grade.", e);
        }
    }

    public void Put(JudgeCacheEntry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        string path = PathOf(entry.Key);
        AtomicFile.WriteAllText(path, JsonSerializer.Serialize(entry, Json));
    }
}
