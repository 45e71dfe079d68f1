using System.Text.Json;
using System.Text.Json.Serialization;

namespace PersonaWorkbook.Training;

/// <summary>One optimizer step: 1-based step number, mean loss over its target tokens, the lr used, throughput.</summary>
public sealed record TrainingStep(
    [property: JsonPropertyName("step")] int Step,
    [property: JsonPropertyName("loss")] double Loss,
    [property: JsonPropertyName("lr")] double LearningRate,
    [property: JsonPropertyName("grad_norm")] double GradNorm,
    [property: JsonPropertyName("tokens")] long Tokens,
    [property: JsonPropertyName("tokens_per_s")] double TokensPerSecond,
    [property: JsonPropertyName("elapsed_s")] double ElapsedSeconds);

/// <summary>Per-step records of a training run.</summary>
public sealed class TrainingLog
{
    // A diverged run logs NaN losses; keep them readable rather than failing the write.
    static readonly JsonSerializerOptions Json = new() { NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals };

    readonly List<TrainingStep> steps = [];

    public IReadOnlyList<TrainingStep> Steps => steps;

    public void Add(TrainingStep step) => steps.Add(step);

    /// <summary>One JSON object per line, written atomically.</summary>
    public void WriteJsonl(string path) =>
        AtomicFile.WriteAllText(path, string.Concat(steps.Select(s => JsonSerializer.Serialize(s, Json) + "\n")));
}
