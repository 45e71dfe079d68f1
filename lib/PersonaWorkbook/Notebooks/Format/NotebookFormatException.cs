namespace PersonaWorkbook.Notebooks.Format;

/// <summary>A notebook file that is not a valid nbformat 4 notebook; the message names the file and the problem.</summary>
public sealed class NotebookFormatException(string message) : FormatException(message);
