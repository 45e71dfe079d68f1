using static TorchSharp.torch;

namespace PersonaWorkbook.Hooks;

/// <summary>Which token positions an intervention touches.</summary>
public enum Positions
{
    All,
    /// <summary>Positions the forward pass marks as prompt (not response) tokens.</summary>
    Prompt,
    /// <summary>Generated tokens (or those the caller marked as response).</summary>
    Response,
}

/// <summary>
/// Small composable edits of the residual stream at a named site (steering-vectors style). Each returns a handle;
/// dispose it (or the <see cref="Scope"/> holding several) and the model is back to normal.
/// </summary>
public static class Interventions
{
    /// <summary>x ← x + coefficient · vector at the chosen positions. vector: (d_model).</summary>
    public static IDisposable AddVector(HookRunner hooks, string site, Tensor vector, double coefficient = 1.0, Positions positions = Positions.All)
    {
        var v = vector.detach().clone().DetachFromDisposeScope();
        var handle = hooks.Add(site, (x, ctx) =>
        {
            CheckWidth(v, x, site);
            var delta = (v.to(x.dtype, x.device) * coefficient).view(1, 1, -1); // (1, 1, d)
            return x + Where(delta, ctx, positions, x);
        }, FormattableString.Invariant($"add {positions} {coefficient:R} {Hash(v)}"));
        return new Owned(handle, v);
    }

    /// <summary>x ← replacement(x) at the chosen positions (the function sees the whole (B, T, d) activation).</summary>
    /// <param name="fingerprint">What <paramref name="replacement"/> computes, exactly, if it can be said (see <see cref="HookRunner.Add"/>).</param>
    public static IDisposable Replace(HookRunner hooks, string site, Func<Tensor, Tensor> replacement, Positions positions = Positions.All, string? fingerprint = null) =>
        hooks.Add(site, (x, ctx) =>
        {
            var y = replacement(x);
            if (positions == Positions.All) return y;
            return where(Mask(ctx, positions, x).unsqueeze(-1), y, x);
        }, fingerprint is null ? null : $"replace {positions} {fingerprint}");

    /// <summary>Directional ablation: x ← x − (x·d̂) d̂ at the chosen positions. direction: (d_model), any norm.</summary>
    public static IDisposable ProjectOut(HookRunner hooks, string site, Tensor direction, Positions positions = Positions.All)
    {
        var norm = direction.norm().item<float>();
        if (!(norm > 0)) throw new ArgumentException("cannot project out a zero direction");
        var unit = (direction.detach() / norm).DetachFromDisposeScope();
        var handle = Replace(hooks, site, x =>
        {
            CheckWidth(unit, x, site);
            var u = unit.to(x.dtype, x.device);                 // (d)
            return x - (x.matmul(u)).unsqueeze(-1) * u;          // (B, T, d)
        }, positions, $"project-out {Hash(unit)}");
        return new Owned(handle, unit);
    }

    /// <summary>SHA-256 of a tensor's dtype, shape and values: an intervention's vector, exactly.</summary>
    static string Hash(Tensor t) => Checkpoints.StateDict.Fingerprint([KeyValuePair.Create("v", t)]);

    /// <summary>Groups several handles into one scope.</summary>
    public static IDisposable Scope(params IDisposable[] handles) => new Owned(handles);

    static void CheckWidth(Tensor v, Tensor x, string site)
    {
        if (v.shape.Length != 1 || v.shape[0] != x.shape[^1])
            throw new ArgumentException($"vector of shape [{string.Join(", ", v.shape)}] cannot be applied at {site} (d_model {x.shape[^1]})");
    }

    static Tensor Mask(HookContext ctx, Positions positions, Tensor x)
    {
        var response = ctx.ResponseMask ?? zeros(x.shape[0], x.shape[1], ScalarType.Bool, x.device);
        if (response.shape[0] != x.shape[0] || response.shape[1] != x.shape[1])
            throw new InvalidOperationException($"response mask [{string.Join(", ", response.shape)}] does not match activation [{string.Join(", ", x.shape)}] at {ctx.Site}");
        return positions == Positions.Response ? response.to(x.device) : response.to(x.device).logical_not(); // (B, T)
    }

    static Tensor Where(Tensor delta, HookContext ctx, Positions positions, Tensor x) =>
        positions == Positions.All ? delta : delta * Mask(ctx, positions, x).unsqueeze(-1).to_type(x.dtype);

    sealed class Owned(params object[] owned) : IDisposable
    {
        public void Dispose()
        {
            foreach (var o in owned) (o as IDisposable)?.Dispose();
        }
    }
}
