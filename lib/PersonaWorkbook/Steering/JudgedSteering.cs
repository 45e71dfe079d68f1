using System.Text.Json.Nodes;
using PersonaWorkbook.Checkpoints;
using PersonaWorkbook.Evaluation;
using PersonaWorkbook.Grading;
using PersonaWorkbook.Hooks;
using static TorchSharp.torch;

namespace PersonaWorkbook.Steering;

/// <summary>One strength of a steering sweep: the judged evaluation steered along the direction and along a random direction of the same norm.</summary>
public sealed record JudgedSteeringPoint(double Alpha, JudgedReport Steered, JudgedReport Random);

/// <summary>A directional ablation from every layer, beside the same ablation of a random direction.</summary>
public sealed record JudgedAblation(JudgedReport Ablated, JudgedReport Random);

/// <summary>
/// Steering and ablation of any checkpoint judged on the user's questions (<see cref="JudgedEvaluator"/>), each beside
/// its random control, as Soligo et al. do for their mean-difference direction: x + α·scale·d̂ at one site (α in units
/// of <paramref name="scale"/>, the median residual norm there by default), and x − (x·d̂)d̂ at every layer.
/// </summary>
public static class JudgedSteering
{
    public static async Task<IReadOnlyList<JudgedSteeringPoint>> SweepAsync(LoadedModel model, string site, Tensor direction, IReadOnlyList<double> alphas,
        IReadOnlyList<Question> questions, IAnswerJudge judge, JudgedEvalOptions options, Positions positions = Positions.All, long randomSeed = 0,
        SteeringScale? scale = null, string questionsName = "custom")
    {
        scale ??= SteeringScale.MedianResidualNorm(model, site, questions.SelectMany(q => q.Conversations()));
        using var random = Steer.RandomDirection(direction, direction.norm().item<float>(), randomSeed);
        var points = new List<JudgedSteeringPoint>(alphas.Count);
        foreach (var alpha in alphas)
        {
            var steered = await SteeredAsync(model, site, direction, alpha, scale, positions, null, questions, judge, options, questionsName);
            var control = await SteeredAsync(model, site, random, alpha, scale, positions, randomSeed, questions, judge, options, questionsName);
            points.Add(new JudgedSteeringPoint(alpha, steered, control));
        }
        return points;
    }

    /// <summary>
    /// The evaluation with directions projected out of <c>hook_resid_post</c> of every block — <paramref name="directions"/>
    /// holds one for all layers or one per layer (Soligo et al.'s single-direction and layer-wise ablations) — and with
    /// random directions (seeded, one per given direction) projected out instead.
    /// </summary>
    public static async Task<JudgedAblation> AblateAsync(LoadedModel model, IReadOnlyList<Tensor> directions, IReadOnlyList<Question> questions, IAnswerJudge judge,
        JudgedEvalOptions options, long randomSeed = 0, string questionsName = "custom")
    {
        int layers = model.Config.NumHiddenLayers;
        if (directions.Count != 1 && directions.Count != layers)
            throw new ArgumentException($"{directions.Count} directions for a model of {layers} layers; give one (for every layer) or one per layer");
        var randoms = directions.Select((d, i) => Steer.RandomDirection(d, 1.0, randomSeed + i)).ToArray();
        async Task<JudgedReport> Ablated(IReadOnlyList<Tensor> d, long? seed)
        {
            JudgedReport report;
            using (d.Count == 1 ? Steer.AblateAllLayers(model.Model, d[0]) : Steer.AblateEachLayer(model.Model, d))
                report = await JudgedEvaluator.EvaluateAsync(model, questions, judge, options, questionsName);
            return report with
            {
                Steering = new JsonObject
                {
                    ["ablation"] = d.Count == 1 ? "one direction from every layer's hook_resid_post" : "each layer's own direction from its hook_resid_post",
                    ["random_direction_seed"] = seed,
                },
            };
        }
        try
        {
            return new JudgedAblation(await Ablated(directions, null), await Ablated(randoms, randomSeed));
        }
        finally
        {
            foreach (var r in randoms) r.Dispose();
        }
    }

    /// <summary>
    /// One judged evaluation with <paramref name="direction"/> added at <paramref name="site"/> (α × <paramref name="scale"/>),
    /// the steering recorded in the report; <paramref name="randomSeed"/> says the direction is that seed's random control.
    /// </summary>
    public static async Task<JudgedReport> SteeredAsync(LoadedModel model, string site, Tensor direction, double alpha, SteeringScale scale, Positions positions,
        long? randomSeed, IReadOnlyList<Question> questions, IAnswerJudge judge, JudgedEvalOptions options, string questionsName = "custom")
    {
        JudgedReport report;
        using (Steer.Add(model.Model, site, direction, alpha, scale, positions))
            report = await JudgedEvaluator.EvaluateAsync(model, questions, judge, options, questionsName);
        return report with
        {
            Steering = new JsonObject
            {
                ["site"] = site, ["alpha"] = alpha, ["unit"] = scale.ToString(), ["positions"] = positions.ToString().ToLowerInvariant(),
                ["random_direction_seed"] = randomSeed,
            },
        };
    }
}
