namespace PersonaWorkbook.Checkpoints;

/// <summary>
/// A checkpoint file that cannot be read or does not fit the model; the message names the file and the tensor.
/// (An IOException because InvalidDataException is sealed.)
/// </summary>
public sealed class CheckpointException : IOException
{
    public CheckpointException(string message) : base(message) { }
    public CheckpointException(string message, Exception inner) : base(message, inner) { }
}
