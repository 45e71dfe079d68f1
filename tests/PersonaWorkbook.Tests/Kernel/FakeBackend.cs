using System.Text.Json.Nodes;
using PersonaWorkbook.Notebooks.Kernel;

namespace PersonaWorkbook.Tests.Kernel;

/// <summary>
/// A line-oriented stand-in for the C# engine so the protocol is tested without compiling anything:
/// `print TEXT`, `warn TEXT`, `set NAME VALUE`, `get NAME` (execute_result), `plot` (a plotly bundle),
/// `show ID TEXT` (display with an id), `fail MESSAGE` (error), `wait` (blocks until interrupted). State survives failing cells.
/// </summary>
sealed class FakeBackend : IKernelBackend
{
    readonly Dictionary<string, string> _variables = new();

    public async Task<bool> ExecuteAsync(string code, IKernelOutput output, CancellationToken cancellationToken)
    {
        foreach (var line in code.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var parts = line.Split(' ', 3);
            switch (parts[0])
            {
                case "print": output.Stream("stdout", parts[1] + "\n"); break;
                case "warn": output.Stream("stderr", parts[1] + "\n"); break;
                case "set": _variables[parts[1]] = parts[2]; break;
                case "get": output.Result(new Dictionary<string, object> { ["text/plain"] = _variables[parts[1]] }); break;
                case "plot":
                    output.Display(new Dictionary<string, object>
                    {
                        ["application/vnd.plotly.v1+json"] = new JsonObject { ["data"] = new JsonArray(new JsonObject { ["type"] = "bar" }) },
                        ["text/plain"] = "chart",
                    });
                    break;
                case "show": output.Display(new Dictionary<string, object> { ["text/plain"] = parts[2] }, parts[1]); break;
                case "fail":
                    output.Error("InvalidOperationException", line["fail ".Length..], ["at cell line 1"]);
                    return false;
                case "wait": await Task.Delay(Timeout.Infinite, cancellationToken); break;
                default: throw new InvalidOperationException($"fake backend: unknown line '{line}'");
            }
        }
        return true;
    }

    public string IsComplete(string code)
    {
        int depth = 0;
        foreach (var c in code)
        {
            if (c == '{') depth++;
            else if (c == '}' && --depth < 0) return "invalid";
        }
        return depth > 0 ? "incomplete" : "complete";
    }
}
