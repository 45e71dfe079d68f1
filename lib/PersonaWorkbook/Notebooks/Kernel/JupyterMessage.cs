using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace PersonaWorkbook.Notebooks.Kernel;

/// <summary>One message of the Jupyter messaging protocol (5.3), decoded from or encoded to its ZeroMQ frames.</summary>
public sealed class JupyterMessage
{
    public const string ProtocolVersion = "5.3";
    static readonly byte[] Delimiter = "<IDS|MSG>"u8.ToArray();

    /// <summary>ZeroMQ routing frames before the delimiter: the client's identity on ROUTER sockets, the topic on iopub.</summary>
    public IReadOnlyList<byte[]> Identities { get; init; } = [];
    public required JsonObject Header { get; init; }
    public JsonObject ParentHeader { get; init; } = new();
    public JsonObject Metadata { get; init; } = new();
    public JsonObject Content { get; init; } = new();
    public IReadOnlyList<byte[]> Buffers { get; init; } = [];
    /// <summary>The signature frame as received (empty on messages built here; they are signed when sent).</summary>
    public string Signature { get; init; } = "";

    public string MsgType => Header["msg_type"]?.GetValue<string>() ?? "";
    public string MsgId => Header["msg_id"]?.GetValue<string>() ?? "";

    /// <summary>A new message from <paramref name="session"/>; <paramref name="parent"/> (the request being answered)
    /// supplies the parent header and, for shell/control replies, the routing identities.</summary>
    public static JupyterMessage Create(string msgType, JsonObject content, string session, JupyterMessage? parent = null,
        IReadOnlyList<byte[]>? identities = null) => new()
    {
        Identities = identities ?? parent?.Identities ?? [],
        Header = NewHeader(msgType, session),
        ParentHeader = parent is null ? new JsonObject() : (JsonObject)parent.Header.DeepClone(),
        Content = content,
    };

    public static JsonObject NewHeader(string msgType, string session, string username = "kernel") => new()
    {
        ["msg_id"] = Guid.NewGuid().ToString(),
        ["session"] = session,
        ["username"] = username,
        // Microsecond ISO 8601 in UTC: what jupyter_client itself writes and parses.
        ["date"] = DateTime.UtcNow.ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", CultureInfo.InvariantCulture),
        ["msg_type"] = msgType,
        ["version"] = ProtocolVersion,
    };

    /// <summary>The frames to send: identities, delimiter, signature, the four JSON frames, buffers.</summary>
    public List<byte[]> ToFrames(MessageSigner signer)
    {
        var header = Json(Header);
        var parent = Json(ParentHeader);
        var metadata = Json(Metadata);
        var content = Json(Content);
        var frames = new List<byte[]>(Identities.Count + 6 + Buffers.Count);
        frames.AddRange(Identities);
        frames.Add(Delimiter);
        frames.Add(Encoding.ASCII.GetBytes(signer.Sign(header, parent, metadata, content)));
        frames.Add(header);
        frames.Add(parent);
        frames.Add(metadata);
        frames.Add(content);
        frames.AddRange(Buffers);
        return frames;
    }

    /// <summary>
    /// Decodes received frames, checking the signature before any JSON is parsed. Returns null with a reason when the
    /// frames are not a well-formed message or the signature does not verify.
    /// </summary>
    public static JupyterMessage? FromFrames(IReadOnlyList<byte[]> frames, MessageSigner signer, out string? rejection)
    {
        int delimiter = -1;
        for (int i = 0; i < frames.Count; i++)
            if (frames[i].AsSpan().SequenceEqual(Delimiter)) { delimiter = i; break; }
        if (delimiter < 0) { rejection = "no <IDS|MSG> delimiter frame"; return null; }
        if (frames.Count - delimiter < 6)
        {
            rejection = $"{frames.Count - delimiter - 1} frames after the delimiter, expected signature + 4 JSON frames";
            return null;
        }
        var signature = Encoding.ASCII.GetString(frames[delimiter + 1]);
        byte[] header = frames[delimiter + 2], parent = frames[delimiter + 3], metadata = frames[delimiter + 4], content = frames[delimiter + 5];
        if (!signer.Verify(signature, header, parent, metadata, content))
        {
            rejection = "invalid HMAC signature";
            return null;
        }
        try
        {
            var message = new JupyterMessage
            {
                Identities = frames.Take(delimiter).ToArray(),
                Header = Object(header, "header"),
                ParentHeader = Object(parent, "parent_header"),
                Metadata = Object(metadata, "metadata"),
                Content = Object(content, "content"),
                Buffers = frames.Skip(delimiter + 6).ToArray(),
                Signature = signature,
            };
            if (message.Header["msg_type"] is not JsonValue t || !t.TryGetValue<string>(out _))
                throw new InvalidDataException("header has no string msg_type");
            if (message.Header["msg_id"] is not JsonValue id || !id.TryGetValue<string>(out _))
                throw new InvalidDataException("header has no string msg_id");
            rejection = null;
            return message;
        }
        catch (Exception e) when (e is JsonException or InvalidDataException)
        {
            rejection = e.Message;
            return null;
        }
    }

    // Relaxed escaping keeps HTML outputs (plotly's, tables) from tripling in size; the frames are never embedded in HTML.
    static readonly JsonSerializerOptions WireJson = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    static byte[] Json(JsonObject node) => JsonSerializer.SerializeToUtf8Bytes(node, WireJson);

    static JsonObject Object(byte[] frame, string name)
        => JsonNode.Parse(frame) as JsonObject ?? throw new InvalidDataException($"{name} frame is not a JSON object");
}
