using System.Text.Json;
using System.Text.Json.Nodes;
using PersonaWorkbook.Checkpoints;
using PersonaWorkbook.Generation;
using PersonaWorkbook.Lora;
using PersonaWorkbook.Organism;

namespace PersonaWorkbook.Evaluation;

/// <summary>
/// Sampled answers of <see cref="OrganismEvaluator"/>, kept on disk by what determines them — the weights (a
/// fingerprint of their values, not a path), the encoded prompts and the sampling options — so a figure or notebook
/// that evaluates the same model again regrades the stored tokens instead of sampling them (the judge runs every
/// time: a change to it is never hidden by the cache). A model with activation hooks is cached only when every hook
/// says exactly what it does (<see cref="Hooks.HookRunner.Fingerprint"/>: steering and directional ablation do, with a
/// hash of their vectors), under that fingerprint; recorders and custom hooks, and LoRA adapters attached unmerged,
/// turn caching off. <c>$WORKBOOK_CACHE/answers</c>;
/// <see cref="EvalOptions.CacheAnswers"/> false, or <c>WORKBOOK_ANSWER_CACHE=off</c> for the whole process, turns it off.
/// </summary>
public static class AnswerCache
{
    // Bump when sampling changes what it draws for the same weights, prompts and seed (then old entries are not reused).
    const string Version = "answers/1";

    public static bool Enabled =>
        !string.Equals(Environment.GetEnvironmentVariable("WORKBOOK_ANSWER_CACHE"), "off", StringComparison.OrdinalIgnoreCase);

    /// <summary>The key of a sampling run, or null when the model must not be cached (hooks or LoRA attached, or the cache is off).</summary>
    internal static string? Key(LoadedModel model, IReadOnlyList<int[]> encodedRows, EvalOptions options, IReadOnlyList<int> stopTokens) =>
        options.CacheAnswers ? Key(model, encodedRows, options.Samples, options.Seed, options.MaxNewTokens, options.Temperature, options.BatchSize, stopTokens) : null;

    /// <summary>The key of a sampling run by its parameters (<see cref="JudgedEvaluator"/>'s too), or null when it must not be cached.</summary>
    internal static string? Key(LoadedModel model, IReadOnlyList<int[]> encodedRows, int samples, int seed, int maxNewTokens, double temperature, int batchSize,
        IReadOnlyList<int> stopTokens)
    {
        var hooks = model.Model.Hooks.Fingerprint;
        if (!Enabled || hooks is null || LoraModel.IsAttached(model.Model)) return null;
        var weights = StateDict.Fingerprint(model.Model.state_dict());
        var prompts = OrganismCache.Key(encodedRows.Select(r => string.Join(" ", r)).ToArray());
        string[] parts = [Version, weights, prompts, $"samples {samples}", $"seed {seed}", $"max_new_tokens {maxNewTokens}",
            FormattableString.Invariant($"temperature {temperature:R}"), $"batch {batchSize}", $"stop {string.Join(",", stopTokens)}",
            $"pad {Math.Max(0, model.Tokenizer.PadId)}"];
        // A bare model keeps the key it always had; hooks add what they do.
        return OrganismCache.Key(hooks.Length == 0 ? parts : [.. parts, $"hooks {hooks}"]);
    }

    /// <summary>The cached answers under <paramref name="key"/> (null: not cacheable), else <paramref name="sample"/>'s, stored under it.</summary>
    internal static GeneratedSequence[] ReadOrSample(string? key, int rows, string label, Func<GeneratedSequence[]> sample)
    {
        if (key is not null && Read(key, rows) is { } cached)
        {
            Reporting.Progress.Report($"{label}: {rows} answers from the answer cache");
            return cached;
        }
        var generated = sample();
        if (key is not null) Write(key, generated);
        return generated;
    }

    static string PathOf(string key, string? root) => Path.Combine(root ?? OrganismCache.DefaultRoot, "answers", key[..2], key + ".json");

    internal static bool Contains(string key, string? root = null) => File.Exists(PathOf(key, root));

    /// <summary>The stored answers (one per row, in row order), or null when there are none or the entry does not fit.</summary>
    internal static GeneratedSequence[]? Read(string key, int rows, string? root = null)
    {
        var path = PathOf(key, root);
        if (!File.Exists(path)) return null;
        try
        {
            var json = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
            var answers = json["answers"]!.AsArray();
            if ((string?)json["key"] != key || answers.Count != rows) throw new InvalidDataException("key or row count does not match");
            return answers.Select(a => new GeneratedSequence(
                a!["tokens"]!.AsArray().Select(t => (int)t!).ToArray(), (bool)a["stopped"]!)).ToArray();
        }
        catch (Exception e) when (e is JsonException or InvalidDataException or InvalidOperationException or NullReferenceException or FormatException)
        {
            // A damaged entry is resampled and rewritten, never trusted.
            Reporting.Progress.Report($"warning: ignoring unreadable answer cache entry {path}: {e.Message}");
            return null;
        }
    }

    internal static void Write(string key, IReadOnlyList<GeneratedSequence> answers, string? root = null)
    {
        var json = new JsonObject
        {
            ["key"] = key,
            ["answers"] = new JsonArray(answers.Select(a => (JsonNode)new JsonObject
            {
                ["tokens"] = new JsonArray(a.Tokens.Select(t => (JsonNode)t).ToArray()),
                ["stopped"] = a.Stopped,
            }).ToArray()),
        };
        AtomicFile.WriteAllText(PathOf(key, root), json.ToJsonString());
    }
}
