using static TorchSharp.torch;

namespace PersonaWorkbook.Tests.Platform;

/// <summary>The build must make libtorch loadable with no manual step (Debian 12 needs the GLIBCXX weak-version fix).</summary>
public class TorchSharpLoadsTests
{
    [Fact]
    public void NativeBackendLoadsAndComputes()
    {
        using var a = ones(4, 4);
        using var b = a.matmul(a);
        Assert.Equal(4f * 16f, b.sum().item<float>());
        Assert.StartsWith("2.10", TorchSharp.torch.__version__);
    }
}
