namespace PersonaWorkbook.Training;

public enum ScheduleKind { Constant, Linear, Cosine }

/// <summary>
/// Learning-rate multiplier per optimizer step (0-based): linear warm-up reaching 1 at step <c>WarmupSteps − 1</c>
/// (so the first update is not wasted at lr 0), then constant, linear or cosine decay to <c>MinRatio</c> at
/// <c>TotalSteps</c>.
/// </summary>
public sealed record LrSchedule(ScheduleKind Kind, int WarmupSteps, int TotalSteps, double MinRatio = 0)
{
    public double Factor(int step)
    {
        if (step < 0) throw new ArgumentOutOfRangeException(nameof(step), step, "steps count from 0");
        if (step < WarmupSteps) return (step + 1.0) / WarmupSteps;
        double progress = Math.Clamp((step - WarmupSteps) / (double)Math.Max(1, TotalSteps - WarmupSteps), 0, 1);
        return Kind switch
        {
            ScheduleKind.Constant => 1.0,
            ScheduleKind.Linear => MinRatio + (1 - MinRatio) * (1 - progress),
            ScheduleKind.Cosine => MinRatio + (1 - MinRatio) * 0.5 * (1 + Math.Cos(Math.PI * progress)),
            _ => throw new ArgumentOutOfRangeException(nameof(Kind), Kind, "unknown schedule"),
        };
    }
}
