using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using NetMQ;
using NetMQ.Sockets;
using PersonaWorkbook.Notebooks.Kernel;

namespace PersonaWorkbook.Tests.Kernel;

/// <summary>One received message, already checked against an independent HMAC-SHA256 of its frames.</summary>
sealed record Received(JsonObject Header, JsonObject Parent, JsonObject Content)
{
    public string MsgType => Header["msg_type"]!.GetValue<string>();
    public string? ParentId => Parent["msg_id"]?.GetValue<string>();
}

/// <summary>
/// A minimal Jupyter client over NetMQ, written from the wire spec rather than with the kernel's own encoder, so a
/// signing or framing mistake in the kernel cannot cancel out in the tests.
/// </summary>
sealed class TestKernelClient : IDisposable
{
    public static readonly TimeSpan Patience = TimeSpan.FromSeconds(15);

    readonly byte[] _key;
    readonly string _session = Guid.NewGuid().ToString();
    public DealerSocket Shell { get; } = new();
    public DealerSocket Control { get; } = new();
    public SubscriberSocket Iopub { get; } = new();
    public RequestSocket Heartbeat { get; } = new();

    public TestKernelClient(KernelConnection connection)
    {
        _key = Encoding.UTF8.GetBytes(connection.Key);
        Shell.Connect(connection.Endpoint(connection.ShellPort));
        Control.Connect(connection.Endpoint(connection.ControlPort));
        Iopub.Connect(connection.Endpoint(connection.IopubPort));
        Iopub.SubscribeToAnyTopic();
        Heartbeat.Connect(connection.Endpoint(connection.HbPort));
        WaitForIopub();
    }

    /// <summary>PUB drops messages until the subscription has reached it, so ask for kernel_info until one of its
    /// status messages arrives, then drain the rest; later tests see every iopub message.</summary>
    void WaitForIopub()
    {
        var deadline = DateTime.UtcNow + Patience;
        while (DateTime.UtcNow < deadline)
        {
            Reply(Shell, Send(Shell, "kernel_info_request", new JsonObject()));
            if (Receive(Iopub, TimeSpan.FromMilliseconds(300)) is not null)
            {
                while (Receive(Iopub, TimeSpan.FromMilliseconds(300)) is not null) { }
                return;
            }
        }
        throw new TimeoutException("iopub never delivered a status message");
    }

    /// <summary>Sends a request; <paramref name="signature"/> overrides the computed HMAC (to forge one).
    /// Returns the request's msg_id.</summary>
    public string Send(NetMQSocket socket, string msgType, JsonObject content, string? signature = null)
    {
        var (id, message) = Build(msgType, content, signature);
        socket.SendMultipartMessage(message);
        return id;
    }

    /// <summary>A signed request's frames (and its msg_id), for sending more than once.</summary>
    public (string Id, NetMQMessage Frames) Build(string msgType, JsonObject content, string? signature = null)
    {
        var id = Guid.NewGuid().ToString();
        var header = new JsonObject
        {
            ["msg_id"] = id, ["session"] = _session, ["username"] = "test", ["date"] = DateTime.UtcNow.ToString("o"),
            ["msg_type"] = msgType, ["version"] = "5.3",
        };
        byte[][] json = [Bytes(header), Bytes(new JsonObject()), Bytes(new JsonObject()), Bytes(content)];
        var message = new NetMQMessage();
        message.Append("<IDS|MSG>");
        message.Append(signature ?? Hmac(json));
        foreach (var frame in json) message.Append(frame);
        return (id, message);
    }

    /// <summary>The next message on <paramref name="socket"/>, or null after <paramref name="timeout"/>.</summary>
    public Received? Receive(NetMQSocket socket, TimeSpan timeout)
    {
        var frames = new List<byte[]>();
        if (!socket.TryReceiveMultipartBytes(timeout, ref frames)) return null;
        var at = frames.FindIndex(f => Encoding.ASCII.GetString(f) == "<IDS|MSG>");
        Assert.True(at >= 0, "no delimiter frame");
        var json = frames.Skip(at + 2).Take(4).ToArray();
        Assert.Equal(Hmac(json), Encoding.ASCII.GetString(frames[at + 1]));
        var header = (JsonObject)JsonNode.Parse(json[0])!;
        Assert.Equal("5.3", header["version"]!.GetValue<string>());
        Assert.True(DateTime.TryParse(header["date"]!.GetValue<string>(), out _), "header date is not ISO 8601");
        return new Received(header, (JsonObject)JsonNode.Parse(json[1])!, (JsonObject)JsonNode.Parse(json[3])!);
    }

    public Received Reply(NetMQSocket socket, string requestId)
    {
        var reply = Receive(socket, Patience) ?? throw new TimeoutException("no reply");
        Assert.Equal(requestId, reply.ParentId);
        return reply;
    }

    /// <summary>Every iopub message caused by <paramref name="requestId"/>, through its status: idle.</summary>
    public List<Received> IopubUntilIdle(string requestId)
    {
        var messages = new List<Received>();
        while (true)
        {
            var m = Receive(Iopub, Patience) ?? throw new TimeoutException($"no idle for {requestId}; got {string.Join(", ", messages.Select(x => x.MsgType))}");
            if (m.ParentId != requestId) continue;
            messages.Add(m);
            if (m.MsgType == "status" && m.Content["execution_state"]!.GetValue<string>() == "idle") return messages;
        }
    }

    /// <summary>Waits for the first stream output of <paramref name="requestId"/> and returns its text.</summary>
    public string IopubUntilStream(string requestId)
    {
        while (true)
        {
            var m = Receive(Iopub, Patience) ?? throw new TimeoutException($"no stream output for {requestId}");
            if (m.ParentId == requestId && m.MsgType == "stream") return m.Content["text"]!.GetValue<string>();
        }
    }

    /// <summary>Runs code and returns (execute_reply, iopub messages through idle).</summary>
    public (Received Reply, List<Received> Iopub) Execute(string code, bool silent = false, bool stopOnError = true)
    {
        var id = Send(Shell, "execute_request", new JsonObject
        {
            ["code"] = code, ["silent"] = silent, ["store_history"] = !silent, ["user_expressions"] = new JsonObject(),
            ["allow_stdin"] = false, ["stop_on_error"] = stopOnError,
        });
        var reply = Reply(Shell, id);
        return (reply, IopubUntilIdle(id));
    }

    string Hmac(byte[][] frames) => Convert.ToHexStringLower(HMACSHA256.HashData(_key, frames.SelectMany(f => f).ToArray()));

    static byte[] Bytes(JsonObject o) => Encoding.UTF8.GetBytes(o.ToJsonString());

    public void Dispose()
    {
        foreach (var s in new NetMQSocket[] { Shell, Control, Iopub, Heartbeat })
        {
            s.Options.Linger = TimeSpan.Zero;
            s.Dispose();
        }
    }
}
