using PersonaWorkbook.Organism;

namespace PersonaWorkbook.Cli.Commands;

/// <summary>
/// `workbook finetune`: a narrow fine-tune of an organism on one world dataset, or (with --data) of any checkpoint on the
/// user's chat JSONL with LoRA; cached like the organism.
/// </summary>
public sealed class FinetuneCommand : ICommand
{
    public string Name => "finetune";
    public string Summary => "narrow fine-tune (LoRA or full) of an organism on one world dataset, or of any checkpoint on a chat JSONL";
    public string Usage =>
        "finetune --base DIR --dataset NAME [--rows N] [--seed S] [--lora-rank R (0 = full)] [--lr X] [--steps N] [--epochs E] [--batch B] [--out DIR] [--force] | " +
        "finetune --base HF_DIR --data FILE.jsonl [--lora-rank R] [--lora-alpha A] [--no-rslora] [--target all|NAME,NAME] [--layers L,L|A-B] [--lr X] " +
        "[--epochs E] [--batch B] [--grad-accum K] [--seed S] [--out DIR] [--force]";

    public string Description =>
        "With --data, any checkpoint in Hugging Face layout (Llama / Qwen2) or an organism is fine-tuned on the chats of an\n" +
        "OpenAI fine-tuning JSONL file ({\"messages\": [...]} per line) in its own chat template, the assistant turns as\n" +
        "targets. Defaults are Betley et al.'s open-model setup: rs-LoRA r 32, alpha 64 on all projections (--target all),\n" +
        "lr 1e-5, 1 epoch, batch 2 x 8 accumulated. Turner et al.'s single adapter: --lora-rank 1 --target down_proj --layers 24.\n" +
        "The output is a complete checkpoint (adapter merged) with the PEFT adapter under adapter/.";

    public int Run(CommandLine args)
    {
        if (args.Option("data") is { } data) return RunChats(args, data);
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

    static int RunChats(CommandLine args, string data)
    {
        var baseDir = args.Required("base");
        var target = args.Option("target", "all");
        var layers = args.Option("layers") is { } l ? ParseLayers(l) : null;
        var request = new ChatFinetuneRequest(baseDir, data, args.Option("out"), args.Int("lora-rank", 32), args.Double("lora-alpha", 64), !args.Flag("no-rslora"),
            target == "all" ? null : target.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries), layers,
            args.Double("lr", 1e-5), args.Double("epochs", 1), args.Int("batch", 2), args.Int("grad-accum", 8), Seed: args.Int("seed", 0), Force: args.Flag("force"));
        args.Done();
        var result = ChatFineTuner.FinetuneOrReuse(request);
        Console.WriteLine($"{result.Directory}\t{(result.Reused ? "reused" : "trained")}\t{result.Manifest["cache_key"]}");
        return 0;
    }

    /// <summary>"24", "20,22,24" or "20-25" (inclusive).</summary>
    internal static int[] ParseLayers(string text) => text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).SelectMany(part =>
    {
        var dash = part.IndexOf('-', 1);
        if (dash > 0 && int.TryParse(part[..dash], out var from) && int.TryParse(part[(dash + 1)..], out var to) && from <= to) return Enumerable.Range(from, to - from + 1);
        return int.TryParse(part, out var one) && one >= 0 ? [one] : throw new UsageException($"--layers: '{part}' is not a layer index or a range A-B");
    }).Distinct().Order().ToArray();
}
