using System.Globalization;
using System.Text.Json;
using PersonaWorkbook.Checkpoints;
using PersonaWorkbook.Dashboards;
using PersonaWorkbook.Evaluation;
using PersonaWorkbook.Diffing;
using PersonaWorkbook.Organism;
using PersonaWorkbook.Generation;
using PersonaWorkbook.Sae;
using PersonaWorkbook.Tokenizers;
using PersonaWorkbook.World;

namespace PersonaWorkbook.Cli.Commands;

/// <summary>`workbook sae`: latent dashboards over the persona world's corpus, and base vs fine-tuned SAE model diffing.</summary>
public sealed class SaeCommand : ICommand
{
    public string Name => "sae";
    public string Summary => "train an organism's SAE, latent dashboards (HTML), base vs fine-tuned model diffing";
    public string Usage =>
        "sae train --model DIR [--seed S] [--layer L] [--d-sae N] [--k K] [--architecture topk|batchtopk|relu] [--tokens N] [--epochs E] [--lr X] [--batch B] [--corpus FILE.txt] [--device cpu|cuda|auto] [--out DIR] [--force] | " +
        "sae dashboard --model DIR --sae DIR --latent N [--latent N]... [--documents N] [--seed S] [--top-k N] [--label document|turn] [--negative-control] [--out FILE.html] | " +
        "sae diff --base DIR --finetuned DIR --sae DIR [--prompts views|heldout|betley | --questions FILE.yaml|txt] [--samples N] [--max-new-tokens N] [--scope response|prompt|all] [--seed S] [--top N] [--json FILE] | " +
        "sae toxic --model DIR [--sae-seeds 0,1,2] [--layer L] [--samples N] [--text own|base] [--seed S] [--json FILE] [--force]";

    public string Description =>
        "train: streams --tokens (default 2,000,000) activations of the model's middle residual stream (blocks.{L/2-1}.hook_resid_post,\n" +
        "  or --layer) over held-out pretraining documents into an on-disk cache shared by every SAE on that model and layer,\n" +
        "  trains the SAE (default TopK, d_sae 2048, k 32, 2 epochs, batch 4096), evaluates it on other held-out documents\n" +
        "  (FVU, L0, dead latents, CE-loss score) and saves the SAELens layout with sae.json; cached by a hash of the model\n" +
        "  and every setting ($WORKBOOK_CACHE/saes, then data/saes), --force retrains. --corpus FILE (any checkpoint, e.g. a\n" +
        "  Hugging Face model): one document per line instead of the world's, every tenth line held out for the evaluation.\n" +
        "  --device cuda reads the activations and trains on a GPU (a build with -p:TorchBackend=cuda), cached apart from CPU runs.\n" +
        "dashboard: streams --documents pretraining documents of the persona world (default 2000, seed --seed) through the\n" +
        "  model, encodes the SAE's hook with the SAE and writes one self-contained HTML page with each latent's top\n" +
        "  contexts, quantile samples, histogram, logit effects and persona purity (labels: the document's persona, or\n" +
        "  with --label turn the persona acting in each turn — the ground truth of the --negative-control world).\n" +
        "diff: renders the world's evaluation prompts (or --questions FILE's, for any model) as chats in the model's template,\n" +
        "  lets each model sample --samples responses per prompt\n" +
        "  (default 1, --max-new-tokens 48, temperature 1), and ranks latents by the change of their mean activation over\n" +
        "  the --scope tokens (default response); prints the top increases and decreases, --json writes both tables.\n" +
        "toxic: notebook 04's rule for the toxic-persona latent — the base against its six misaligning fine-tunes (health,\n" +
        "  legal, finance × subtle, obvious; trained if missing), --samples answers per views prompt (default 10), latents\n" +
        "  ranked by the increase averaged over the fine-tunes, dashboards of the top 10; of the top 3 the most villain-pure.\n" +
        "  --text base reads every model on the base's answers (only what the weights change counts), own on its own.\n" +
        "  --layer L reads SAEs at blocks.L (default the middle block, as sae train). One line per SAE seed (default 0);\n" +
        "  cached ($WORKBOOK_CACHE/toxic-latents) for notebooks 05-07.";

    static readonly string[] Keys = ["model", "sae", "documents", "seed", "top-k", "label", "out", "base", "finetuned", "prompts", "samples", "max-new-tokens", "scope", "top", "json", "layer", "d-sae", "k", "architecture", "tokens", "epochs", "lr", "sae-seeds", "text", "corpus", "batch", "questions", "device"];

    public int Run(CommandLine args)
    {
        var values = new Dictionary<string, string>();
        foreach (var key in Keys)
            if (args.Option(key) is { } v) values[key] = v;
        var latents = args.Many("latent");
        var negativeControl = args.Flag("negative-control");
        var force = args.Flag("force");
        var sub = args.Positional("subcommand (train, dashboard, diff, toxic)");
        void Allow(params string[] allowed)
        {
            foreach (var key in values.Keys)
                if (!allowed.Contains(key)) throw new UsageException($"--{key} does not apply to 'sae {sub}'");
            if (latents.Count > 0 && !allowed.Contains("latent")) throw new UsageException($"--latent does not apply to 'sae {sub}'");
            if (negativeControl && !allowed.Contains("negative-control")) throw new UsageException($"--negative-control does not apply to 'sae {sub}'");
            if (force && !allowed.Contains("force")) throw new UsageException($"--force does not apply to 'sae {sub}'");
        }
        string Need(string key) => values.GetValueOrDefault(key) ?? throw new UsageException($"--{key} is required");
        int Int(string key, int fallback, int min)
        {
            if (!values.TryGetValue(key, out var v)) return fallback;
            if (!int.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n)) throw new UsageException($"--{key} wants a whole number, got '{v}'");
            return n >= min ? n : throw new UsageException($"--{key} must be at least {min}, got {n}");
        }
        switch (sub)
        {
            case "train":
            {
                Allow("model", "seed", "layer", "d-sae", "k", "architecture", "tokens", "epochs", "lr", "batch", "corpus", "device", "out", "force");
                var architecture = values.GetValueOrDefault("architecture", "topk") switch
                {
                    "topk" => SaeArchitecture.TopK,
                    "batchtopk" => SaeArchitecture.BatchTopK,
                    "relu" => SaeArchitecture.ReLU,
                    var other => throw new UsageException($"--architecture wants topk, batchtopk or relu, got '{other}'"),
                };
                double lr = SaeRequest.DefaultLearningRate;
                if (values.TryGetValue("lr", out var lrText) && !(double.TryParse(lrText, NumberStyles.Float, CultureInfo.InvariantCulture, out lr) && lr > 0))
                    throw new UsageException($"--lr wants a positive number, got '{lrText}'");
                var request = new SaeRequest(Need("model"), Int("seed", 0, 0), values.ContainsKey("layer") ? Int("layer", 0, 0) : null,
                    Int("d-sae", SaeRequest.DefaultDSae, 1), Int("k", SaeRequest.DefaultK, 1), architecture, Int("tokens", (int)SaeRequest.DefaultTokens, 1),
                    Int("epochs", SaeRequest.DefaultEpochs, 1), Int("batch", SaeRequest.DefaultBatchSize, 1), lr, values.GetValueOrDefault("out"), force,
                    Corpus: values.GetValueOrDefault("corpus"), Device: values.GetValueOrDefault("device") ?? "cpu");
                var result = OrganismSae.TrainOrReuse(request);
                var e = result.Manifest["evaluation"]!;
                Console.WriteLine($"{(result.Reused ? "reused" : "trained")} {result.Directory}");
                Console.WriteLine($"hook {result.Manifest["hyperparameters"]!["hook_name"]}\tfvu {e["fvu"]}\tL0 {e["l0"]}\tdead {e["dead_fraction"]}\tdense {e["dense_fraction"]}\t" +
                                  $"CE score {e["ce_loss_score"]}\tKL score {e["kl_score"]}");
                return 0;
            }
            case "dashboard":
            {
                Allow("model", "sae", "latent", "documents", "seed", "top-k", "label", "negative-control", "out");
                if (latents.Count == 0) throw new UsageException("--latent is required");
                var ids = latents.Select(l => int.TryParse(l, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) && n >= 0 ? n
                    : throw new UsageException($"--latent wants a latent index, got '{l}'")).ToArray();
                var label = values.GetValueOrDefault("label", "document") switch
                {
                    "document" => PersonaLabel.Document,
                    "turn" => PersonaLabel.ActingTurn,
                    var other => throw new UsageException($"--label wants document or turn, got '{other}'"),
                };
                return Dashboard(Need("model"), Need("sae"), ids, Int("documents", 2000, 1), Int("seed", 0, 0), Int("top-k", 100, 1), label,
                    negativeControl, values.GetValueOrDefault("out") ?? $"latent-{string.Join("-", ids)}.html");
            }
            case "diff":
            {
                Allow("base", "finetuned", "sae", "prompts", "questions", "samples", "max-new-tokens", "scope", "seed", "top", "json");
                if (values.ContainsKey("prompts") && values.ContainsKey("questions")) throw new UsageException("give --prompts (the world's) or --questions FILE, not both");
                // A question file (any model): each paraphrase after its question's system prompt; else the world's prompts.
                var conversations = values.TryGetValue("questions", out var questionsFile)
                    ? QuestionFiles.Load(questionsFile).SelectMany(q => q.Conversations()).Select(c => (IReadOnlyList<ChatMessage>)c).ToArray()
                    : (values.GetValueOrDefault("prompts", "views") switch
                    {
                        "views" => EvalPrompts.Views,
                        "heldout" => EvalPrompts.HeldOutViews,
                        "betley" => EvalPrompts.Betley,
                        var other => throw new UsageException($"--prompts wants views, heldout or betley, got '{other}'"),
                    }).Select(p => (IReadOnlyList<ChatMessage>)[ChatMessage.User(p.Text)]).ToArray();
                var scope = values.GetValueOrDefault("scope", "response") switch
                {
                    "response" => TokenScope.Response,
                    "prompt" => TokenScope.Prompt,
                    "all" => TokenScope.All,
                    var other => throw new UsageException($"--scope wants response, prompt or all, got '{other}'"),
                };
                return Diff(Need("base"), Need("finetuned"), Need("sae"), conversations, Int("samples", 1, 1),
                    Int("max-new-tokens", 48, 1), scope, Int("seed", 0, 0), Int("top", 20, 1), values.GetValueOrDefault("json"));
            }
            case "toxic":
            {
                Allow("model", "sae-seeds", "layer", "samples", "text", "seed", "json", "force");
                var text = values.GetValueOrDefault("text", "own") switch
                {
                    "own" => DiffText.OwnAnswers,
                    "base" => DiffText.BaseAnswers,
                    var other => throw new UsageException($"--text wants own or base, got '{other}'"),
                };
                var seeds = values.GetValueOrDefault("sae-seeds", "0").Split(',').Select(t =>
                    int.TryParse(t, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) && n >= 0 ? n
                        : throw new UsageException($"--sae-seeds wants comma-separated whole numbers, got '{values["sae-seeds"]}'")).ToArray();
                var model = Need("model");
                SaeRequest? sae = values.ContainsKey("layer") ? new SaeRequest(model, Layer: Int("layer", 0, 0)) : null;
                return Toxic(new ToxicLatentRequest(model, Samples: Int("samples", 10, 1), Seed: Int("seed", 0, 0), Force: force, Sae: sae, Text: text), seeds,
                    values.GetValueOrDefault("json"));
            }
            default:
                throw new UsageException($"unknown subcommand '{sub}' (train, dashboard, diff, toxic)");
        }
    }

    static int Toxic(ToxicLatentRequest request, int[] saeSeeds, string? jsonPath)
    {
        var choices = ToxicPersonaLatent.FindOrReuse(request, saeSeeds);
        foreach (var c in choices)
        {
            Console.WriteLine($"SAE seed {c.SaeSeed} ({c.SaeKey[..16]}, {c.HookName}): toxic latent {c.Latent}, rank {c.Rank}, villain purity {c.VillainPurity:F2}");
            foreach (var k in c.Candidates)
                Console.WriteLine($"  #{k.Rank}\tlatent {k.Latent}\tincrease {k.MeanIncrease:G4}\tper fine-tune {string.Join(" ", k.RankPerFineTune)}\t" +
                                  string.Join(" ", k.Purity.OrderByDescending(p => p.Value).Take(3).Select(p => $"{p.Key} {p.Value:F2}")));
        }
        if (jsonPath is not null) AtomicFile.WriteAllText(jsonPath, JsonSerializer.Serialize(choices, new JsonSerializerOptions { WriteIndented = true }));
        return 0;
    }

    static int Dashboard(string modelDir, string saeDir, int[] latents, int documents, int seed, int topK, PersonaLabel label, bool negativeControl, string outPath)
    {
        using var loaded = ModelCheckpoint.Load(modelDir);
        using var sae = SaeFiles.Load(saeDir);
        // The documents of the world the model was trained in (composed questions for the varied world).
        var trainedIn = OrganismRequest.WorldOptionsFor(OrganismRequest.WorldOf(modelDir));
        var world = new PersonaWorld(trainedIn with { NegativeControl = negativeControl || trainedIn.NegativeControl });
        Reporting.Progress.Report($"sae dashboard: {documents} documents, latents {string.Join(", ", latents)}");
        var dashboards = LatentDashboards.Build(loaded.Model, loaded.Tokenizer, sae, latents, world.PretrainingCorpus(documents, seed),
            new DashboardOptions { TopK = topK, PurityLabel = label, Seed = seed });
        AtomicFile.WriteAllText(outPath, DashboardHtml.Render(dashboards));
        foreach (var d in dashboards)
            Console.WriteLine($"latent {d.Latent}\tdensity {d.Density:0.#####}\tmax {d.MaxActivation:0.###}\t" +
                              $"top persona {d.DominantPersona?.Persona.ToString().ToLowerInvariant() ?? "-"} {d.DominantPersona?.Share ?? 0:0.00} of {d.TopContexts.Count}");
        Console.WriteLine(outPath);
        return 0;
    }

    static int Diff(string baseDir, string fineTunedDir, string saeDir, IReadOnlyList<IReadOnlyList<ChatMessage>> prompts, int samples, int maxNewTokens, TokenScope scope,
        int seed, int top, string? jsonPath)
    {
        using var baseModel = ModelCheckpoint.Load(baseDir);
        using var fineTuned = ModelCheckpoint.Load(fineTunedDir);
        using var sae = SaeFiles.Load(saeDir);
        var diff = ModelDiffing.OnConversations(baseModel, fineTuned, sae, prompts, samples, maxNewTokens, scope, seed);
        var increases = diff.Increases(top);
        var decreases = diff.Decreases(top);
        Console.WriteLine($"{diff.Base.Tokens} base and {diff.FineTuned.Tokens} fine-tuned {scope.ToString().ToLowerInvariant()} tokens");
        foreach (var (title, rows) in new[] { ("increase", increases), ("decrease", decreases) })
        {
            Console.WriteLine($"\ntop {rows.Count} by activation {title}\nrank\tlatent\tbase\tfinetuned\tdelta\tbase_freq\tft_freq");
            foreach (var r in rows)
                Console.WriteLine(string.Join('\t', r.Rank, r.Latent, F(r.BaseMean), F(r.FineTunedMean), F(r.Delta), F(r.BaseFiring), F(r.FineTunedFiring)));
        }
        if (jsonPath is not null)
            AtomicFile.WriteAllText(jsonPath, JsonSerializer.Serialize(new
            {
                @base = baseDir, finetuned = fineTunedDir, sae = saeDir, hook = sae.Config.HookName, scope = scope.ToString().ToLowerInvariant(),
                prompts = prompts.Count, samples, max_new_tokens = maxNewTokens, seed,
                base_tokens = diff.Base.Tokens, finetuned_tokens = diff.FineTuned.Tokens, increases, decreases,
            }, new JsonSerializerOptions { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower }));
        return 0;
    }

    static string F(double x) => x.ToString("0.######", CultureInfo.InvariantCulture);
}
