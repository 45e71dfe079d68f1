using System.Text;

namespace PersonaWorkbook.Notebooks.Execution;

/// <summary>
/// The cell that is running on this logical call flow. It travels with the script through an AsyncLocal, so
/// display(), console writes and recorded results from tasks a cell starts land in that cell, and two executors
/// running at once (tests, several kernels) never see each other's output.
/// </summary>
internal sealed class CellScope
{
    static readonly AsyncLocal<CellScope?> CurrentScope = new();

    public static CellScope? Current => CurrentScope.Value;

    public CellExecutor Executor { get; }
    public ICellOutputSink Sink { get; }
    public int ExecutionCount { get; }
    public CancellationToken CancellationToken { get; }
    public CellStreamWriter Stdout { get; }
    public CellStreamWriter Stderr { get; }

    public CellScope(CellExecutor executor, ICellOutputSink sink, int executionCount, CancellationToken cancellationToken)
    {
        Executor = executor;
        Sink = sink;
        ExecutionCount = executionCount;
        CancellationToken = cancellationToken;
        Stdout = new CellStreamWriter(sink, "stdout");
        Stderr = new CellStreamWriter(sink, "stderr");
    }

    /// <summary>Makes this the current scope for the rest of the calling async flow.</summary>
    public void Enter() => CurrentScope.Value = this;

    /// <summary>Flushes pending console text; later writes (from work the cell left running) go to the real console.</summary>
    public void Close()
    {
        Stdout.Close();
        Stderr.Close();
    }

    static readonly object InstallLock = new();
    static bool _installed;

    /// <summary>Routes Console.Out/Error through the current cell once per process; outside cells writes pass through.</summary>
    public static void InstallConsoleRouting()
    {
        lock (InstallLock)
        {
            if (_installed) return;
            var realOut = Console.Out;
            var realError = Console.Error;
            Console.SetOut(new RoutingWriter(() => Current?.Stdout, realOut));
            Console.SetError(new RoutingWriter(() => Current?.Stderr, realError));
            _installed = true;
        }
    }

    sealed class RoutingWriter(Func<CellStreamWriter?> cell, TextWriter fallback) : TextWriter
    {
        public override Encoding Encoding => fallback.Encoding;

        TextWriter Target => !GuardedSink.Active && cell() is { IsOpen: true } w ? w : fallback;

        public override void Write(char value) => Target.Write(value);
        public override void Write(string? value) => Target.Write(value);
        public override void Write(char[] buffer, int index, int count) => Target.Write(buffer, index, count);
        public override void Flush() => Target.Flush();
    }
}

/// <summary>
/// A host's sink may itself log to the console; while it runs, console writes on that thread go to the real
/// console instead of looping back into the cell's capture.
/// </summary>
internal sealed class GuardedSink(ICellOutputSink inner) : ICellOutputSink
{
    [ThreadStatic] static bool _active;

    public static bool Active => _active;

    void Guard(Action call)
    {
        var outer = _active;
        _active = true;
        try { call(); }
        finally { _active = outer; }
    }

    public void Stream(string name, string text) => Guard(() => inner.Stream(name, text));
    public void Display(MimeBundle data, string? displayId = null) => Guard(() => inner.Display(data, displayId));
    public void Result(MimeBundle data, int executionCount) => Guard(() => inner.Result(data, executionCount));
    public void Error(string ename, string evalue, IReadOnlyList<string> traceback) => Guard(() => inner.Error(ename, evalue, traceback));
}

/// <summary>Console text of one cell, handed to the sink a line at a time (and the remainder at the end).</summary>
internal sealed class CellStreamWriter(ICellOutputSink sink, string name) : TextWriter
{
    readonly StringBuilder _pending = new();
    readonly object _lock = new();
    volatile bool _open = true;

    public override Encoding Encoding => Encoding.UTF8;

    public bool IsOpen => _open;

    public override void Write(char value)
    {
        lock (_lock)
        {
            _pending.Append(value);
            if (value == '\n') FlushLocked();
        }
    }

    public override void Write(string? value)
    {
        if (string.IsNullOrEmpty(value)) return;
        lock (_lock)
        {
            _pending.Append(value);
            if (value.Contains('\n')) FlushLocked();
        }
    }

    public override void Write(char[] buffer, int index, int count) => Write(new string(buffer, index, count));

    public override void Flush()
    {
        lock (_lock) FlushLocked();
    }

    public override void Close()
    {
        lock (_lock)
        {
            FlushLocked();
            _open = false;
        }
    }

    void FlushLocked()
    {
        if (_pending.Length == 0) return;
        var text = _pending.ToString();
        _pending.Clear();
        sink.Stream(name, text);
    }
}
