using TorchSharp;

namespace PersonaWorkbook.Checkpoints;

/// <summary>The safetensors dtype names this library reads and writes, and their torch equivalents.</summary>
public static class SafeTensorsDType
{
    static readonly (string Name, torch.ScalarType Type, int Size)[] Table =
    {
        ("F64", torch.ScalarType.Float64, 8),
        ("F32", torch.ScalarType.Float32, 4),
        ("F16", torch.ScalarType.Float16, 2),
        ("BF16", torch.ScalarType.BFloat16, 2),
        ("I64", torch.ScalarType.Int64, 8),
        ("I32", torch.ScalarType.Int32, 4),
        ("I16", torch.ScalarType.Int16, 2),
        ("I8", torch.ScalarType.Int8, 1),
        ("U8", torch.ScalarType.Byte, 1),
        ("BOOL", torch.ScalarType.Bool, 1),
    };

    public static IReadOnlyList<string> Supported { get; } = Table.Select(t => t.Name).ToArray();

    public static bool TryParse(string name, out torch.ScalarType type, out int elementSize)
    {
        foreach (var entry in Table)
        {
            if (entry.Name == name)
            {
                type = entry.Type;
                elementSize = entry.Size;
                return true;
            }
        }
        type = default;
        elementSize = 0;
        return false;
    }

    public static bool TryGetName(torch.ScalarType type, out string name, out int elementSize)
    {
        foreach (var entry in Table)
        {
            if (entry.Type == type)
            {
                name = entry.Name;
                elementSize = entry.Size;
                return true;
            }
        }
        name = "";
        elementSize = 0;
        return false;
    }
}
