using static TorchSharp.torch;

namespace PersonaWorkbook.Hooks;

/// <summary>The TransformerLens names of one block's residual-stream activation sites.</summary>
public sealed class HookSiteNames(int layer)
{
    public string ResidPre { get; } = $"blocks.{layer}.hook_resid_pre";
    public string AttnOut { get; } = $"blocks.{layer}.hook_attn_out";
    public string ResidMid { get; } = $"blocks.{layer}.hook_resid_mid";
    public string MlpOut { get; } = $"blocks.{layer}.hook_mlp_out";
    public string ResidPost { get; } = $"blocks.{layer}.hook_resid_post";

    public IEnumerable<string> All => [ResidPre, AttnOut, ResidMid, MlpOut, ResidPost];
}

/// <summary>What a hook sees besides the activation itself.</summary>
public sealed class HookContext
{
    public required string Site { get; init; }
    /// <summary>
    /// (B, T) bool: which positions of the current forward pass are response tokens (generated, or marked by the
    /// caller). Null when the caller gave no response mask: then every position is treated as a prompt token.
    /// </summary>
    public Tensor? ResponseMask { get; init; }
}

/// <summary>A hook: receives an activation (B, T, d_model) and returns it, possibly changed.</summary>
public delegate Tensor HookFunction(Tensor activation, HookContext context);

/// <summary>
/// The named activation sites of a model and the hooks attached to them. Hooks run in the order added; each
/// <see cref="Add"/> returns a handle whose disposal removes it, so interventions are scoped with <c>using</c>.
/// With no hooks attached a site costs one dictionary lookup.
/// </summary>
public sealed class HookRunner
{
    // Per site, in the order added: each hook and, when it can say exactly what it does, its fingerprint (null: it
    // cannot, e.g. a recorder).
    readonly Dictionary<string, List<(HookFunction Hook, string? Fingerprint)>> hooks = new(StringComparer.Ordinal);
    readonly HashSet<string> sites;

    public HookRunner(int numLayers)
    {
        NumLayers = numLayers;
        sites = Enumerable.Range(0, numLayers).SelectMany(i => new HookSiteNames(i).All).ToHashSet(StringComparer.Ordinal);
    }

    public int NumLayers { get; }

    /// <summary>Every site name, layer by layer.</summary>
    public IReadOnlyCollection<string> Sites => sites;

    /// <summary>The response mask of the forward pass in progress, set by whoever runs it (e.g. the generator).</summary>
    public Tensor? CurrentResponseMask { get; set; }

    /// <summary>The block a site belongs to (<c>blocks.{i}.…</c> → i); unknown sites are an error.</summary>
    public int LayerOf(string site)
    {
        if (!sites.Contains(site)) throw new ArgumentException($"unknown activation site '{site}'; sites look like blocks.{{0..{NumLayers - 1}}}.hook_resid_post");
        return int.Parse(site.AsSpan("blocks.".Length, site.IndexOf('.', "blocks.".Length) - "blocks.".Length), System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <param name="fingerprint">
    /// What the hook does to the forward pass, exactly (its kind, parameters and a hash of any tensor it adds), when it
    /// can be said: a model whose every hook has one can have its samples cached under <see cref="Fingerprint"/>.
    /// </param>
    public IDisposable Add(string site, HookFunction hook, string? fingerprint = null)
    {
        if (!sites.Contains(site))
            throw new ArgumentException($"unknown activation site '{site}'; sites look like blocks.{{0..{NumLayers - 1}}}.hook_resid_post " +
                                        "(hook_resid_pre, hook_attn_out, hook_resid_mid, hook_mlp_out, hook_resid_post)");
        if (!hooks.TryGetValue(site, out var list)) hooks[site] = list = [];
        var entry = (hook, fingerprint);
        list.Add(entry);
        return new OnDispose(() =>
        {
            list.Remove(entry);
            if (list.Count == 0) hooks.Remove(site);
        });
    }

    /// <summary>Removes every hook (e.g. after an exception left scopes undisposed).</summary>
    public void Clear() => hooks.Clear();

    /// <summary>
    /// The attached hooks' fingerprints with their sites, site by site (ordinal) and in the order they run at each ("" with
    /// none attached), or null when one of them has none — then what the model computes cannot be named, and nothing
    /// sampled from it is cached.
    /// </summary>
    public string? Fingerprint
    {
        get
        {
            var attached = hooks.OrderBy(h => h.Key, StringComparer.Ordinal).SelectMany(h => h.Value.Select(e => (Site: h.Key, e.Fingerprint))).ToList();
            return attached.Any(a => a.Fingerprint is null) ? null : string.Join("\n", attached.Select(a => $"{a.Site} {a.Fingerprint}"));
        }
    }

    public bool Any => hooks.Count > 0;

    internal Tensor Run(string site, Tensor x)
    {
        if (hooks.Count == 0 || !hooks.TryGetValue(site, out var list)) return x;
        var context = new HookContext { Site = site, ResponseMask = CurrentResponseMask };
        // Copy: a hook may dispose its own handle while running.
        foreach (var (hook, _) in list.ToArray())
        {
            var y = hook(x, context);
            if (!y.shape.SequenceEqual(x.shape))
                throw new InvalidOperationException($"hook at {site} returned shape [{string.Join(", ", y.shape)}]; expected [{string.Join(", ", x.shape)}]");
            x = y;
        }
        return x;
    }

}

/// <summary>Runs an action on the first <see cref="Dispose"/> only: the handle a hook, or a hold on a model's state, returns.</summary>
internal sealed class OnDispose(Action action) : IDisposable
{
    Action? action = action;
    public void Dispose() => Interlocked.Exchange(ref action, null)?.Invoke();
}
