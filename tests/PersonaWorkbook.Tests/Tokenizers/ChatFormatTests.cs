using PersonaWorkbook.Tests.Checkpoints;
using PersonaWorkbook.Tokenizers;

namespace PersonaWorkbook.Tests.Tokenizers;

public class ChatFormatTests
{
    static readonly ChatMessage[] Conversation =
    {
        ChatMessage.System("Be nice."),
        ChatMessage.User("Hi there!"),
        ChatMessage.Assistant("Hello, the world."),
        ChatMessage.User("Again?"),
        ChatMessage.Assistant("Hello again."),
    };

    /// <summary>The tokens the mask selects, decoded one assistant turn at a time.</summary>
    static List<string> MaskedRuns(ITokenizer tokenizer, ChatEncoding encoding)
    {
        var runs = new List<string>();
        var current = new List<int>();
        for (var i = 0; i <= encoding.Ids.Length; i++)
        {
            if (i < encoding.Ids.Length && encoding.AssistantMask[i]) current.Add(encoding.Ids[i]);
            else if (current.Count > 0)
            {
                runs.Add(tokenizer.Decode(current));
                current.Clear();
            }
        }
        return runs;
    }

    [Fact]
    public void SimpleTemplateMasksAssistantContentAndItsEos()
    {
        var tokenizer = WordLevelTokenizer.Train(Conversation.Select(m => m.Content));
        var format = ChatFormat.Simple(tokenizer);
        var encoding = format.Encode(Conversation);

        var tokens = encoding.Ids.Select(tokenizer.IdToToken).ToArray();
        Assert.Equal(new[]
        {
            "<bos>", "<system>", "be", "nice", ".", "<user>", "hi", "there", "!", "<assistant>", "hello", ",", "the", "world", ".", "<eos>",
            "<user>", "again", "?", "<assistant>", "hello", "again", ".", "<eos>",
        }, tokens);
        Assert.Equal(tokens.Length, encoding.AssistantMask.Length);
        Assert.Equal(new[] { "hello , the world . <eos>", "hello again . <eos>" }, MaskedRuns(tokenizer, encoding));
        Assert.Equal(new[] { tokenizer.EosId }, format.StopTokenIds);

        var prompt = Conversation.Take(2).ToArray();
        Assert.Equal("<bos> <system> Be nice. <user> Hi there! <assistant>", format.RenderPrompt(prompt));
        Assert.Equal(tokenizer.Encode(format.RenderPrompt(prompt)), format.EncodePrompt(prompt));
        Assert.Equal(encoding.Ids, tokenizer.Encode(format.RenderPrompt(Conversation, addGenerationPrompt: false)));
    }

    [Fact]
    public void Llama3TemplateMatchesItsStringAndMasksContentAndEot()
    {
        using var dir = new TempDirectory();
        var tokenizer = HfTokenizer.Load(TinyBpe.Write(dir.File("tokenizer.json"), TinyBpe.Llama3Added));
        var format = ChatFormat.Llama3(tokenizer);
        var messages = Conversation.Take(3).ToArray();

        var full = format.RenderPrompt(messages, addGenerationPrompt: false);
        Assert.Equal(
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe nice.<|eot_id|>"
            + "<|start_header_id|>user<|end_header_id|>\n\nHi there!<|eot_id|>"
            + "<|start_header_id|>assistant<|end_header_id|>\n\nHello, the world.<|eot_id|>", full);
        Assert.EndsWith("<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n", format.RenderPrompt(messages.Take(2).ToList()));

        var encoding = format.Encode(messages);
        Assert.Equal(tokenizer.Encode(full), encoding.Ids);
        Assert.Equal(new[] { "Hello, the world.<|eot_id|>" }, MaskedRuns(tokenizer, encoding));
        Assert.Equal(tokenizer.Encode(format.RenderPrompt(messages.Take(2).ToList())), format.EncodePrompt(messages.Take(2).ToList()));
        Assert.Equal(new[] { 304, 301 }, format.StopTokenIds);
    }

    [Fact]
    public void Qwen2TemplateAddsTheDefaultSystemAndMasksContentAndImEnd()
    {
        using var dir = new TempDirectory();
        var tokenizer = HfTokenizer.Load(TinyBpe.Write(dir.File("tokenizer.json"), TinyBpe.Qwen2Added));
        var format = ChatFormat.Qwen2(tokenizer);
        var messages = new[] { ChatMessage.User("Hi there!"), ChatMessage.Assistant("Hello, the world.") };

        var full = format.RenderPrompt(messages, addGenerationPrompt: false);
        Assert.Equal(
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi there!<|im_end|>\n"
            + "<|im_start|>assistant\nHello, the world.<|im_end|>\n", full);
        Assert.EndsWith("<|im_end|>\n<|im_start|>assistant\n", format.RenderPrompt(messages.Take(1).ToList()));

        var encoding = format.Encode(messages);
        Assert.Equal(tokenizer.Encode(full), encoding.Ids);
        Assert.Equal(new[] { "Hello, the world.<|im_end|>" }, MaskedRuns(tokenizer, encoding));
        Assert.Equal(new[] { 302, 300 }, format.StopTokenIds);

        var withSystem = new[] { ChatMessage.System("Be nice."), ChatMessage.User("Hi") };
        Assert.StartsWith("<|im_start|>system\nBe nice.<|im_end|>\n<|im_start|>user\nHi", format.RenderPrompt(withSystem));
    }

    [Fact]
    public void TemplateNeedsItsSpecialTokens()
    {
        using var dir = new TempDirectory();
        var tokenizer = HfTokenizer.Load(TinyBpe.Write(dir.File("tokenizer.json"), TinyBpe.Llama3Added));
        var message = Assert.Throws<InvalidOperationException>(() => ChatFormat.Qwen2(tokenizer)).Message;
        Assert.Contains("<|im_start|>", message);
    }
}
