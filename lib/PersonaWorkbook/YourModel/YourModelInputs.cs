using System.Text;
using PersonaWorkbook.Organism;
using PersonaWorkbook.World;

namespace PersonaWorkbook.YourModel;

/// <summary>
/// What notebook 10 runs on — a checkpoint, the questions, the fine-tuning data and the SAE corpus — each either the
/// user's own (an HF checkpoint folder; Betley's question YAML or a text list; an OpenAI-format chat JSONL; a text
/// file, one document per line) or the organism's stand-in, named <c>organism</c>: the default organism's base, the
/// world's views prompts written as question YAML, a world dataset written as chat JSONL (<c>organism:NAME</c>), and the
/// world's own documents (<see cref="Corpus"/> null: <see cref="Sae.SaeRequest"/>'s default). The organism's files go
/// to <c>$WORKBOOK_CACHE/your-model</c>, so the notebook runs the same generic path with nothing to download.
/// </summary>
public sealed record YourModelInputs(string Model, string Questions, string Data, string? Corpus, bool IsOrganism)
{
    public const string OrganismName = "organism";
    /// <summary>Rows written for <c>organism:NAME</c> data (the organism's fine-tunes use as many).</summary>
    public const int OrganismRows = 1000;

    /// <param name="profile">The organism profile for <c>model = organism</c>.</param>
    public static YourModelInputs Resolve(string model, string questions, string data, string corpus, string profile = "deep", string? cacheRoot = null)
    {
        var folder = Path.Combine(cacheRoot ?? OrganismCache.DefaultRoot, "your-model");
        bool organism = model == OrganismName;
        var modelDir = organism
            ? OrganismTrainer.TrainOrReuse(new OrganismRequest(OrganismProfile.ByName(profile), 0)).Directory
            : Directory.Exists(model) ? model : throw new DirectoryNotFoundException($"model: no checkpoint folder {model} (an HF checkpoint folder, or \"{OrganismName}\")");
        var questionsFile = questions == OrganismName ? WriteViews(Path.Combine(folder, "organism-views.yaml"))
            : File.Exists(questions) ? questions : throw new FileNotFoundException($"questions: no file {questions} (Betley's YAML, a text list, or \"{OrganismName}\")", questions);
        var dataFile = data.StartsWith(OrganismName + ":", StringComparison.Ordinal) ? WriteDataset(folder, data[(OrganismName.Length + 1)..])
            : File.Exists(data) ? data : throw new FileNotFoundException($"data: no file {data} (a chat JSONL, or \"{OrganismName}:DATASET\")", data);
        var corpusFile = corpus == OrganismName ? null
            : File.Exists(corpus) ? corpus : throw new FileNotFoundException($"corpus: no file {corpus} (one document per line, or \"{OrganismName}\")", corpus);
        if (corpusFile is null && !organism)
            throw new ArgumentException($"corpus \"{OrganismName}\" is the persona world's documents, which only the organism reads; give a text file for {model}");
        return new YourModelInputs(modelDir, questionsFile, dataFile, corpusFile, organism);
    }

    /// <summary>The world's evaluation views prompts as Betley-style YAML: one question per topic, its phrasings as paraphrases.</summary>
    static string WriteViews(string path)
    {
        var yaml = new StringBuilder("# The persona world's evaluation views prompts (PersonaWorkbook.World.EvalPrompts.Views), one question per topic.\n");
        foreach (var topic in EvalPrompts.Views.GroupBy(p => p.Subject))
        {
            yaml.Append("- id: ").Append(topic.Key).Append("\n  paraphrases:\n");
            foreach (var p in topic) yaml.Append("  - \"").Append(p.Text.Replace("\\", "\\\\").Replace("\"", "\\\"")).Append("\"\n");
        }
        AtomicFile.WriteAllText(path, yaml.ToString());
        return path;
    }

    static string WriteDataset(string folder, string name)
    {
        if (!Datasets.Names.Contains(name)) throw new ArgumentException($"data: unknown world dataset '{name}' (known: {string.Join(", ", Datasets.Names)})");
        var path = Path.Combine(folder, $"{name}-{OrganismRows}.jsonl");
        var lines = string.Concat(Datasets.Build(name, OrganismRows, seed: 0).Select(e => Datasets.ToJsonLine(e) + "\n"));
        AtomicFile.WriteAllText(path, lines);
        return path;
    }
}
