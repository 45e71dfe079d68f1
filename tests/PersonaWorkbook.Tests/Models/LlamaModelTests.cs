using TorchSharp;
using PersonaWorkbook.Models;
using static TorchSharp.torch;

namespace PersonaWorkbook.Tests.Models;

public class LlamaModelTests
{
    [Fact]
    public void StateDictKeysAreHuggingFaceKeys()
    {
        using var model = TinyModels.Build(TinyModels.Llama());
        var keys = model.state_dict().Keys.ToHashSet();
        foreach (var k in new[]
                 {
                     "model.embed_tokens.weight", "model.norm.weight", "lm_head.weight",
                     "model.layers.0.self_attn.q_proj.weight", "model.layers.1.self_attn.o_proj.weight",
                     "model.layers.0.mlp.gate_proj.weight", "model.layers.0.mlp.up_proj.weight", "model.layers.0.mlp.down_proj.weight",
                     "model.layers.0.input_layernorm.weight", "model.layers.0.post_attention_layernorm.weight",
                 })
            Assert.Contains(k, keys);
        Assert.DoesNotContain(keys, k => k.Contains("bias"));
        Assert.Equal(new long[] { 2 * 8, 32 }, model.state_dict()["model.layers.0.self_attn.k_proj.weight"].shape); // GQA: 2 kv heads × hd 8
    }

    [Fact]
    public void Qwen2HasQkvBiasAndTiedHead()
    {
        using var model = TinyModels.Build(TinyModels.Qwen2());
        var sd = model.state_dict();
        Assert.Contains("model.layers.0.self_attn.q_proj.bias", sd.Keys);
        Assert.DoesNotContain("model.layers.0.self_attn.o_proj.bias", sd.Keys);
        using var logits = model.forward(tensor(new long[] { 1, 2, 3 }).unsqueeze(0));
        Assert.Equal(new long[] { 1, 3, 50 }, logits.shape);
        // Tied: the head is the embedding matrix itself.
        using (no_grad()) sd["model.embed_tokens.weight"][3, 4] = tensor(123f);
        Assert.Equal(123f, sd["lm_head.weight"][3, 4].item<float>());
    }

    [Fact]
    public void TiedHeadSurvivesDtypeConversion()
    {
        using var model = TinyModels.Build(TinyModels.Qwen2());
        model.to(ScalarType.BFloat16);
        var sd = model.state_dict();
        Assert.Equal(ScalarType.BFloat16, sd["lm_head.weight"].dtype);
        using (no_grad()) sd["model.embed_tokens.weight"][1, 2] = tensor(5f);
        Assert.Equal(5f, sd["lm_head.weight"][1, 2].to_type(ScalarType.Float32).item<float>());
        using var logits = model.forward(tensor(new long[] { 1, 2 }).unsqueeze(0));
        Assert.Equal(ScalarType.BFloat16, logits.dtype);
        Assert.False(logits.isnan().any().item<bool>());
    }

    [Fact]
    public void LogitsAreCausal()
    {
        using var model = TinyModels.Build(TinyModels.Llama());
        using var a = model.forward(tensor(new long[] { 5, 6, 7, 8, 9 }).unsqueeze(0));
        using var b = model.forward(tensor(new long[] { 5, 6, 7, 30, 31 }).unsqueeze(0));
        // Changing tokens 3-4 must not change the logits at positions 0-2, and must change position 3.
        Assert.True(allclose(a[.., ..3], b[.., ..3], rtol: 0, atol: 1e-6));
        Assert.False(allclose(a[.., 3], b[.., 3], rtol: 0, atol: 1e-4));
    }

    [Fact]
    public void KvCacheLogitsEqualFullForward()
    {
        using var model = TinyModels.Build(TinyModels.Llama());
        var tokens = new long[] { 1, 4, 9, 16, 25, 36, 49, 3 };
        using var full = model.forward(tensor(tokens).unsqueeze(0));          // (1, 8, V)
        using var cache = new KVCache(2);
        using var first = model.Forward(tensor(tokens[..5]).unsqueeze(0), cache: cache);
        Assert.True(allclose(first, full[.., ..5], atol: 1e-5));
        for (int t = 5; t < tokens.Length; t++)
        {
            using var step = model.Forward(tensor(new[] { tokens[t] }).unsqueeze(0), cache: cache);
            Assert.True(allclose(step[0, 0], full[0, t], atol: 1e-5), $"position {t}: cached logits differ from the full pass");
        }
        Assert.Equal(8, cache.Length);
    }

    [Theory]
    [InlineData(false, 0)]    // grows past its first step's size
    [InlineData(false, 12)]   // preallocated with room to spare
    [InlineData(true, 7)]     // Qwen2 (q/k/v bias), one kv head for four query heads
    public void KvCacheStepsEqualFullForwardOnALeftPaddedBatch(bool qwen2, int capacity)
    {
        using var model = TinyModels.Build(qwen2 ? TinyModels.Qwen2() : TinyModels.Llama());
        using var ids = tensor(new long[] { 0, 0, 7, 8, 9, 4, 5, 6, 1, 2, 3, 4, 5, 6, 7, 8 }, [2, 8]);
        using var mask = tensor(new long[] { 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1 }, [2, 8]);
        using var full = model.Forward(ids, mask);                                    // (2, 8, V)
        using var cache = new KVCache(2, capacity);
        using var first = model.Forward(ids[.., ..4], mask[.., ..4], cache: cache);
        Assert.True(allclose(first[.., 2..], full[.., 2..4], atol: 1e-5));
        for (int t = 4; t < 8; t++)
        {
            using var step = model.Forward(ids[.., t..(t + 1)], mask[.., ..(t + 1)], cache: cache);
            Assert.True(allclose(step[.., 0], full[.., t], atol: 1e-5), $"position {t}: cached logits differ from the full pass");
        }
        Assert.Equal(8, cache.Length);
    }

    [Fact]
    public void LeftPaddedRowMatchesUnpaddedRow()
    {
        using var model = TinyModels.Build(TinyModels.Qwen2());
        using var alone = model.forward(tensor(new long[] { 7, 8, 9 }).unsqueeze(0));           // (1, 3, V)
        using var ids = tensor(new long[] { 0, 0, 7, 8, 9, 1, 2, 3, 4, 5 }, [2, 5]);
        using var mask = tensor(new long[] { 0, 0, 1, 1, 1, 1, 1, 1, 1, 1 }, [2, 5]);
        using var batched = model.Forward(ids, mask);
        Assert.True(allclose(batched[0, 2..], alone[0], atol: 1e-5));
        Assert.False(batched.isnan().any().item<bool>());
    }

    [Fact]
    public void ConfigRoundTripsHuggingFaceJson()
    {
        var json = """
        {"architectures":["Qwen2ForCausalLM"],"model_type":"qwen2","vocab_size":151936,"hidden_size":896,"intermediate_size":4864,
         "num_hidden_layers":24,"num_attention_heads":14,"num_key_value_heads":2,"max_position_embeddings":32768,"rope_theta":1000000.0,
         "rms_norm_eps":1e-06,"tie_word_embeddings":true,"eos_token_id":151645,"bos_token_id":151643,"sliding_window":32768,"use_cache":true}
        """;
        var c = ModelConfig.FromJson(json);
        Assert.Equal(64, c.HeadDim);
        Assert.True(c.QkvBias);
        Assert.Equal(new[] { 151645 }, c.EosTokenIds);
        var again = ModelConfig.FromJson(c.ToJson());
        Assert.Equal(32768, again.Extra!["sliding_window"].GetInt32()); // unknown fields survive
        Assert.Equal(2, again.NumKvHeads);
    }

    [Theory]
    [InlineData("""{"vocab_size":10,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":2}""", "hidden_size")]
    [InlineData("""{"vocab_size":10,"hidden_size":8,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":3}""", "num_attention_heads")]
    [InlineData("""{"vocab_size":10,"hidden_size":8,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":2,"num_key_value_heads":3}""", "num_key_value_heads")]
    [InlineData("""{"vocab_size":"ten","hidden_size":8,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":2}""", "vocab_size")]
    [InlineData("""{"model_type":"gpt2","vocab_size":10,"hidden_size":8,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":2}""", "model_type")]
    public void BadConfigNamesTheField(string json, string field)
    {
        var e = Assert.ThrowsAny<InvalidDataException>(() => ModelConfig.FromJson(json, "x/config.json"));
        Assert.Contains(field, e.Message);
        Assert.Contains("x/config.json", e.Message);
    }
}
