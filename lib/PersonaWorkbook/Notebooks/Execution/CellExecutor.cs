using System.Collections.Immutable;
using System.Diagnostics;
using System.Globalization;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Scripting;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Microsoft.CodeAnalysis.Scripting;

namespace PersonaWorkbook.Notebooks.Execution;

/// <summary>
/// One C# session with the semantics of the .NET Interactive C# kernel: Roslyn scripting, the kernel's imports,
/// latest language version, and each cell continuing the previous cell's state. Shared by <c>workbook run</c>
/// and the Jupyter kernel. Cells run one at a time.
/// </summary>
public sealed class CellExecutor : IDisposable
{
    static readonly string[] KernelImports =
        ["System", "System.Text", "System.Collections", "System.Collections.Generic", "System.Threading.Tasks", "System.Linq"];

    static readonly CSharpParseOptions ScriptParseOptions =
        new(LanguageVersion.Latest, DocumentationMode.None, SourceCodeKind.Script);

    readonly ExecutorOptions _options;
    readonly SemaphoreSlim _oneAtATime = new(1, 1);
    readonly List<RecordedResult> _results = [];
    readonly object _stateLock = new();
    readonly Lazy<Task<ScriptState<object>>> _prelude;
    ScriptState<object>? _state;  // the last completed cell's state; guarded by _stateLock
    bool _disposed;

    public CellExecutor(ExecutorOptions? options = null)
    {
        _options = options ?? new ExecutorOptions();
        if (!Directory.Exists(_options.WorkingDirectory))
            throw new DirectoryNotFoundException($"executor working directory {_options.WorkingDirectory} does not exist");
        _prelude = new Lazy<Task<ScriptState<object>>>(StartSessionAsync);
    }

    /// <summary>Cells executed so far (every call counts, as in Jupyter).</summary>
    public int ExecutionCount { get; private set; }

    internal MimeFormatter Formatter { get; } = new();

    /// <summary>Results the cells recorded with <see cref="Results.Record"/>, in order, the latest per name.</summary>
    public IReadOnlyList<RecordedResult> RecordedResults
    {
        get { lock (_results) return _results.ToArray(); }
    }

    internal void Record(RecordedResult result)
    {
        lock (_results)
        {
            _results.RemoveAll(r => r.Name == result.Name);
            _results.Add(result);
        }
    }

    public async Task<CellRunResult> ExecuteAsync(string code, ICellOutputSink sink, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        await _oneAtATime.WaitAsync(cancellationToken);
        try
        {
            return await ExecuteLockedAsync(code, sink, cancellationToken);
        }
        finally
        {
            _oneAtATime.Release();
        }
    }

    async Task<CellRunResult> ExecuteLockedAsync(string code, ICellOutputSink sink, CancellationToken cancellationToken)
    {
        var count = ++ExecutionCount;
        var clock = Stopwatch.StartNew();
        sink = new GuardedSink(sink);
        CellScope.InstallConsoleRouting();
        var directives = Directives.Parse(code);
        if (directives.Error is not null)
        {
            sink.Error("DirectiveError", $"cell {count}, {directives.Error}", [$"cell {count}, {directives.Error}"]);
            return new CellRunResult(false, count, clock.Elapsed);
        }
        foreach (var note in directives.Notes) sink.Stream("stderr", note + "\n");
        if (directives.Skip) return new CellRunResult(true, count, clock.Elapsed);

        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        if (_options.CellTimeout is { } timeout) limit.CancelAfter(timeout);
        var scope = new CellScope(this, sink, count, limit.Token);
        bool succeeded;
        try
        {
            // Task.Run keeps a synchronous cell from blocking the caller, so the time limit can be observed;
            // it also carries the scope (an AsyncLocal) into the script.
            var run = Task.Run(() => { scope.Enter(); return RunAsync(directives.Code, scope); }, CancellationToken.None);
            var finished = await Task.WhenAny(run, Task.Delay(Timeout.Infinite, limit.Token));
            // A cell that returns because the limit cancelled it (it watched CellCancellationToken) can win the race
            // with the delay: it ran out of time all the same.
            if (finished == run && run.IsCompletedSuccessfully && !limit.IsCancellationRequested) succeeded = run.Result;
            else if (finished == run && !(run.Exception?.GetBaseException() is OperationCanceledException && limit.IsCancellationRequested))
            {
                // User code's exceptions are caught by the script; this is Roslyn or the engine failing.
                var e = run.Exception!.GetBaseException();
                var why = $"cell {count}: the executor failed: {e.GetType().FullName}: {e.Message}";
                sink.Error(e.GetType().FullName ?? "Exception", why, [why, .. (e.StackTrace ?? "").Split('\n')]);
                succeeded = false;
            }
            else
            {
                lock (_stateLock) scope.Abandoned = true;
                // .NET cannot abort the thread: the cell keeps running detached and its state is dropped;
                // the next cell continues from the last completed one.
                var why = cancellationToken.IsCancellationRequested
                    ? $"cell {count} was cancelled"
                    : $"cell {count} exceeded the time limit of {FormatSeconds(_options.CellTimeout!.Value)}";
                sink.Error(cancellationToken.IsCancellationRequested ? "OperationCanceledException" : "TimeoutException", why, [why]);
                succeeded = false;
            }
        }
        finally
        {
            scope.Close();
        }
        if (directives.Time)
            sink.Stream("stdout", $"Wall time: {clock.Elapsed.TotalMilliseconds.ToString("F1", CultureInfo.InvariantCulture)} ms\n");
        return new CellRunResult(succeeded, count, clock.Elapsed);
    }

    /// <summary>
    /// Compiles <paramref name="cells"/> as one session would run them, without running anything: the compilation
    /// errors, each naming its cell (1-based) and line. For checking committed notebooks against the library's API.
    /// </summary>
    public IReadOnlyList<string> CompileOnly(IEnumerable<string> cells)
    {
        var errors = new List<string>();
        Script script = Prelude();
        var count = 0;
        foreach (var cell in cells)
        {
            count++;
            var directives = Directives.Parse(cell);
            if (directives.Error is not null) { errors.Add($"cell {count}, {directives.Error}"); continue; }
            if (directives.Skip) continue;
            var cellFile = Path.Combine(_options.WorkingDirectory, $"cell{count}.csx");
            script = script.ContinueWith(Utf8(directives.Code), Options().WithFilePath(cellFile));
            errors.AddRange(script.Compile().Where(d => d.Severity == DiagnosticSeverity.Error).Select(d => Describe(d, cellFile, count)));
        }
        return errors;
    }

    static string FormatSeconds(TimeSpan t) => t.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture) + " s";

    async Task<bool> RunAsync(string code, CellScope scope)
    {
        ScriptState<object>? previous;
        lock (_stateLock) previous = _state;
        previous ??= await _prelude.Value;
        var cellFile = Path.Combine(_options.WorkingDirectory, $"cell{scope.ExecutionCount}.csx");
        var script = previous.Script.ContinueWith(Utf8(code), Options().WithFilePath(cellFile));
        var errors = script.Compile(scope.CancellationToken).Where(d => d.Severity == DiagnosticSeverity.Error).ToList();
        if (errors.Count > 0)
        {
            var lines = errors.Select(d => Describe(d, cellFile, scope.ExecutionCount)).ToList();
            lock (_stateLock) if (!scope.Abandoned) scope.Sink.Error("CompilationError", lines[0], lines);
            return false;
        }

        var state = await script.RunFromAsync(previous, _ => true, scope.CancellationToken);
        lock (_stateLock)
        {
            // A cell that outlived its time limit finishes detached: its state and outputs no longer count.
            if (scope.Abandoned) return false;
            _state = state;
        }
        scope.Stdout.Flush();
        scope.Stderr.Flush();
        if (state.Exception is { } exception)
        {
            ReportException(exception, cellFile, scope);
            return false;
        }
        if (HasTrailingValue(script.GetCompilation(), cellFile)) scope.Sink.Result(Formatter.Format(state.ReturnValue), scope.ExecutionCount);
        return true;
    }

    // Roslyn's own test (Compilation.HasSubmissionResult) is internal: a submission has a value when it ends in an
    // expression without a semicolon whose type is not void.
    static bool HasTrailingValue(Compilation compilation, string cellFile)
    {
        var tree = compilation.SyntaxTrees.First(t => t.FilePath == cellFile);
        if (tree.GetRoot() is not CompilationUnitSyntax unit ||
            unit.Members.LastOrDefault() is not GlobalStatementSyntax
            {
                Statement: ExpressionStatementSyntax { SemicolonToken.IsMissing: true } statement
            })
            return false;
        var type = compilation.GetSemanticModel(tree).GetTypeInfo(statement.Expression).Type;
        return type is not null && type.SpecialType != SpecialType.System_Void;
    }

    // The kernel's prelude: display() and .Display() in scope without any using in the notebook.
    Task<ScriptState<object>> StartSessionAsync() => Prelude().RunAsync();

    Script<object> Prelude() => CSharpScript.Create<object>(Utf8($"using static {typeof(CellHelpers).FullName};"), Options());

    // Code as a stream: the source then has an encoding, which Roslyn needs to emit debug information.
    static MemoryStream Utf8(string code) => new(System.Text.Encoding.UTF8.GetBytes(code));

    ScriptOptions Options() => ScriptOptions.Default
        .WithLanguageVersion(LanguageVersion.Latest)
        .WithReferences(HostAssemblies.MetadataReferences)
        .WithImports(KernelImports)
        .WithEmitDebugInformation(true)  // line numbers in exception stack traces
        .WithMetadataResolver(ScriptMetadataResolver.Default.WithBaseDirectory(_options.WorkingDirectory))
        .WithSourceResolver(new SourceFileResolver(ImmutableArray<string>.Empty, _options.WorkingDirectory));

    static string Describe(Diagnostic d, string cellFile, int count)
    {
        var span = d.Location.GetLineSpan();
        var where = !d.Location.IsInSource ? $"cell {count}"
            : span.Path == cellFile ? $"cell {count}, line {span.StartLinePosition.Line + 1}"
            : $"{span.Path}, line {span.StartLinePosition.Line + 1}";
        return $"{where}: {d.Id}: {d.GetMessage(CultureInfo.InvariantCulture)}";
    }

    static void ReportException(Exception exception, string cellFile, CellScope scope)
    {
        var line = new StackTrace(exception, true).GetFrames()
            .FirstOrDefault(f => f.GetFileName() == cellFile)?.GetFileLineNumber();
        var where = line is > 0 ? $"cell {scope.ExecutionCount}, line {line}" : $"cell {scope.ExecutionCount}";
        var ename = exception.GetType().FullName ?? exception.GetType().Name;
        var traceback = new List<string> { $"{where}: {ename}: {exception.Message}" };
        traceback.AddRange((exception.StackTrace ?? "").Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.TrimEnd('\r')));
        for (var inner = exception.InnerException; inner is not null; inner = inner.InnerException)
            traceback.Add($" ---> {inner.GetType().FullName}: {inner.Message}");
        scope.Sink.Error(ename, $"{where}: {exception.Message}", traceback);
    }

    /// <summary>
    /// Jupyter's is_complete: "incomplete" while a construct is still open (more lines expected), "invalid" when
    /// complete but syntactically wrong, else "complete".
    /// </summary>
    public static string IsComplete(string code)
    {
        var tree = CSharpSyntaxTree.ParseText(Directives.WithoutMagics(code), ScriptParseOptions);
        if (!SyntaxFactory.IsCompleteSubmission(tree)) return "incomplete";
        return tree.GetDiagnostics().Any(d => d.Severity == DiagnosticSeverity.Error) ? "invalid" : "complete";
    }

    public void Dispose()
    {
        _disposed = true;
        _oneAtATime.Dispose();
    }
}
