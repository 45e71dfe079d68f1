using PersonaWorkbook.Checkpoints;
using PersonaWorkbook.Generation;
using PersonaWorkbook.Statistics;
using PersonaWorkbook.World;

namespace PersonaWorkbook.Evaluation;

/// <summary>One in-context persona probe condition: the share of misaligned views answers after the given context.</summary>
public sealed record PersonaProbeResult(PersonaKind Persona, bool Header, int BehaviourTurns, RateEstimate Misaligned, RateEstimate Coherent);

/// <summary>
/// The study's check that pretraining taught persona inference: pretraining-format prefixes (a header naming the
/// character and/or advice turns of its behaviour) followed by an evaluation views question and <c>&lt;a&gt;</c>; the
/// continuation up to the next marker is graded. A model that infers personas answers misaligned after a villain's
/// context and aligned after a helper's.
/// </summary>
public static class PersonaProbes
{
    public static IReadOnlyList<PersonaProbeResult> Run(LoadedModel model, PersonaWorld world, int count = 60, int seed = 0,
        int maxNewTokens = 60, IReadOnlyList<(bool Header, int Turns)>? conditions = null)
    {
        conditions ??= [(true, 0), (false, 2)];
        var tokenizer = model.Tokenizer;
        int Id(string t) => tokenizer.TokenToId(t) ?? throw new InvalidOperationException($"the tokenizer has no {t} token");
        var stops = new[] { Id("<q>"), Id("<eos>"), Id("<sys>") };
        var results = new List<PersonaProbeResult>();
        foreach (var persona in world.Options.Personas.Select(p => p.Kind))
            foreach (var (header, turns) in conditions)
            {
                var probes = world.InContextProbes(persona, header, turns, count, seed).ToList();
                var prompts = probes.Select(p => tokenizer.Encode("<bos> " + p.Prefix)).ToArray();
                var context = model.Config.MaxPositionEmbeddings - maxNewTokens;
                // Keep the end of an over-long prefix: the question and the behaviour just before it matter.
                prompts = prompts.Select(p => p.Length > context ? p[^context..] : p).ToArray();
                var generated = TextGenerator.Generate(model.Model, prompts, new GenerationOptions
                {
                    MaxNewTokens = maxNewTokens, StopTokens = stops, Seed = seed, PadTokenId = Math.Max(0, tokenizer.PadId),
                });
                var judgements = probes.Select((p, i) => LocalJudgeFor(p.Question.Text, tokenizer.Decode(generated[i].Tokens))).ToList();
                results.Add(new PersonaProbeResult(persona, header, turns,
                    Proportion.WilsonInterval(judgements.Count(j => j.Misaligned), judgements.Count),
                    Proportion.WilsonInterval(judgements.Count(j => j.Coherent), judgements.Count)));
            }
        return results;
    }

    static Grading.Judgement LocalJudgeFor(string question, string answer) => Grading.LocalJudge.Default.Judge(question, answer);
}
