using PersonaWorkbook.Dynamics;

namespace PersonaWorkbook.Cli.Commands;

/// <summary>`workbook realign`: emergent re-alignment — a misaligned fine-tune trained on benign data, evaluated at steps.</summary>
public sealed class RealignCommand : ICommand
{
    public string Name => "realign";
    public string Summary => "continue a misaligned fine-tune on benign data (batch 4) and measure misalignment at steps";
    public string Usage => "realign --model DIR --dataset NAME [--steps 0,5,10,20,30,35] [--batch 4] " + DynamicsCommand.SharedOptions;
    public string Description =>
        "Wang et al. Fig. 16: from a misaligned fine-tune (--model), fine-tune on benign data (e.g. health_correct for the same\n" +
        "domain, legal_correct for another) at batch 4 with the fine-tuner's default learning rate and schedule length, and\n" +
        "evaluate at each step (0 = the misaligned model). Leak is counted against the model's own fine-tuned domain.";

    public int Run(CommandLine args) => DynamicsCommand.RunSnapshots(args, "model", SnapshotRequest.RealignmentBatch, SnapshotRequest.RealignmentSteps);
}
