using System.Reflection;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using Microsoft.CodeAnalysis.CSharp;
using NetMQ;
using NetMQ.Sockets;

namespace PersonaWorkbook.Notebooks.Kernel;

/// <summary>
/// A Jupyter kernel (messaging protocol 5.3 over ZeroMQ) that runs C# cells through an <see cref="IKernelBackend"/>.
/// <para>
/// Threading: one socket thread owns all five sockets (ZeroMQ sockets must never be touched from two threads). It
/// receives, verifies signatures, answers heartbeats and control requests, and sends everything queued on the outbox,
/// so sends are serialized and the frames of two messages never interleave. Shell requests run one at a time on a
/// worker task, so a long cell never delays a heartbeat, an interrupt or a shutdown.
/// </para>
/// </summary>
public sealed class JupyterKernel : IDisposable
{
    /// <summary>The connection actually bound: ports requested as 0 replaced by the ones chosen.</summary>
    public KernelConnection Connection { get; }

    readonly IKernelBackend _backend;
    readonly MessageSigner _signer;
    readonly TextWriter _log;
    readonly string _session = Guid.NewGuid().ToString();
    readonly RouterSocket _shell, _control, _stdin;
    readonly PublisherSocket _iopub;
    readonly ResponseSocket _heartbeat;
    readonly NetMQSocket[] _sockets;
    readonly NetMQQueue<Action> _outbox = new();
    readonly NetMQPoller _poller;
    readonly Channel<(long Sequence, JupyterMessage Request)> _shellQueue = Channel.CreateUnbounded<(long, JupyterMessage)>();
    readonly TaskCompletionSource _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    readonly Lock _stateLock = new();
    readonly HashSet<string> _seenSignatures = [];
    readonly Queue<string> _signatureOrder = new();
    readonly HashSet<string> _displayIds = [];

    Thread? _socketThread;
    bool _stopping;
    CancellationTokenSource? _runningCell;
    int _executionCount;
    long _shellReceived;
    // Execute requests queued at or before this sequence number are aborted: a failed cell with stop_on_error
    // cancels the cells sent after it, as ipykernel does, so "run all" stops at the first error.
    long _abortThrough = -1;

    /// <summary>Replayed signatures are rejected like forged ones (jupyter_client keeps the same history).</summary>
    const int SignatureHistory = 1 << 16;

    /// <param name="log">Diagnostics (rejected messages, handler failures); defaults to the process's real stderr,
    /// which cells' captured Console.Error never reaches.</param>
    public JupyterKernel(KernelConnection connection, IKernelBackend backend, TextWriter? log = null)
    {
        _backend = backend;
        _signer = new MessageSigner(connection.Key);
        _log = TextWriter.Synchronized(log ?? new StreamWriter(Console.OpenStandardError()) { AutoFlush = true });
        if (!_signer.Enabled)
            _log.WriteLine("workbook kernel: the connection file has an empty key; messages are not authenticated");

        _shell = new RouterSocket();
        _control = new RouterSocket();
        _stdin = new RouterSocket();
        _iopub = new PublisherSocket();
        _heartbeat = new ResponseSocket();
        _sockets = [_shell, _control, _stdin, _iopub, _heartbeat];
        foreach (var socket in _sockets)
            socket.Options.Linger = TimeSpan.FromSeconds(1); // lets the last replies (shutdown_reply) leave before exit
        _poller = new NetMQPoller { _shell, _control, _stdin, _heartbeat, _outbox };
        try
        {
            Connection = connection with
            {
                ShellPort = Bind(_shell, connection, connection.ShellPort),
                IopubPort = Bind(_iopub, connection, connection.IopubPort),
                StdinPort = Bind(_stdin, connection, connection.StdinPort),
                ControlPort = Bind(_control, connection, connection.ControlPort),
                HbPort = Bind(_heartbeat, connection, connection.HbPort),
            };
        }
        catch
        {
            Release();
            throw;
        }

        _shell.ReceiveReady += (_, e) => OnShell(e.Socket.ReceiveMultipartBytes());
        _control.ReceiveReady += (_, e) => OnControl(e.Socket.ReceiveMultipartBytes());
        // The kernel never sends input_request, so anything arriving on stdin is unsolicited: verified and dropped.
        _stdin.ReceiveReady += (_, e) => Decode(e.Socket.ReceiveMultipartBytes(), "stdin");
        _heartbeat.ReceiveReady += (_, e) => e.Socket.SendMultipartBytes(e.Socket.ReceiveMultipartBytes());
        _outbox.ReceiveReady += (_, e) =>
        {
            while (e.Queue.TryDequeue(out var action, TimeSpan.Zero)) action();
        };
    }

    void Release()
    {
        _poller.Dispose();
        foreach (var socket in _sockets) socket.Dispose();
        _outbox.Dispose();
    }

    static int Bind(NetMQSocket socket, KernelConnection connection, int port)
    {
        var endpoint = port != 0 ? connection.Endpoint(port) : $"{connection.Transport}://{connection.Ip}";
        try
        {
            if (port == 0) return socket.BindRandomPort(endpoint);
            socket.Bind(endpoint);
            return port;
        }
        catch (NetMQException e)
        {
            throw new IOException($"cannot bind {endpoint}{(port == 0 ? " (any port)" : "")}: {e.Message}", e);
        }
    }

    /// <summary>Serves requests until a shutdown_request arrives or <paramref name="cancellationToken"/> is cancelled.</summary>
    public Task RunAsync(CancellationToken cancellationToken = default)
    {
        if (_socketThread is not null) throw new InvalidOperationException("the kernel is already running");
        _socketThread = new Thread(() =>
        {
            try
            {
                _poller.Run();
            }
            finally
            {
                Release();
                _stopped.TrySetResult();
            }
        }) { IsBackground = true, Name = "jupyter-kernel-sockets" };
        _socketThread.Start();
        _ = Task.Run(ServeShellAsync);
        cancellationToken.Register(Stop);
        Publish("status", new JsonObject { ["execution_state"] = "starting" }, parent: null);
        _log.WriteLine($"workbook kernel: listening on {Connection.Ip} (shell {Connection.ShellPort}, iopub {Connection.IopubPort}, " +
                       $"control {Connection.ControlPort}, stdin {Connection.StdinPort}, heartbeat {Connection.HbPort})");
        return _stopped.Task;
    }

    /// <summary>Cancels the running cell, if any (interrupt_request, or SIGINT from the command).</summary>
    public void Interrupt()
    {
        lock (_stateLock) _runningCell?.Cancel();
    }

    /// <summary>Stops serving after everything already queued has been sent.</summary>
    public void Stop()
    {
        Interrupt();
        Enqueue(() =>
        {
            lock (_stateLock) _stopping = true;
            _shellQueue.Writer.TryComplete();
            _poller.StopAsync();
        });
    }

    public void Dispose()
    {
        if (_socketThread is null)
        {
            Release();
            return;
        }
        Stop();
        _stopped.Task.Wait(TimeSpan.FromSeconds(5));
    }

    // ---- receiving (socket thread) ----

    JupyterMessage? Decode(List<byte[]> frames, string channel)
    {
        var message = JupyterMessage.FromFrames(frames, _signer, out var rejection);
        // Hex is case-insensitive, so the history keys on one spelling or a replay could simply change case.
        if (message is not null && _signer.Enabled && !Remember(message.Signature.ToLowerInvariant()))
        {
            message = null;
            rejection = "replayed signature (a message already received)";
        }
        if (message is null)
            _log.WriteLine($"workbook kernel: rejected a message on {channel}: {rejection}");
        return message;
    }

    bool Remember(string signature)
    {
        if (!_seenSignatures.Add(signature)) return false;
        _signatureOrder.Enqueue(signature);
        if (_signatureOrder.Count > SignatureHistory) _seenSignatures.Remove(_signatureOrder.Dequeue());
        return true;
    }

    void OnShell(List<byte[]> frames)
    {
        var request = Decode(frames, "shell");
        if (request is not null) _shellQueue.Writer.TryWrite((Interlocked.Increment(ref _shellReceived), request));
    }

    void OnControl(List<byte[]> frames)
    {
        var request = Decode(frames, "control");
        if (request is null) return;
        Publish("status", new JsonObject { ["execution_state"] = "busy" }, request);
        try
        {
            switch (request.MsgType)
            {
                case "kernel_info_request":
                    Reply(_control, request, "kernel_info_reply", KernelInfo());
                    break;
                case "interrupt_request":
                    Interrupt();
                    Reply(_control, request, "interrupt_reply", new JsonObject { ["status"] = "ok" });
                    break;
                case "shutdown_request":
                    Shutdown(_control, request);
                    return;
                default:
                    Unknown(_control, request);
                    break;
            }
        }
        catch (Exception e)
        {
            Failed(_control, request, e);
        }
        Publish("status", new JsonObject { ["execution_state"] = "idle" }, request);
    }

    // ---- shell requests (worker task, one at a time) ----

    async Task ServeShellAsync()
    {
        await foreach (var (sequence, request) in _shellQueue.Reader.ReadAllAsync())
        {
            Publish("status", new JsonObject { ["execution_state"] = "busy" }, request);
            try
            {
                switch (request.MsgType)
                {
                    case "execute_request":
                        await ExecuteAsync(request, sequence);
                        break;
                    case "kernel_info_request":
                        Reply(_shell, request, "kernel_info_reply", KernelInfo());
                        break;
                    case "is_complete_request":
                        Reply(_shell, request, "is_complete_reply", IsComplete(request));
                        break;
                    case "comm_info_request":
                        Reply(_shell, request, "comm_info_reply", new JsonObject { ["status"] = "ok", ["comms"] = new JsonObject() });
                        break;
                    case "comm_open":
                        // No comm targets exist; the protocol asks for an immediate close so the front end is not left waiting.
                        Publish("comm_close", new JsonObject { ["comm_id"] = request.Content["comm_id"]?.DeepClone(), ["data"] = new JsonObject() }, request);
                        break;
                    case "shutdown_request":
                        Shutdown(_shell, request);
                        return;
                    default:
                        Unknown(_shell, request);
                        break;
                }
            }
            catch (Exception e)
            {
                Failed(_shell, request, e);
            }
            Publish("status", new JsonObject { ["execution_state"] = "idle" }, request);
        }
    }

    async Task ExecuteAsync(JupyterMessage request, long sequence)
    {
        var content = request.Content;
        if (content["code"] is not JsonValue codeValue || !codeValue.TryGetValue<string>(out var code))
        {
            Reply(_shell, request, "execute_reply", ErrorContent("InvalidRequest", "execute_request content has no string 'code'", []));
            return;
        }
        bool silent = Bool(content, "silent", false);
        bool storeHistory = !silent && Bool(content, "store_history", true);
        bool stopOnError = Bool(content, "stop_on_error", true);

        if (sequence <= Interlocked.Read(ref _abortThrough))
        {
            Reply(_shell, request, "execute_reply", new JsonObject { ["status"] = "aborted", ["execution_count"] = _executionCount });
            return;
        }

        int count = storeHistory ? ++_executionCount : _executionCount;
        if (!silent)
            Publish("execute_input", new JsonObject { ["code"] = code, ["execution_count"] = count }, request);

        var output = new CellOutput(this, request, silent, count);
        using var cell = new CancellationTokenSource();
        lock (_stateLock) _runningCell = cell;
        bool succeeded;
        try
        {
            succeeded = await _backend.ExecuteAsync(code, output, cell.Token);
        }
        catch (OperationCanceledException) when (cell.IsCancellationRequested)
        {
            succeeded = false;
        }
        catch (Exception e)
        {
            // A backend bug must not take the kernel (and the user's state) down: it becomes this cell's error.
            output.Error(e.GetType().Name, e.Message, (e.StackTrace ?? "").Split('\n'));
            succeeded = false;
        }
        finally
        {
            lock (_stateLock) _runningCell = null;
        }

        if (succeeded)
        {
            Reply(_shell, request, "execute_reply", new JsonObject
            {
                ["status"] = "ok",
                ["execution_count"] = count,
                ["user_expressions"] = new JsonObject(),
                ["payload"] = new JsonArray(),
            });
            return;
        }
        if (output.Failure is null)
            output.Error(cell.IsCancellationRequested ? "OperationCanceledException" : "CellFailed",
                cell.IsCancellationRequested ? "The cell was interrupted." : "The cell failed without reporting an error.", []);
        var failure = output.Failure!;
        var reply = ErrorContent(failure.Value.Name, failure.Value.Value, failure.Value.Traceback);
        reply["execution_count"] = count;
        Reply(_shell, request, "execute_reply", reply);
        if (stopOnError) Interlocked.Exchange(ref _abortThrough, Interlocked.Read(ref _shellReceived));
    }

    JsonObject IsComplete(JupyterMessage request)
    {
        var code = request.Content["code"]?.GetValue<string>() ?? "";
        var status = _backend.IsComplete(code);
        if (status is not ("complete" or "incomplete" or "invalid")) status = "unknown";
        var reply = new JsonObject { ["status"] = status };
        if (status == "incomplete") reply["indent"] = "";
        return reply;
    }

    static JsonObject KernelInfo() => new()
    {
        ["status"] = "ok",
        ["protocol_version"] = JupyterMessage.ProtocolVersion,
        ["implementation"] = "workbook",
        ["implementation_version"] = typeof(JupyterKernel).Assembly.GetName().Version?.ToString() ?? "0",
        ["language_info"] = new JsonObject
        {
            ["name"] = "C#",
            // The language version the scripting engine compiles with ("latest"), e.g. "14.0".
            ["version"] = LanguageVersion.Latest.MapSpecifiedToEffectiveVersion().ToDisplayString(),
            ["mimetype"] = "text/x-csharp",
            ["file_extension"] = ".cs",
            ["pygments_lexer"] = "csharp",
            ["codemirror_mode"] = "text/x-csharp",
        },
        ["banner"] = "Persona Workbook C# kernel (Roslyn scripting on .NET " + Environment.Version + ")",
        ["help_links"] = new JsonArray(),
        ["debugger"] = false,
    };

    void Shutdown(NetMQSocket socket, JupyterMessage request)
    {
        var restart = Bool(request.Content, "restart", false);
        Reply(socket, request, "shutdown_reply", new JsonObject { ["status"] = "ok", ["restart"] = restart });
        Publish("status", new JsonObject { ["execution_state"] = "idle" }, request);
        Stop();
    }

    void Unknown(NetMQSocket socket, JupyterMessage request)
    {
        var type = request.MsgType;
        if (!type.EndsWith("_request", StringComparison.Ordinal))
        {
            _log.WriteLine($"workbook kernel: ignored a '{type}' message (not a request the kernel handles)");
            return;
        }
        Reply(socket, request, type[..^"_request".Length] + "_reply",
            ErrorContent("NotImplementedError", $"the workbook kernel does not handle {type}", []));
    }

    void Failed(NetMQSocket socket, JupyterMessage request, Exception e)
    {
        _log.WriteLine($"workbook kernel: handling {request.MsgType} failed: {e}");
        var type = request.MsgType;
        if (type.EndsWith("_request", StringComparison.Ordinal))
            Reply(socket, request, type[..^"_request".Length] + "_reply", ErrorContent(e.GetType().Name, e.Message, []));
    }

    static JsonObject ErrorContent(string ename, string evalue, IReadOnlyList<string> traceback) => new()
    {
        ["status"] = "error",
        ["ename"] = ename,
        ["evalue"] = evalue,
        ["traceback"] = new JsonArray(traceback.Select(line => (JsonNode?)JsonValue.Create(line)).ToArray()),
    };

    static bool Bool(JsonObject content, string field, bool fallback)
        => content[field] is JsonValue v && v.TryGetValue<bool>(out var b) ? b : fallback;

    // ---- sending (any thread; the socket thread does the actual send) ----

    void Reply(NetMQSocket socket, JupyterMessage request, string msgType, JsonObject content)
        => Send(socket, JupyterMessage.Create(msgType, content, _session, request));

    void Publish(string msgType, JsonObject content, JupyterMessage? parent)
        => Send(_iopub, JupyterMessage.Create(msgType, content, _session, parent,
            identities: [Encoding.UTF8.GetBytes($"kernel.{_session}.{msgType}")]));

    void Send(NetMQSocket socket, JupyterMessage message)
    {
        var frames = message.ToFrames(_signer);
        Enqueue(() => socket.SendMultipartBytes(frames));
    }

    void Enqueue(Action action)
    {
        lock (_stateLock)
        {
            if (_stopping) return;
            _outbox.Enqueue(action);
        }
    }

    /// <summary>Turns one cell's outputs into iopub messages (none when the request was silent) and keeps its error
    /// for the execute_reply.</summary>
    sealed class CellOutput(JupyterKernel kernel, JupyterMessage request, bool silent, int executionCount) : IKernelOutput
    {
        public (string Name, string Value, IReadOnlyList<string> Traceback)? Failure { get; private set; }

        public void Stream(string name, string text)
        {
            if (!silent && text.Length > 0)
                kernel.Publish("stream", new JsonObject { ["name"] = name, ["text"] = text }, request);
        }

        public void Display(IReadOnlyDictionary<string, object> data, string? displayId = null)
        {
            if (silent) return;
            var content = new JsonObject { ["data"] = Bundle(data), ["metadata"] = new JsonObject() };
            bool update = false;
            if (displayId is not null)
            {
                content["transient"] = new JsonObject { ["display_id"] = displayId };
                // A display id seen before (in this cell or an earlier one) replaces that output in place.
                lock (kernel._stateLock) update = !kernel._displayIds.Add(displayId);
            }
            kernel.Publish(update ? "update_display_data" : "display_data", content, request);
        }

        public void Result(IReadOnlyDictionary<string, object> data)
        {
            if (silent) return;
            kernel.Publish("execute_result", new JsonObject
            {
                ["execution_count"] = executionCount,
                ["data"] = Bundle(data),
                ["metadata"] = new JsonObject(),
            }, request);
        }

        public void Error(string ename, string evalue, IReadOnlyList<string> traceback)
        {
            Failure ??= (ename, evalue, traceback);
            if (silent) return;
            var content = ErrorContent(ename, evalue, traceback);
            content.Remove("status");
            kernel.Publish("error", content, request);
        }

        /// <summary>JSON mime types travel as JSON values (what nbformat stores), everything else as text.</summary>
        static JsonObject Bundle(IReadOnlyDictionary<string, object> data)
        {
            var bundle = new JsonObject();
            foreach (var (mime, value) in data)
                bundle[mime] = value switch
                {
                    string text => JsonValue.Create(text),
                    JsonNode node => node.DeepClone(),
                    _ => JsonSerializer.SerializeToNode(value),
                };
            return bundle;
        }
    }
}
