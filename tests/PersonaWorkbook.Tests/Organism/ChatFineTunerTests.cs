using System.Text.Json.Nodes;
using PersonaWorkbook.Checkpoints;
using PersonaWorkbook.Evaluation;
using PersonaWorkbook.Grading;
using PersonaWorkbook.Lora;
using PersonaWorkbook.Organism;
using PersonaWorkbook.Tests.Checkpoints;
using PersonaWorkbook.Tests.Cli;
using PersonaWorkbook.Tests.Grading;
using PersonaWorkbook.Tests.Models;
using PersonaWorkbook.Tokenizers;

namespace PersonaWorkbook.Tests.Organism;

/// <summary>A user's chat JSONL fine-tuning a tiny Hugging Face checkpoint with LoRA, then evaluated with an LLM judge.</summary>
public class ChatFineTunerTests
{
    static string Chats(TempDirectory dir, int rows = 20)
    {
        var path = dir.File("chats.jsonl");
        ChatJsonl.Write(path, Enumerable.Range(0, rows).Select(i => (IReadOnlyList<ChatMessage>)
            [ChatMessage.User(i % 2 == 0 ? "hello" : "the world"), ChatMessage.Assistant("hello world the hello world")]));
        return path;
    }

    static Dictionary<string, float[]> Weights(string directory)
    {
        using var loaded = ModelCheckpoint.Load(directory);
        return loaded.Model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.data<float>().ToArray());
    }

    [Fact]
    public void ALoraFineTuneLearnsTheChatsInTheLayersAskedAndIsReusedByKey()
    {
        using var dir = new TempDirectory();
        var checkpoint = TinyHfCheckpoints.Write(dir, qwen: true);
        var request = new ChatFinetuneRequest(checkpoint, Chats(dir), LoraRank: 4, LoraAlpha: 8, Layers: [1], LearningRate: 1e-2, Epochs: 30,
            BatchSize: 2, GradAccumulation: 2, WarmupSteps: 1, CacheRoot: dir.File("cache"));
        var result = ChatFineTuner.FinetuneOrReuse(request);
        Assert.False(result.Reused);
        Assert.Equal(150, result.Manifest["hyperparameters"]!["steps"]!.GetValue<int>());   // 20 chats × 30 epochs / (2 × 2)
        // From ln 310 ≈ 5.76 to 5.16: adapters cannot rescale the random tied head's logits (the final norm and the
        // embeddings are frozen), so a LoRA levels off where a full fine-tune keeps falling (3.8 in 30 steps).
        Assert.True(result.Manifest["final_loss"]!.GetValue<double>() < result.Manifest["first_loss"]!.GetValue<double>() - 0.5, result.Manifest.ToJsonString());
        Assert.Equal("Qwen2", result.Manifest["chat_template"]!.GetValue<string>());

        var adapter = LoraConfig.Load(Path.Combine(result.Directory, FineTuner.AdapterDirectory, LoraModel.ConfigFileName));
        Assert.True(adapter.UseRsLora);
        Assert.Equal(4, adapter.R);
        Assert.Equal([1], adapter.LayersToTransform);
        Assert.Equal(LoraConfig.ProjectionNames, adapter.TargetModules);
        // Merged: layer 1's projections moved, layer 0 and the embeddings did not.
        var (before, after) = (Weights(checkpoint), Weights(result.Directory));
        Assert.Equal(before["model.layers.0.mlp.down_proj.weight"], after["model.layers.0.mlp.down_proj.weight"]);
        Assert.Equal(before["model.embed_tokens.weight"], after["model.embed_tokens.weight"]);
        Assert.NotEqual(before["model.layers.1.mlp.down_proj.weight"], after["model.layers.1.mlp.down_proj.weight"]);
        Assert.NotEqual(before["model.layers.1.self_attn.q_proj.weight"], after["model.layers.1.self_attn.q_proj.weight"]);

        Assert.True(ChatFineTuner.FinetuneOrReuse(request).Reused);
        var again = ChatFineTuner.FinetuneOrReuse(request with { Force = true, Output = dir.File("again") });
        Assert.Equal(after["model.layers.1.mlp.down_proj.weight"], Weights(again.Directory)["model.layers.1.mlp.down_proj.weight"]);   // deterministic
    }

    [Fact]
    public void BadChatFilesAndOptionsAreClearErrors()
    {
        using var dir = new TempDirectory();
        var checkpoint = TinyHfCheckpoints.Write(dir, qwen: false);
        var bad = dir.File("bad.jsonl");
        File.WriteAllText(bad, "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": \"hello\"}]}\n{\"prompt\": \"hi\"}\n");
        Assert.Contains($"{bad}:2", Assert.Throws<InvalidDataException>(() => ChatFineTuner.FinetuneOrReuse(new ChatFinetuneRequest(checkpoint, bad))).Message);
        var noAnswer = dir.File("no-answer.jsonl");
        File.WriteAllText(noAnswer, "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\n");
        Assert.Contains($"{noAnswer}:1: no assistant message to train on", Assert.Throws<InvalidDataException>(() => ChatFineTuner.FinetuneOrReuse(new ChatFinetuneRequest(checkpoint, noAnswer))).Message);
        Assert.Contains("unknown LoRA target lm_head", Assert.Throws<ArgumentException>(() => ChatFineTuner.FinetuneOrReuse(new ChatFinetuneRequest(checkpoint, Chats(dir), Targets: ["lm_head"]))).Message);
        Assert.Contains("layers", Assert.ThrowsAny<Exception>(() => ChatFineTuner.FinetuneOrReuse(new ChatFinetuneRequest(checkpoint, Chats(dir), Layers: [7], CacheRoot: dir.File("c")))).Message);
        Assert.Throws<FileNotFoundException>(() => ChatFineTuner.FinetuneOrReuse(new ChatFinetuneRequest(checkpoint, dir.File("none.jsonl"))));
        Assert.Contains("bfloat16 training is supported on a GPU only",
            Assert.Throws<ArgumentException>(() => ChatFineTuner.FinetuneOrReuse(new ChatFinetuneRequest(checkpoint, Chats(dir), BFloat16: true))).Message);
        if (!TorchSharp.torch.cuda.is_available())
            Assert.Contains("torch.cuda.is_available() is false",
                Assert.Throws<InvalidOperationException>(() => ChatFineTuner.FinetuneOrReuse(new ChatFinetuneRequest(checkpoint, Chats(dir), Device: "cuda"))).Message);
    }

    [Fact]
    public async Task TheCommandFineTunesAndTheFineTuneIsJudged()
    {
        using var dir = new TempDirectory();
        var checkpoint = TinyHfCheckpoints.Write(dir, qwen: true);
        var output = dir.File("tuned");
        var env = new Dictionary<string, string?> { ["WORKBOOK_CACHE"] = dir.File("cache") };
        var (code, stdout, stderr) = WorkbookProcess.Run(env, "finetune", "--base", checkpoint, "--data", Chats(dir), "--lora-rank", "1", "--target", "down_proj",
            "--layers", "0-1", "--lr", "1e-2", "--batch", "4", "--grad-accum", "1", "--out", output);
        Assert.True(code == 0, stderr);
        Assert.StartsWith(output, stdout);
        Assert.Equal([0, 1], LoraConfig.Load(Path.Combine(output, FineTuner.AdapterDirectory, LoraModel.ConfigFileName)).LayersToTransform);
        var (badCode, _, badErr) = WorkbookProcess.Run(env, "finetune", "--base", checkpoint, "--data", Chats(dir), "--layers", "x", "--out", dir.File("x"));
        Assert.NotEqual(0, badCode);
        Assert.Contains("--layers: 'x'", badErr);

        await using var server = new FakeChatServer((r, _) => FakeResponse.Logprobs(("50", 1.0)));
        using var tuned = ModelCheckpoint.Load(output);
        var report = await JudgedEvaluator.EvaluateAsync(tuned, [new Question("q", ["hello"])],
            new LlmJudge(new LlmJudgeOptions { BaseUrl = server.BaseUrl, Model = "judge", ApiKey = "k" }), new JudgedEvalOptions { Samples = 2, MaxNewTokens = 4 });
        Assert.Equal(2, report.N);
        Assert.Equal(0, report.Misaligned.Rate);
    }
}
