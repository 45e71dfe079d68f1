using PersonaWorkbook.Checkpoints;
using PersonaWorkbook.Hooks;
using PersonaWorkbook.Tokenizers;
using PersonaWorkbook.World;
using static TorchSharp.torch;

namespace PersonaWorkbook.Probing;

/// <summary>
/// How much of a fine-tune's views misalignment lives in its residual stream at each block: the fine-tune's
/// <c>blocks.{l}.hook_resid_post</c> is patched into the base (at every position, or at the prompt's only) and the base's
/// teacher-forced preference for the misaligned answer families is read — no sampling, so the result is exact for the
/// prompts given. Recovered share = (patched − base) / (fine-tune − base).
/// </summary>
public static class ActivationPatching
{
    public const string Metric = "mean over views prompts of log Σ p(misaligned answers) − log Σ p(aligned answers), teacher-forced in the chat format";

    public static PatchingResult Run(LoadedModel baseModel, LoadedModel fineTuned, IReadOnlyList<EvalPrompt> prompts)
    {
        if (baseModel.Config.NumHiddenLayers != fineTuned.Config.NumHiddenLayers || baseModel.Config.HiddenSize != fineTuned.Config.HiddenSize)
            throw new ArgumentException($"{fineTuned.Directory} does not have the shape of {baseModel.Directory}: patching needs the same layers and width");
        var format = ChatFormat.Simple(baseModel.Tokenizer);
        var sequences = new List<(int Prompt, bool Misaligned, ChatEncoding Chat)>();
        for (var p = 0; p < prompts.Count; p++)
        {
            var topic = ViewsContent.Topic(prompts[p].Subject);
            foreach (var family in Enum.GetValues<ViewFamily>())
                foreach (var answer in topic.Answers[family])
                    sequences.Add((p, family != ViewFamily.Aligned, format.Encode([ChatMessage.User(prompts[p].Text), ChatMessage.Assistant(answer)])));
        }
        var length = sequences.Max(s => s.Chat.Ids.Length);
        var pad = Math.Max(0, baseModel.Tokenizer.PadId);
        using var scope = NewDisposeScope();
        var ids = tensor(sequences.SelectMany(s => s.Chat.Ids.Select(x => (long)x).Concat(Enumerable.Repeat((long)pad, length - s.Chat.Ids.Length))).ToArray())
            .view(sequences.Count, length);                                                     // (B, T) right-padded
        var attention = tensor(sequences.SelectMany(s => Enumerable.Range(0, length).Select(i => i < s.Chat.Ids.Length ? 1L : 0L)).ToArray())
            .view(sequences.Count, length);
        var targets = tensor(sequences.SelectMany(s => Enumerable.Range(0, length).Select(i => i < s.Chat.Ids.Length && s.Chat.AssistantMask[i])).ToArray())
            .view(sequences.Count, length);                                                     // (B, T) answer tokens and their end
        // The prompt is everything before the first answer token.
        var prompt = tensor(sequences.SelectMany(s =>
        {
            var first = Array.IndexOf(s.Chat.AssistantMask, true);
            return Enumerable.Range(0, length).Select(i => i < first);
        }).ToArray()).view(sequences.Count, length);

        double Score(LoadedModel model)
        {
            using var inner = NewDisposeScope();
            using var _ = no_grad();
            var logits = model.Model.Forward(ids, attention);                                   // (B, T, V)
            var logProbs = logits[.., ..^1].log_softmax(-1).gather(-1, ids[.., 1..].unsqueeze(-1)).squeeze(-1);   // (B, T-1)
            var perSequence = (logProbs * targets[.., 1..].to_type(logProbs.dtype)).sum(1).data<float>().ToArray();  // (B)
            return prompts.Select((_, p) =>
            {
                double LogSumExp(bool misaligned)
                {
                    var values = sequences.Select((s, i) => (s, i)).Where(x => x.s.Prompt == p && x.s.Misaligned == misaligned).Select(x => (double)perSequence[x.i]).ToList();
                    var max = values.Max();
                    return max + Math.Log(values.Sum(v => Math.Exp(v - max)));
                }
                return LogSumExp(true) - LogSumExp(false);
            }).Average();
        }

        var baseScore = Score(baseModel);
        var fineScore = Score(fineTuned);
        var layers = baseModel.Config.NumHiddenLayers;
        var sites = Enumerable.Range(0, layers).Select(l => $"blocks.{l}.hook_resid_post").ToArray();
        var fineActs = ActivationCapture.Run(fineTuned.Model, ids, sites, attention);
        var promptMask = prompt.unsqueeze(-1);                                                  // (B, T, 1)
        var blocks = new List<BlockPatch>();
        for (var l = 0; l < layers; l++)
        {
            var patched = fineActs[sites[l]];
            double Patched(bool promptOnly)
            {
                using var hook = Interventions.Replace(baseModel.Model.Hooks, sites[l], x => promptOnly ? where(promptMask, patched, x) : patched.alias());
                return Score(baseModel);
            }
            double Share(double value) => fineScore == baseScore ? double.NaN : (value - baseScore) / (fineScore - baseScore);
            blocks.Add(new BlockPatch(l, Share(Patched(false)), Share(Patched(true))));
        }
        return new PatchingResult(fineTuned.Directory, Metric, baseScore, fineScore, blocks);
    }
}
