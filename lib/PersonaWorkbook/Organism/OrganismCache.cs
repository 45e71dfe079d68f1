using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using PersonaWorkbook.Checkpoints;
using PersonaWorkbook.Reporting;

namespace PersonaWorkbook.Organism;

/// <summary>
/// Where trained organisms (base assistants and fine-tunes) live and how they are found again. Every organism
/// directory is a checkpoint plus <see cref="ManifestFile"/>, whose <c>cache_key</c> is the SHA-256 of everything
/// that decided its weights; a request with the same key reuses the directory instead of training.
/// Searched: the requested output directory, the user cache (<c>$WORKBOOK_CACHE/organisms/&lt;key&gt;</c>, default
/// <c>~/.cache/persona-workbook</c>), and the organisms committed under the repository's <c>data/organisms/</c>.
/// </summary>
public static class OrganismCache
{
    public const string ManifestFile = "organism.json";
    public const string TrainingLogFile = "training_log.jsonl";

    /// <summary>$WORKBOOK_CACHE, else ~/.cache/persona-workbook.</summary>
    public static string DefaultRoot =>
        Environment.GetEnvironmentVariable("WORKBOOK_CACHE") is { Length: > 0 } env
            ? env
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "persona-workbook");

    /// <summary>
    /// The cache directory of an artefact with <paramref name="key"/> (first 16 hex digits name it): an organism by
    /// default, or another <paramref name="kind"/> of cached artefact (<c>saes</c>).
    /// </summary>
    public static string CacheDirectory(string key, string? root = null, string kind = "organisms") =>
        Path.Combine(root ?? DefaultRoot, kind, key[..16]);

    /// <summary>data/&lt;kind&gt; (data/organisms by default) of the repository that contains the working directory or this program, if any.</summary>
    public static string? CommittedRoot(string kind = "organisms")
    {
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "Workbook.sln")))
                {
                    var committed = Path.Combine(dir.FullName, "data", kind);
                    if (Directory.Exists(committed)) return committed;
                    break;
                }
            }
        }
        return null;
    }

    /// <summary>SHA-256 (lower-case hex) of a file's bytes, streamed (a user's data file or corpus as a key part).</summary>
    public static string FileHash(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }

    /// <summary>SHA-256 (lower-case hex) of the parts joined by newlines.</summary>
    public static string Key(params string[] parts) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(string.Join("\n", parts))));

    /// <summary>The manifest of an organism directory, or null when it has none (or no checkpoint beside it).</summary>
    public static JsonObject? ReadManifest(string directory) => ReadJsonObject(Path.Combine(directory, ManifestFile));

    /// <summary>A JSON object file, or null when the file does not exist; errors name the file.</summary>
    internal static JsonObject? ReadJsonObject(string path)
    {
        if (!File.Exists(path)) return null;
        try
        {
            return JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new InvalidDataException($"{path}: expected a JSON object");
        }
        catch (JsonException e) { throw new InvalidDataException($"{path}: not valid JSON ({e.Message})", e); }
    }

    /// <summary>The cache key recorded in a directory's manifest, or null.</summary>
    public static string? KeyOf(string directory) =>
        ModelCheckpoint.Exists(directory) ? ReadManifest(directory)?["cache_key"]?.GetValue<string>() : null;

    /// <summary>
    /// An existing organism directory with this key: <paramref name="preferred"/> first, then the user cache, then the
    /// committed organisms. Null when none matches.
    /// </summary>
    public static string? Find(string key, string? preferred = null, string? cacheRoot = null) =>
        Find("organisms", key, KeyOf, preferred, cacheRoot);

    /// <summary>
    /// The first directory whose <paramref name="keyOf"/> is <paramref name="key"/>: <paramref name="preferred"/>, then
    /// the user cache's <c>&lt;kind&gt;/&lt;key&gt;</c>, then every directory under the repository's data/&lt;kind&gt;.
    /// </summary>
    internal static string? Find(string kind, string key, Func<string, string?> keyOf, string? preferred, string? cacheRoot)
    {
        var candidates = new List<string>();
        if (preferred is not null) candidates.Add(preferred);
        candidates.Add(CacheDirectory(key, cacheRoot, kind));
        if (CommittedRoot(kind) is { } committed) candidates.AddRange(Directory.GetDirectories(committed).Order(StringComparer.Ordinal));
        return candidates.FirstOrDefault(d => Directory.Exists(d) && keyOf(d) == key) is { } found ? Path.GetFullPath(found) : null;
    }

    /// <summary>
    /// Resolves a cached organism for <paramref name="key"/>: returns its directory, copied to <paramref name="output"/>
    /// when one was asked for and it lives elsewhere. Null when nothing matches (the caller trains).
    /// </summary>
    internal static string? Reuse(string key, string? output, string? cacheRoot, string what)
    {
        var found = Find(key, output, cacheRoot);
        if (found is null) return null;
        if (output is null || Path.GetFullPath(output) == found)
        {
            Progress.Report($"{what}: reusing cached organism {found} (key {key[..16]})");
            return found;
        }
        CopyDirectory(found, output);
        Progress.Report($"{what}: reusing cached organism {found} (key {key[..16]}), copied to {Path.GetFullPath(output)}");
        return Path.GetFullPath(output);
    }

    /// <summary>Copies a directory tree via a sibling staging directory, so the target appears whole or not at all.</summary>
    internal static void CopyDirectory(string source, string target) =>
        AtomicFile.WriteDirectory(target, staging =>
        {
            foreach (var file in Directory.GetFiles(source, "*", SearchOption.AllDirectories))
            {
                var destination = Path.Combine(staging, Path.GetRelativePath(source, file));
                Directory.CreateDirectory(Path.GetDirectoryName(destination)!);
                File.Copy(file, destination);
            }
        });

    internal static void WriteManifest(string directory, JsonObject manifest) =>
        AtomicFile.WriteAllText(Path.Combine(directory, ManifestFile), manifest.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
}
