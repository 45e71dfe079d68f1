using static TorchSharp.torch;

namespace PersonaWorkbook.Training;

/// <summary>Where training runs: CPU by default, CUDA when present and asked for; bfloat16 only on a GPU.</summary>
public static class TrainingDevice
{
    /// <summary>"cpu", "cuda", "cuda:N", or "auto" (CUDA when available, else CPU).</summary>
    public static Device Resolve(string name)
    {
        if (name == "auto") return cuda.is_available() ? CUDA : CPU;
        if (name == "cpu") return CPU;
        if (name == "cuda" || name.StartsWith("cuda:", StringComparison.Ordinal))
        {
            if (!cuda.is_available())
                throw new InvalidOperationException($"device '{name}' was requested but torch.cuda.is_available() is false " +
                                                    "(this build uses libtorch-cpu unless built with -p:TorchBackend=cuda, or no GPU is visible)");
            return new Device(name);
        }
        throw new ArgumentException($"unknown device '{name}'; use cpu, cuda, cuda:N or auto");
    }

    /// <summary>Device equality by value ("cuda" means cuda:0, as it does for a tensor placed there).</summary>
    public static bool Same(Device a, Device b) =>
        a.type == b.type && Math.Max(a.index, 0) == Math.Max(b.index, 0);

    /// <summary>Float32 anywhere; bfloat16 on CUDA only.</summary>
    public static void CheckDtype(Device device, ScalarType dtype)
    {
        if (dtype == ScalarType.Float32) return;
        if (dtype == ScalarType.BFloat16)
        {
            if (device.type != TorchSharp.DeviceType.CUDA)
                throw new ArgumentException("bfloat16 training is supported on a GPU only; use float32 on the CPU");
            return;
        }
        throw new ArgumentException($"training dtype {dtype} is not supported; use Float32, or BFloat16 on a GPU");
    }
}
