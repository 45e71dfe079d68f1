using System.Runtime.CompilerServices;

namespace PersonaWorkbook.Tests.Platform;

static class TestThreads
{
    /// <summary>
    /// xunit runs test classes in parallel, one per core; libtorch's OpenMP pool would add a thread per core inside each,
    /// and oversubscribed spinning threads made tiny-model tests ~10× slower. Tiny tensors gain nothing from intra-op threads.
    /// </summary>
    [ModuleInitializer]
    internal static void OneTorchThreadPerTest() => TorchSharp.torch.set_num_threads(1);
}
