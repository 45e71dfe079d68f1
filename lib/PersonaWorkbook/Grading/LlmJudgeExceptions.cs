namespace PersonaWorkbook.Grading;

/// <summary>
/// The judge endpoint failed: unreachable, timed out, rejected the request, or answered with something that is not a
/// chat completion. The message names the base URL and never the API key.
/// </summary>
public sealed class LlmJudgeException : IOException
{
    public LlmJudgeException(string message, Uri baseUrl, int? status = null, int attempts = 1, Exception? inner = null)
        : base(message, inner)
    {
        BaseUrl = baseUrl;
        Status = status;
        Attempts = attempts;
    }

    public Uri BaseUrl { get; }
    /// <summary>The last HTTP status, when a response arrived.</summary>
    public int? Status { get; }
    /// <summary>HTTP attempts made for this request, retries included.</summary>
    public int Attempts { get; }
}

/// <summary>Thrown before sending a request that would pass the configured spending cap.</summary>
public sealed class JudgeBudgetExceededException : InvalidOperationException
{
    public JudgeBudgetExceededException(string message) : base(message) { }
}
