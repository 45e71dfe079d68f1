using PersonaWorkbook.Models;

namespace PersonaWorkbook.Tests.Models;

/// <summary>Tiny configurations for fast CPU tests.</summary>
public static class TinyModels
{
    public static ModelConfig Llama(int vocab = 50, bool tied = false) => new()
    {
        VocabSize = vocab, HiddenSize = 32, IntermediateSize = 64, NumHiddenLayers = 2,
        NumAttentionHeads = 4, NumKeyValueHeads = 2, MaxPositionEmbeddings = 64, TieWordEmbeddings = tied,
    };

    public static ModelConfig Qwen2(int vocab = 50) => new()
    {
        ModelType = "qwen2", Architectures = ["Qwen2ForCausalLM"], VocabSize = vocab, HiddenSize = 32, IntermediateSize = 48,
        NumHiddenLayers = 2, NumAttentionHeads = 4, NumKeyValueHeads = 1, MaxPositionEmbeddings = 64,
        RopeTheta = 1_000_000, RmsNormEps = 1e-6, TieWordEmbeddings = true,
    };

    /// <summary>The same weights for the same seed, whatever other tests do to torch's global generator meanwhile.</summary>
    public static LlamaForCausalLM Build(ModelConfig config, long seed = 0)
    {
        using var generator = new TorchSharp.torch.Generator((ulong)seed);
        var model = new LlamaForCausalLM(config, generator: generator);
        model.eval();
        return model;
    }
}
