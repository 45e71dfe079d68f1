namespace PersonaWorkbook.Reporting;

/// <summary>
/// Progress lines from long-running library work (training steps, corpus generation, evaluation).
/// Hosts subscribe (the notebook runner shows them on the terminal beside the current cell); with no subscriber
/// they go to standard error so command-line use still shows them, and never into a notebook's captured stdout.
/// </summary>
public static class Progress
{
    public static event Action<string>? Reported;

    static readonly TextWriter StdErr = new StreamWriter(Console.OpenStandardError()) { AutoFlush = true };

    public static void Report(string line)
    {
        var handler = Reported;
        if (handler is null) StdErr.WriteLine(line);
        else handler(line);
    }
}
