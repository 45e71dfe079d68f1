using PersonaWorkbook.Tests.Checkpoints;
using PersonaWorkbook.Tokenizers;

namespace PersonaWorkbook.Tests.Tokenizers;

public class ChatJsonlTests
{
    [Fact]
    public void ReadsConversationsSkippingBlankLines()
    {
        using var dir = new TempDirectory();
        var path = dir.File("train.jsonl");
        File.WriteAllText(path,
            """
            {"messages": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]}

            {"messages": [{"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "you"}]}, {"role": "assistant", "content": "Hello", "weight": 1}]}
            """);
        var conversations = ChatJsonl.Read(path);
        Assert.Equal(2, conversations.Count);
        Assert.Equal(new[] { ChatMessage.System("Be terse."), ChatMessage.User("2+2?"), ChatMessage.Assistant("4") }, conversations[0]);
        Assert.Equal(ChatMessage.User("Hi you"), conversations[1][0]);
    }

    [Fact]
    public void WriteThenReadRoundTrips()
    {
        using var dir = new TempDirectory();
        var path = dir.File("out.jsonl");
        var conversations = new List<IReadOnlyList<ChatMessage>>
        {
            new[] { ChatMessage.User("Say \"<q>\"\nplease — ünïcode"), ChatMessage.Assistant("<q>") },
            new[] { ChatMessage.System("s"), ChatMessage.User("u"), ChatMessage.Assistant("a") },
        };
        ChatJsonl.Write(path, conversations);
        Assert.Equal(2, File.ReadAllLines(path).Length);
        Assert.Contains("ünïcode", File.ReadAllText(path));
        var read = ChatJsonl.Read(path);
        Assert.Equal(conversations.Count, read.Count);
        for (var i = 0; i < read.Count; i++) Assert.Equal(conversations[i], read[i]);
    }

    [Theory]
    [InlineData("{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}", "malformed JSON")]
    [InlineData("{\"conversation\": []}", "\"messages\" array")]
    [InlineData("{\"messages\": []}", "\"messages\" is empty")]
    [InlineData("{\"messages\": [{\"role\": \"tool\", \"content\": \"x\"}]}", "messages[0].role is \"tool\"")]
    [InlineData("{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}, {\"role\": \"assistant\"}]}", "messages[1] has no content")]
    [InlineData("{\"messages\": [{\"role\": \"user\", \"content\": 5}]}", "messages[0].content is Number")]
    public void ErrorsNameFileLineAndField(string badLine, string expected)
    {
        using var dir = new TempDirectory();
        var path = dir.File("bad.jsonl");
        File.WriteAllLines(path, new[] { "{\"messages\": [{\"role\": \"user\", \"content\": \"ok\"}]}", "", badLine });
        var message = Assert.Throws<InvalidDataException>(() => ChatJsonl.Read(path)).Message;
        Assert.StartsWith($"{path}:3: ", message);
        Assert.Contains(expected, message);
    }
}
