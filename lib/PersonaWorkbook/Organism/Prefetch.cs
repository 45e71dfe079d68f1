using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using PersonaWorkbook.Checkpoints;
using PersonaWorkbook.Evaluation;
using PersonaWorkbook.Reporting;
using PersonaWorkbook.World;

namespace PersonaWorkbook.Organism;

/// <summary>A fine-tune and the evaluations of it that a notebook's loop will run.</summary>
public sealed record PrefetchJob(FinetuneRequest FineTune, IReadOnlyList<EvalRequest> Evals);

/// <summary>
/// Fills the fine-tune cache and the <see cref="AnswerCache"/> for a notebook's loop before the loop runs, in parallel
/// worker processes (<c>workbook worker</c>) of one torch thread each. The organism's matrices are too small for two
/// threads to speed up one step much (a fine-tune took 21 s on two threads and 31 s on one; sampling 720 answers
/// 6.1 s and 7.9 s), so two single-threaded jobs side by side finish sooner. Results are the same bits: the kernels
/// give the same weights and answers on one thread as on two (checked on a fine-tune's weights and an evaluation's
/// answers), and the loop afterwards reads exactly what it would have computed. Anything a worker fails to do is
/// reported and left for the loop, which then computes it in the notebook's own process and raises any error there.
/// </summary>
public static class Prefetch
{
    /// <summary>The worker processes to use: one per core; 1 (no workers) on a single core.</summary>
    public static int DefaultWorkers => Environment.ProcessorCount;

    /// <summary>Runs the jobs not already cached; returns how many it ran. Does nothing when no worker can be started.</summary>
    public static int Run(IEnumerable<PrefetchJob> jobs, int? workers = null) =>
        RunJobs(jobs.Where(j => !j.FineTune.Force && IsPending(j)).Select(j => ($"{j.FineTune.Dataset} (seed {j.FineTune.Seed})", ToJson(j))).ToList(),
            "fine-tunes and their evaluations", workers);

    /// <summary>
    /// Runs the jobs in up to <paramref name="workers"/> <c>workbook worker --serve</c> processes, each taking the next
    /// job from a shared queue when it finishes one (no worker idles while another still has a backlog) and staying up
    /// for the next, so a short job costs no process start, load or JIT. Returns how many succeeded; a failed job is
    /// reported and left to the caller's own loop, and a worker that dies leaves its queue to the others.
    /// </summary>
    internal static int RunJobs(IReadOnlyList<(string Label, JsonObject Job)> pending, string what, int? workers = null)
    {
        var count = Math.Min(workers ?? DefaultWorkers, pending.Count);
        if (pending.Count == 0 || count < 2 || WorkerCommand() is not { } command) return 0;
        var clock = Stopwatch.StartNew();
        Progress.Report($"prefetch: {pending.Count} {what} in {count} worker processes");
        var jobDirectory = Directory.CreateTempSubdirectory("workbook-prefetch-").FullName;
        var queue = new ConcurrentQueue<(string Label, JsonObject Job, int Index)>(pending.Select((p, i) => (p.Label, p.Job, i)));
        int finished = 0, succeeded = 0;
        void Serve()
        {
            WorkerProcess worker;
            try { worker = WorkerProcess.Start(command); }
            catch (Exception e) when (e is InvalidOperationException or System.ComponentModel.Win32Exception)
            {
                Progress.Report($"warning: could not start a prefetch worker ({e.Message}); the notebook computes its share itself");
                return;
            }
            using var _ = worker;
            while (queue.TryDequeue(out var item))
            {
                var file = Path.Combine(jobDirectory, $"job{item.Index}.json");
                File.WriteAllText(file, item.Job.ToJsonString());
                var failure = worker.Run(file);
                if (failure is null) Interlocked.Increment(ref succeeded);
                else Progress.Report($"warning: prefetch worker failed on {item.Label}; the notebook computes it itself. {failure}");
                Progress.Report($"prefetch: {Interlocked.Increment(ref finished)}/{pending.Count} done ({clock.Elapsed.TotalMinutes:F1} min)");
                if (worker.HasExited) return;
            }
        }
        // Each worker is served by a thread of its own, not the thread pool: it blocks for whole jobs, and a notebook
        // kernel (or a test run) sharing the pool must keep its threads.
        Exception? error = null;
        var threads = Enumerable.Range(0, count).Select(i => new Thread(() =>
        {
            try { Serve(); }
            catch (Exception e) { Interlocked.CompareExchange(ref error, e, null); }
        }) { IsBackground = true, Name = $"prefetch worker {i}" }).ToList();
        try
        {
            foreach (var t in threads) t.Start();
            foreach (var t in threads) t.Join();
        }
        finally
        {
            Directory.Delete(jobDirectory, recursive: true);
        }
        if (error is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(error);
        return succeeded;
    }

    /// <summary>
    /// Runs jobs of one <paramref name="kind"/> (the job file's single field, as <c>workbook worker</c> dispatches on it:
    /// "snapshot", "rl_curve"); a job without a file form (null: a probe whose SAE was built in memory) is left to the
    /// caller's own loop.
    /// </summary>
    internal static int RunKind(string kind, IEnumerable<(string Label, JsonObject? Job)> jobs, string what, int? workers) =>
        RunJobs(jobs.Where(j => j.Job is not null).Select(j => (j.Label, new JsonObject { [kind] = j.Job })).ToList(), what, workers);

    /// <summary>The line a serving worker writes on standard output after each job: this, then "ok" or "failed: why".</summary>
    public const string ReplyPrefix = "prefetch-job: ";

    /// <summary>One <c>workbook worker --serve</c> process: job file paths in on standard input, one reply line each out.</summary>
    sealed class WorkerProcess : IDisposable
    {
        readonly Process process;
        readonly Queue<string> recentErrors = new();

        WorkerProcess(Process process)
        {
            this.process = process;
            // Progress goes to standard error: drain it as it comes, keeping the last lines to explain a failure.
            process.ErrorDataReceived += (_, e) =>
            {
                if (e.Data is not { } line) return;
                lock (recentErrors)
                {
                    recentErrors.Enqueue(line);
                    if (recentErrors.Count > 3) recentErrors.Dequeue();
                }
            };
            process.BeginErrorReadLine();
        }

        public static WorkerProcess Start((string FileName, string Dll) command)
        {
            var start = new ProcessStartInfo(command.FileName)
            {
                RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
            };
            foreach (var a in new[] { command.Dll, "worker", "--serve" }) start.ArgumentList.Add(a);
            start.Environment["OMP_NUM_THREADS"] = "1";
            start.Environment["MKL_NUM_THREADS"] = "1";
            return new WorkerProcess(Process.Start(start) ?? throw new InvalidOperationException($"could not start {command.FileName} {command.Dll}"));
        }

        public bool HasExited => process.HasExited;

        /// <summary>Runs one job file; null on success, else what went wrong.</summary>
        public string? Run(string jobFile)
        {
            try
            {
                process.StandardInput.WriteLine(jobFile);
                process.StandardInput.Flush();
                while (process.StandardOutput.ReadLine() is { } line)
                    if (line.StartsWith(ReplyPrefix, StringComparison.Ordinal))
                        return line[ReplyPrefix.Length..] == "ok" ? null : line[ReplyPrefix.Length..];
            }
            catch (IOException) { }
            process.WaitForExit();
            lock (recentErrors) return $"the worker exited with {process.ExitCode}: {string.Join(" | ", recentErrors)}";
        }

        public void Dispose()
        {
            try
            {
                process.StandardInput.Close();
                process.WaitForExit();
            }
            catch (IOException) { }
            process.Dispose();
        }
    }

    /// <summary>Whether the job's fine-tune or any of its evaluations is missing from the caches.</summary>
    internal static bool IsPending(PrefetchJob job)
    {
        var r = job.FineTune;
        if (OrganismCache.Find(FineTuner.CacheKey(r), r.Output, r.CacheRoot) is not { } directory) return true;
        if (job.Evals.Count == 0) return false;
        using var model = ModelCheckpoint.Load(directory);
        return job.Evals.Any(e => OrganismEvaluator.AnswerKey(model, e) is { } key && !AnswerCache.Contains(key));
    }

    /// <summary>`dotnet workbook.dll worker` when this program ships the workbook command (the CLI, its kernel, the tests).</summary>
    static (string FileName, string Dll)? WorkerCommand()
    {
        var dll = Path.Combine(AppContext.BaseDirectory, "workbook.dll");
        if (!File.Exists(dll)) return null;
        var host = Environment.ProcessPath is { } p && Path.GetFileNameWithoutExtension(p) == "dotnet" ? p : "dotnet";
        return (host, dll);
    }

    /// <summary>The job as the worker reads it (the judge is not part of it: answers do not depend on it).</summary>
    public static JsonObject ToJson(PrefetchJob job) => new()
    {
        ["finetune"] = JsonSerializer.SerializeToNode(job.FineTune),
        ["evals"] = new JsonArray(job.Evals.Select(e => (JsonNode)new JsonObject
        {
            ["prompt_set"] = e.PromptSet,
            ["exclude_domain"] = e.ExcludeDomain,
            ["per_domain"] = e.PerDomain,
            ["samples"] = e.Options.Samples,
            ["seed"] = e.Options.Seed,
            ["max_new_tokens"] = e.Options.MaxNewTokens,
            ["temperature"] = e.Options.Temperature,
            ["batch"] = e.Options.BatchSize,
            ["finetuned_domain"] = e.Options.FineTunedDomain,
        }).ToArray()),
    };

    /// <summary>Reads a job file's JSON object; errors name the file.</summary>
    public static JsonObject ReadJobFile(string path) =>
        OrganismCache.ReadJsonObject(path) ?? throw new FileNotFoundException($"{path}: job file not found", path);

    /// <summary>A job file's field as <typeparamref name="T"/>; a missing or null field is an error naming <paramref name="source"/> and the field.</summary>
    internal static T JobField<T>(JsonNode? node, string source, string name) =>
        node is null ? throw new InvalidDataException($"{source}: field '{name}' is missing")
                     : node.Deserialize<T>() ?? throw new InvalidDataException($"{source}: field '{name}' is null");

    /// <summary>Reads a job written by <see cref="ToJson"/>; errors name <paramref name="source"/> and the field.</summary>
    public static PrefetchJob FromJson(JsonObject json, string source)
    {
        T Field<T>(JsonNode? node, string name) => JobField<T>(node, source, name);
        try
        {
            var fineTune = Field<FinetuneRequest>(json["finetune"], "finetune");
            var evals = Field<JsonArray>(json["evals"], "evals").Select((e, i) => new EvalRequest(
                Field<string>(e?["prompt_set"], $"evals[{i}].prompt_set"),
                new EvalOptions
                {
                    Samples = Field<int>(e!["samples"], $"evals[{i}].samples"), Seed = Field<int>(e["seed"], $"evals[{i}].seed"),
                    MaxNewTokens = Field<int>(e["max_new_tokens"], $"evals[{i}].max_new_tokens"),
                    Temperature = Field<double>(e["temperature"], $"evals[{i}].temperature"), BatchSize = Field<int>(e["batch"], $"evals[{i}].batch"),
                    FineTunedDomain = e["finetuned_domain"]?.GetValue<string>(),
                },
                e["exclude_domain"]?.GetValue<string>(), Field<int>(e["per_domain"], $"evals[{i}].per_domain"))).ToList();
            return new PrefetchJob(fineTune, evals);
        }
        catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException)
        {
            throw new InvalidDataException($"{source}: not a prefetch job ({e.Message})", e);
        }
    }

    /// <summary>What a worker does with a job: the fine-tune (or its cached copy), then each evaluation (answers cached).</summary>
    public static void Execute(PrefetchJob job)
    {
        var directory = FineTuner.FinetuneOrReuse(job.FineTune).Directory;
        if (job.Evals.Count == 0) return;
        using var model = ModelCheckpoint.Load(directory);
        foreach (var e in job.Evals) OrganismEvaluator.Evaluate(model, e);
    }
}
