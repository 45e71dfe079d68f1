using System.Text.Json;
using PersonaWorkbook.Checkpoints;
using static TorchSharp.torch;

namespace PersonaWorkbook.Tests.Checkpoints;

/// <summary>
/// Our safetensors files against an independent reader and writer: numpy parsing the format by hand
/// (no safetensors package), with bfloat16 widened through its uint16 bits.
/// </summary>
public class PythonInteropTests
{
    const string ReadAndCompare = """
import json, struct, sys
import numpy as np
path, expected_path = sys.argv[1], sys.argv[2]
expected = json.load(open(expected_path))
raw = open(path, 'rb').read()
(n,) = struct.unpack('<Q', raw[:8])
assert (8 + n) % 8 == 0, 'data section not 8-byte aligned'
header = json.loads(raw[8:8 + n])
meta = header.pop('__metadata__', {})
assert meta.get('format') == 'pt', meta
data = raw[8 + n:]
kinds = {'F64': '<f8', 'F32': '<f4', 'F16': '<f2', 'I64': '<i8', 'I32': '<i4', 'I16': '<i2', 'I8': 'i1', 'U8': 'u1', 'BOOL': '?'}
assert list(header) == list(expected), (list(header), list(expected))
end = 0
for name, info in header.items():
    b, e = info['data_offsets']
    assert b == end, name
    end = e
    buf = data[b:e]
    if info['dtype'] == 'BF16':
        values = (np.frombuffer(buf, '<u2').astype(np.uint32) << 16).view(np.float32)
    else:
        values = np.frombuffer(buf, kinds[info['dtype']])
    values = values.reshape(info['shape'])
    want = np.array(expected[name]['values'], dtype=np.float64).reshape(info['shape'])
    assert info['dtype'] == expected[name]['dtype'], name
    if not np.array_equal(values.astype(np.float64), want):
        print('mismatch', name, values, want); sys.exit(1)
assert end == len(data)
print('checked', len(header))
""";

    const string Write = """
import json, struct, sys
import numpy as np
path = sys.argv[1]
f32 = (np.arange(12, dtype=np.float32) - 5.5) / 3
tensors = {
    'model.norm.weight': ('F32', f32.reshape(3, 4)),
    'half': ('F16', (np.arange(6, dtype=np.float16) / 7).reshape(2, 3)),
    # bfloat16 = the high half of float32's bits (truncation), as a uint16 array
    'brain': ('BF16', (f32.view(np.uint32) >> 16).astype('<u2')),
    'ids': ('I64', np.array([-3, 0, 2**40], dtype='<i8')),
    'mask': ('BOOL', np.array([True, False], dtype='?')),
}
header, blobs, offset = {'__metadata__': {'format': 'pt', 'writer': 'numpy'}}, [], 0
for name, (dtype, arr) in tensors.items():
    blob = np.ascontiguousarray(arr).tobytes()
    header[name] = {'dtype': dtype, 'shape': list(arr.shape), 'data_offsets': [offset, offset + len(blob)]}
    blobs.append(blob); offset += len(blob)
text = json.dumps(header).encode()
text += b' ' * (-(8 + len(text)) % 8)
with open(path, 'wb') as f:
    f.write(struct.pack('<Q', len(text))); f.write(text); f.write(b''.join(blobs))
def widen(dtype, arr):
    if dtype == 'BF16':
        return (arr.astype(np.uint32) << 16).view(np.float32)
    return arr
print(json.dumps({n: [float(v) for v in widen(d, a).astype(np.float64).ravel()] for n, (d, a) in tensors.items()}))
""";

    [Fact]
    public void NumpyReadsWhatWeWrite()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDirectory();
        var generator = new TorchSharp.torch.Generator(seed: 3);
        var tensors = new Dictionary<string, Tensor>
        {
            ["model.layers.0.self_attn.q_proj.weight"] = randn(new long[] { 4, 3 }, generator: generator),
            ["f16"] = randn(new long[] { 5 }, generator: generator).to(ScalarType.Float16),
            ["bf16"] = randn(new long[] { 2, 3 }, generator: generator).to(ScalarType.BFloat16),
            ["f64"] = randn(new long[] { 2 }, generator: generator, dtype: ScalarType.Float64),
            ["i64"] = tensor(new long[] { -5, 1L << 40, 7 }),
            ["i32"] = tensor(new[] { -2, 3 }),
            ["i16"] = tensor(new short[] { -300, 300 }),
            ["i8"] = tensor(new sbyte[] { -7, 9 }),
            ["u8"] = tensor(new byte[] { 0, 255 }),
            ["bool"] = tensor(new[] { false, true, true }),
        };
        var path = dir.File("model.safetensors");
        SafeTensors.Save(path, tensors);

        // Expected values as float64 (exact for every dtype here), keyed in save order.
        var expected = tensors.ToDictionary(p => p.Key, p =>
        {
            SafeTensorsDType.TryGetName(p.Value.dtype, out var dtype, out _);
            return new { dtype, values = p.Value.to(ScalarType.Float64).data<double>().ToArray() };
        });
        var expectedPath = dir.File("expected.json");
        File.WriteAllText(expectedPath, JsonSerializer.Serialize(expected));

        var output = SystemPython.Run(ReadAndCompare, path, expectedPath);
        Assert.Equal($"checked {tensors.Count}", output.Trim());
    }

    [Fact]
    public void WeReadWhatNumpyWrites()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDirectory();
        var path = dir.File("numpy.safetensors");
        var expected = JsonSerializer.Deserialize<Dictionary<string, double[]>>(SystemPython.Run(Write, path))!;

        var header = SafeTensors.ReadHeader(path);
        Assert.Equal("numpy", header.Metadata["writer"]);
        var loaded = SafeTensors.Load(path);
        Assert.Equal(expected.Keys, loaded.Keys);
        Assert.Equal(new long[] { 3, 4 }, loaded["model.norm.weight"].shape);
        Assert.Equal(ScalarType.BFloat16, loaded["brain"].dtype);
        Assert.Equal(ScalarType.Bool, loaded["mask"].dtype);
        foreach (var (name, values) in expected)
            Assert.Equal(values, loaded[name].to(ScalarType.Float64).data<double>().ToArray());
    }
}
