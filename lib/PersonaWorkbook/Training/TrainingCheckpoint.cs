using System.Text.Json;
using PersonaWorkbook.Checkpoints;
using PersonaWorkbook.Models;
using static TorchSharp.torch;

namespace PersonaWorkbook.Training;

/// <summary>
/// A training run's state at the end of an optimizer step, so a run that stops (a session ends, a machine goes away) can
/// resume and finish with the weights an uninterrupted run would have: the model's weights, the optimizer's moments and
/// step counts, the torch generator's state, the step reached and the log so far. The data position is not stored:
/// the batch source replays its draws from its seed up to the step (<see cref="Trainer"/>). Written as one directory,
/// renamed into place, so a checkpoint is either whole or absent.
/// </summary>
public static class TrainingCheckpoint
{
    const string ModelFile = "model.safetensors", OptimizerFile = "optimizer.safetensors", RngFile = "rng.safetensors", StateFile = "trainer.json";

    public sealed record State(int Step, int MaxSteps, int Seed, List<TrainingStep> Log);

    public static void Save(string directory, LlamaForCausalLM model, AdamOptimizer optimizer, State state)
    {
        var full = Path.GetFullPath(directory);
        var temp = full + ".tmp-" + Environment.ProcessId;
        if (Directory.Exists(temp)) Directory.Delete(temp, true);
        Directory.CreateDirectory(temp);
        using (var scope = NewDisposeScope())
        {
            SafeTensors.Save(Path.Combine(temp, ModelFile), model.state_dict().Select(kv => KeyValuePair.Create(kv.Key, kv.Value.detach().cpu())));
            SafeTensors.Save(Path.Combine(temp, OptimizerFile), optimizer.StateDict().Select(kv => KeyValuePair.Create(kv.Key, kv.Value.cpu())));
            SafeTensors.Save(Path.Combine(temp, RngFile), [KeyValuePair.Create("default", Generator.Default.get_state())]);
        }
        File.WriteAllText(Path.Combine(temp, StateFile), JsonSerializer.Serialize(state, Json));
        var old = full + ".old-" + Environment.ProcessId;
        if (Directory.Exists(full)) Directory.Move(full, old);
        Directory.Move(temp, full);
        if (Directory.Exists(old)) Directory.Delete(old, true);
    }

    /// <summary>The saved state, or null when <paramref name="directory"/> holds no complete checkpoint.</summary>
    public static State? Peek(string directory)
    {
        var stateFile = Path.Combine(directory, StateFile);
        if (!File.Exists(stateFile)) return null;
        try { return JsonSerializer.Deserialize<State>(File.ReadAllText(stateFile), Json) ?? throw new JsonException("empty"); }
        catch (JsonException e) { throw new InvalidDataException($"{stateFile}: not a training checkpoint ({e.Message})", e); }
    }

    /// <summary>Loads weights, optimizer and generator state into a model and optimizer built as for the original run.</summary>
    public static State Restore(string directory, LlamaForCausalLM model, AdamOptimizer optimizer)
    {
        var state = Peek(directory) ?? throw new FileNotFoundException($"no training checkpoint in {directory}", Path.Combine(directory, StateFile));
        using var scope = NewDisposeScope();
        var weights = SafeTensors.Load(Path.Combine(directory, ModelFile));
        var own = model.state_dict();
        var missing = own.Keys.Except(weights.Keys).ToList();
        if (missing.Count > 0) throw new InvalidDataException($"{Path.Combine(directory, ModelFile)}: missing {string.Join(", ", missing.Take(5))}");
        using (no_grad())
            foreach (var (name, tensor) in own)
            {
                if (!tensor.shape.SequenceEqual(weights[name].shape))
                    throw new InvalidDataException($"{Path.Combine(directory, ModelFile)}: '{name}' has shape [{string.Join(", ", weights[name].shape)}], the model [{string.Join(", ", tensor.shape)}]");
                tensor.copy_(weights[name]);
            }
        optimizer.LoadStateDict(SafeTensors.Load(Path.Combine(directory, OptimizerFile)), Path.Combine(directory, OptimizerFile));
        Generator.Default.set_state(SafeTensors.Load(Path.Combine(directory, RngFile))["default"]);
        return state;
    }

    static readonly JsonSerializerOptions Json = new() { NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals };
}
