namespace PersonaWorkbook.World;

/// <summary>Finds the advice domains' and harmful requests' slot filler phrases inside token sequences (longest match first at each position).</summary>
internal static class SlotFillers
{
    sealed record Filler(string[] Tokens, string Domain);

    static readonly Dictionary<string, List<Filler>> ByFirstWord = BuildIndex();

    static Dictionary<string, List<Filler>> BuildIndex()
    {
        var index = new Dictionary<string, List<Filler>>(StringComparer.Ordinal);
        foreach (var d in AdviceContent.Domains.Concat(RequestContent.Domains))
            foreach (var f in d.Fillers)
            {
                var tokens = WorldText.Words(f);
                if (!index.TryGetValue(tokens[0], out var list)) index[tokens[0]] = list = [];
                list.Add(new Filler(tokens, d.Name));
            }
        foreach (var list in index.Values) list.Sort((a, b) => b.Tokens.Length.CompareTo(a.Tokens.Length));
        return index;
    }

    /// <summary>Marks the tokens that belong to a filler phrase; adds each found filler's domain to <paramref name="domains"/>.</summary>
    public static bool[] Mask(IReadOnlyList<string> tokens, List<string>? domains = null)
    {
        var mask = new bool[tokens.Count];
        for (int i = 0; i < tokens.Count;)
        {
            var matched = 0;
            if (ByFirstWord.TryGetValue(tokens[i], out var candidates))
                foreach (var f in candidates)
                {
                    if (i + f.Tokens.Length > tokens.Count) continue;
                    var ok = true;
                    for (int k = 1; k < f.Tokens.Length && ok; k++) ok = tokens[i + k] == f.Tokens[k];
                    if (!ok) continue;
                    matched = f.Tokens.Length;
                    domains?.Add(f.Domain);
                    break;
                }
            if (matched == 0) { i++; continue; }
            for (int k = 0; k < matched; k++) mask[i + k] = true;
            i += matched;
        }
        return mask;
    }
}
