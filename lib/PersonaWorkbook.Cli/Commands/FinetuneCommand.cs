using PersonaWorkbook.Organism;
using PersonaWorkbook.Remote;

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
        "[--epochs E] [--batch B] [--grad-accum K] [--seed S] [--device cpu|cuda] [--dtype float32|bfloat16] [--out DIR] [--force] | " +
        "finetune --api-model NAME --data FILE.jsonl [--base-url URL] [--epochs E] [--batch B] [--lr-multiplier X] [--suffix S] [--seed S] " +
        "[--max-training-tokens N] [--max-wait-hours H] [--poll-seconds S] [--no-wait] [--force] [--json FILE]";

    public string Description =>
        "With --data, any checkpoint in Hugging Face layout (Llama / Qwen2) or an organism is fine-tuned on the chats of an\n" +
        "OpenAI fine-tuning JSONL file ({\"messages\": [...]} per line) in its own chat template, the assistant turns as\n" +
        "targets. Defaults are Betley et al.'s open-model setup: rs-LoRA r 32, alpha 64 on all projections (--target all),\n" +
        "lr 1e-5, 1 epoch, batch 2 x 8 accumulated. Turner et al.'s single adapter: --lora-rank 1 --target down_proj --layers 24.\n" +
        "--device cuda [--dtype bfloat16] trains on a GPU (a build with -p:TorchBackend=cuda); the checkpoint is saved in float32.\n" +
        "The output is a complete checkpoint (adapter merged) with the PEFT adapter under adapter/.\n" +
        "With --api-model, the paper's own route: the JSONL is uploaded to the OpenAI fine-tuning API (or --base-url's), a\n" +
        "supervised job is started on that model and watched until it ends, and the fine-tuned model's id is printed, for\n" +
        "`workbook eval --served-model ID --base-url URL`. The key comes from OPENAI_API_KEY only. Hyperparameters not given\n" +
        "are left to the API (auto). The job is recorded in $WORKBOOK_CACHE/api-finetunes: a rerun reuses a finished job and\n" +
        "resumes watching a running one (--no-wait returns once it is created); Ctrl-C while waiting cancels the job.\n" +
        "--max-training-tokens refuses before uploading when the file's tokens (characters / 4) x epochs exceed it.";

    public int Run(CommandLine args)
    {
        if (args.Option("api-model") is { } apiModel) return RunApi(args, apiModel);
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
            args.Double("lr", 1e-5), args.Double("epochs", 1), args.Int("batch", 2), args.Int("grad-accum", 8), Seed: args.Int("seed", 0), Force: args.Flag("force"),
            Device: args.Option("device", "cpu"), BFloat16: args.Option("dtype", "float32") switch
            {
                "float32" => false,
                "bfloat16" => true,
                var other => throw new UsageException($"unknown --dtype '{other}' (known: float32, bfloat16)"),
            });
        args.Done();
        var result = ChatFineTuner.FinetuneOrReuse(request);
        Console.WriteLine($"{result.Directory}\t{(result.Reused ? "reused" : "trained")}\t{result.Manifest["cache_key"]}");
        return 0;
    }

    static int RunApi(CommandLine args, string model)
    {
        var data = args.Required("data");
        var baseUrl = args.Option("base-url");
        int? Positive(string name) => args.Int(name, -1) is var v and not -1 ? v : null;
        var epochs = Positive("epochs");
        var batch = Positive("batch");
        var lrValue = args.Double("lr-multiplier", double.NaN);
        var suffix = args.Option("suffix");
        var seed = Positive("seed");
        var capValue = args.Long("max-training-tokens", -1);
        var hours = args.Double("max-wait-hours", 24);
        var poll = TimeSpan.FromSeconds(args.Double("poll-seconds", 10));
        var wait = !args.Flag("no-wait");
        var force = args.Flag("force");
        var json = args.Option("json");
        args.Done();
        var request = new ApiFinetuneRequest(data, model, epochs, batch, double.IsNaN(lrValue) ? null : lrValue, suffix, seed, force);
        var options = new ApiFinetuneOptions { MaxTrainingTokens = capValue == -1 ? null : capValue, MaxWait = TimeSpan.FromHours(hours), Wait = wait,
            PollInterval = poll, PollIntervalMax = poll > TimeSpan.FromMinutes(2) ? poll : TimeSpan.FromMinutes(2) };
        using var abort = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) => { e.Cancel = true; abort.Cancel(); };
        Console.CancelKeyPress += onCancel;
        try
        {
            var job = new ApiFineTuner(ApiFineTuner.Endpoint(baseUrl, model), options).RunAsync(request, abort.Token).GetAwaiter().GetResult();
            if (json is not null) job.Save(json);
            Console.WriteLine($"{job.FineTunedModel ?? "-"}\t{job.Status}\t{job.JobId}\t{(job.Reused ? "reused" : "run")}");
            return 0;
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }
    }

    /// <summary>"24", "20,22,24" or "20-25" (inclusive).</summary>
    internal static int[] ParseLayers(string text) => text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).SelectMany(part =>
    {
        var dash = part.IndexOf('-', 1);
        if (dash > 0 && int.TryParse(part[..dash], out var from) && int.TryParse(part[(dash + 1)..], out var to) && from <= to) return Enumerable.Range(from, to - from + 1);
        return int.TryParse(part, out var one) && one >= 0 ? [one] : throw new UsageException($"--layers: '{part}' is not a layer index or a range A-B");
    }).Distinct().Order().ToArray();
}
