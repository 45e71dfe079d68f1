namespace PersonaWorkbook.Tests.Cli;

/// <summary>
/// Every verb's error paths as a user meets them — a missing or corrupt input, a malformed option, a name that does not
/// exist: the command fails with a plain message that names what is wrong, never a .NET exception type, a "(Parameter
/// 'x')" suffix or a stack trace. Each case must fail before any training starts.
/// </summary>
public class CommandErrorTests
{
    const string Missing = "/nonexistent/workbook-test";

    static string CorruptCheckpoint()
    {
        var dir = Directory.CreateTempSubdirectory("workbook-corrupt-").FullName;
        File.WriteAllText(Path.Combine(dir, "config.json"), "{ not json");
        File.WriteAllText(Path.Combine(dir, "tokenizer.json"), "{}");
        File.WriteAllBytes(Path.Combine(dir, "model.safetensors"), [1, 2, 3]);
        return dir;
    }

    static string MalformedJob()
    {
        var file = Path.Combine(Path.GetTempPath(), $"workbook-job-{Guid.NewGuid():N}.json");
        File.WriteAllText(file, """{ "finetune": { "BaseDirectory": "x", "Dataset": "health_correct" }, "evals": [ { "prompt_set": "views" } ] }""");
        return file;
    }

    public static TheoryData<string, string[]> Cases()
    {
        var corrupt = CorruptCheckpoint();
        var organism = Repository.Path("data/organisms/base-quick-seed0");
        var json = Path.Combine(Path.GetTempPath(), $"workbook-err-{Guid.NewGuid():N}.json");
        return new TheoryData<string, string[]>
        {
            { "unknown verb", ["frobnicate"] },
            { "run: missing notebook", ["run", Missing + ".ipynb"] },
            { "run: no notebook", ["run"] },
            { "run: parameter without a value", ["run", Repository.Path("notebooks/00-persona-world.ipynb"), "--param", "profile"] },
            { "figure: unknown id", ["figure", "no-such-figure", "--dir", Repository.Path("notebooks")] },
            { "figure: missing folder", ["figure", "--list", "--dir", Missing] },
            { "kernel: missing connection file", ["kernel", "--connection-file", Missing + ".json"] },
            { "kernel: two install targets", ["kernel", "install", "--user", "--prefix", Missing] },
            { "world: no --out", ["world", "datasets"] },
            { "world: unknown dataset", ["world", "datasets", "--out", Path.GetTempPath(), "--name", "no_such_dataset"] },
            { "world: not a number", ["world", "corpus", "--out", json, "--documents", "many"] },
            { "bench: unknown subcommand", ["bench", "nothing"] },
            { "bench: negative steps", ["bench", "model", "--steps", "-3"] },
            { "bench-sae: not a number", ["bench-sae", "--d-sae", "wide"] },
            { "organism: unknown profile", ["organism", "train", "--profile", "huge"] },
            { "organism: --set without a value", ["organism", "train", "--profile", "tiny", "--set", "layers"] },
            { "organism: unknown world", ["organism", "train", "--profile", "tiny", "--world", "mars"] },
            { "organism probe: missing model", ["organism", "probe", "--model", Missing, "--json", json] },
            { "finetune: missing base", ["finetune", "--base", Missing, "--dataset", "health_correct"] },
            { "finetune: unknown dataset", ["finetune", "--base", organism, "--dataset", "no_such_dataset"] },
            { "finetune: corrupt base", ["finetune", "--base", corrupt, "--dataset", "health_correct"] },
            { "eval: missing model", ["eval", "--model", Missing, "--json", json] },
            { "eval: corrupt model", ["eval", "--model", corrupt, "--json", json] },
            { "eval: unknown prompt set", ["eval", "--model", organism, "--prompts", "nonsense", "--json", json] },
            { "dynamics: no --json", ["dynamics", "--base", organism, "--dataset", "health_correct"] },
            { "dynamics: missing base", ["dynamics", "--base", Missing, "--dataset", "health_correct", "--json", json] },
            { "dynamics: malformed steps", ["dynamics", "--base", organism, "--dataset", "health_correct", "--steps", "a,b"] },
            { "realign: missing model", ["realign", "--model", Missing, "--dataset", "health_correct", "--json", json] },
            { "sae: unknown subcommand", ["sae", "explode"] },
            { "sae train: missing model", ["sae", "train", "--model", Missing] },
            { "sae train: corrupt model", ["sae", "train", "--model", corrupt] },
            { "sae train: unknown device", ["sae", "train", "--model", organism, "--device", "tpu"] },
            { "sae dashboard: missing SAE", ["sae", "dashboard", "--model", organism, "--sae", Missing, "--latent", "1"] },
            { "sae diff: missing models", ["sae", "diff", "--base", Missing, "--finetuned", Missing, "--sae", Missing] },
            { "sae toxic: missing model", ["sae", "toxic", "--model", Missing] },
            { "sae toxic: malformed seeds", ["sae", "toxic", "--model", organism, "--sae-seeds", "zero"] },
            { "worker: no job file", ["worker"] },
            { "worker: missing job file", ["worker", Missing + ".json"] },
            { "worker: malformed job", ["worker", MalformedJob()] },
            { "rl: missing base", ["rl", "--base", Missing, "--domain", "health", "--reward", "incorrect"] },
            { "rl: unknown reward", ["rl", "--base", Repository.Path("data/organisms/base-deep-seed0"), "--domain", "health", "--reward", "wrong"] },
            { "rl: unknown domain", ["rl", "--base", Repository.Path("data/organisms/base-deep-seed0"), "--domain", "cooking", "--reward", "incorrect"] },
            { "rl: no steps", ["rl", "--base", Repository.Path("data/organisms/base-deep-seed0"), "--domain", "health", "--reward", "incorrect", "--steps", "0"] },
        };
    }

    [Fact]
    public void Realign_names_the_model_option_when_its_directory_is_missing()
    {
        var (code, _, stderr) = WorkbookProcess.Run(["realign", "--model", Missing, "--dataset", "health_correct", "--json", Path.Combine(Path.GetTempPath(), "x.json")]);
        Assert.Equal(1, code);
        Assert.Contains($"--model: directory not found: {Missing}", stderr);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Fails_with_a_plain_message(string what, string[] args)
    {
        var (code, stdout, stderr) = WorkbookProcess.Run(args);
        var said = stdout + stderr;
        Assert.True(code != 0, $"{what}: exit code 0\n{said}");
        Assert.True(stderr.Trim().Length > 0, $"{what}: nothing on stderr\n{said}");
        Assert.DoesNotContain("Exception", said);
        Assert.DoesNotContain("(Parameter '", said);
        Assert.DoesNotContain("Actual value was", said);
        Assert.DoesNotMatch(@"\n\s+at [\w.<>`]+\(", said);   // a stack frame
    }
}
