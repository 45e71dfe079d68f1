using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace PersonaWorkbook.Lora;

#pragma warning disable IDE1006 // lora_A / lora_B are PEFT's names and become this module's parameter names.

/// <summary>
/// One low-rank adapter on one projection: y = W x + scale · B (A dropout(x)), with A (r, in) and B (out, r).
/// The base <see cref="Linear"/> is left in place (its state-dict key is unchanged); the adapter path is added by a
/// forward hook on it. After <see cref="Merge"/> the update lives in W and the hook passes the output through.
/// </summary>
public sealed class LoraLayer : Module
{
    readonly Parameter lora_A;
    readonly Parameter lora_B;
    readonly Linear baseLayer;
    readonly Func<bool> adaptersEnabled;
    Module<Tensor, Tensor>.HookRemover? hook;
    // Held for every call: an implicit Scalar (x * 2.0) is not kept alive through the native call by TorchSharp 0.107
    // (Directory.Build.props; RMSNorm).
    readonly Scalar scaleScalar;

    /// <summary>Module path in the base model, e.g. <c>model.layers.0.mlp.down_proj</c>.</summary>
    public string ModulePath { get; }
    public int LayerIndex { get; }
    public double Scale { get; }
    public double Dropout { get; }
    public bool Merged { get; private set; }

    /// <summary>(r, in_features); kaiming-uniform initialised like PEFT.</summary>
    public Parameter A => lora_A;
    /// <summary>(out_features, r); zeros at creation, so a fresh adapter leaves the model's outputs unchanged.</summary>
    public Parameter B => lora_B;
    public Linear Base => baseLayer;

    internal LoraLayer(string modulePath, int layerIndex, Linear baseLayer, int rank, double scale, double dropout, Func<bool> adaptersEnabled)
        : base(nameof(LoraLayer))
    {
        ModulePath = modulePath;
        LayerIndex = layerIndex;
        Scale = scale;
        scaleScalar = scale.ToScalar();
        Dropout = dropout;
        this.baseLayer = baseLayer;
        this.adaptersEnabled = adaptersEnabled;
        var w = baseLayer.weight;                                             // (out, in)
        var (outFeatures, inFeatures) = (w.shape[0], w.shape[1]);
        using (no_grad())
        {
            var a = empty(rank, inFeatures, w.dtype, w.device);
            // PEFT: kaiming_uniform_(a=√5), i.e. U(±1/√in), the same as nn.Linear's default weight init.
            init.kaiming_uniform_(a, a: Math.Sqrt(5));
            lora_A = new Parameter(a);
            lora_B = new Parameter(zeros(outFeatures, rank, w.dtype, w.device));
        }
        RegisterComponents();
        hook = baseLayer.register_forward_hook(AddAdapterPath);
    }

    // The default would also adopt the base layer (a Module field), making its frozen weight part of this adapter's
    // parameters and state dict, and disposing it with the adapter.
    protected override void RegisterComponents()
    {
        if (named_parameters(recurse: false).Any()) return;
        register_parameter("lora_A", lora_A);
        register_parameter("lora_B", lora_B);
    }

    Tensor AddAdapterPath(Module<Tensor, Tensor> _, Tensor input, Tensor output)
    {
        if (Merged || !adaptersEnabled()) return output;
        var x = Dropout > 0 && baseLayer.training ? functional.dropout(input, Dropout, training: true) : input;
        return output + functional.linear(functional.linear(x, lora_A), lora_B).mul(scaleScalar); // (…, in) → (…, r) → (…, out)
    }

    /// <summary>scale · B · A, the update this adapter makes to the base weight (out, in).</summary>
    public Tensor DeltaWeight()
    {
        using var _ = no_grad();
        return matmul(lora_B, lora_A).mul_(scaleScalar);
    }

    /// <summary>W += scale · B · A; the forward pass then skips the adapter path.</summary>
    public void Merge()
    {
        if (Merged) return;
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        baseLayer.weight.add_(DeltaWeight());
        Merged = true;
    }

    /// <summary>W −= scale · B · A: the exact inverse of <see cref="Merge"/> up to float rounding.</summary>
    public void Unmerge()
    {
        if (!Merged) return;
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        baseLayer.weight.sub_(DeltaWeight());
        Merged = false;
    }

    /// <summary>Removes the forward hook; the base layer then computes W x alone (merged weights stay merged).</summary>
    internal void Detach()
    {
        hook?.remove();
        hook = null;
    }
}
