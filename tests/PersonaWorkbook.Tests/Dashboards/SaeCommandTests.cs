using System.Text.Json.Nodes;
using PersonaWorkbook.Checkpoints;
using PersonaWorkbook.Sae;
using PersonaWorkbook.Tests.Diffing;
using Xunit;

namespace PersonaWorkbook.Tests.Dashboards;

public class SaeCommandTests
{
    [Fact]
    public void Dashboard_and_diff_verbs_run_on_tiny_checkpoints()
    {
        var dir = Directory.CreateTempSubdirectory("sae-cli-");
        try
        {
            string Save(long seed)
            {
                var path = Path.Combine(dir.FullName, $"model{seed}");
                using var model = DiffingFixtures.Model(seed);
                ModelCheckpoint.Save(path, model, DiffingFixtures.Tokenizer);
                return path;
            }
            var (baseDir, ftDir) = (Save(0), Save(1));
            var saeDir = Path.Combine(dir.FullName, "sae");
            using (var sae = DiffingFixtures.Sae()) SaeFiles.Save(sae, saeDir);
            var html = Path.Combine(dir.FullName, "dash.html");
            var json = Path.Combine(dir.FullName, "diff.json");

            Assert.Equal(0, PersonaWorkbook.Cli.Program.Main(["sae", "dashboard", "--model", baseDir, "--sae", saeDir, "--latent", "5", "--latent", "9",
                "--documents", "3", "--top-k", "10", "--out", html]));
            var page = File.ReadAllText(html);
            Assert.Contains("Latent 5", page);
            Assert.Contains("Latent 9", page);
            Assert.DoesNotContain("http", page);

            Assert.Equal(0, PersonaWorkbook.Cli.Program.Main(["sae", "diff", "--base", baseDir, "--finetuned", ftDir, "--sae", saeDir,
                "--max-new-tokens", "4", "--top", "6", "--json", json]));
            var result = JsonNode.Parse(File.ReadAllText(json))!;
            Assert.Equal(6, result["increases"]!.AsArray().Count);
            Assert.Equal(6, result["decreases"]!.AsArray().Count);
            Assert.Equal(1, (int)result["increases"]![0]!["rank"]!);
            Assert.Equal("response", (string?)result["scope"]);
            Assert.True((long)result["base_tokens"]! > 0);
            var deltas = result["increases"]!.AsArray().Select(r => (double)r!["delta"]!).ToArray();
            Assert.True(deltas.Zip(deltas.Skip(1)).All(p => p.First >= p.Second));

            Assert.Equal(2, PersonaWorkbook.Cli.Program.Main(["sae", "diff", "--base", baseDir, "--sae", saeDir, "--latent", "3"]));
            Assert.Equal(2, PersonaWorkbook.Cli.Program.Main(["sae", "dashboard", "--model", baseDir, "--sae", saeDir]));
            Assert.Equal(1, PersonaWorkbook.Cli.Program.Main(["sae", "dashboard", "--model", baseDir, "--sae", saeDir, "--latent", "64", "--documents", "1", "--out", html]));
            Assert.Equal(2, PersonaWorkbook.Cli.Program.Main(["sae", "toxic", "--model", baseDir, "--text", "theirs"]));
            Assert.Equal(2, PersonaWorkbook.Cli.Program.Main(["sae", "toxic", "--model", baseDir, "--sae-seeds", "0,x"]));
            Assert.Equal(2, PersonaWorkbook.Cli.Program.Main(["sae", "toxic", "--model", baseDir, "--latent", "3"]));
        }
        finally { dir.Delete(true); }
    }
}
