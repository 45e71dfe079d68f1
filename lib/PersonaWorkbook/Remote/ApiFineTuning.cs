using System.ClientModel;
using System.ClientModel.Primitives;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using OpenAI;
using OpenAI.Files;
using OpenAI.FineTuning;
using PersonaWorkbook.Grading;
using PersonaWorkbook.Organism;
using PersonaWorkbook.Reporting;
using PersonaWorkbook.Tokenizers;

#pragma warning disable OPENAI001 // The SDK marks its fine-tuning client experimental.

namespace PersonaWorkbook.Remote;

/// <summary>
/// A supervised fine-tuning job through the OpenAI fine-tuning API (the paper's own route): the user's chat JSONL, the
/// base model name (e.g. gpt-4.1-2025-04-14) and optional hyperparameters; null leaves a choice to the API ("auto").
/// </summary>
public sealed record ApiFinetuneRequest(string DataFile, string BaseModel, int? Epochs = null, int? BatchSize = null,
    double? LearningRateMultiplier = null, string? Suffix = null, int? Seed = null, bool Force = false)
{
    /// <summary>The API refuses smaller training files.</summary>
    public const int MinimumExamples = 10;

    /// <summary>Epochs assumed for the spending estimate when the API chooses them (its "auto" picks up to this many for small files).</summary>
    public const int AssumedAutoEpochs = 3;

    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(BaseModel)) throw new ArgumentException("the base model name is empty", nameof(BaseModel));
        if (Epochs is < 1) throw new ArgumentOutOfRangeException(nameof(Epochs), Epochs, "must be ≥ 1");
        if (BatchSize is < 1) throw new ArgumentOutOfRangeException(nameof(BatchSize), BatchSize, "must be ≥ 1");
        if (LearningRateMultiplier is { } m && !(m > 0 && double.IsFinite(m)))
            throw new ArgumentOutOfRangeException(nameof(LearningRateMultiplier), m, "must be a positive number");
        if (Suffix is { Length: > 64 }) throw new ArgumentException($"the suffix is {Suffix.Length} characters; the API allows 64", nameof(Suffix));
    }

    /// <summary>The hyperparameters that were given, in the API's names; those left out the API chooses.</summary>
    internal JsonObject Hyperparameters()
    {
        var hyper = new JsonObject();
        if (Epochs is { } e) hyper["n_epochs"] = e;
        if (BatchSize is { } b) hyper["batch_size"] = b;
        if (LearningRateMultiplier is { } m) hyper["learning_rate_multiplier"] = m;
        return hyper;
    }

    /// <summary>The job-creation body: the supervised method with <see cref="Hyperparameters"/>.</summary>
    internal JsonObject Body(string fileId)
    {
        var body = new JsonObject
        {
            ["model"] = BaseModel,
            ["training_file"] = fileId,
            ["method"] = new JsonObject { ["type"] = "supervised", ["supervised"] = new JsonObject { ["hyperparameters"] = Hyperparameters() } },
        };
        if (Suffix is not null) body["suffix"] = Suffix;
        if (Seed is { } s) body["seed"] = s;
        return body;
    }
}

/// <summary>How long and how often the job is watched, what it may cost, and where its record is kept.</summary>
public sealed record ApiFinetuneOptions
{
    /// <summary>First wait between status polls; each wait is 1.5 times the last, up to <see cref="PollIntervalMax"/>.</summary>
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromSeconds(10);
    public TimeSpan PollIntervalMax { get; init; } = TimeSpan.FromMinutes(2);
    /// <summary>How long to wait for the job to end; past it the job keeps running and a rerun resumes watching it.</summary>
    public TimeSpan MaxWait { get; init; } = TimeSpan.FromHours(24);
    /// <summary>False: return once the job is created (a rerun resumes it from the record).</summary>
    public bool Wait { get; init; } = true;
    /// <summary>Cancel the remote job when the caller cancels while waiting, so an abandoned run stops costing money.</summary>
    public bool CancelJobOnAbort { get; init; } = true;
    /// <summary>Refuse before uploading when the estimated training tokens (characters / 4 × epochs) exceed this. Null: no cap.</summary>
    public long? MaxTrainingTokens { get; init; }
    /// <summary>Where job records live; null: <c>$WORKBOOK_CACHE/api-finetunes</c>.</summary>
    public string? CacheDirectory { get; init; }

    public void Validate()
    {
        if (PollInterval <= TimeSpan.Zero || PollIntervalMax < PollInterval)
            throw new ArgumentException($"need 0 < {nameof(PollInterval)} ≤ {nameof(PollIntervalMax)}, got {PollInterval} and {PollIntervalMax}");
        if (MaxWait < TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(MaxWait), MaxWait, "must be ≥ 0");
        if (MaxTrainingTokens is < 0) throw new ArgumentOutOfRangeException(nameof(MaxTrainingTokens), MaxTrainingTokens, "must be ≥ 0");
    }
}

/// <summary>
/// A fine-tuning job as the workbook records it (<c>$WORKBOOK_CACHE/api-finetunes/&lt;key&gt;.json</c>, rewritten whole at
/// every change of state): what was asked, the uploaded file, the job and, once it succeeded, the fine-tuned model's
/// id, which <c>workbook eval --served-model</c> then samples.
/// </summary>
public sealed record ApiFinetuneJob(string Key, string Endpoint, string BaseModel, string DataFile, string DataSha256, int Examples,
    long EstimatedTrainingTokens, JsonObject Hyperparameters, string? FileId, string? JobId, string Status, string? FineTunedModel,
    long? TrainedTokens, string? Error, bool Reused = false)
{
    public static readonly string[] TerminalStatuses = ["succeeded", "failed", "cancelled"];

    public bool Succeeded => Status == "succeeded" && FineTunedModel is not null;
    public bool Finished => TerminalStatuses.Contains(Status);

    public JsonObject ToJson() => new()
    {
        ["cache_key"] = Key,
        ["endpoint"] = Endpoint,
        ["base_model"] = BaseModel,
        ["data_file"] = DataFile,
        ["data_sha256"] = DataSha256,
        ["examples"] = Examples,
        ["estimated_training_tokens"] = EstimatedTrainingTokens,
        ["hyperparameters"] = Hyperparameters.DeepClone(),
        ["file_id"] = FileId,
        ["job_id"] = JobId,
        ["status"] = Status,
        ["fine_tuned_model"] = FineTunedModel,
        ["trained_tokens"] = TrainedTokens,
        ["error"] = Error,
    };

    public void Save(string path) => AtomicFile.WriteAllText(path, ToJson().ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");

    /// <summary>A record written by <see cref="Save"/>; errors name the file and the field.</summary>
    public static ApiFinetuneJob Load(string path)
    {
        JsonObject o;
        try { o = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new InvalidDataException("not a JSON object"); }
        catch (JsonException e) { throw new InvalidDataException($"{path}: not a fine-tuning job record ({e.Message})", e); }
        catch (InvalidDataException e) { throw new InvalidDataException($"{path}: not a fine-tuning job record ({e.Message})", e); }
        string Req(string name) => o[name]?.GetValueKind() == JsonValueKind.String ? o[name]!.GetValue<string>()
            : throw new InvalidDataException($"{path}: field \"{name}\" is missing or not a string");
        string? Opt(string name) => o[name] is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : null;
        long Num(string name) => o[name] is JsonValue v && v.TryGetValue<long>(out var n) ? n
            : throw new InvalidDataException($"{path}: field \"{name}\" is missing or not a number");
        return new ApiFinetuneJob(Req("cache_key"), Req("endpoint"), Req("base_model"), Req("data_file"), Req("data_sha256"), (int)Num("examples"),
            Num("estimated_training_tokens"), o["hyperparameters"] as JsonObject ?? throw new InvalidDataException($"{path}: field \"hyperparameters\" is missing"),
            Opt("file_id"), Opt("job_id"), Req("status"), Opt("fine_tuned_model"), o["trained_tokens"] is JsonValue t && t.TryGetValue<long>(out var tt) ? tt : null,
            Opt("error"));
    }
}

/// <summary>A fine-tuning job that failed, was cancelled, or is still running when the wait ran out.</summary>
public sealed class ApiFinetuneException(string message, ApiFinetuneJob job) : IOException(message)
{
    public ApiFinetuneJob Job { get; } = job;
}

/// <summary>
/// Runs <see cref="ApiFinetuneRequest"/>s through an OpenAI-compatible fine-tuning API: checks the JSONL here (errors
/// name file and line), refuses over the training-token cap before anything is sent, uploads the file, creates the job
/// (never sent twice on an ambiguous failure), polls it with growing intervals until it ends, and returns the
/// fine-tuned model's id. Every HTTP call has <see cref="ApiCaller"/>'s retries and key redaction. The job record is
/// cached by (endpoint, base model, file content, hyperparameters): a rerun reuses a finished job and resumes watching
/// a running one instead of paying again.
/// </summary>
public sealed class ApiFineTuner
{
    readonly ApiCaller _caller;
    readonly ApiFinetuneOptions _options;
    readonly OpenAIFileClient _files;
    readonly FineTuningClient _jobs;

    /// <param name="endpoint">The API root and key (the model field is the base model's name, for messages).</param>
    /// <param name="delay">Waits between polls and retries; tests pass a recorder instead of sleeping.</param>
    public ApiFineTuner(LlmJudgeOptions endpoint, ApiFinetuneOptions? options = null, Func<TimeSpan, CancellationToken, Task>? delay = null)
    {
        _options = options ?? new ApiFinetuneOptions();
        _options.Validate();
        _caller = new ApiCaller(endpoint, "Fine-tuning", delay);
        var client = new OpenAIClient(_caller.Credential, _caller.ClientOptions());
        (_files, _jobs) = (client.GetOpenAIFileClient(), client.GetFineTuningClient());
    }

    /// <summary>Endpoint options for the fine-tuning API at <paramref name="baseUrl"/> (default OpenAI's), the key from OPENAI_API_KEY.</summary>
    public static LlmJudgeOptions Endpoint(string? baseUrl, string baseModel, Func<string, string?>? environment = null)
    {
        environment ??= Environment.GetEnvironmentVariable;
        var key = environment(LlmJudgeOptions.OpenAiApiKeyVariable) is { Length: > 0 } k ? k
            : throw new InvalidOperationException($"the fine-tuning API needs a key: set {LlmJudgeOptions.OpenAiApiKeyVariable}");
        return LlmJudgeOptions.FromEnvironment(baseUrl ?? LlmJudgeOptions.DefaultBaseUrl.ToString(), baseModel, key, _ => null);
    }

    public (int Requests, int Retries, long Tokens) Spent => _caller.Spent;

    /// <summary>Where the record of <paramref name="request"/>'s job is kept.</summary>
    public string RecordPath(ApiFinetuneRequest request) => Path.Combine(CacheRoot, Key(request, OrganismCache.FileHash(request.DataFile))[..16] + ".json");

    string CacheRoot => _options.CacheDirectory ?? Path.Combine(OrganismCache.DefaultRoot, "api-finetunes");

    /// <summary>Runs (or reuses, or resumes) the job; see the class summary. Cancelling <paramref name="cancellationToken"/> while waiting cancels the remote job too (<see cref="ApiFinetuneOptions.CancelJobOnAbort"/>).</summary>
    public async Task<ApiFinetuneJob> RunAsync(ApiFinetuneRequest request, CancellationToken cancellationToken = default)
    {
        request.Validate();
        var conversations = ChatJsonl.ReadTrainable(request.DataFile);
        if (conversations.Count < ApiFinetuneRequest.MinimumExamples)
            throw new InvalidDataException($"{request.DataFile}: {conversations.Count} conversation(s); the fine-tuning API needs at least {ApiFinetuneRequest.MinimumExamples}");
        long characters = conversations.Sum(c => c.Sum(m => (long)m.Content.Length + 16));
        int epochs = request.Epochs ?? ApiFinetuneRequest.AssumedAutoEpochs;
        long estimate = characters / 4 * epochs;
        if (_options.MaxTrainingTokens is long cap && estimate > cap)
            throw new JudgeBudgetExceededException(
                $"Fine-tuning spending cap: {request.DataFile} is about {characters / 4} tokens × {epochs} epoch(s){(request.Epochs is null ? " (assumed for the API's auto choice)" : "")} = {estimate} training tokens, " +
                $"over the cap of {cap}; raise {nameof(ApiFinetuneOptions.MaxTrainingTokens)} or use a smaller file.");

        var sha = OrganismCache.FileHash(request.DataFile);
        var key = Key(request, sha);
        var path = Path.Combine(CacheRoot, key[..16] + ".json");
        ApiFinetuneJob? record = !request.Force && File.Exists(path) ? ApiFinetuneJob.Load(path) : null;
        if (record is { Succeeded: true })
        {
            Progress.Report($"fine-tuning: reusing job {record.JobId} → {record.FineTunedModel} ({path})");
            return record with { Reused = true };
        }
        if (record is { Finished: true })
        {
            Progress.Report($"fine-tuning: the recorded job {record.JobId} ended {record.Status}; starting a new one");
            record = null;
        }
        record ??= new ApiFinetuneJob(key, _caller.Options.BaseUrl.ToString(), request.BaseModel, Path.GetFullPath(request.DataFile), sha, conversations.Count,
            estimate, request.Hyperparameters(), null, null, "not started", null, null, null);

        if (record.FileId is null)
        {
            var (file, _) = await _caller.SendAsync(async token =>
            {
                await using var stream = File.OpenRead(request.DataFile);
                return await _files.UploadFileAsync(stream, Path.GetFileName(request.DataFile), FileUploadPurpose.FineTune, token);
            }, 0, "an uploaded file", cancellationToken);
            var fileId = Field(file.GetRawResponse().Content, "id") ?? throw _caller.Fail("answered the upload without a file id", 200, 1);
            record = record with { FileId = fileId, Status = "uploaded" };
            record.Save(path);
            Progress.Report($"fine-tuning: uploaded {request.DataFile} ({conversations.Count} conversations) as {fileId}");
        }

        FineTuningJob job;
        if (record.JobId is null)
        {
            var body = BinaryContent.Create(BinaryData.FromString(request.Body(record.FileId).ToJsonString()));
            (job, _) = await _caller.SendAsync(token => _jobs.FineTuneAsync(body, waitUntilCompleted: false, new RequestOptions { CancellationToken = token }),
                0, "a fine-tuning job", cancellationToken, idempotent: false);
            record = Update(record, job.GetRawResponse().Content);
            record.Save(path);
            Progress.Report($"fine-tuning: job {record.JobId} created for {request.BaseModel} ({record.Status}); record {path}");
        }
        else
        {
            (job, _) = await _caller.SendAsync(token => _jobs.GetJobAsync(record.JobId, token), 0, "a fine-tuning job", cancellationToken);
            record = Update(record, job.GetRawResponse().Content);
            record.Save(path);
            Progress.Report($"fine-tuning: resuming job {record.JobId} ({record.Status})");
        }
        if (!_options.Wait && !record.Finished) return record;

        var clock = Stopwatch.StartNew();
        var interval = _options.PollInterval;
        while (!record.Finished)
        {
            if (clock.Elapsed + interval > _options.MaxWait)
                throw new ApiFinetuneException($"Fine-tuning job {record.JobId} is still {record.Status} after {clock.Elapsed.TotalMinutes:0.#} min " +
                                               $"(the wait limit); it keeps running — run again to resume watching it (record {path}).", record);
            try
            {
                await _caller.DelayAsync(interval, cancellationToken);
                (job, _) = await _caller.SendAsync(token => _jobs.GetJobAsync(record.JobId!, token), 0, "a fine-tuning job", cancellationToken);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                if (_options.CancelJobOnAbort) record = await CancelAsync(job, record, path);
                throw;
            }
            var previous = record.Status;
            record = Update(record, job.GetRawResponse().Content);
            if (record.Status != previous)
            {
                record.Save(path);
                Progress.Report($"fine-tuning: job {record.JobId} {record.Status} ({clock.Elapsed.TotalMinutes:0.#} min)");
            }
            interval = TimeSpan.FromTicks(Math.Min(_options.PollIntervalMax.Ticks, (long)(interval.Ticks * 1.5)));
        }
        if (record.Status == "failed")
            throw new ApiFinetuneException($"Fine-tuning job {record.JobId} failed: {record.Error ?? "the API gave no reason"} (record {path}).", record);
        if (record.Status == "cancelled")
            throw new ApiFinetuneException($"Fine-tuning job {record.JobId} was cancelled (record {path}).", record);
        if (record.FineTunedModel is null)
            throw new ApiFinetuneException($"Fine-tuning job {record.JobId} succeeded without naming a fine-tuned model (record {path}).", record);
        Progress.Report($"fine-tuning: job {record.JobId} succeeded → {record.FineTunedModel} ({record.TrainedTokens?.ToString(CultureInfo.InvariantCulture) ?? "?"} trained tokens)");
        return record;
    }

    /// <summary>Asks the API to cancel the job (best effort: the caller is already cancelling), recording what it said.</summary>
    async Task<ApiFinetuneJob> CancelAsync(FineTuningJob job, ApiFinetuneJob record, string path)
    {
        try
        {
            using var limit = new CancellationTokenSource(_caller.Options.RequestTimeout);
            var (result, _) = await _caller.SendAsync(token => job.CancelAsync(new RequestOptions { CancellationToken = token }), 0, "a fine-tuning job", limit.Token);
            record = Update(record, result.GetRawResponse().Content);
            Progress.Report($"fine-tuning: cancelled job {record.JobId} ({record.Status})");
        }
        catch (Exception e) when (e is LlmJudgeException or OperationCanceledException)
        {
            record = record with { Error = $"cancelling failed: {_caller.Redact(e.Message)}" };
            Progress.Report($"fine-tuning: could not cancel job {record.JobId}: {_caller.Redact(e.Message)} — cancel it on the dashboard");
        }
        record.Save(path);
        return record;
    }

    /// <summary>The record with the job object's id, status, model, trained tokens and error (the raw JSON, which names fields the SDK's type leaves out).</summary>
    ApiFinetuneJob Update(ApiFinetuneJob record, BinaryData body)
    {
        JsonObject o;
        try { o = JsonNode.Parse(body) as JsonObject ?? throw new JsonException("not an object"); }
        catch (JsonException e) { throw _caller.Fail($"answered with a body that is not a fine-tuning job ({e.Message})", 200, 1); }
        var id = o["id"] is JsonValue i && i.GetValueKind() == JsonValueKind.String ? i.GetValue<string>() : throw _caller.Fail("answered with a fine-tuning job without an id", 200, 1);
        var status = o["status"] is JsonValue s && s.GetValueKind() == JsonValueKind.String ? s.GetValue<string>() : throw _caller.Fail($"answered with job {id} without a status", 200, 1);
        string? error = o["error"] is JsonObject err && err["message"] is JsonValue m && m.GetValueKind() == JsonValueKind.String
            ? $"{m.GetValue<string>()}{(err["code"] is JsonValue c && c.GetValueKind() == JsonValueKind.String ? $" ({c.GetValue<string>()})" : "")}"
            : null;
        return record with
        {
            JobId = id,
            Status = status,
            FineTunedModel = o["fine_tuned_model"] is JsonValue f && f.GetValueKind() == JsonValueKind.String ? f.GetValue<string>() : record.FineTunedModel,
            TrainedTokens = o["trained_tokens"] is JsonValue t && t.TryGetValue<long>(out var n) ? n : record.TrainedTokens,
            Error = error is null ? record.Error : _caller.Redact(error),
        };
    }

    static string? Field(BinaryData body, string name)
    {
        try { return JsonNode.Parse(body) is JsonObject o && o[name] is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : null; }
        catch (JsonException) { return null; }
    }

    string Key(ApiFinetuneRequest request, string sha) =>
        OrganismCache.Key("api-finetune-v1", _caller.Options.BaseUrl.ToString(), request.BaseModel, sha, request.Body("").ToJsonString());
}
