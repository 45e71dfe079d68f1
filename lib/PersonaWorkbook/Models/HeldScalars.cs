using TorchSharp;

namespace PersonaWorkbook.Models;

/// <summary>
/// The small numbers the training and sampling loops pass to libtorch, as Scalars held for the life of the process.
/// TorchSharp 0.107 does not keep a Scalar it makes implicitly from a number (<c>x.gt(0)</c>, <c>clamp_min(1)</c>) alive
/// through the native call, and a collection another thread starts can finalise it mid-call (Directory.Build.props);
/// any other number goes in a <c>using</c> around its call.
/// </summary>
public static class HeldScalars
{
    public static readonly Scalar Zero = 0.ToScalar();
    public static readonly Scalar One = 1.ToScalar();
}
