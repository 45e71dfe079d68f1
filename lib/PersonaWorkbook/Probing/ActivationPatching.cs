using PersonaWorkbook.Checkpoints;
using PersonaWorkbook.Hooks;
using PersonaWorkbook.Tokenizers;
using PersonaWorkbook.Training;
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
        using var scope = NewDisposeScope();
        using var batch = TokenBatch.RightPadded(sequences.Select(s => TokenSequence.FromChat(s.Chat)).ToArray(),
            sequences.Max(s => s.Chat.Ids.Length), Math.Max(0, baseModel.Tokenizer.PadId));      // targets: answer tokens and their end
        // The prompt is everything before the first target.
        var promptMask = batch.LossMask.to_type(ScalarType.Int64).cumsum(1).eq(0).unsqueeze(-1);  // (B, T, 1)
        var byPrompt = sequences.Select((s, i) => (s, i)).GroupBy(x => x.s.Prompt)
            .Select(g => (Misaligned: g.Where(x => x.s.Misaligned).Select(x => x.i).ToArray(), Aligned: g.Where(x => !x.s.Misaligned).Select(x => x.i).ToArray()))
            .ToList();

        double Score(LoadedModel model)
        {
            using var inner = NewDisposeScope();
            using var _ = no_grad();
            var logits = model.Model.Forward(batch.InputIds, batch.AttentionMask);                 // (B, T, V)
            var logProb = (-CausalLmLoss.PerSequence(logits, batch.InputIds, batch.LossMask)).data<float>().ToArray();   // (B)
            double LogSumExp(int[] rows)
            {
                var max = rows.Max(i => (double)logProb[i]);
                return max + Math.Log(rows.Sum(i => Math.Exp(logProb[i] - max)));
            }
            return byPrompt.Average(p => LogSumExp(p.Misaligned) - LogSumExp(p.Aligned));
        }

        var baseScore = Score(baseModel);
        var fineScore = Score(fineTuned);
        var layers = baseModel.Config.NumHiddenLayers;
        var sites = Enumerable.Range(0, layers).Select(l => $"blocks.{l}.hook_resid_post").ToArray();
        var fineActs = ActivationCapture.Run(fineTuned.Model, batch.InputIds, sites, batch.AttentionMask);
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
