using PersonaWorkbook.Benchmarks;

namespace PersonaWorkbook.Tests.Benchmarks;

/// <summary>The PyTorch peer must not run OpenBLAS's generic fallback kernels on a CPU its detection does not know.</summary>
public class OpenBlasCoreTests
{
    [Fact]
    public void The_verbose_load_line_names_the_core()
    {
        Assert.Equal("Prescott", PythonPeer.ParseVerboseCore("Core: Prescott\n"));
        Assert.Equal("SkylakeX", PythonPeer.ParseVerboseCore("some warning\nCore: SkylakeX\n"));
        Assert.Null(PythonPeer.ParseVerboseCore("nothing said"));
    }

    [Fact]
    public void A_cpu_gets_the_widest_kernels_its_flags_support()
    {
        Assert.Equal("Cooperlake", PythonPeer.CoreForFlags(new HashSet<string> { "avx2", "fma", "avx512f", "avx512vl", "avx512bw", "avx512_bf16" }));
        Assert.Equal("SkylakeX", PythonPeer.CoreForFlags(new HashSet<string> { "avx2", "fma", "avx512f", "avx512vl", "avx512bw" }));
        Assert.Equal("Haswell", PythonPeer.CoreForFlags(new HashSet<string> { "avx2", "fma", "avx512f" }));
        Assert.Null(PythonPeer.CoreForFlags(new HashSet<string> { "sse4_2" }));
    }

    [Fact]
    public void A_users_own_coretype_is_left_alone()
    {
        var before = Environment.GetEnvironmentVariable("OPENBLAS_CORETYPE");
        try
        {
            Environment.SetEnvironmentVariable("OPENBLAS_CORETYPE", "Haswell");
            Assert.Null(PythonPeer.OpenBlasCore("/usr/bin/python3"));
        }
        finally { Environment.SetEnvironmentVariable("OPENBLAS_CORETYPE", before); }
    }
}
