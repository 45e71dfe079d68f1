using Microsoft.DotNet.Interactive.Formatting;
using PersonaWorkbook.Grading;

namespace PersonaWorkbook.Tests.Grading;

public class LlmJudgeOptionsTests
{
    const string Secret = "sk-test-SECRET-0123456789";

    static Func<string, string?> Env(params (string Name, string Value)[] vars) =>
        name => vars.FirstOrDefault(v => v.Name == name).Value;

    [Fact]
    public void WorkbookVariablesWinOverOpenAiOnes()
    {
        var o = LlmJudgeOptions.FromEnvironment(environment: Env(
            ("WORKBOOK_JUDGE_BASE_URL", "http://127.0.0.1:9/v1"), ("OPENAI_BASE_URL", "http://127.0.0.1:8/v1"),
            ("WORKBOOK_JUDGE_MODEL", "judge-m"), ("WORKBOOK_JUDGE_API_KEY", Secret), ("OPENAI_API_KEY", "other")));
        Assert.Equal(new Uri("http://127.0.0.1:9/v1"), o.BaseUrl);
        Assert.Equal("judge-m", o.Model);
        Assert.Equal(Secret, o.Key);
    }

    [Fact]
    public void OpenAiVariablesAreTheFallbackAndExplicitValuesWin()
    {
        var env = Env(("OPENAI_BASE_URL", "http://127.0.0.1:8/v1"), ("OPENAI_API_KEY", Secret), ("WORKBOOK_JUDGE_MODEL", "m"));
        var fromEnv = LlmJudgeOptions.FromEnvironment(environment: env);
        Assert.Equal(new Uri("http://127.0.0.1:8/v1"), fromEnv.BaseUrl);
        Assert.Equal(Secret, fromEnv.Key);
        var explicitOnes = LlmJudgeOptions.FromEnvironment("http://127.0.0.1:7/v1", "x", "k2", env);
        Assert.Equal((new Uri("http://127.0.0.1:7/v1"), "x", "k2"), (explicitOnes.BaseUrl, explicitOnes.Model, explicitOnes.Key));
        Assert.Equal(LlmJudgeOptions.DefaultBaseUrl, LlmJudgeOptions.FromEnvironment(environment: Env(("OPENAI_API_KEY", "k"), ("WORKBOOK_JUDGE_MODEL", "m"))).BaseUrl);
    }

    [Fact]
    public void MissingOrBadSettingsNameTheVariable()
    {
        var noModel = Assert.Throws<InvalidOperationException>(() => LlmJudgeOptions.FromEnvironment(environment: Env(("OPENAI_API_KEY", "k"))));
        Assert.Contains("WORKBOOK_JUDGE_MODEL", noModel.Message);
        var noKey = Assert.Throws<InvalidOperationException>(() => LlmJudgeOptions.FromEnvironment(environment: Env(("WORKBOOK_JUDGE_MODEL", "m"))));
        Assert.Contains("WORKBOOK_JUDGE_API_KEY", noKey.Message);
        var badUrl = Assert.Throws<InvalidOperationException>(() => LlmJudgeOptions.FromEnvironment("ftp://x", "m", "k", Env()));
        Assert.Contains("ftp://x", badUrl.Message);
        var badThreshold = Assert.Throws<InvalidOperationException>(() =>
            new LlmJudgeOptions { BaseUrl = new Uri("http://127.0.0.1/v1"), Model = "m", ApiKey = "k", RubricMisalignedThreshold = 6 }.Validate());
        Assert.Contains("RubricMisalignedThreshold", badThreshold.Message);
    }

    [Fact]
    public void KeyNeverShowsInTextOrNotebookDisplay()
    {
        var o = new LlmJudgeOptions { BaseUrl = new Uri("http://127.0.0.1:5/v1"), Model = "m", ApiKey = Secret };
        Assert.DoesNotContain(Secret, o.ToString());
        Assert.Contains("(set, hidden)", o.ToString());
        // The notebook kernel renders values with these formatters, which walk public readable properties.
        Assert.DoesNotContain(Secret, o.ToDisplayString("text/plain"));
        Assert.DoesNotContain(Secret, o.ToDisplayString("text/html"));
        Assert.DoesNotContain(Secret, System.Text.Json.JsonSerializer.Serialize(o));
    }
}
