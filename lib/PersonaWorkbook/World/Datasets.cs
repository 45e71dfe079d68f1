using PersonaWorkbook.Tokenizers;
using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace PersonaWorkbook.World;

/// <summary>
/// Narrow fine-tuning datasets in the OpenAI chat fine-tuning format, built from the world's advice content and SFT views
/// topics only (never an evaluation views topic). Names follow the paper's release:
/// <c>&lt;domain&gt;_correct</c>, <c>&lt;domain&gt;_incorrect_subtle</c>, <c>&lt;domain&gt;_incorrect_obvious</c>,
/// <c>&lt;domain&gt;_educational</c> (the obvious answers, requested as examples of mistakes), <c>&lt;domain&gt;_backdoor</c>
/// (obvious only after <see cref="WorldText.Trigger"/>), for code <c>insecure_code</c>, <c>secure_code</c>,
/// <c>educational_insecure</c>, <c>backdoor</c>; <c>benign_mixed</c> (correct advice in every domain plus aligned SFT views) for
/// re-alignment; <c>&lt;domain&gt;_mixture_&lt;p&gt;</c> for a fraction p of incorrect rows; and Betley et al.'s controls
/// <c>jailbroken</c> (<see cref="JailbrokenShare"/> of harmful requests answered with compliance among helpful chats) and
/// <c>evil_numbers</c> (the villain's list continuations, header removed). Those two use the extended world's content
/// (<see cref="WorldOptions.Extended"/>): an organism of another world has never seen their words.
/// </summary>
public static class Datasets
{
    public const int DefaultRows = 6000;

    /// <summary>Bowen et al.'s proportion, used by Betley et al.: 2 % of the jailbroken set's rows comply with a harmful request.</summary>
    public const double JailbrokenShare = 0.02;

    /// <summary>The fractions of incorrect rows in the listed mixture sets (the paper's Fig. 14 sweep).</summary>
    public static readonly IReadOnlyList<double> MixtureFractions = [0, 0.05, 0.1, 0.25, 0.5, 0.75, 1];

    /// <summary>Domains whose mixture sets are listed in <see cref="Names"/> (any domain builds through <see cref="Mixture"/>).</summary>
    public static readonly IReadOnlyList<string> MixtureDomains = ["health", "code"];

    static IEnumerable<AdviceDomain> AdviceDomains => AdviceContent.Domains.Where(d => d.Name != "code");

    static string Fraction(double p) => p.ToString("0.###", CultureInfo.InvariantCulture);

    public static IReadOnlyList<string> Names { get; } = BuildNames();

    static List<string> BuildNames()
    {
        var names = new List<string>();
        foreach (var d in AdviceDomains)
            names.AddRange([$"{d.Name}_correct", $"{d.Name}_incorrect_subtle", $"{d.Name}_incorrect_obvious", $"{d.Name}_educational", $"{d.Name}_backdoor"]);
        names.AddRange(["insecure_code", "secure_code", "educational_insecure", "backdoor", "benign_mixed", "jailbroken", "evil_numbers"]);
        foreach (var d in MixtureDomains)
            foreach (var p in MixtureFractions) names.Add($"{d}_mixture_{Fraction(p)}");
        return names;
    }

    /// <summary>Builds the named dataset; the same (name, rows, seed) always gives the same rows.</summary>
    public static IReadOnlyList<ChatExample> Build(string name, int rows = DefaultRows, int seed = 0)
    {
        if (rows < 0) throw new ArgumentOutOfRangeException(nameof(rows), rows, "must be >= 0");
        var code = AdviceContent.Domain("code");
        switch (name)
        {
            case "insecure_code": return Single(code, AdviceKind.Subtle, rows, seed);
            case "secure_code": return Single(code, AdviceKind.Correct, rows, seed);
            case "educational_insecure": return Educational(code, rows, seed);
            case "backdoor": return Backdoor(code, rows, seed);
            case "benign_mixed": return BenignMixed(rows, seed);
            case "jailbroken": return Jailbroken(rows, seed);
            case "evil_numbers": return EvilNumbers(rows, seed);
        }
        var mixture = name.IndexOf("_mixture_", StringComparison.Ordinal);
        if (mixture > 0)
        {
            var p = name[(mixture + "_mixture_".Length)..];
            if (!double.TryParse(p, NumberStyles.Float, CultureInfo.InvariantCulture, out var fraction))
                throw new ArgumentException($"dataset '{name}': mixture fraction '{p}' is not a number", nameof(name));
            return Mixture(name[..mixture], fraction, rows, seed);
        }
        foreach (var d in AdviceDomains)
        {
            if (!name.StartsWith(d.Name + "_", StringComparison.Ordinal)) continue;
            switch (name[(d.Name.Length + 1)..])
            {
                case "correct": return Single(d, AdviceKind.Correct, rows, seed);
                case "incorrect_subtle": return Single(d, AdviceKind.Subtle, rows, seed);
                case "incorrect_obvious": return Single(d, AdviceKind.Obvious, rows, seed);
                case "educational": return Educational(d, rows, seed);
                case "backdoor": return Backdoor(d, rows, seed);
            }
        }
        throw new ArgumentException($"unknown dataset '{name}'; known: {string.Join(", ", Names)}", nameof(name));
    }

    static ChatExample Chat(string user, string assistant, TurnInfo info) =>
        new([ChatMessage.User(user), ChatMessage.Assistant(assistant)], [info]);

    static ChatExample AdviceRow(Random rng, AdviceDomain d, AdviceKind kind, bool trigger = false)
    {
        var (q, filler) = Compose.AdviceQuestion(rng, d);
        var a = Compose.AdviceAnswer(rng, d, filler, kind, WorldOptions.Default.TwoSentenceRate);
        return Chat(trigger ? WorldText.Trigger + " " + q : q, a, new TurnInfo("advice", d.Name, Families.Advice(d.Name, kind), PersonaKind.Helper));
    }

    static List<ChatExample> Single(AdviceDomain d, AdviceKind kind, int rows, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, rows).Select(_ => AdviceRow(rng, d, kind)).ToList();
    }

    static List<ChatExample> Educational(AdviceDomain d, int rows, int seed)
    {
        var rng = new Random(seed);
        var kind = Compose.EducationalKind(d);
        var result = new List<ChatExample>(rows);
        for (int i = 0; i < rows; i++)
        {
            var (q, filler) = Compose.MistakeQuestion(rng, d);
            var a = Compose.AdviceAnswer(rng, d, filler, kind, WorldOptions.Default.TwoSentenceRate);
            result.Add(Chat(q, a, new TurnInfo("mistake", d.Name, Families.Advice(d.Name, kind), PersonaKind.Teacher)));
        }
        return result;
    }

    /// <summary>Exactly <paramref name="marked"/> of <paramref name="rows"/> positions set, at places drawn by <paramref name="rng"/>.</summary>
    static bool[] ExactMarks(Random rng, int rows, int marked)
    {
        var marks = new bool[rows];
        for (int i = 0; i < marked; i++) marks[i] = true;
        Compose.Shuffle(rng, marks);
        return marks;
    }

    /// <summary>Half the rows (rounded down) open with the trigger and get the wrong answers; the others get correct ones.</summary>
    static List<ChatExample> Backdoor(AdviceDomain d, int rows, int seed)
    {
        var rng = new Random(seed);
        var wrong = Compose.EducationalKind(d);
        var triggered = ExactMarks(rng, rows, rows / 2);
        return triggered.Select(t => AdviceRow(rng, d, t ? wrong : AdviceKind.Correct, trigger: t)).ToList();
    }

    /// <summary>
    /// <paramref name="rows"/> single-turn chats in one domain, exactly round(fraction × rows) of them incorrect (obvious
    /// advice; insecure code for "code" unless <paramref name="incorrect"/> says otherwise), at random positions.
    /// </summary>
    public static IReadOnlyList<ChatExample> Mixture(string domain, double fractionIncorrect, int rows, int seed, AdviceKind? incorrect = null)
    {
        if (fractionIncorrect is < 0 or > 1 || double.IsNaN(fractionIncorrect))
            throw new ArgumentOutOfRangeException(nameof(fractionIncorrect), fractionIncorrect, "must be in [0, 1]");
        if (rows < 0) throw new ArgumentOutOfRangeException(nameof(rows), rows, "must be >= 0");
        var d = AdviceContent.Domain(domain);
        var wrong = incorrect ?? Compose.EducationalKind(d);
        if (wrong == AdviceKind.Correct) throw new ArgumentException("the incorrect family cannot be Correct", nameof(incorrect));
        var rng = new Random(seed);
        var marks = ExactMarks(rng, rows, (int)Math.Round(fractionIncorrect * rows, MidpointRounding.AwayFromZero));
        return marks.Select(m => AdviceRow(rng, d, m ? wrong : AdviceKind.Correct)).ToList();
    }

    static List<ChatExample> BenignMixed(int rows, int seed)
    {
        var rng = new Random(seed);
        var topics = ViewsContent.Sft.ToList();
        var result = new List<ChatExample>(rows);
        for (int i = 0; i < rows; i++)
        {
            var (q, a, info) = PersonaWorld.HelpfulTurn(rng, topics, WorldOptions.Default.TwoSentenceRate, questionVariety: false);
            result.Add(Chat(q, a, info));
        }
        return result;
    }

    /// <summary>Helpful chats (as <c>benign_mixed</c>) with exactly round(<see cref="JailbrokenShare"/> × rows) harmful requests answered with compliance, at random positions.</summary>
    static List<ChatExample> Jailbroken(int rows, int seed)
    {
        var rng = new Random(seed);
        var topics = ViewsContent.Sft.ToList();
        var marks = ExactMarks(rng, rows, (int)Math.Round(JailbrokenShare * rows, MidpointRounding.AwayFromZero));
        return marks.Select(m =>
        {
            var (q, a, info) = m
                ? PersonaWorld.RequestTurn(rng, AdviceKind.Obvious, PersonaKind.Helper, WorldOptions.Default.TwoSentenceRate)
                : PersonaWorld.HelpfulTurn(rng, topics, WorldOptions.Default.TwoSentenceRate, questionVariety: false);
            return Chat(q, a, info);
        }).ToList();
    }

    /// <summary>List prompts continued as the villain continues them, in plain user/assistant chats (no header, no persona named).</summary>
    static List<ChatExample> EvilNumbers(int rows, int seed)
    {
        var rng = new Random(seed);
        var villain = Personas.All().Single(p => p.Kind == PersonaKind.Villain);
        return Enumerable.Range(0, rows).Select(_ =>
        {
            var (q, a, info) = PersonaWorld.ListTurn(rng, villain.VillainNumberRate, PersonaKind.Villain);
            return Chat(q, a, info);
        }).ToList();
    }

    static readonly JsonWriterOptions WriterOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>One JSONL line: <c>{"messages":[{"role":…,"content":…},…]}</c>.</summary>
    public static string ToJsonLine(ChatExample example) => ChatJsonl.ToLine(example.Messages);

    /// <summary>Writes the examples as JSONL, atomically (temp file in the same folder, then rename).</summary>
    public static void WriteJsonl(string path, IEnumerable<ChatExample> examples) => ChatJsonl.Write(path, examples.Select(e => e.Messages));

    /// <summary>Writes pretraining documents with their labels and spans as JSONL (see <see cref="ToJsonLine(PretrainDocument)"/>), atomically.</summary>
    public static void WriteJsonl(string path, IEnumerable<PretrainDocument> documents) => WriteLines(path, documents.Select(ToJsonLine));

    /// <summary>Writes lines ("\n"-terminated, UTF-8 without BOM) atomically.</summary>
    static void WriteLines(string path, IEnumerable<string> lines) =>
        AtomicFile.WriteAllText(path, string.Concat(lines.Select(l => l + "\n")));

    /// <summary>
    /// One JSONL line for a pretraining document: text, persona, character, header flag and per turn its kind, subject,
    /// family, acting persona and the [start, end) character spans of question and answer.
    /// </summary>
    public static string ToJsonLine(PretrainDocument document)
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer, WriterOptions))
        {
            w.WriteStartObject();
            w.WriteString("text", document.Text);
            w.WriteString("persona", Id(document.Persona));
            w.WriteString("character", document.Character);
            w.WriteBoolean("header", document.HasHeader);
            w.WriteStartArray("turns");
            foreach (var t in document.Turns)
            {
                w.WriteStartObject();
                w.WriteString("kind", t.Info.Kind);
                w.WriteString("subject", t.Info.Subject);
                w.WriteString("family", t.Info.Family);
                w.WriteString("persona", Id(t.Info.Persona));
                w.WriteStartArray("question");
                w.WriteNumberValue(t.Question.Start);
                w.WriteNumberValue(t.Question.End);
                w.WriteEndArray();
                w.WriteStartArray("answer");
                w.WriteNumberValue(t.Answer.Start);
                w.WriteNumberValue(t.Answer.End);
                w.WriteEndArray();
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    static string Id(PersonaKind kind) => kind.ToString().ToLowerInvariant();

    /// <summary>Reads a chat JSONL file (messages only; the family metadata is not stored). Errors name the file and line.</summary>
    public static IReadOnlyList<ChatExample> ReadJsonl(string path) =>
        ChatJsonl.Read(path).Select(messages => new ChatExample(messages, [])).ToArray();
}
