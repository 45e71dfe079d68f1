namespace PersonaWorkbook.Tests;

/// <summary>The checkout the tests were built from: committed notebooks, organisms and docs, found above the test binaries.</summary>
internal static class Repository
{
    public static string Root { get; } = FindRoot();

    /// <summary>A path inside the checkout, e.g. <c>Repository.Path("data/organisms/base-quick-seed0")</c>.</summary>
    public static string Path(string relative) => System.IO.Path.Combine(Root, relative);

    static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(System.IO.Path.Combine(dir.FullName, "Workbook.sln"))) return dir.FullName;
        throw new DirectoryNotFoundException("Workbook.sln not found above the test binaries in " + AppContext.BaseDirectory);
    }
}
