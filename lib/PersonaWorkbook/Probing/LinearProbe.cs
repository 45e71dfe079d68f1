using PersonaWorkbook.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PersonaWorkbook.Probing;

/// <summary>A probe's held-out accuracy beside the majority-class baseline, with the sizes of both splits.</summary>
public sealed record ProbeAccuracy(double Accuracy, double Chance, int TrainRows, int TestRows);

/// <summary>
/// A multinomial logistic-regression probe: features standardised with the training rows' mean and standard deviation,
/// full-batch Adam on the cross-entropy with a small L2 penalty, accuracy on held-out rows. Deterministic for a seed.
/// </summary>
public static class LinearProbe
{
    /// <param name="train">(N, d) float32 features.</param>
    /// <param name="trainLabels">(N) int64 classes in [0, classes).</param>
    public static ProbeAccuracy Fit(Tensor train, Tensor trainLabels, Tensor test, Tensor testLabels, int classes,
        int steps = 300, double learningRate = 0.05, double l2 = 1e-4, long seed = 0)
    {
        if (train.shape.Length != 2 || test.shape.Length != 2 || train.shape[1] != test.shape[1])
            throw new ArgumentException($"probe features must be (N, d) with the same d; got [{string.Join(", ", train.shape)}] and [{string.Join(", ", test.shape)}]");
        if (train.shape[0] != trainLabels.shape[0] || test.shape[0] != testLabels.shape[0])
            throw new ArgumentException("each feature row needs one label");
        if (train.shape[0] == 0 || test.shape[0] == 0) throw new ArgumentException("the probe needs training and test rows");
        using var scope = NewDisposeScope();
        var mean = train.mean([0], keepdim: true);
        var std = train.std([0], keepdim: true).clamp_min(1e-6);
        var x = ((train - mean) / std).detach();                                       // (N, d)
        var xTest = ((test - mean) / std).detach();
        var generator = new Generator((ulong)seed);
        var w = new Parameter(randn(x.shape[1], classes, generator: generator) * 0.01);   // (d, C)
        var b = new Parameter(zeros(classes));
        using var optimizer = new AdamOptimizer([new AdamGroup([w, b], learningRate)]);
        using var penalty = l2.ToScalar();
        for (var step = 0; step < steps; step++)
        {
            using var stepScope = NewDisposeScope();
            optimizer.ZeroGrad();
            var logits = x.matmul(w) + b;                                              // (N, C)
            var loss = nn.functional.cross_entropy(logits, trainLabels) + w.square().sum().mul(penalty);
            loss.backward();
            optimizer.Step();
        }
        using var _ = no_grad();
        var predicted = (xTest.matmul(w) + b).argmax(1);
        var accuracy = predicted.eq(testLabels).to_type(ScalarType.Float32).mean().item<float>();
        var chance = testLabels.bincount(null, classes).max().item<long>() / (double)testLabels.shape[0];
        return new ProbeAccuracy(accuracy, chance, (int)x.shape[0], (int)xTest.shape[0]);
    }
}
