using System.Globalization;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using PersonaWorkbook.Notebooks.Format;

namespace PersonaWorkbook.Notebooks.Running;

/// <summary>
/// Papermill's convention in C#: values given on the command line become a cell tagged
/// <c>injected-parameters</c> right after the cell tagged <c>parameters</c>, assigning the variables it declares.
/// Assignment (not redeclaration) keeps each variable's declared type.
/// </summary>
public static class Parameters
{
    public const string Tag = "parameters", InjectedTag = "injected-parameters";

    public static void Inject(Notebook notebook, IReadOnlyList<KeyValuePair<string, string>> values)
    {
        for (int i = notebook.Cells.Count - 1; i >= 0; i--)
            if (notebook.Cells[i].HasTag(InjectedTag)) notebook.RemoveCell(i);
        if (values.Count == 0) return;

        var where = notebook.Path ?? notebook.Name;
        var index = -1;
        for (int i = 0; i < notebook.Cells.Count; i++)
            if (notebook.Cells[i].IsCode && notebook.Cells[i].HasTag(Tag)) { index = i; break; }
        if (index < 0) throw new ArgumentException($"{where}: no code cell is tagged '{Tag}', so --param has nothing to override");

        var declared = Declarations(notebook.Cells[index].Source);
        var lines = new List<string> { "// Parameters injected by `workbook run --param`." };
        foreach (var (name, value) in values)
        {
            if (!declared.TryGetValue(name, out var type))
                throw new ArgumentException($"{where}: parameter '{name}' is not declared in the '{Tag}' cell (it declares: {string.Join(", ", declared.Keys)})");
            lines.Add($"{name} = {Literal(value, type)};");
        }
        notebook.InsertCell(index + 1, NotebookCell.Code(string.Join("\n", lines), InjectedTag, InjectedTag));
    }

    /// <summary>Top-level variables of a cell and their declared type ("var" with a string literal counts as string).</summary>
    static Dictionary<string, string> Declarations(string source)
    {
        var root = CSharpSyntaxTree.ParseText(source, new CSharpParseOptions(LanguageVersion.Latest, kind: SourceCodeKind.Script)).GetRoot();
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var declaration in root.DescendantNodes().OfType<VariableDeclarationSyntax>())
        {
            var topLevel = declaration.Parent is FieldDeclarationSyntax { Parent: CompilationUnitSyntax }
                || declaration.Parent is LocalDeclarationStatementSyntax { Parent: GlobalStatementSyntax };
            if (!topLevel) continue;
            foreach (var variable in declaration.Variables)
            {
                var type = declaration.Type.ToString();
                if (type == "var" && variable.Initializer?.Value is LiteralExpressionSyntax literal && literal.IsKind(SyntaxKind.StringLiteralExpression))
                    type = "string";
                result[variable.Identifier.Text] = type;
            }
        }
        return result;
    }

    /// <summary>An integer, double or bool literal when the text is one (and the variable is not a string), else a string literal.</summary>
    internal static string Literal(string value, string declaredType)
    {
        if (declaredType is not ("string" or "String" or "string?"))
        {
            if (long.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var n))
                return n.ToString(CultureInfo.InvariantCulture);
            if (double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var x) && double.IsFinite(x))
            {
                var r = x.ToString("R", CultureInfo.InvariantCulture);
                return r.Contains('.') || r.Contains('E') ? r : r + ".0";
            }
            if (bool.TryParse(value, out var b)) return b ? "true" : "false";
        }
        return SymbolDisplay.FormatLiteral(value, quote: true);
    }
}
