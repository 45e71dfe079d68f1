namespace PersonaWorkbook.Cli;

/// <summary>The `workbook` command: one verb per file under Commands/, listed here.</summary>
public static class Program
{
    static readonly ICommand[] Commands =
    {
        new Commands.RunCommand(),
        new Commands.FigureCommand(),
        new Commands.KernelCommand(),
        new Commands.WorldCommand(),
        new Commands.BenchCommand(),
        new Commands.SaeBenchCommand(),
        new Commands.OrganismCommand(),
        new Commands.FinetuneCommand(),
        new Commands.RlCommand(),
        new Commands.EvalCommand(),
        new Commands.DynamicsCommand(),
        new Commands.RealignCommand(),
        new Commands.SaeCommand(),
        new Commands.WorkerCommand(),
    };

    public static int Main(string[] args)
    {
        PersonaWorkbook.Training.NumericReproducibility.Apply();   // before any torch call: MKL reads it once
        if (args.Length == 0 || args[0] is "-h" or "--help" or "help")
        {
            PrintUsage();
            return args.Length == 0 ? 2 : 0;
        }
        var command = Commands.FirstOrDefault(c => c.Name == args[0]);
        if (command is null)
        {
            Console.Error.WriteLine($"workbook: unknown verb '{args[0]}'.");
            PrintUsage();
            return 2;
        }
        var commandLine = new CommandLine(args.Skip(1).ToArray(), command.Usage);
        if (commandLine.HelpRequested)
        {
            Console.WriteLine("usage: " + string.Join("\n       ", UsageForms(command.Usage).Select(u => "workbook " + u))
                              + (command.Description.Length > 0 ? "\n\n" + command.Description : ""));
            return 0;
        }
        try
        {
            return command.Run(commandLine);
        }
        catch (UsageException e)
        {
            Console.Error.WriteLine($"workbook {command.Name}: {e.Message}");
            Console.Error.WriteLine($"usage: workbook {command.Usage}");
            return 2;
        }
        catch (Exception e) when (e is IOException or InvalidDataException or ArgumentException or InvalidOperationException or FormatException)
        {
            Console.Error.WriteLine($"workbook {command.Name}: {ForUsers(e)}");
            return 1;
        }
    }

    /// <summary>
    /// The message without what .NET adds for programmers: an argument exception's "(Parameter 'name')" names a C#
    /// parameter the user never sees, and "Actual value was …" repeats what the message already says.
    /// </summary>
    public static string ForUsers(Exception e)
    {
        if (e is not ArgumentException { ParamName: { } param } argument) return e.Message;
        var message = argument.Message.Replace($" (Parameter '{param}')", "");
        if (argument is ArgumentOutOfRangeException { ActualValue: { } actual })
            message = message.Replace($"{Environment.NewLine}Actual value was {actual}.", "");
        return message.TrimEnd();
    }

    /// <summary>The alternative forms of a usage line: split at " | " outside brackets ("[--user | --prefix DIR]" stays whole).</summary>
    static IEnumerable<string> UsageForms(string usage)
    {
        int depth = 0, start = 0;
        for (int i = 0; i < usage.Length; i++)
        {
            if (usage[i] is '[' or '(') depth++;
            else if (usage[i] is ']' or ')') depth--;
            else if (depth == 0 && string.CompareOrdinal(usage, i, " | ", 0, 3) == 0)
            {
                yield return usage[start..i];
                start = i + 3;
            }
        }
        yield return usage[start..];
    }

    static void PrintUsage()
    {
        Console.Error.WriteLine("workbook — Persona Features Workbook\n\nverbs:");
        foreach (var c in Commands)
            Console.Error.WriteLine($"  {c.Name,-12} {c.Summary}");
        Console.Error.WriteLine("\n'workbook <verb> --help' for a verb's options.");
    }
}

/// <summary>A verb of the `workbook` command.</summary>
public interface ICommand
{
    string Name { get; }
    /// <summary>One line for the verb list.</summary>
    string Summary { get; }
    /// <summary>The usage line after `workbook `, e.g. "run &lt;notebook|folder&gt; [--out DIR]"; alternatives separated by " | ".</summary>
    string Usage { get; }
    /// <summary>What `--help` prints after the usage line.</summary>
    string Description => "";
    int Run(CommandLine args);
}

public sealed class UsageException(string message) : Exception(message);

/// <summary>
/// Minimal GNU-style argument reader: `--name value`, `--name=value`, repeatable options, flags and positionals.
/// Call <see cref="Done"/> after reading everything so unknown options fail loudly instead of being ignored.
/// </summary>
public sealed class CommandLine
{
    readonly List<string> _rest;
    public string Usage { get; }

    public CommandLine(string[] args, string usage)
    {
        _rest = args.ToList();
        Usage = usage;
    }

    public bool HelpRequested => _rest.Contains("--help") || _rest.Contains("-h");

    public bool Flag(string name)
    {
        var i = _rest.IndexOf("--" + name);
        if (i < 0) return false;
        _rest.RemoveAt(i);
        return true;
    }

    public string? Option(string name)
    {
        var values = Many(name);
        if (values.Count > 1) throw new UsageException($"--{name} given {values.Count} times");
        return values.Count == 1 ? values[0] : null;
    }

    public string Option(string name, string fallback) => Option(name) ?? fallback;

    public int Int(string name, int fallback)
    {
        var v = Option(name);
        if (v is null) return fallback;
        return int.TryParse(v, out var n) ? n : throw new UsageException($"--{name} wants a whole number, got '{v}'");
    }

    public long Long(string name, long fallback)
    {
        var v = Option(name);
        if (v is null) return fallback;
        return long.TryParse(v, out var n) ? n : throw new UsageException($"--{name} wants a whole number, got '{v}'");
    }

    public double Double(string name, double fallback)
    {
        var v = Option(name);
        if (v is null) return fallback;
        return double.TryParse(v, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var x)
            ? x : throw new UsageException($"--{name} wants a number, got '{v}'");
    }

    public string Required(string name) => Option(name) ?? throw new UsageException($"--{name} is required");

    /// <summary>Every value of a repeatable option, in order.</summary>
    public List<string> Many(string name)
    {
        var values = new List<string>();
        for (int i = 0; i < _rest.Count;)
        {
            if (_rest[i] == "--" + name)
            {
                if (i + 1 >= _rest.Count) throw new UsageException($"--{name} needs a value");
                values.Add(_rest[i + 1]);
                _rest.RemoveRange(i, 2);
            }
            else if (_rest[i].StartsWith("--" + name + "=", StringComparison.Ordinal))
            {
                values.Add(_rest[i][(name.Length + 3)..]);
                _rest.RemoveAt(i);
            }
            else i++;
        }
        return values;
    }

    /// <summary>Which of <paramref name="known"/> subcommands the arguments name, without consuming anything; null when none.</summary>
    public string? Subcommand(params string[] known) => _rest.FirstOrDefault(known.Contains);

    /// <summary>The remaining positional arguments; call after all options have been taken.</summary>
    public List<string> Positionals()
    {
        var unknown = _rest.FirstOrDefault(a => a.StartsWith("--", StringComparison.Ordinal));
        if (unknown is not null) throw new UsageException($"unknown option {unknown}");
        var result = _rest.ToList();
        _rest.Clear();
        return result;
    }

    public string Positional(string what)
    {
        var p = Positionals();
        if (p.Count == 0) throw new UsageException($"missing {what}");
        if (p.Count > 1) throw new UsageException($"unexpected argument '{p[1]}'");
        return p[0];
    }

    /// <summary>Fails on anything not consumed.</summary>
    public void Done()
    {
        if (_rest.Count > 0) throw new UsageException($"unexpected argument '{_rest[0]}'");
    }
}
