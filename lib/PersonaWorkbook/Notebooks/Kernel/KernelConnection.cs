using System.Text.Json;
using System.Text.Json.Nodes;

namespace PersonaWorkbook.Notebooks.Kernel;

/// <summary>
/// The Jupyter connection file a front end writes before starting a kernel: where to bind the five sockets and the
/// HMAC key that signs every message. A port of 0 means "pick a free one"; <see cref="JupyterKernel.Connection"/>
/// then reports the port actually bound (used by in-process tests and by anyone starting the kernel themselves).
/// </summary>
public sealed record KernelConnection
{
    public string Transport { get; init; } = "tcp";
    public string Ip { get; init; } = "127.0.0.1";
    public int ShellPort { get; init; }
    public int IopubPort { get; init; }
    public int StdinPort { get; init; }
    public int ControlPort { get; init; }
    public int HbPort { get; init; }
    /// <summary>HMAC-SHA256 key as given (UTF-8 bytes are the key). Empty disables signing, as in jupyter_client.</summary>
    public string Key { get; init; } = "";
    public string SignatureScheme { get; init; } = "hmac-sha256";
    public string? KernelName { get; init; }

    public string Endpoint(int port) => $"{Transport}://{Ip}:{port}";

    public static KernelConnection Load(string path)
    {
        string text;
        try { text = File.ReadAllText(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"connection file {path}: cannot read it: {e.Message}", e);
        }
        return Parse(text, path);
    }

    /// <param name="source">Names the file in error messages.</param>
    public static KernelConnection Parse(string json, string source)
    {
        JsonObject obj;
        try
        {
            obj = JsonNode.Parse(json) as JsonObject
                  ?? throw new InvalidDataException($"connection file {source}: expected a JSON object");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"connection file {source}: not valid JSON: {e.Message}", e);
        }

        var transport = Text(obj, "transport", source, "tcp");
        // NetMQ emulates ipc:// over loopback TCP, so it cannot meet a front end that uses real Unix sockets.
        if (transport != "tcp")
            throw new InvalidDataException($"connection file {source}: transport '{transport}' is not supported; use \"tcp\"");
        var key = Text(obj, "key", source, "");
        var scheme = Text(obj, "signature_scheme", source, "hmac-sha256");
        if (scheme != "hmac-sha256")
            throw new InvalidDataException($"connection file {source}: signature_scheme '{scheme}' is not supported; use \"hmac-sha256\"");

        return new KernelConnection
        {
            Transport = transport,
            Ip = Text(obj, "ip", source, "127.0.0.1"),
            ShellPort = Port(obj, "shell_port", source),
            IopubPort = Port(obj, "iopub_port", source),
            StdinPort = Port(obj, "stdin_port", source),
            ControlPort = Port(obj, "control_port", source),
            HbPort = Port(obj, "hb_port", source),
            Key = key,
            SignatureScheme = scheme,
            KernelName = obj["kernel_name"] is JsonValue v && v.TryGetValue<string>(out var name) ? name : null,
        };
    }

    /// <summary>The connection file a client needs, in jupyter_client's field names.</summary>
    public string ToJson() => new JsonObject
    {
        ["transport"] = Transport,
        ["ip"] = Ip,
        ["shell_port"] = ShellPort,
        ["iopub_port"] = IopubPort,
        ["stdin_port"] = StdinPort,
        ["control_port"] = ControlPort,
        ["hb_port"] = HbPort,
        ["key"] = Key,
        ["signature_scheme"] = SignatureScheme,
        ["kernel_name"] = KernelName ?? "",
    }.ToJsonString(new JsonSerializerOptions { WriteIndented = true });

    static string Text(JsonObject obj, string field, string source, string fallback)
    {
        var node = obj[field];
        if (node is null) return fallback;
        return node is JsonValue v && v.TryGetValue<string>(out var s)
            ? s
            : throw new InvalidDataException($"connection file {source}: field '{field}' must be a string");
    }

    static int Port(JsonObject obj, string field, string source)
    {
        var node = obj[field] ?? throw new InvalidDataException($"connection file {source}: missing field '{field}'");
        if (node is JsonValue v && v.TryGetValue<int>(out var port) && port is >= 0 and <= 65535) return port;
        throw new InvalidDataException($"connection file {source}: field '{field}' must be a port number 0-65535, got {node.ToJsonString()}");
    }
}
