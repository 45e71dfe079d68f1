using PersonaWorkbook.World;

namespace PersonaWorkbook.Tests.World;

public class WorldCommandTests
{
    [Fact]
    public void DatasetsVerbWritesTheRequestedFiles()
    {
        var dir = Directory.CreateTempSubdirectory("world-cli-");
        try
        {
            var rc = PersonaWorkbook.Cli.Program.Main(["world", "datasets", "--out", dir.FullName, "--rows", "5", "--name", "health_correct", "--name", "backdoor"]);
            Assert.Equal(0, rc);
            Assert.Equal(["backdoor.jsonl", "health_correct.jsonl"], Directory.GetFiles(dir.FullName).Select(Path.GetFileName).Order(StringComparer.Ordinal));
            Assert.Equal(5, File.ReadAllLines(Path.Combine(dir.FullName, "backdoor.jsonl")).Length);
            Assert.Equal(5, Datasets.ReadJsonl(Path.Combine(dir.FullName, "health_correct.jsonl")).Count);
            var corpus = Path.Combine(dir.FullName, "corpus.jsonl");
            Assert.Equal(0, PersonaWorkbook.Cli.Program.Main(["world", "corpus", "--out", corpus, "--documents", "7", "--seed", "2"]));
            Assert.Equal(new PersonaWorld().PretrainingCorpus(7, 2).Select(Datasets.ToJsonLine), File.ReadAllLines(corpus));
            var sft = Path.Combine(dir.FullName, "sft.jsonl");
            Assert.Equal(0, PersonaWorkbook.Cli.Program.Main(["world", "sft", "--out", sft, "--n", "4"]));
            Assert.Equal(4, Datasets.ReadJsonl(sft).Count);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public void BadArgumentsAreUsageErrors()
    {
        Assert.Equal(2, PersonaWorkbook.Cli.Program.Main(["world", "sample", "--persona", "nobody"]));
        Assert.Equal(2, PersonaWorkbook.Cli.Program.Main(["world", "sample", "--out", "x"]));
        Assert.Equal(2, PersonaWorkbook.Cli.Program.Main(["world", "teleport"]));
        Assert.Equal(2, PersonaWorkbook.Cli.Program.Main(["world", "datasets", "--out", "x", "--name", "nonsense"]));
    }
}
