using System.Security.Cryptography;
using System.Text;

namespace PersonaWorkbook.Notebooks.Kernel;

/// <summary>
/// HMAC-SHA256 signatures of Jupyter messages: lowercase hex of the MAC over the header, parent header, metadata and
/// content frames, in that order. An empty key disables signing (the signature frame is empty), as jupyter_client does.
/// </summary>
public sealed class MessageSigner
{
    readonly byte[] _key;

    public MessageSigner(string key) => _key = Encoding.UTF8.GetBytes(key);

    public bool Enabled => _key.Length > 0;

    public string Sign(ReadOnlySpan<byte> header, ReadOnlySpan<byte> parentHeader, ReadOnlySpan<byte> metadata, ReadOnlySpan<byte> content)
        => Enabled ? Convert.ToHexStringLower(Mac(header, parentHeader, metadata, content)) : "";

    /// <summary>True when <paramref name="signature"/> is this key's MAC of the frames; the comparison takes the same time
    /// wherever the first differing byte is, so a forger learns nothing from timing.</summary>
    public bool Verify(string signature, ReadOnlySpan<byte> header, ReadOnlySpan<byte> parentHeader, ReadOnlySpan<byte> metadata, ReadOnlySpan<byte> content)
    {
        if (!Enabled) return true;
        byte[] claimed;
        try { claimed = Convert.FromHexString(signature); }
        catch (FormatException) { return false; }
        return CryptographicOperations.FixedTimeEquals(claimed, Mac(header, parentHeader, metadata, content));
    }

    byte[] Mac(ReadOnlySpan<byte> header, ReadOnlySpan<byte> parentHeader, ReadOnlySpan<byte> metadata, ReadOnlySpan<byte> content)
    {
        using var hmac = IncrementalHash.CreateHMAC(HashAlgorithmName.SHA256, _key);
        hmac.AppendData(header);
        hmac.AppendData(parentHeader);
        hmac.AppendData(metadata);
        hmac.AppendData(content);
        return hmac.GetHashAndReset();
    }
}
