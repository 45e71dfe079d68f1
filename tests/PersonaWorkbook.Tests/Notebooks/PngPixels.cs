using System.Buffers.Binary;
using System.IO.Compression;

namespace PersonaWorkbook.Tests.Notebooks;

/// <summary>
/// Reads the pixels of an 8-bit RGB or RGBA PNG (what headless chromium writes), so a test can ask whether a colour was
/// drawn instead of guessing from the file size.
/// </summary>
static class PngPixels
{
    public static (int Width, int Height, byte[][] Rows, int Channels) Read(byte[] png)
    {
        if (png.Length < 8 || png[1] != 'P' || png[2] != 'N' || png[3] != 'G') throw new InvalidDataException("not a PNG");
        int width = 0, height = 0, channels = 0;
        using var idat = new MemoryStream();
        for (int at = 8; at < png.Length;)
        {
            var length = BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(at));
            var type = System.Text.Encoding.ASCII.GetString(png, at + 4, 4);
            var data = png.AsSpan(at + 8, length);
            if (type == "IHDR")
            {
                (width, height) = (BinaryPrimitives.ReadInt32BigEndian(data), BinaryPrimitives.ReadInt32BigEndian(data[4..]));
                if (data[8] != 8 || data[12] != 0) throw new InvalidDataException("only 8-bit, non-interlaced PNGs");
                channels = data[9] switch { 2 => 3, 6 => 4, var c => throw new InvalidDataException($"colour type {c} not read here") };
            }
            else if (type == "IDAT") idat.Write(data);
            at += 12 + length;
        }
        idat.Position = 0;
        using var inflated = new MemoryStream();
        using (var z = new ZLibStream(idat, CompressionMode.Decompress)) z.CopyTo(inflated);
        var raw = inflated.ToArray();
        var stride = width * channels;
        var rows = new byte[height][];
        var previous = new byte[stride];
        for (int y = 0; y < height; y++)
        {
            var filter = raw[y * (stride + 1)];
            var row = raw.AsSpan(y * (stride + 1) + 1, stride).ToArray();
            for (int i = 0; i < stride; i++)
            {
                int left = i >= channels ? row[i - channels] : 0, up = previous[i], upLeft = i >= channels ? previous[i - channels] : 0;
                row[i] = (byte)(row[i] + filter switch
                {
                    0 => 0,
                    1 => left,
                    2 => up,
                    3 => (left + up) / 2,
                    4 => Paeth(left, up, upLeft),
                    _ => throw new InvalidDataException($"row {y}: filter {filter}"),
                });
            }
            rows[y] = previous = row;
        }
        return (width, height, rows, channels);
    }

    /// <summary>How many pixels lie within <paramref name="tolerance"/> of the colour in every channel.</summary>
    public static int Count(byte[] png, byte r, byte g, byte b, int tolerance = 8)
    {
        var (width, _, rows, channels) = Read(png);
        return rows.Sum(row => Enumerable.Range(0, width).Count(x =>
            Math.Abs(row[x * channels] - r) <= tolerance && Math.Abs(row[x * channels + 1] - g) <= tolerance && Math.Abs(row[x * channels + 2] - b) <= tolerance));
    }

    static int Paeth(int a, int b, int c)
    {
        int p = a + b - c, pa = Math.Abs(p - a), pb = Math.Abs(p - b), pc = Math.Abs(p - c);
        return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
    }
}
