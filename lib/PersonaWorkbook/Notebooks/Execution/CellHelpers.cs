namespace PersonaWorkbook.Notebooks.Execution;

/// <summary>
/// What every cell sees through the executor's prelude (<c>using static</c>): the .NET Interactive C# kernel's
/// <c>display(value, mimeTypes)</c> and <c>value.Display(mimeTypes)</c>.
/// </summary>
public static class CellHelpers
{
    /// <summary>Shows <paramref name="value"/> as a display_data output; with mime types, only those representations.</summary>
    public static DisplayedValue display(object? value, params string[] mimeTypes)
    {
        var scope = CellScope.Current
            ?? throw new InvalidOperationException("display() works only while a notebook cell is running.");
        var displayId = Guid.NewGuid().ToString("N");
        scope.Sink.Display(scope.Executor.Formatter.Format(value, mimeTypes), displayId);
        return new DisplayedValue(displayId, mimeTypes, scope.Sink, scope.Executor.Formatter);
    }

    public static DisplayedValue Display(this object? value, params string[] mimeTypes) => display(value, mimeTypes);

    /// <summary>Raw HTML to display or return from a cell, as the C# kernel's <c>HTML(...)</c>.</summary>
    public static Microsoft.AspNetCore.Html.IHtmlContent HTML(string html) => new Microsoft.AspNetCore.Html.HtmlString(html);

    /// <summary>Shows <paramref name="content"/> verbatim as <paramref name="mimeType"/> (JSON mime types are parsed), as the kernel's DisplayAs.</summary>
    public static DisplayedValue DisplayAs(this string content, string mimeType)
    {
        var scope = CellScope.Current
            ?? throw new InvalidOperationException("DisplayAs() works only while a notebook cell is running.");
        object value = content;
        if (MimeBundle.IsJsonMimeType(mimeType))
        {
            try { value = System.Text.Json.Nodes.JsonNode.Parse(content)!; }
            catch (System.Text.Json.JsonException e) { throw new ArgumentException($"DisplayAs(\"{mimeType}\"): the content is not valid JSON ({e.Message})", e); }
        }
        var displayId = Guid.NewGuid().ToString("N");
        scope.Sink.Display(new MimeBundle { [mimeType] = value }, displayId);
        return new DisplayedValue(displayId, [mimeType], scope.Sink, scope.Executor.Formatter);
    }

    /// <summary>
    /// Cancelled when the running cell is cancelled or passes its time limit. Code cannot be stopped from outside,
    /// so long loops in cells should check it.
    /// </summary>
    public static CancellationToken CellCancellationToken => CellScope.Current?.CancellationToken ?? CancellationToken.None;
}

/// <summary>A shown value; <see cref="Update"/> replaces it in place (update_display_data in Jupyter terms).</summary>
public sealed class DisplayedValue
{
    readonly string[] _mimeTypes;
    readonly ICellOutputSink _sink;
    readonly MimeFormatter _formatter;

    internal DisplayedValue(string displayId, string[] mimeTypes, ICellOutputSink sink, MimeFormatter formatter)
    {
        DisplayId = displayId;
        _mimeTypes = mimeTypes;
        _sink = sink;
        _formatter = formatter;
    }

    public string DisplayId { get; }

    public void Update(object? value) => _sink.Display(_formatter.Format(value, _mimeTypes), DisplayId);
}
