using PersonaWorkbook.Organism;

namespace PersonaWorkbook.Cli.Commands;

/// <summary>`workbook finetune`: a narrow fine-tune of an organism on one world dataset, cached like the organism.</summary>
public sealed class FinetuneCommand : ICommand
{
    public string Name => "finetune";
    public string Summary => "narrow fine-tune (LoRA or full) of an organism on one world dataset";
    public string Usage =>
        "finetune --base DIR --dataset NAME [--rows N] [--seed S] [--lora-rank R (0 = full)] [--lr X] [--steps N] [--epochs E] [--batch B] [--out DIR] [--force]";

    public int Run(CommandLine args)
    {
        var baseDir = args.Required("base");
        var dataset = args.Required("dataset");
        var rows = args.Int("rows", FinetuneRequest.DefaultRows);
        var seed = args.Int("seed", 0);
        var rank = args.Int("lora-rank", FinetuneRequest.DefaultLoraRank);
        // NaN and -1 stand for "not given" (the reader consumes an option when it reads it, so it is read once).
        var lrValue = args.Double("lr", double.NaN);
        var stepsValue = args.Int("steps", -1);
        var epochsValue = args.Double("epochs", double.NaN);
        double? lr = double.IsNaN(lrValue) ? null : lrValue;
        int? steps = stepsValue == -1 ? null : stepsValue;
        double? epochs = double.IsNaN(epochsValue) ? null : epochsValue;
        var batch = args.Int("batch", 16);
        var output = args.Option("out");
        var force = args.Flag("force");
        args.Done();
        var result = FineTuner.FinetuneOrReuse(new FinetuneRequest(baseDir, dataset, output, rows, seed, rank, lr, steps, epochs, batch, force));
        Console.WriteLine($"{result.Directory}\t{(result.Reused ? "reused" : "trained")}\t{result.Manifest["cache_key"]}");
        return 0;
    }
}
