namespace PersonaWorkbook.Detection;

/// <summary>
/// A single threshold on the activation change: a model is predicted misaligned when its change is strictly above
/// <see cref="Threshold"/>. ±∞ are legitimate fits (every model predicted misaligned / aligned) when the training
/// models' labels allow nothing better. <see cref="Correct"/> of <see cref="N"/> training models were classified right.
/// </summary>
public sealed record ThresholdFit(double Threshold, int Correct, int N)
{
    public double Accuracy => N == 0 ? double.NaN : (double)Correct / N;

    public bool Predict(double activationChange) => activationChange > Threshold;
}

/// <summary>
/// Fits the threshold of the paper's detector ("the change in #10's activation separates aligned from misaligned
/// models"): the direction is fixed (a larger rise means misaligned), only the cut point is learnt.
/// </summary>
public static class ThresholdClassifier
{
    /// <summary>
    /// The threshold with the most training models right. Candidates: −∞, the midpoint between each pair of adjacent
    /// distinct values, +∞. Ties go to the candidate in the widest gap between adjacent values (a max-margin cut; ±∞
    /// count as gap 0, so a real split wins a tie against "everything one class"), then to the lowest threshold.
    /// </summary>
    public static ThresholdFit Fit(IReadOnlyList<double> changes, IReadOnlyList<bool> misaligned)
    {
        Check(changes, misaligned);
        var values = changes.Distinct().Order().ToArray();
        var best = new ThresholdFit(double.NegativeInfinity, Correct(double.NegativeInfinity, changes, misaligned), changes.Count);
        double bestGap = 0;
        void Consider(double threshold, double gap)
        {
            int correct = Correct(threshold, changes, misaligned);
            if (correct > best.Correct || (correct == best.Correct && gap > bestGap))
            {
                best = new ThresholdFit(threshold, correct, changes.Count);
                bestGap = gap;
            }
        }
        for (int i = 0; i + 1 < values.Length; i++) Consider((values[i] + values[i + 1]) / 2, values[i + 1] - values[i]);
        Consider(double.PositiveInfinity, 0);
        return best;
    }

    /// <summary>How many models <paramref name="threshold"/> classifies right.</summary>
    public static int Correct(double threshold, IReadOnlyList<double> changes, IReadOnlyList<bool> misaligned)
    {
        Check(changes, misaligned);
        int correct = 0;
        for (int i = 0; i < changes.Count; i++)
            if (changes[i] > threshold == misaligned[i]) correct++;
        return correct;
    }

    /// <summary>
    /// ROC AUC of the activation change as a score for "misaligned": the share of (misaligned, aligned) pairs where the
    /// misaligned model's change is larger, ties counting ½ (the Mann–Whitney statistic). NaN when one class is empty.
    /// </summary>
    public static double Auc(IReadOnlyList<double> changes, IReadOnlyList<bool> misaligned)
    {
        Check(changes, misaligned);
        double wins = 0;
        long pairs = 0;
        for (int i = 0; i < changes.Count; i++)
        {
            if (!misaligned[i]) continue;
            for (int j = 0; j < changes.Count; j++)
            {
                if (misaligned[j]) continue;
                pairs++;
                wins += changes[i] > changes[j] ? 1 : changes[i] == changes[j] ? 0.5 : 0;
            }
        }
        return pairs == 0 ? double.NaN : wins / pairs;
    }

    static void Check(IReadOnlyList<double> changes, IReadOnlyList<bool> misaligned)
    {
        if (changes.Count != misaligned.Count) throw new ArgumentException($"{changes.Count} activation changes but {misaligned.Count} labels");
        if (changes.Count == 0) throw new ArgumentException("no models to classify");
        for (int i = 0; i < changes.Count; i++)
            if (!double.IsFinite(changes[i])) throw new ArgumentException($"activation change {i} is {changes[i]}");
    }
}
