using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using NetMQ;
using PersonaWorkbook.Notebooks.Kernel;

namespace PersonaWorkbook.Tests.Kernel;

/// <summary>An in-process kernel on free loopback ports with a fake backend, and a client connected to it.</summary>
sealed class RunningKernel : IDisposable
{
    public StringWriter Log { get; } = new();
    public JupyterKernel Kernel { get; }
    public Task Run { get; }
    public TestKernelClient Client { get; }

    public RunningKernel(IKernelBackend? backend = null, string? key = null)
    {
        var requested = new KernelConnection { Key = key ?? Convert.ToHexString(RandomNumberGenerator.GetBytes(16)) };
        Kernel = new JupyterKernel(requested, backend ?? new FakeBackend(), Log);
        Run = Kernel.RunAsync();
        Client = new TestKernelClient(Kernel.Connection);
    }

    public void Dispose()
    {
        Client.Dispose();
        Kernel.Dispose();
    }
}

/// <summary>
/// The kernel's tests wait at most <see cref="TestKernelClient.Patience"/> for each reply; run beside the suite's
/// training and worker-process tests on 2 cores, a cold in-process kernel could miss that, so they run alone, after
/// the parallel collections.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class KernelCollection
{
    public const string Name = "kernel (alone)";
}

[Collection(KernelCollection.Name)]
public class KernelProtocolTests
{
    static readonly TimeSpan Silence = TimeSpan.FromMilliseconds(500);

    static string[] Types(IEnumerable<Received> messages) => messages.Select(m =>
        m.MsgType == "status" ? "status:" + m.Content["execution_state"]!.GetValue<string>() : m.MsgType).ToArray();

    [Fact]
    public void Signature_is_hex_hmac_sha256_over_the_four_json_frames()
    {
        var signer = new MessageSigner("secret");
        byte[] h = "{\"a\":1}"u8.ToArray(), p = "{}"u8.ToArray(), m = "{}"u8.ToArray(), c = "{\"code\":\"x\"}"u8.ToArray();
        var expected = Convert.ToHexStringLower(HMACSHA256.HashData("secret"u8, [.. h, .. p, .. m, .. c]));

        Assert.Equal(expected, signer.Sign(h, p, m, c));
        Assert.True(signer.Verify(expected, h, p, m, c));
        Assert.True(signer.Verify(expected.ToUpperInvariant(), h, p, m, c));
        Assert.False(signer.Verify(expected, h, p, m, "{\"code\":\"y\"}"u8));
        Assert.False(signer.Verify(expected[..^2], h, p, m, c));
        Assert.False(signer.Verify("not hex", h, p, m, c));
        Assert.Equal("", new MessageSigner("").Sign(h, p, m, c));
    }

    [Fact]
    public void Kernel_info_reply_describes_the_CSharp_kernel()
    {
        using var k = new RunningKernel();
        var id = k.Client.Send(k.Client.Shell, "kernel_info_request", new JsonObject());
        var reply = k.Client.Reply(k.Client.Shell, id);

        Assert.Equal("kernel_info_reply", reply.MsgType);
        Assert.Equal("kernel_info_request", reply.Parent["msg_type"]!.GetValue<string>());
        Assert.Equal("5.3", reply.Content["protocol_version"]!.GetValue<string>());
        Assert.Equal("workbook", reply.Content["implementation"]!.GetValue<string>());
        var language = reply.Content["language_info"]!;
        Assert.Equal("C#", language["name"]!.GetValue<string>());
        Assert.Equal("text/x-csharp", language["mimetype"]!.GetValue<string>());
        Assert.Equal(".cs", language["file_extension"]!.GetValue<string>());
        Assert.Equal("csharp", language["pygments_lexer"]!.GetValue<string>());
        Assert.Matches(@"^\d+\.\d+$", language["version"]!.GetValue<string>());
        Assert.Equal(["status:busy", "status:idle"], Types(k.Client.IopubUntilIdle(id)));
    }

    [Fact]
    public void Wrong_signature_is_rejected_without_reply_and_the_kernel_answers_the_next_good_message()
    {
        using var k = new RunningKernel();
        var forged = k.Client.Send(k.Client.Shell, "execute_request", new JsonObject { ["code"] = "print forged" },
            signature: new string('0', 64));
        Assert.Null(k.Client.Receive(k.Client.Shell, Silence));
        Assert.Null(k.Client.Receive(k.Client.Iopub, Silence));
        Assert.Contains("rejected a message on shell: invalid HMAC signature", k.Log.ToString());

        var good = k.Client.Send(k.Client.Shell, "kernel_info_request", new JsonObject());
        var reply = k.Client.Reply(k.Client.Shell, good);
        Assert.Equal("kernel_info_reply", reply.MsgType);
        Assert.NotEqual(forged, reply.ParentId);

        // The control channel verifies too: a forged shutdown must not stop the kernel.
        k.Client.Send(k.Client.Control, "shutdown_request", new JsonObject { ["restart"] = false }, signature: "deadbeef");
        Assert.Null(k.Client.Receive(k.Client.Control, Silence));
        Assert.False(k.Run.IsCompleted);
        Assert.Contains("rejected a message on control", k.Log.ToString());
    }

    [Fact]
    public void Replayed_message_is_rejected_even_with_its_signature_in_upper_case()
    {
        using var k = new RunningKernel();
        var c = k.Client;
        var (id, frames) = c.Build("kernel_info_request", new JsonObject());
        c.Shell.SendMultipartMessage(frames);
        Assert.Equal(id, c.Reply(c.Shell, id).ParentId);

        c.Shell.SendMultipartMessage(frames);
        var shouted = frames.Select(f => f.ToByteArray()).ToList();
        shouted[1] = Encoding.ASCII.GetBytes(Encoding.ASCII.GetString(shouted[1]).ToUpperInvariant());
        c.Shell.SendMultipartBytes(shouted);
        Assert.Null(c.Receive(c.Shell, Silence));
        Assert.Equal(2, k.Log.ToString().Split("replayed signature").Length - 1);
    }

    [Fact]
    public void A_port_already_taken_is_reported_with_its_endpoint()
    {
        using var first = new RunningKernel();
        var taken = first.Kernel.Connection with { Key = "k" };
        var e = Assert.Throws<IOException>(() => new JupyterKernel(taken, new FakeBackend(), TextWriter.Null));
        Assert.Contains($"cannot bind tcp://127.0.0.1:{taken.ShellPort}", e.Message);
    }

    [Fact]
    public void Execute_publishes_busy_input_outputs_then_replies_and_goes_idle()
    {
        using var k = new RunningKernel();
        var (reply, iopub) = k.Client.Execute("set x 41\nprint hello\nwarn careful\nplot\nget x");

        Assert.Equal("execute_reply", reply.MsgType);
        Assert.Equal("ok", reply.Content["status"]!.GetValue<string>());
        Assert.Equal(1, reply.Content["execution_count"]!.GetValue<int>());
        Assert.Equal(["status:busy", "execute_input", "stream", "stream", "display_data", "execute_result", "status:idle"], Types(iopub));

        Assert.Equal("set x 41\nprint hello\nwarn careful\nplot\nget x", iopub[1].Content["code"]!.GetValue<string>());
        Assert.Equal(1, iopub[1].Content["execution_count"]!.GetValue<int>());
        Assert.Equal(("stdout", "hello\n"), (iopub[2].Content["name"]!.GetValue<string>(), iopub[2].Content["text"]!.GetValue<string>()));
        Assert.Equal("stderr", iopub[3].Content["name"]!.GetValue<string>());
        // The plotly figure travels as a JSON object, not a string holding JSON.
        var figure = Assert.IsType<JsonObject>(iopub[4].Content["data"]!["application/vnd.plotly.v1+json"]);
        Assert.Equal("bar", figure["data"]![0]!["type"]!.GetValue<string>());
        Assert.Equal("41", iopub[5].Content["data"]!["text/plain"]!.GetValue<string>());
        Assert.Equal(1, iopub[5].Content["execution_count"]!.GetValue<int>());

        var second = k.Client.Execute("print again");
        Assert.Equal(2, second.Reply.Content["execution_count"]!.GetValue<int>());
    }

    [Fact]
    public void Repeated_display_id_updates_the_earlier_display()
    {
        using var k = new RunningKernel();
        var first = k.Client.Execute("show progress 10%").Iopub.Single(m => m.MsgType.Contains("display"));
        var second = k.Client.Execute("show progress 100%").Iopub.Single(m => m.MsgType.Contains("display"));

        Assert.Equal("display_data", first.MsgType);
        Assert.Equal("update_display_data", second.MsgType);
        Assert.Equal("progress", second.Content["transient"]!["display_id"]!.GetValue<string>());
        Assert.Equal("100%", second.Content["data"]!["text/plain"]!.GetValue<string>());
    }

    [Fact]
    public void Failing_cell_reports_an_error_and_the_kernel_keeps_its_state()
    {
        using var k = new RunningKernel();
        k.Client.Execute("set answer 42");

        var (failed, failedIopub) = k.Client.Execute("print before\nfail something broke");
        Assert.Equal("error", failed.Content["status"]!.GetValue<string>());
        Assert.Equal("InvalidOperationException", failed.Content["ename"]!.GetValue<string>());
        Assert.Equal("something broke", failed.Content["evalue"]!.GetValue<string>());
        Assert.Equal(2, failed.Content["execution_count"]!.GetValue<int>());
        Assert.Equal(["status:busy", "execute_input", "stream", "error", "status:idle"], Types(failedIopub));
        Assert.Equal("at cell line 1", failedIopub[3].Content["traceback"]![0]!.GetValue<string>());

        var (ok, okIopub) = k.Client.Execute("get answer");
        Assert.Equal("ok", ok.Content["status"]!.GetValue<string>());
        Assert.Equal(3, ok.Content["execution_count"]!.GetValue<int>());
        Assert.Equal("42", okIopub.Single(m => m.MsgType == "execute_result").Content["data"]!["text/plain"]!.GetValue<string>());
    }

    [Fact]
    public void Backend_exception_becomes_the_cells_error_not_a_dead_kernel()
    {
        using var k = new RunningKernel();
        var (reply, iopub) = k.Client.Execute("no such command");
        Assert.Equal("error", reply.Content["status"]!.GetValue<string>());
        Assert.Contains("unknown line", reply.Content["evalue"]!.GetValue<string>());
        Assert.Contains("error", Types(iopub));
        Assert.Equal("ok", k.Client.Execute("print fine").Reply.Content["status"]!.GetValue<string>());
    }

    [Fact]
    public void Silent_execute_publishes_no_outputs_and_does_not_count()
    {
        using var k = new RunningKernel();
        var (reply, iopub) = k.Client.Execute("set y 7\nprint quiet\nget y", silent: true);
        Assert.Equal("ok", reply.Content["status"]!.GetValue<string>());
        Assert.Equal(0, reply.Content["execution_count"]!.GetValue<int>());
        Assert.Equal(["status:busy", "status:idle"], Types(iopub));

        var (next, _) = k.Client.Execute("get y");
        Assert.Equal(1, next.Content["execution_count"]!.GetValue<int>());
    }

    [Fact]
    public void Error_with_stop_on_error_aborts_the_requests_queued_behind_it()
    {
        using var k = new RunningKernel();
        var c = k.Client;
        var waiting = c.Send(c.Shell, "execute_request", new JsonObject { ["code"] = "print started\nwait", ["stop_on_error"] = true });
        // Interrupt only once the cell is running: an interrupt that arrives first has nothing to cancel.
        Assert.Equal("started\n", c.IopubUntilStream(waiting));
        var queued = c.Send(c.Shell, "execute_request", new JsonObject { ["code"] = "print never" });
        Thread.Sleep(500); // the kernel's socket thread takes the queued request while the cell runs
        var interrupt = c.Send(c.Control, "interrupt_request", new JsonObject());
        Assert.Equal("interrupt_reply", c.Reply(c.Control, interrupt).MsgType);

        var first = c.Reply(c.Shell, waiting);
        Assert.Equal("error", first.Content["status"]!.GetValue<string>());
        Assert.Equal("OperationCanceledException", first.Content["ename"]!.GetValue<string>());
        Assert.Equal("aborted", c.Reply(c.Shell, queued).Content["status"]!.GetValue<string>());

        // Requests sent after the failure run normally.
        Assert.Equal("ok", c.Execute("print after").Reply.Content["status"]!.GetValue<string>());
    }

    [Fact]
    public void Interrupt_cancels_the_running_cell_and_the_kernel_carries_on()
    {
        using var k = new RunningKernel();
        var c = k.Client;
        c.Execute("set kept yes");
        var running = c.Send(c.Shell, "execute_request", new JsonObject { ["code"] = "print started\nwait" });
        var started = c.IopubUntilStream(running);
        Assert.Equal("started\n", started);

        var interrupt = c.Send(c.Control, "interrupt_request", new JsonObject());
        Assert.Equal("ok", c.Reply(c.Control, interrupt).Content["status"]!.GetValue<string>());
        var reply = c.Reply(c.Shell, running);
        Assert.Equal("error", reply.Content["status"]!.GetValue<string>());
        Assert.Contains("error", Types(c.IopubUntilIdle(running)));

        var (after, iopub) = c.Execute("get kept");
        Assert.Equal("ok", after.Content["status"]!.GetValue<string>());
        Assert.Equal("yes", iopub.Single(m => m.MsgType == "execute_result").Content["data"]!["text/plain"]!.GetValue<string>());
    }

    [Fact]
    public void Is_complete_comm_info_and_unknown_requests_are_answered()
    {
        using var k = new RunningKernel();
        var c = k.Client;
        string Complete(string code)
        {
            var id = c.Send(c.Shell, "is_complete_request", new JsonObject { ["code"] = code });
            return c.Reply(c.Shell, id).Content["status"]!.GetValue<string>();
        }
        Assert.Equal("complete", Complete("print x"));
        Assert.Equal("incomplete", Complete("if (x) {"));
        Assert.Equal("invalid", Complete("}"));

        var comm = c.Send(c.Shell, "comm_info_request", new JsonObject());
        var commReply = c.Reply(c.Shell, comm);
        Assert.Equal("comm_info_reply", commReply.MsgType);
        Assert.Empty(Assert.IsType<JsonObject>(commReply.Content["comms"]));

        var unknown = c.Send(c.Shell, "inspect_request", new JsonObject { ["code"] = "x", ["cursor_pos"] = 0 });
        var unknownReply = c.Reply(c.Shell, unknown);
        Assert.Equal("inspect_reply", unknownReply.MsgType);
        Assert.Equal("error", unknownReply.Content["status"]!.GetValue<string>());
        Assert.Contains("inspect_request", unknownReply.Content["evalue"]!.GetValue<string>());
    }

    [Fact]
    public void Heartbeat_echoes_its_frames()
    {
        using var k = new RunningKernel();
        k.Client.Heartbeat.SendFrame("ping");
        Assert.True(k.Client.Heartbeat.TryReceiveFrameString(TestKernelClient.Patience, out var echo));
        Assert.Equal("ping", echo);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Shutdown_request_is_answered_then_the_kernel_stops(bool onControl)
    {
        using var k = new RunningKernel();
        var c = k.Client;
        var socket = onControl ? c.Control : c.Shell;
        var id = c.Send(socket, "shutdown_request", new JsonObject { ["restart"] = false });
        var reply = c.Reply(socket, id);
        Assert.Equal("shutdown_reply", reply.MsgType);
        Assert.False(reply.Content["restart"]!.GetValue<bool>());
        await k.Run.WaitAsync(TestKernelClient.Patience); // throws TimeoutException if the kernel keeps running
    }
}
