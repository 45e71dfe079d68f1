using PersonaWorkbook.Models;
using static TorchSharp.torch;

namespace PersonaWorkbook.Hooks;

/// <summary>
/// Records the activations at a set of sites for every forward pass while it is alive (TransformerLens's
/// run_with_cache, as a scope). Each recorded tensor is a detached copy (B, T, d_model) owned by the recorder.
/// </summary>
public sealed class ActivationRecorder : IDisposable
{
    readonly Dictionary<string, List<Tensor>> recorded = new(StringComparer.Ordinal);
    readonly List<IDisposable> handles = [];

    public ActivationRecorder(HookRunner hooks, IEnumerable<string> sites)
    {
        foreach (var site in sites.Distinct())
        {
            var list = recorded[site] = [];
            handles.Add(hooks.Add(site, (x, _) =>
            {
                list.Add(x.detach().clone().DetachFromDisposeScope());
                return x;
            }));
        }
        if (recorded.Count == 0) throw new ArgumentException("no activation sites given to record");
    }

    public IReadOnlyCollection<string> Sites => recorded.Keys;

    /// <summary>The activations of every recorded forward pass at a site, in order.</summary>
    public IReadOnlyList<Tensor> this[string site] =>
        recorded.TryGetValue(site, out var list) ? list : throw new KeyNotFoundException($"site '{site}' was not recorded; recorded: {string.Join(", ", recorded.Keys)}");

    /// <summary>The single recorded pass at a site (B, T, d_model); fails if there were none or several.</summary>
    public Tensor Single(string site)
    {
        var list = this[site];
        return list.Count == 1 ? list[0] : throw new InvalidOperationException($"{list.Count} forward passes were recorded at {site}; expected 1");
    }

    /// <summary>Stops recording; the recorded tensors stay readable until <see cref="Dispose"/>.</summary>
    public void Stop()
    {
        foreach (var h in handles) h.Dispose();
        handles.Clear();
    }

    public void Dispose()
    {
        Stop();
        foreach (var t in recorded.Values.SelectMany(l => l)) t.Dispose();
        recorded.Clear();
    }
}

/// <summary>One forward pass with recording: activations at sites, and the masks to select token positions.</summary>
public static class ActivationCapture
{
    /// <summary>
    /// Runs the model on (B, T) token ids without gradients and returns the activations (B, T, d_model) at each site,
    /// owned by the caller's dispose scope. Only the blocks up to the deepest site run (no head): later blocks cannot
    /// change what the sites see.
    /// </summary>
    public static Dictionary<string, Tensor> Run(LlamaForCausalLM model, Tensor inputIds, IEnumerable<string> sites,
        Tensor? attentionMask = null, Tensor? responseMask = null)
    {
        using var _ = no_grad();
        using var recorder = new ActivationRecorder(model.Hooks, sites);
        var previous = model.Hooks.CurrentResponseMask;
        model.Hooks.CurrentResponseMask = responseMask;
        try { model.ResidualThrough(recorder.Sites.Max(model.Hooks.LayerOf), inputIds, attentionMask).Dispose(); }
        finally { model.Hooks.CurrentResponseMask = previous; }
        // Hand the copies to the caller's scope; the recorder then has nothing left to dispose.
        return recorder.Sites.ToDictionary(s => s, s => recorder.Single(s).alias());
    }

    /// <summary>Selects the masked positions of (B, T, d) activations as rows (N, d), in batch-major order.</summary>
    public static Tensor Select(Tensor activations, Tensor positionMask)
    {
        if (activations.shape.Length != 3 || positionMask.shape.Length != 2
            || activations.shape[0] != positionMask.shape[0] || activations.shape[1] != positionMask.shape[1])
            throw new ArgumentException($"mask [{string.Join(", ", positionMask.shape)}] does not match activations [{string.Join(", ", activations.shape)}]");
        return activations[positionMask.to_type(ScalarType.Bool)]; // (N, d)
    }
}

/// <summary>Position masks (B, T) bool for selecting which tokens' activations count.</summary>
public static class PositionMasks
{
    /// <summary>Real tokens: attention mask 1 and not one of the excluded ids (BOS, PAD, role tokens...).</summary>
    public static Tensor RealTokens(Tensor inputIds, Tensor? attentionMask, IEnumerable<int> excludeIds)
    {
        var keep = attentionMask is null ? ones_like(inputIds, ScalarType.Bool) : attentionMask.to_type(ScalarType.Bool);
        foreach (var id in excludeIds.Distinct())
            keep = keep.logical_and(inputIds.ne(id));
        return keep;
    }

    /// <summary>
    /// Response positions for left-padded rows where each row is [pads][prompt][response]: true from column
    /// (T - responseLength[b]) on.
    /// </summary>
    public static Tensor ResponseFromEnd(long batch, long length, IReadOnlyList<int> responseLengths, Device? device = null)
    {
        if (responseLengths.Count != batch) throw new ArgumentException($"{responseLengths.Count} response lengths for a batch of {batch}");
        var columns = arange(length, device: device).unsqueeze(0);                                          // (1, T)
        var starts = tensor(responseLengths.Select(r => length - r).ToArray(), ScalarType.Int64, device).unsqueeze(1); // (B, 1)
        return columns.ge(starts);
    }

    /// <summary>Prompt positions: real tokens that are not response tokens.</summary>
    public static Tensor Prompt(Tensor realTokens, Tensor responseMask) => realTokens.logical_and(responseMask.logical_not());
}
