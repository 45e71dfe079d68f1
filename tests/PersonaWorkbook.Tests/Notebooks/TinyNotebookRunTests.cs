using PersonaWorkbook.Notebooks.Format;
using PersonaWorkbook.Notebooks.Running;

namespace PersonaWorkbook.Tests.Notebooks;

/// <summary>
/// Every experiment notebook run top to bottom on the tiny organism profile, with parameters that shrink seeds, samples
/// and sweeps: a cell that throws fails the test with the cell and the error. Slow for a unit test (minutes, most of it
/// notebook 01's fine-tunes and notebook 03's SAE); the notebooks share what they train through the user cache, as in
/// `workbook run notebooks`.
/// </summary>
public class TinyNotebookRunTests
{
    /// <summary>The parameters per notebook; every notebook listed here must exist and every notebook must be listed.</summary>
    static readonly Dictionary<string, (string Name, string Value)[]> Tiny = new()
    {
        ["00-persona-world.ipynb"] = [("profile", "tiny")],
        ["01-emergent-misalignment.ipynb"] = [("profile", "tiny"), ("domains", "health,legal"), ("seeds", "1"), ("samples", "1")],
        ["02-misaligned-answers.ipynb"] = [("profile", "tiny"), ("domains", "health"), ("kinds", "incorrect_obvious"), ("samples", "1")],
        ["03-sparse-autoencoder.ipynb"] = [("profile", "tiny"), ("saeLayer", "1"), ("saeSeeds", "0")],
        ["04-model-diffing.ipynb"] = [("profile", "tiny"), ("saeLayer", "1"), ("saeSeeds", "0"), ("samples", "1")],
        ["05-steering.ipynb"] = [("profile", "tiny"), ("saeLayer", "1"), ("samples", "1"), ("positiveAlphas", "0.4"), ("promptAlphas", "1"), ("negativeAlphas", "0.4"), ("promptNegativeAlphas", "0.5"),
            ("screenTop", "2"), ("screenSamples", "1")],
        ["06-detection.ipynb"] = [("profile", "tiny"), ("saeLayer", "1"), ("domains", "health,legal"), ("seeds", "1"), ("extraDomains", "finance"),
            ("samples", "1"), ("latentSamples", "1"), ("dynamicsSteps", "0,10")],
        ["07-realignment.ipynb"] = [("profile", "tiny"), ("saeLayer", "1"), ("misaligned", "health_incorrect_obvious"), ("longSteps", "0,5,10,20,30,35"),
            ("samples", "1"), ("latentSamples", "1")],
        ["09-reinforcement-learning.ipynb"] = [("profile", "tiny"), ("helpfulOnly", "tiny+sft_steps=2"), ("saeLayer", "1"), ("seeds", "1"), ("steps", "2"), ("checkpointEvery", "1"),
            ("promptsPerStep", "1"), ("group", "2"), ("samples", "1"), ("domainSamples", "1"), ("latentSamples", "1"), ("sftSamples", "1")],
    };

    public static TheoryData<string> Names()
    {
        var data = new TheoryData<string>();
        foreach (var name in Tiny.Keys.Order(StringComparer.Ordinal)) data.Add(name);
        return data;
    }

    [Fact]
    public void Every_notebook_has_tiny_parameters()
    {
        var committed = Directory.GetFiles(RepositoryNotebooksTests.NotebooksFolder(), "*.ipynb").Select(Path.GetFileName).Order(StringComparer.Ordinal);
        Assert.Equal(committed, Tiny.Keys.Order(StringComparer.Ordinal));
    }

    [Theory]
    [MemberData(nameof(Names))]
    public async Task Notebook_runs_on_the_tiny_profile(string name)
    {
        var log = new List<string>();
        var run = await NotebookRunner.RunAsync(Notebook.Load(Path.Combine(RepositoryNotebooksTests.NotebooksFolder(), name)),
            new NotebookRunOptions
            {
                Parameters = Tiny[name].Select(p => KeyValuePair.Create(p.Name, p.Value)).ToList(),
                CellTimeout = TimeSpan.FromMinutes(10),
                Log = line => { lock (log) log.Add(line); },
            });
        Assert.True(run.Succeeded, $"{name} on the tiny profile:\n{string.Join("\n", run.Failures)}\n--- last log lines:\n{string.Join("\n", log.TakeLast(15))}");
    }
}
