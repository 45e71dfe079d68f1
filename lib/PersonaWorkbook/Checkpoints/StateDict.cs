using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace PersonaWorkbook.Checkpoints;

/// <summary>What <see cref="StateDict.Load"/> did: keys copied, module keys left as they were, and checkpoint keys it ignored.</summary>
public sealed record StateDictLoadResult(IReadOnlyList<string> Loaded, IReadOnlyList<string> Missing, IReadOnlyList<string> Unexpected);

/// <summary>Copies checkpoint tensors into a module's parameters and buffers, by state-dict name.</summary>
public static class StateDict
{
    /// <summary>
    /// SHA-256 (lower-case hex) over every tensor's name, dtype, shape and bytes, in the given order: equal for equal
    /// weights whatever file or directory they came from, so it keys results computed from them.
    /// </summary>
    public static string Fingerprint(IEnumerable<KeyValuePair<string, Tensor>> tensors)
    {
        using var sha = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        using var _ = no_grad();
        foreach (var (name, t) in tensors)
        {
            sha.AppendData(System.Text.Encoding.UTF8.GetBytes($"{name}\n{t.dtype}\n{string.Join(",", t.shape)}\n"));
            using var cpu = t.detach().to(CPU).contiguous();
            sha.AppendData(cpu.bytes);
        }
        return Convert.ToHexStringLower(sha.GetHashAndReset());
    }

    /// <summary>
    /// Copies each tensor into the module entry of the same name, converting to that entry's dtype and device.
    /// Shape mismatches and float/non-float mismatches are always errors. With <paramref name="strict"/>, module entries
    /// absent from the checkpoint and checkpoint tensors the module lacks are errors too, except entries named in
    /// <paramref name="optionalKeys"/> and entries that share storage with a loaded entry (tied weights such as
    /// <c>lm_head.weight</c> = <c>model.embed_tokens.weight</c>). <paramref name="source"/> names the checkpoint in messages.
    /// </summary>
    public static StateDictLoadResult Load(nn.Module module, IReadOnlyDictionary<string, Tensor> tensors, string source, bool strict = true,
        IEnumerable<string>? optionalKeys = null)
    {
        var targets = module.state_dict();
        var optional = new HashSet<string>(optionalKeys ?? Array.Empty<string>());

        var problems = new List<string>();
        foreach (var (name, tensor) in tensors)
        {
            if (!targets.TryGetValue(name, out var target)) continue;
            if (!tensor.shape.SequenceEqual(target.shape))
                problems.Add($"tensor {name}: the module expects shape [{string.Join(", ", target.shape)}], the checkpoint has [{string.Join(", ", tensor.shape)}]");
            else if (tensor.is_floating_point() != target.is_floating_point())
                problems.Add($"tensor {name}: the module expects dtype {target.dtype}, the checkpoint has {tensor.dtype}");
        }

        var loaded = targets.Keys.Where(tensors.ContainsKey).ToList();
        var missing = targets.Keys.Where(k => !tensors.ContainsKey(k)).ToList();
        var unexpected = tensors.Keys.Where(k => !targets.ContainsKey(k)).ToList();
        var required = missing.Where(k => !optional.Contains(k) && !IsTiedToAny(targets[k], loaded.Select(l => targets[l]))).ToList();
        if (strict && required.Count > 0)
            problems.Add($"missing from the checkpoint: {string.Join(", ", required)}");
        if (strict && unexpected.Count > 0)
            problems.Add($"not in the module: {string.Join(", ", unexpected)}");
        if (problems.Count > 0)
            throw new CheckpointException($"cannot load checkpoint {source} into {module.GetName()}:\n  " + string.Join("\n  ", problems));

        using (no_grad())
        {
            foreach (var name in loaded)
            {
                using var scope = NewDisposeScope();
                targets[name].copy_(tensors[name]);
            }
        }
        return new StateDictLoadResult(loaded, missing, unexpected);
    }

    static bool IsTiedToAny(Tensor candidate, IEnumerable<Tensor> loaded) =>
        loaded.Any(other => ReferenceEquals(other, candidate) || SameCpuStorage(other, candidate));

    static unsafe bool SameCpuStorage(Tensor a, Tensor b)
    {
        if (a.device_type != DeviceType.CPU || b.device_type != DeviceType.CPU || !a.shape.SequenceEqual(b.shape) || a.dtype != b.dtype
            || a.numel() == 0 || !a.is_contiguous() || !b.is_contiguous())
            return false;
        return Unsafe.AsPointer(ref MemoryMarshal.GetReference(a.bytes)) == Unsafe.AsPointer(ref MemoryMarshal.GetReference(b.bytes));
    }
}
