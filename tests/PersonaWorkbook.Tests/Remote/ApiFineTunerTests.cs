using System.Text.Json.Nodes;
using PersonaWorkbook.Grading;
using PersonaWorkbook.Remote;
using PersonaWorkbook.Tests.Checkpoints;
using PersonaWorkbook.Tests.Cli;
using PersonaWorkbook.Tests.Grading;

namespace PersonaWorkbook.Tests.Remote;

/// <summary>The OpenAI fine-tuning route against the in-process fake API: upload, job states, polling, the cap, the record.</summary>
public class ApiFineTunerTests
{
    const string Key = "sk-test-fine-tuning-secret";
    const string Model = "gpt-4.1-nano-2025-04-14";
    const string Tuned = "ft:gpt-4.1-nano-2025-04-14:org::abc123";

    static string Data(TempDirectory dir, int rows = 12)
    {
        var path = dir.File("train.jsonl");
        File.WriteAllLines(path, Enumerable.Range(0, rows).Select(i =>
            $$"""{"messages":[{"role":"user","content":"question {{i}} ?"},{"role":"assistant","content":"answer {{i}} ."}]}"""));
        return path;
    }

    static string Job(string status, string? model = null, string? error = null) => new JsonObject
    {
        ["object"] = "fine_tuning.job",
        ["id"] = "ftjob-abc123",
        ["model"] = Model,
        ["created_at"] = 1_700_000_000,
        ["finished_at"] = status == "succeeded" ? 1_700_003_600 : null,
        ["fine_tuned_model"] = model,
        ["organization_id"] = "org-fake",
        ["result_files"] = new JsonArray(),
        ["status"] = status,
        ["validation_file"] = null,
        ["training_file"] = "file-xyz",
        ["hyperparameters"] = new JsonObject { ["n_epochs"] = 2, ["batch_size"] = 4, ["learning_rate_multiplier"] = 1.8 },
        ["trained_tokens"] = status == "succeeded" ? 1234 : null,
        ["error"] = error is null ? null : new JsonObject { ["code"] = "invalid_training_file", ["message"] = error, ["param"] = "training_file" },
        ["seed"] = 7,
        ["estimated_finish"] = null,
        ["integrations"] = new JsonArray(),
        ["method"] = new JsonObject { ["type"] = "supervised" },
    }.ToJsonString();

    const string File_ = """{"id":"file-xyz","object":"file","bytes":1000,"created_at":1700000000,"filename":"train.jsonl","purpose":"fine-tune","status":"processed"}""";

    /// <summary>A fake API whose job goes through <paramref name="states"/> one poll at a time (the last one repeats).</summary>
    static Func<FakeRequest, int, FakeResponse> Api(params string[] states)
    {
        int polls = 0;
        return (request, _) => (request.Method, request.Path) switch
        {
            ("POST", "/v1/files") => new FakeResponse(200, File_),
            ("POST", "/v1/fine_tuning/jobs") => new FakeResponse(200, Job("validating_files")),
            ("POST", "/v1/fine_tuning/jobs/ftjob-abc123/cancel") => new FakeResponse(200, Job("cancelled")),
            ("GET", "/v1/fine_tuning/jobs/ftjob-abc123") => State(states[Math.Min(Interlocked.Increment(ref polls) - 1, states.Length - 1)]),
            _ => new FakeResponse(404, """{"error":{"message":"no such route"}}"""),
        };
    }

    static FakeResponse State(string state) => state switch
    {
        "succeeded" => new FakeResponse(200, Job("succeeded", Tuned)),
        "failed" => new FakeResponse(200, Job("failed", error: "Training file has 3 examples with no assistant message")),
        "503" => FakeResponse.Error(503),
        "429" => FakeResponse.Error(429),
        _ => new FakeResponse(200, Job(state)),
    };

    static (ApiFineTuner Tuner, List<TimeSpan> Waits) Tuner(FakeChatServer server, TempDirectory dir, ApiFinetuneOptions? options = null)
    {
        var waits = new List<TimeSpan>();
        var endpoint = LlmJudgeOptions.FromEnvironment(server.BaseUrl.ToString(), Model, Key, _ => null);
        options = (options ?? new ApiFinetuneOptions()) with { CacheDirectory = dir.File("records") };
        return (new ApiFineTuner(endpoint, options, (t, ct) => { waits.Add(t); ct.ThrowIfCancellationRequested(); return Task.CompletedTask; }), waits);
    }

    static int Count(FakeChatServer server, string method, string path) => server.Requests.Count(r => r.Method == method && r.Path == path);

    [Fact]
    public async Task AJobIsUploadedCreatedPolledToItsModelAndReusedFromItsRecord()
    {
        using var dir = new TempDirectory();
        await using var server = new FakeChatServer(Api("validating_files", "queued", "running", "running", "succeeded"));
        var (tuner, waits) = Tuner(server, dir);
        var request = new ApiFinetuneRequest(Data(dir), Model, Epochs: 2, BatchSize: 4, LearningRateMultiplier: 1.8, Suffix: "em-health", Seed: 7);

        var job = await tuner.RunAsync(request);

        Assert.True(job.Succeeded);
        Assert.Equal(Tuned, job.FineTunedModel);
        Assert.Equal(1234, job.TrainedTokens);
        Assert.Equal(("file-xyz", "ftjob-abc123", false), (job.FileId, job.JobId, job.Reused));
        var upload = Assert.Single(server.Requests, r => r.Path == "/v1/files");
        Assert.StartsWith("multipart/form-data", upload.ContentType);
        Assert.Contains("fine-tune", upload.RawBody);
        Assert.Contains("\"content\":\"answer 11 .\"", upload.RawBody);
        var create = Assert.Single(server.Requests, r => r.Path == "/v1/fine_tuning/jobs").Body;
        Assert.Equal(Model, create["model"]!.GetValue<string>());
        Assert.Equal("file-xyz", create["training_file"]!.GetValue<string>());
        var hyper = create["method"]!["supervised"]!["hyperparameters"]!;
        Assert.Equal((2, 4, 1.8), (hyper["n_epochs"]!.GetValue<int>(), hyper["batch_size"]!.GetValue<int>(), hyper["learning_rate_multiplier"]!.GetValue<double>()));
        Assert.Equal(("em-health", 7), (create["suffix"]!.GetValue<string>(), create["seed"]!.GetValue<int>()));
        Assert.All(server.Requests, r => Assert.Equal($"Bearer {Key}", r.Authorization));
        // Polls wait 10, 15, 22.5, 33.75, 50.6 s: growing by half each time.
        Assert.Equal([10, 15, 22.5, 33.75, 50.625], waits.Select(w => Math.Round(w.TotalSeconds, 3)));
        Assert.Equal(5, Count(server, "GET", "/v1/fine_tuning/jobs/ftjob-abc123"));

        var record = File.ReadAllText(tuner.RecordPath(request));
        Assert.DoesNotContain(Key, record);
        Assert.Contains(Tuned, record);

        int before = server.RequestCount;
        var again = await tuner.RunAsync(request);
        Assert.True(again.Reused);
        Assert.Equal(Tuned, again.FineTunedModel);
        Assert.Equal(before, server.RequestCount);
    }

    [Fact]
    public async Task PollsRetryBusyServersAndAnUnwaitedJobIsResumedWithoutPayingAgain()
    {
        using var dir = new TempDirectory();
        await using var server = new FakeChatServer(Api("running", "503", "429", "running", "succeeded"));
        var (waiting, _) = Tuner(server, dir, new ApiFinetuneOptions { Wait = false });
        var request = new ApiFinetuneRequest(Data(dir), Model);

        var started = await waiting.RunAsync(request);
        Assert.Equal(("validating_files", false), (started.Status, started.Succeeded));
        Assert.Equal(0, Count(server, "GET", "/v1/fine_tuning/jobs/ftjob-abc123"));

        var (tuner, _) = Tuner(server, dir);
        var job = await tuner.RunAsync(request);
        Assert.Equal(Tuned, job.FineTunedModel);
        Assert.Equal(1, Count(server, "POST", "/v1/files"));
        Assert.Equal(1, Count(server, "POST", "/v1/fine_tuning/jobs"));
        Assert.Equal(2, tuner.Spent.Retries);
        // Hyperparameters left to the API are left out of the body ("auto").
        var hyper = server.Requests.Single(r => r.Path == "/v1/fine_tuning/jobs").Body["method"]!["supervised"]!["hyperparameters"]!.AsObject();
        Assert.Empty(hyper);
    }

    [Fact]
    public async Task AFailedJobNamesItsReasonAndARerunStartsANewOne()
    {
        using var dir = new TempDirectory();
        await using var server = new FakeChatServer(Api("running", "failed"));
        var (tuner, _) = Tuner(server, dir);
        var request = new ApiFinetuneRequest(Data(dir), Model);

        var e = await Assert.ThrowsAsync<ApiFinetuneException>(() => tuner.RunAsync(request));
        Assert.Contains("ftjob-abc123 failed", e.Message);
        Assert.Contains("no assistant message (invalid_training_file)", e.Message);
        Assert.Equal("failed", ApiFinetuneJob.Load(tuner.RecordPath(request)).Status);

        await Assert.ThrowsAsync<ApiFinetuneException>(() => tuner.RunAsync(request));
        Assert.Equal(2, Count(server, "POST", "/v1/fine_tuning/jobs"));
    }

    [Fact]
    public async Task CancellingWhileWaitingCancelsTheRemoteJob()
    {
        using var dir = new TempDirectory();
        using var abort = new CancellationTokenSource();
        var api = Api("running");
        await using var server = new FakeChatServer((r, i) =>
        {
            if (r.Method == "GET") abort.Cancel();
            return api(r, i);
        });
        var (tuner, _) = Tuner(server, dir);
        var request = new ApiFinetuneRequest(Data(dir), Model);

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => tuner.RunAsync(request, abort.Token));

        Assert.Equal(1, Count(server, "POST", "/v1/fine_tuning/jobs/ftjob-abc123/cancel"));
        Assert.Equal("cancelled", ApiFinetuneJob.Load(tuner.RecordPath(request)).Status);
    }

    [Fact]
    public async Task TheCapRefusesBeforeAnythingIsSentAndAJobIsNeverCreatedTwice()
    {
        using var dir = new TempDirectory();
        await using var server = new FakeChatServer((r, _) => r.Path == "/v1/files" ? new FakeResponse(200, File_) : FakeResponse.Error(500));
        var (capped, _) = Tuner(server, dir, new ApiFinetuneOptions { MaxTrainingTokens = 100 });
        var request = new ApiFinetuneRequest(Data(dir), Model);

        var cap = await Assert.ThrowsAsync<JudgeBudgetExceededException>(() => capped.RunAsync(request));
        Assert.Contains("× 3 epoch(s) (assumed for the API's auto choice)", cap.Message);
        Assert.Equal(0, server.RequestCount);
        Assert.False(File.Exists(capped.RecordPath(request)));

        // A 500 on creation may mean the job exists: it is not sent again.
        var (tuner, _) = Tuner(server, dir);
        var e = await Assert.ThrowsAsync<LlmJudgeException>(() => tuner.RunAsync(request));
        Assert.Contains("not repeated", e.Message);
        Assert.Equal(1, Count(server, "POST", "/v1/fine_tuning/jobs"));
        Assert.Equal("uploaded", ApiFinetuneJob.Load(tuner.RecordPath(request)).Status);
    }

    [Fact]
    public async Task AJobPastTheWaitLimitKeepsRunningAndIsNotCancelled()
    {
        using var dir = new TempDirectory();
        await using var server = new FakeChatServer(Api("running"));
        var (tuner, _) = Tuner(server, dir, new ApiFinetuneOptions { MaxWait = TimeSpan.Zero });

        var e = await Assert.ThrowsAsync<ApiFinetuneException>(() => tuner.RunAsync(new ApiFinetuneRequest(Data(dir), Model)));

        Assert.Contains("still validating_files", e.Message);
        Assert.Contains("run again to resume", e.Message);
        Assert.Equal(0, Count(server, "POST", "/v1/fine_tuning/jobs/ftjob-abc123/cancel"));
    }

    [Fact]
    public async Task BadInputsAreNamedBeforeAnyRequest()
    {
        using var dir = new TempDirectory();
        await using var server = new FakeChatServer(Api("succeeded"));
        var (tuner, _) = Tuner(server, dir);

        var few = await Assert.ThrowsAsync<InvalidDataException>(() => tuner.RunAsync(new ApiFinetuneRequest(Data(dir, rows: 3), Model)));
        Assert.Contains("train.jsonl: 3 conversation(s)", few.Message);

        var noMessages = dir.File("bad.jsonl");
        File.WriteAllLines(noMessages, File.ReadLines(Data(dir)).Append("""{"prompt":"x"}"""));
        var bad = await Assert.ThrowsAsync<InvalidDataException>(() => tuner.RunAsync(new ApiFinetuneRequest(noMessages, Model)));
        Assert.Contains("bad.jsonl:13", bad.Message);

        var userOnly = dir.File("user-only.jsonl");
        File.WriteAllLines(userOnly, File.ReadLines(Data(dir)).Append("""{"messages":[{"role":"user","content":"hello"}]}"""));
        var untrainable = await Assert.ThrowsAsync<InvalidDataException>(() => tuner.RunAsync(new ApiFinetuneRequest(userOnly, Model)));
        Assert.Contains("user-only.jsonl:13: no assistant message", untrainable.Message);
        Assert.Equal(0, server.RequestCount);

        var request = new ApiFinetuneRequest(Data(dir), Model);
        Directory.CreateDirectory(Path.GetDirectoryName(tuner.RecordPath(request))!);
        File.WriteAllText(tuner.RecordPath(request), "{\"cache_key\": 3}");
        var corrupt = await Assert.ThrowsAsync<InvalidDataException>(() => tuner.RunAsync(request));
        Assert.Contains(tuner.RecordPath(request), corrupt.Message);
        Assert.Contains("\"cache_key\"", corrupt.Message);
    }

    [Fact]
    public async Task TheCommandPrintsTheFineTunedModelAndKeepsTheKeyOutOfItsOutputs()
    {
        using var dir = new TempDirectory();
        await using var server = new FakeChatServer(Api("running", "succeeded"));
        var env = new Dictionary<string, string?> { ["OPENAI_API_KEY"] = Key, ["WORKBOOK_CACHE"] = dir.File("cache") };
        var json = dir.File("job.json");
        var (code, stdout, stderr) = WorkbookProcess.Run(env, "finetune", "--api-model", Model, "--data", Data(dir), "--base-url", server.BaseUrl.ToString(),
            "--epochs", "2", "--poll-seconds", "0.01", "--json", json);
        Assert.True(code == 0, stderr);
        Assert.StartsWith($"{Tuned}\tsucceeded\tftjob-abc123\trun", stdout);
        Assert.Equal(Tuned, ApiFinetuneJob.Load(json).FineTunedModel);
        foreach (var text in new[] { stdout, stderr, File.ReadAllText(json) }.Concat(Directory.EnumerateFiles(dir.File("cache"), "*", SearchOption.AllDirectories).Select(File.ReadAllText)))
            Assert.DoesNotContain(Key, text);

        var (again, againOut, _) = WorkbookProcess.Run(env, "finetune", "--api-model", Model, "--data", Data(dir), "--base-url", server.BaseUrl.ToString(), "--epochs", "2");
        Assert.Equal(0, again);
        Assert.EndsWith("reused", againOut.Trim());
        Assert.Equal(1, Count(server, "POST", "/v1/fine_tuning/jobs"));

        var (noKey, _, noKeyErr) = WorkbookProcess.Run(new Dictionary<string, string?> { ["OPENAI_API_KEY"] = null }, "finetune", "--api-model", Model, "--data", Data(dir));
        Assert.NotEqual(0, noKey);
        Assert.Contains("OPENAI_API_KEY", noKeyErr);
    }
}
