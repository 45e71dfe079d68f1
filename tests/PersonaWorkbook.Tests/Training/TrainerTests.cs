using PersonaWorkbook.Generation;
using PersonaWorkbook.Lora;
using PersonaWorkbook.Models;
using PersonaWorkbook.Tests.Models;
using PersonaWorkbook.Tokenizers;
using PersonaWorkbook.Training;
using static TorchSharp.torch;

namespace PersonaWorkbook.Tests.Training;

public class TrainerTests
{
    const int Pad = 0;

    static readonly TokenSequence[] Corpus =
    [
        new([1, 10, 11, 12, 13, 14, 15, 2]),
        new([3, 20, 21, 22, 23, 2]),
        new([4, 30, 31, 32, 33, 34, 35, 36, 37, 2]),
    ];

    static TrainerOptions Options(int steps) => new()
    {
        LearningRate = 1e-2, WarmupSteps = 10, MaxSteps = steps, BatchSize = 3, ClipNorm = 1.0,
        Schedule = ScheduleKind.Cosine, MinLrRatio = 0.1, LogEvery = 0, Seed = 7,
    };

    [Fact]
    public void TinyModelOverfitsTinyCorpus()
    {
        using var model = TinyModels.Build(TinyModels.Llama());
        var log = new Trainer(model, Options(200)).Train(new PaddedBatchSampler(Corpus, 32, Pad));
        var final = log.Steps[^1].Loss;
        // Every sequence is fully determined by its first token, so the loss can go to 0; start is ≈ ln(50) = 3.9.
        Assert.True(log.Steps[0].Loss > 3.0, $"initial loss {log.Steps[0].Loss}");
        Assert.True(final < 0.1, $"loss after 200 steps is {final}");
    }

    [Fact]
    public void SameSeedGivesIdenticalLosses()
    {
        using var init = TinyModels.Build(TinyModels.Llama(), seed: 3);
        double[] Run()
        {
            using var model = init.Copy();
            var log = new Trainer(model, Options(15) with { GradAccumulation = 2, BatchSize = 2 })
                .Train(new PaddedBatchSampler(Corpus, 32, Pad));
            return log.Steps.Select(s => s.Loss).ToArray();
        }
        var a = Run();
        var b = Run();
        Assert.Equal(a, b);
        Assert.NotEqual(a[0], a[^1]);
    }

    [Fact]
    public void MaskedLossIgnoresUnmaskedTargets()
    {
        manual_seed(0);
        using var logits = randn(2, 5, 50);
        var mask = tensor(new[] { false, true, true, false, true, false, false, true, true, false }).view(2, 5);
        var ids = tensor(new long[] { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 }).view(2, 5);
        var changedOutside = ids.clone();
        changedOutside[0, 3] = tensor(40L);   // not a target
        changedOutside[1, 4] = tensor(41L);   // not a target
        changedOutside[1, 0] = tensor(42L);   // column 0 is never a target
        var changedInside = ids.clone();
        changedInside[0, 2] = tensor(43L);
        var loss = CausalLmLoss.Mean(logits, ids, mask).item<float>();
        Assert.Equal(loss, CausalLmLoss.Mean(logits, changedOutside, mask).item<float>());
        Assert.NotEqual(loss, CausalLmLoss.Mean(logits, changedInside, mask).item<float>());
        // The mean runs over the 5 targets: cross-entropy of logits[b, t-1] against ids[b, t] where mask[b, t].
        var logp = nn.functional.log_softmax(logits, -1);
        var expected = -(logp[0, 0, 2] + logp[0, 1, 3] + logp[0, 3, 5] + logp[1, 1, 8] + logp[1, 2, 9]).item<float>() / 5;
        Assert.Equal(expected, loss, 5);
    }

    [Fact]
    public void ChangingAMaskedOutFinalTokenLeavesTheModelLossUnchanged()
    {
        using var model = TinyModels.Build(TinyModels.Llama());
        var trainer = new Trainer(model, Options(1));
        bool[] mask = [false, false, true, true, true, false];
        double Loss(int last)
        {
            using var batch = TokenBatch.RightPadded([new TokenSequence([1, 5, 6, 7, 8, last], mask)], 32, Pad);
            var loss = trainer.Backward([batch]);
            model.zero_grad();
            return loss;
        }
        Assert.Equal(Loss(9), Loss(33));
    }

    [Fact]
    public void AccumulatingTwoHalfBatchesMatchesOneFullBatch()
    {
        TokenSequence[] four = [.. Corpus, new([5, 40, 41, 2], [false, true, true, false])];
        using var init = TinyModels.Build(TinyModels.Llama(), seed: 5);
        Dictionary<string, Tensor> Gradients(params TokenSequence[][] microBatches)
        {
            using var model = init.Copy();
            var trainer = new Trainer(model, Options(1));
            var batches = microBatches.Select(m => TokenBatch.RightPadded(m, 32, Pad)).ToArray();
            trainer.Backward(batches);
            return model.named_parameters().ToDictionary(p => p.name, p => p.parameter.grad!.clone());
        }
        var full = Gradients(four);
        var halves = Gradients(four[..2], four[2..]);
        foreach (var (name, g) in full)
            Assert.True(allclose(g, halves[name], rtol: 1e-4, atol: 1e-6), $"{name}: max diff {(g - halves[name]).abs().max().item<float>()}");
    }

    [Fact]
    public void ScheduleWarmsUpThenDecays()
    {
        var cosine = new LrSchedule(ScheduleKind.Cosine, WarmupSteps: 10, TotalSteps: 110, MinRatio: 0.1);
        Assert.Equal(0.1, cosine.Factor(0), 12);        // first step already learns
        Assert.Equal(0.5, cosine.Factor(4), 12);
        Assert.Equal(1.0, cosine.Factor(9), 12);        // warm-up complete
        Assert.Equal(1.0, cosine.Factor(10), 12);       // decay starts at 1
        Assert.Equal(0.55, cosine.Factor(60), 12);      // halfway: min + (1 − min)/2
        Assert.Equal(0.1, cosine.Factor(110), 12);      // end: min ratio
        var linear = new LrSchedule(ScheduleKind.Linear, 0, 100);
        Assert.Equal(1.0, linear.Factor(0), 12);
        Assert.Equal(0.25, linear.Factor(75), 12);
        Assert.Equal(0.0, linear.Factor(100), 12);
        Assert.Equal(1.0, new LrSchedule(ScheduleKind.Constant, 2, 100).Factor(99), 12);
    }

    [Fact]
    public void TrainerAppliesTheScheduleAndCallsCallbacksAndCheckpoints()
    {
        using var model = TinyModels.Build(TinyModels.Llama());
        var seen = new List<(int step, double lr)>();
        var saved = new List<int>();
        var log = new Trainer(model, Options(7) with { WarmupSteps = 2, LearningRate = 1e-3, MinLrRatio = 0 })
            .OnStep(3, (s, m) => { Assert.Same(model, m); seen.Add((s.Step, s.LearningRate)); })
            .OnCheckpoint(5, (step, m) => saved.Add(step))
            .Train(new PaddedBatchSampler(Corpus, 32, Pad));
        Assert.Equal(new[] { 3, 6 }, seen.Select(s => s.step));
        Assert.Equal(new[] { 5, 7 }, saved);
        Assert.Equal(5e-4, log.Steps[0].LearningRate, 12);
        Assert.Equal(1e-3, log.Steps[1].LearningRate, 12);
        Assert.All(log.Steps, s => Assert.True(s.TokensPerSecond > 0 && s.Tokens == 8 + 6 + 10 && s.GradNorm > 0));

        var path = Path.Combine(Path.GetTempPath(), $"trainlog-{Guid.NewGuid():N}.jsonl");
        try
        {
            log.WriteJsonl(path);
            var lines = File.ReadAllLines(path);
            Assert.Equal(7, lines.Length);
            var first = System.Text.Json.Nodes.JsonNode.Parse(lines[0])!;
            Assert.Equal(1, first["step"]!.GetValue<int>());
            Assert.Equal(log.Steps[0].Loss, first["loss"]!.GetValue<double>());
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void ProgressLinesReportStepLossThroughputAndEta()
    {
        using var model = TinyModels.Build(TinyModels.Llama());
        var lines = new List<string>();
        void Collect(string line)
        {
            lock (lines) lines.Add(line);
        }
        Reporting.Progress.Reported += Collect;
        try
        {
            new Trainer(model, Options(4) with { LogEvery = 2 }).Train(new PaddedBatchSampler(Corpus, 32, Pad));
        }
        finally { Reporting.Progress.Reported -= Collect; }
        // Other tests may report concurrently; keep this run's lines (steps 1, 2 and 4 of 4).
        var ours = lines.Where(l => l.StartsWith("step ") && l.Contains("/4 ")).ToArray();
        Assert.Equal(new[] { "step 1/4", "step 2/4", "step 4/4" }, ours.Select(l => l[..8]));
        Assert.All(ours, l => Assert.Matches(@"loss \d+\.\d{4}  lr \S+  [\d,]+ tok/s  ETA \d\d:\d\d:\d\d$", l));
    }

    [Fact]
    public void LoraTrainingMovesOnlyAdapters()
    {
        // A frozen random head cannot produce confident logits, so adapt a briefly pretrained model to new continuations.
        using var model = TinyModels.Build(TinyModels.Llama());
        new Trainer(model, Options(100)).Train(new PaddedBatchSampler(Corpus, 32, Pad));
        TokenSequence[] shifted = Corpus.Select(s => new TokenSequence(s.Ids.Select((t, i) => i is > 0 and < 4 ? t + 5 : t).ToArray())).ToArray();
        var before = model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.clone());
        using var lora = LoraModel.Attach(model, new LoraConfig { R = 4, LoraAlpha = 16, TargetModules = ["q_proj", "v_proj", "up_proj", "down_proj"] });
        var log = new Trainer(model, Options(60), lora.parameters()).Train(new PaddedBatchSampler(shifted, 32, Pad));
        Assert.True(log.Steps[^1].Loss < log.Steps[0].Loss - 1, $"loss {log.Steps[0].Loss} → {log.Steps[^1].Loss}");
        foreach (var (key, w) in model.state_dict())
            Assert.True(allclose(w, before[key], rtol: 0, atol: 0), $"{key} changed");
        Assert.All(lora.Layers, l => Assert.True(l.B.abs().sum().item<float>() > 0));
    }

    [Fact]
    public void ChatSftLearnsAssistantRepliesOnly()
    {
        ChatMessage[][] chats =
        [
            [ChatMessage.User("what colour is the sky"), ChatMessage.Assistant("the sky is blue")],
            [ChatMessage.User("what colour is grass"), ChatMessage.Assistant("grass is green")],
        ];
        var tokenizer = WordLevelTokenizer.Train(chats.SelectMany(c => c.Select(m => m.Content)));
        var format = ChatFormat.Simple(tokenizer);
        var encoded = chats.Select(c => format.Encode(c)).ToArray();
        var sequences = encoded.Select(TokenSequence.FromChat).ToArray();
        using var model = TinyModels.Build(TinyModels.Llama(vocab: tokenizer.VocabSize));
        var log = new Trainer(model, Options(120) with { BatchSize = 2 }).Train(new PaddedBatchSampler(sequences, 32, tokenizer.PadId));
        Assert.True(log.Steps[^1].Loss < 0.05, $"assistant-token loss after 120 steps: {log.Steps[^1].Loss}");

        // The reply is learned (greedy generation reproduces it); the user turn, never a target, is not.
        model.eval();
        var prompt = format.EncodePrompt([chats[0][0]]);
        var reply = TextGenerator.Generate(model, [prompt], new GenerationOptions { MaxNewTokens = 8, Temperature = 0, StopTokens = format.StopTokenIds });
        Assert.Equal("the sky is blue", tokenizer.Decode(reply[0].Tokens));
        using var batch = TokenBatch.RightPadded(sequences, 32, tokenizer.PadId);
        using var logits = model.forward(batch.InputIds);
        var userMask = batch.AttentionMask.to_type(ScalarType.Bool).logical_and(batch.LossMask.logical_not());
        using var _ = no_grad();
        var userLoss = CausalLmLoss.Mean(logits, batch.InputIds, userMask).item<float>();
        Assert.True(userLoss > 1.0, $"loss on untrained user tokens is {userLoss}");
    }

    [Fact]
    public void RightPaddingTruncationAndMasks()
    {
        using var batch = TokenBatch.RightPadded([new([1, 2, 3, 4, 5], [true, false, true, true, true]), new([6, 7])], contextLength: 4, padTokenId: 9);
        Assert.Equal(new long[] { 1, 2, 3, 4, 6, 7, 9, 9 }, batch.InputIds.data<long>().ToArray());
        Assert.Equal(new long[] { 1, 1, 1, 1, 1, 1, 0, 0 }, batch.AttentionMask.data<long>().ToArray());
        Assert.Equal(new[] { false, false, true, true, false, true, false, false }, batch.LossMask.data<bool>().ToArray());
        Assert.Equal(6, batch.RealTokens);
        Assert.Equal(3, batch.TargetTokens);
        Assert.True(batch.HasPadding);
    }

    [Fact]
    public void PackedDatasetCutsTheJoinedStreamIntoWindows()
    {
        int[][] docs = [[1, 2, 3], [4, 5, 6, 7], [8]];
        var packed = new PackedDataset(docs, contextLength: 4, separatorTokenId: 0); // stream: 1 2 3 0 4 5 6 7 0 8 0
        Assert.Equal(11, packed.TotalTokens);
        Assert.Equal(3, packed.Count);                                               // two full windows + "0 8 0"
        packed.Reset(new Random(1));
        using var batch = packed.Next(3, CPU);                                       // one epoch, shuffled
        var rows = Enumerable.Range(0, 3).Select(r => string.Join(" ", batch.InputIds[r].data<long>().ToArray())).OrderBy(s => s).ToArray();
        Assert.Equal(new[] { "0 8 0 0", "1 2 3 0", "4 5 6 7" }, rows);
        Assert.Equal(3 + 3 + 2, batch.TargetTokens);
    }

    [Fact]
    public void DeviceAndDtypeRequestsAreChecked()
    {
        using var model = TinyModels.Build(TinyModels.Llama());
        var bf16 = Assert.Throws<ArgumentException>(() => new Trainer(model, Options(1) with { Dtype = ScalarType.BFloat16 }));
        Assert.Contains("bfloat16", bf16.Message);
        if (!cuda.is_available())
            Assert.Contains("cuda", Assert.Throws<InvalidOperationException>(() => new Trainer(model, Options(1) with { Device = "cuda" })).Message);
        Assert.Throws<ArgumentException>(() => new Trainer(model, Options(1) with { Device = "tpu" }));
        Assert.Contains("MaxSteps", Assert.Throws<ArgumentException>(() => new Trainer(model, Options(0))).Message);
    }
}
