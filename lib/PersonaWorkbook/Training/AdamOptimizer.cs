using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PersonaWorkbook.Training;

/// <summary>Parameters that share a learning rate and a weight decay.</summary>
public sealed class AdamGroup(IEnumerable<Parameter> parameters, double learningRate, double weightDecay = 0)
{
    public IReadOnlyList<Parameter> Parameters { get; } = parameters.ToArray();
    /// <summary>Set before each step by the schedule.</summary>
    public double LearningRate { get; set; } = learningRate;
    public double WeightDecay { get; } = weightDecay;
}

/// <summary>
/// Adam (L2 weight decay folded into the gradient) and AdamW (decoupled decay) with the arithmetic of TorchSharp's
/// <c>optim.Adam</c> and <c>optim.AdamW</c> — the same libtorch operations in the same order, so a step is bit-identical
/// (a test compares them) — with two differences: its state (step counts and moments) is exposed by name, so a training
/// run can checkpoint and resume it; and every Scalar lives in a <c>using</c> until its call has returned, where
/// TorchSharp 0.107 leaves its implicit ones to the finalizer, which a collection during the call can run early (see the
/// ConcurrentGarbageCollection note in Directory.Build.props). Unlike TorchSharp's parameter groups, whose betas and eps
/// are their constructor's defaults whatever the optimizer was given, the betas and eps here are the ones passed.
/// </summary>
public sealed class AdamOptimizer : IDisposable
{
    sealed class State(Tensor expAvg, Tensor expAvgSq)
    {
        public long Step;
        public Tensor ExpAvg = expAvg, ExpAvgSq = expAvgSq;
    }

    readonly AdamGroup[] groups;
    readonly State[][] states;
    readonly double beta1, beta2, eps;
    readonly bool decoupled;

    /// <param name="decoupledWeightDecay">True for AdamW (parameters shrink by lr·decay), false for Adam (decay·parameter added to the gradient).</param>
    public AdamOptimizer(IEnumerable<AdamGroup> groups, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8, bool decoupledWeightDecay = true)
    {
        this.groups = groups.Where(g => g.Parameters.Count > 0).ToArray();
        if (this.groups.Length == 0) throw new ArgumentException("the optimizer has no parameters");
        (this.beta1, this.beta2, this.eps, decoupled) = (beta1, beta2, eps, decoupledWeightDecay);
        states = this.groups.Select(g => g.Parameters.Select(p =>
            new State(zeros_like(p).DetachFromDisposeScope(), zeros_like(p).DetachFromDisposeScope())).ToArray()).ToArray();
    }

    public IReadOnlyList<AdamGroup> Groups => groups;

    /// <summary>Zeroes every gradient that exists (as TorchSharp's <c>zero_grad</c>: the buffers are kept).</summary>
    public void ZeroGrad()
    {
        foreach (var group in groups)
            foreach (var p in group.Parameters)
            {
                using var grad = p.grad;
                grad?.zero_();
            }
    }

    /// <summary>One update of every parameter that has a gradient.</summary>
    public void Step()
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        using var beta1Scalar = beta1.ToScalar();
        using var beta2Scalar = beta2.ToScalar();
        using var oneMinusBeta1 = (1 - beta1).ToScalar();
        using var oneMinusBeta2 = (1 - beta2).ToScalar();
        using var epsScalar = eps.ToScalar();
        for (var g = 0; g < groups.Length; g++)
        {
            var (lr, decay) = (groups[g].LearningRate, groups[g].WeightDecay);
            using var shrink = (1 - lr * decay).ToScalar();
            using var decayScalar = decay.ToScalar();
            for (var i = 0; i < groups[g].Parameters.Count; i++)
            {
                var p = groups[g].Parameters[i];
                var grad = p.grad;
                if (grad is null) continue;
                var state = states[g][i];
                state.Step += 1;
                if (decoupled) p.mul_(shrink);
                else if (decay != 0) grad = grad.add(p, alpha: decayScalar);
                var biasCorrection1 = 1 - Math.Pow(beta1, state.Step);
                var biasCorrection2 = 1 - Math.Pow(beta2, state.Step);
                state.ExpAvg.mul_(beta1Scalar).add_(grad, alpha: oneMinusBeta1);
                state.ExpAvgSq.mul_(beta2Scalar).addcmul_(grad, grad, value: oneMinusBeta2);
                using var root = Math.Sqrt(biasCorrection2).ToScalar();
                var denominator = state.ExpAvgSq.sqrt().div(root).add_(epsScalar);
                using var stepSize = (-(lr / biasCorrection1)).ToScalar();
                p.addcdiv_(state.ExpAvg, denominator, value: stepSize);
            }
        }
    }

    /// <summary>
    /// The state as named tensors — <c>{g}.{i}.exp_avg</c>, <c>{g}.{i}.exp_avg_sq</c> and <c>{g}.{i}.step</c> (int64, shape [1])
    /// for parameter i of group g — as copies the caller owns.
    /// </summary>
    public Dictionary<string, Tensor> StateDict()
    {
        var result = new Dictionary<string, Tensor>();
        for (var g = 0; g < groups.Length; g++)
            for (var i = 0; i < states[g].Length; i++)
            {
                result[$"{g}.{i}.exp_avg"] = states[g][i].ExpAvg.detach().clone();
                result[$"{g}.{i}.exp_avg_sq"] = states[g][i].ExpAvgSq.detach().clone();
                result[$"{g}.{i}.step"] = tensor(new[] { states[g][i].Step });
            }
        return result;
    }

    /// <summary>Restores a <see cref="StateDict"/>; every entry must be present with its parameter's shape.</summary>
    public void LoadStateDict(IReadOnlyDictionary<string, Tensor> state, string source)
    {
        Tensor Get(string key, long[] shape)
        {
            if (!state.TryGetValue(key, out var t)) throw new InvalidDataException($"{source}: optimizer state '{key}' is missing");
            if (!t.shape.SequenceEqual(shape)) throw new InvalidDataException($"{source}: optimizer state '{key}' has shape [{string.Join(", ", t.shape)}], expected [{string.Join(", ", shape)}]");
            return t;
        }
        using var noGrad = no_grad();
        for (var g = 0; g < groups.Length; g++)
            for (var i = 0; i < states[g].Length; i++)
            {
                var p = groups[g].Parameters[i];
                states[g][i].ExpAvg.copy_(Get($"{g}.{i}.exp_avg", p.shape));
                states[g][i].ExpAvgSq.copy_(Get($"{g}.{i}.exp_avg_sq", p.shape));
                states[g][i].Step = Get($"{g}.{i}.step", [1]).to_type(ScalarType.Int64).item<long>();
            }
    }

    public void Dispose()
    {
        foreach (var s in states.SelectMany(s => s))
        {
            s.ExpAvg.Dispose();
            s.ExpAvgSq.Dispose();
        }
    }
}
