using PersonaWorkbook.Notebooks.Format;

namespace PersonaWorkbook.Tests.Notebooks;

/// <summary>
/// The experiment notebooks under notebooks/ as committed: they load, open with the parameters cell `workbook run --param`
/// rewrites, and carry no outputs (the executed copies live beside the run's metrics, not in the repository).
/// </summary>
public class RepositoryNotebooksTests
{
    internal static string NotebooksFolder() => Repository.Path("notebooks");

    public static TheoryData<string> Names()
    {
        var data = new TheoryData<string>();
        foreach (var path in Directory.GetFiles(NotebooksFolder(), "*.ipynb").Order(StringComparer.Ordinal)) data.Add(Path.GetFileName(path));
        return data;
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void Committed_notebook_opens_with_parameters_and_has_no_outputs(string name)
    {
        var notebook = Notebook.Load(Path.Combine(NotebooksFolder(), name));
        var code = notebook.Cells.Where(c => c.IsCode).ToList();
        Assert.NotEmpty(code);
        Assert.True(code[0].HasTag("parameters"), $"{name}: the first code cell is not tagged 'parameters'");
        Assert.All(code, c => Assert.Equal("csharp", c.KernelName));
        var executed = code.Where(c => c.ExecutionCount is not null || c.Outputs is { Count: > 0 }).Select(c => c.Id).ToList();
        Assert.True(executed.Count == 0, $"{name}: cells {string.Join(", ", executed)} carry outputs or execution counts; commit notebooks cleared");
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void Committed_notebook_compiles_against_the_library(string name)
    {
        var notebook = Notebook.Load(Path.Combine(NotebooksFolder(), name));
        using var executor = new PersonaWorkbook.Notebooks.Execution.CellExecutor();
        var errors = executor.CompileOnly(notebook.Cells.Where(c => c.IsCode).Select(c => c.Source));
        Assert.True(errors.Count == 0, $"{name}:\n{string.Join("\n", errors)}");
    }

    public static TheoryData<string, string> FigureIds()
    {
        var data = new TheoryData<string, string>();
        foreach (var f in PersonaWorkbook.Notebooks.Running.Figures.Find(Directory.GetFiles(NotebooksFolder(), "*.ipynb").Order(StringComparer.Ordinal)).DistinctBy(f => f.Id))
            data.Add(Path.GetFileName(f.NotebookPath), f.Id);
        return data;
    }

    /// <summary>`workbook figure` runs a figure's cells without the other figures' cells: nothing it needs may live in those.</summary>
    [Theory]
    [MemberData(nameof(FigureIds))]
    public void Each_figure_compiles_from_its_own_cells(string name, string id)
    {
        var notebook = Notebook.Load(Path.Combine(NotebooksFolder(), name));
        var include = PersonaWorkbook.Notebooks.Running.Figures.CellsFor(id);
        using var executor = new PersonaWorkbook.Notebooks.Execution.CellExecutor();
        var errors = executor.CompileOnly(notebook.Cells.Select((c, i) => (c, i)).Where(x => x.c.IsCode && include(notebook, x.i)).Select(x => x.c.Source));
        Assert.True(errors.Count == 0, $"figure '{id}' ({name}):\n{string.Join("\n", errors)}");
    }

    [Fact]
    public void The_experiment_notebooks_are_listed_in_the_readme()
    {
        var readme = File.ReadAllText(Path.Combine(NotebooksFolder(), "..", "README.md"));
        foreach (var path in Directory.GetFiles(NotebooksFolder(), "*.ipynb"))
            Assert.Contains($"`{Path.GetFileName(path)}`", readme);
    }
}
