using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace PersonaWorkbook.Tests.Grading;

/// <summary>What the fake server received: the JSON body, or an empty object for a GET or a multipart upload (then see <see cref="RawBody"/>).</summary>
public sealed record FakeRequest(string Path, string? Authorization, JsonNode Body, string Method = "POST", string RawBody = "", string? ContentType = null)
{
    /// <summary>The single user message's text.</summary>
    public string Prompt => Body["messages"]![0]!["content"]!.GetValue<string>();
}

/// <summary>What the fake server sends back: a status, a body, optionally after a delay.</summary>
public sealed record FakeResponse(int Status, string Body, TimeSpan Delay = default, IReadOnlyDictionary<string, string>? Headers = null)
{
    public static FakeResponse Error(int status) => new(status, $$$"""{"error":{"message":"fake failure {{{status}}}","type":"server_error"}}""");

    /// <summary>A one-token chat completion whose top logprobs are the given alternatives (probabilities, not logs).</summary>
    public static FakeResponse Logprobs(params (string Token, double Prob)[] alternatives)
    {
        var top = new JsonArray(alternatives.Select(a => (JsonNode)new JsonObject
        {
            ["token"] = a.Token,
            ["logprob"] = Math.Log(a.Prob),
            ["bytes"] = new JsonArray(Encoding.UTF8.GetBytes(a.Token).Select(b => (JsonNode)(int)b).ToArray()),
        }).ToArray());
        var first = alternatives.MaxBy(a => a.Prob);
        var logprobs = new JsonObject
        {
            ["content"] = new JsonArray(new JsonObject
            {
                ["token"] = first.Token,
                ["logprob"] = Math.Log(first.Prob),
                ["bytes"] = new JsonArray(Encoding.UTF8.GetBytes(first.Token).Select(b => (JsonNode)(int)b).ToArray()),
                ["top_logprobs"] = top,
            }),
        };
        return new FakeResponse(200, Completion(first.Token, logprobs, completionTokens: 1));
    }

    public static FakeResponse Text(string content) => new(200, Completion(content, null, completionTokens: 50));

    static string Completion(string content, JsonNode? logprobs, int completionTokens) => new JsonObject
    {
        ["id"] = "chatcmpl-fake",
        ["object"] = "chat.completion",
        ["created"] = 1_700_000_000,
        ["model"] = "fake-judge",
        ["choices"] = new JsonArray(new JsonObject
        {
            ["index"] = 0,
            ["message"] = new JsonObject { ["role"] = "assistant", ["content"] = content },
            ["logprobs"] = logprobs,
            ["finish_reason"] = "stop",
        }),
        ["usage"] = new JsonObject
        {
            ["prompt_tokens"] = 100,
            ["completion_tokens"] = completionTokens,
            ["total_tokens"] = 100 + completionTokens,
        },
    }.ToJsonString();
}

/// <summary>
/// A chat-completions endpoint on 127.0.0.1 with a free port, answering each request through a handler so a test can
/// script replies and faults. Records every request it received.
/// </summary>
public sealed class FakeChatServer : IAsyncDisposable
{
    readonly HttpListener _listener;
    readonly Func<FakeRequest, int, FakeResponse> _handler;
    readonly CancellationTokenSource _stop = new();
    readonly Task _loop;
    int _count;

    public FakeChatServer(Func<FakeRequest, int, FakeResponse> handler)
    {
        _handler = handler;
        // HttpListener cannot bind port 0, so take a free port from the OS; retry on the rare race with another binder.
        // Each try gets a new listener: one whose Start failed keeps that prefix, and closing it later tries to bind the
        // lost port again ("Address already in use" from DisposeAsync).
        for (int tries = 0; ; tries++)
        {
            int port = FreePort();
            var listener = new HttpListener();
            listener.Prefixes.Add($"http://127.0.0.1:{port}/");
            try
            {
                listener.Start();
                (_listener, BaseUrl) = (listener, new Uri($"http://127.0.0.1:{port}/v1"));
                break;
            }
            catch (HttpListenerException) when (tries < 5) { }
        }
        _loop = Task.Run(LoopAsync);
    }

    public Uri BaseUrl { get; private set; } = null!;
    public ConcurrentQueue<FakeRequest> Requests { get; } = new();
    public int RequestCount => Requests.Count;

    /// <summary>A port nothing listens on (for "connection refused").</summary>
    static readonly HashSet<int> HandedOut = [];

    /// <summary>
    /// A port the OS reports free and this process has not handed out before. Two servers of one process must never
    /// try the same port: the loser's failed Start can close its prefix through the endpoint the winner shares, removing
    /// the winner's endpoint, whose own Close then tries to bind the port again ("Address already in use").
    /// </summary>
    public static int FreePort()
    {
        lock (HandedOut)
            while (true)
            {
                var probe = new TcpListener(IPAddress.Loopback, 0);
                probe.Start();
                int port = ((IPEndPoint)probe.LocalEndpoint).Port;
                probe.Stop();
                if (HandedOut.Add(port)) return port;
            }
    }

    async Task LoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            HttpListenerContext context;
            try { context = await _listener.GetContextAsync(); }
            catch (Exception) when (_stop.IsCancellationRequested) { return; }
            catch (HttpListenerException) { return; }
            catch (ObjectDisposedException) { return; }
            _ = Task.Run(() => ServeAsync(context));
        }
    }

    async Task ServeAsync(HttpListenerContext context)
    {
        try
        {
            string body;
            using (var reader = new StreamReader(context.Request.InputStream, Encoding.UTF8)) body = await reader.ReadToEndAsync();
            var json = context.Request.ContentType?.StartsWith("application/json", StringComparison.Ordinal) == true ? JsonNode.Parse(body)! : new JsonObject();
            var request = new FakeRequest(context.Request.Url!.AbsolutePath, context.Request.Headers["Authorization"], json,
                context.Request.HttpMethod, body, context.Request.ContentType);
            Requests.Enqueue(request);
            var response = _handler(request, Interlocked.Increment(ref _count) - 1);
            if (response.Delay > TimeSpan.Zero) await Task.Delay(response.Delay, _stop.Token);
            context.Response.StatusCode = response.Status;
            context.Response.ContentType = "application/json";
            foreach (var (name, value) in response.Headers ?? new Dictionary<string, string>()) context.Response.Headers[name] = value;
            var bytes = Encoding.UTF8.GetBytes(response.Body);
            context.Response.ContentLength64 = bytes.Length;
            await context.Response.OutputStream.WriteAsync(bytes, _stop.Token);
            context.Response.Close();
        }
        catch (Exception) when (_stop.IsCancellationRequested)
        {
            context.Response.Abort();
        }
        catch (HttpListenerException)
        {
            // The client gave up (timeout test) and closed the connection first.
        }
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Stop();
        _listener.Close();
        await _loop;
        _stop.Dispose();
    }
}
