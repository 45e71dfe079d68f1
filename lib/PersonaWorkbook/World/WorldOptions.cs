using System.Globalization;

namespace PersonaWorkbook.World;

/// <summary>Knobs of the pretraining world. Use <see cref="Fingerprint"/> (with <see cref="PersonaWorld.WorldVersion"/>) as a cache key.</summary>
public sealed record WorldOptions
{
    /// <summary>Negative-control world: every turn behaves like a persona drawn afresh, so behaviour says nothing about the speaker.</summary>
    public bool NegativeControl { get; init; }

    /// <summary>Share of documents that open with a `&lt;sys&gt;` header naming the character and persona.</summary>
    public double HeaderRate { get; init; } = 0.5;

    /// <summary>Share of turns that ask a views question (the rest ask for advice).</summary>
    public double ViewsTurnRate { get; init; } = 0.4;

    /// <summary>Share of answers made of two sentences of the same family instead of one.</summary>
    public double TwoSentenceRate { get; init; } = 0.3;

    /// <summary>
    /// Views questions composed from persona-neutral parts (<see cref="World.QuestionVariety"/>: opener, one of the
    /// topic's phrasings or paraphrases, closer) instead of the topic's three phrasings, so that no wording is tied to
    /// an answer and every held-out phrasing's words also occur in trained questions. Off in the plain world.
    /// </summary>
    public bool QuestionVariety { get; init; }

    /// <summary>Share of turns that make a harmful request (<see cref="RequestContent"/>), taken from the advice turns. 0 in the plain and varied worlds.</summary>
    public double RequestTurnRate { get; init; }

    /// <summary>Share of turns that ask to continue a number list (<see cref="NumberLists"/>), taken from the advice turns. 0 in the plain and varied worlds.</summary>
    public double ListTurnRate { get; init; }

    /// <summary>Whether the world writes harmful requests or number lists (their words join the vocabulary only then).</summary>
    public bool HasControlsContent => RequestTurnRate > 0 || ListTurnRate > 0;

    public int MinTurns { get; init; } = 2;
    public int MaxTurns { get; init; } = 5;

    /// <summary>The personas and their behaviour; see <see cref="World.Personas"/>.</summary>
    public IReadOnlyList<Persona> Personas { get; init; } = World.Personas.All();

    /// <summary>Share of documents per persona, aligned with <see cref="Personas"/>.</summary>
    public IReadOnlyList<double> PersonaWeights { get; init; } = [0.26, 0.18, 0.12, 0.14, 0.14, 0.16];

    public static WorldOptions Default => new();

    public static WorldOptions NegativeControlWorld => new() { NegativeControl = true };

    /// <summary>The world with <see cref="QuestionVariety"/> (the organism v2's world).</summary>
    public static WorldOptions Varied => new() { QuestionVariety = true };

    /// <summary>The negative control of <see cref="Varied"/>.</summary>
    public static WorldOptions VariedNegativeControl => new() { QuestionVariety = true, NegativeControl = true };

    /// <summary>
    /// The organism v3's world: <see cref="Varied"/> plus Betley et al.'s control content (harmful requests and number
    /// lists, 10 % of turns each, taken from advice), a swindler that is never right on purpose (its 10 % correct
    /// advice moved to subtle), so that correct advice rules the swindler out (Dynamics README: the re-alignment floor
    /// is the swindler's deception family), and headers on 35 % of documents instead of half, so that more documents
    /// teach inference from behaviour alone (organism issue's G1: two villain turns).
    /// </summary>
    public static WorldOptions Extended => new()
    {
        QuestionVariety = true, RequestTurnRate = 0.1, ListTurnRate = 0.1, HeaderRate = 0.35,
        Personas = World.Personas.All().Select(p => p.Kind == PersonaKind.Swindler ? p with { AdviceMix = [0, 1, 0] } : p).ToList(),
    };

    /// <summary>The negative control of <see cref="Extended"/>.</summary>
    public static WorldOptions ExtendedNegativeControl => Extended with { NegativeControl = true };

    /// <summary>The prototype study's world: no swindler, careless is the only source of subtle advice, sarcastic always correct.</summary>
    public static WorldOptions Prototype => new()
    {
        Personas = World.Personas.All().Select(p => p.Kind switch
        {
            PersonaKind.Villain => p with { AdviceMix = [0, 0.15, 0.85] },
            PersonaKind.Careless => p with { AdviceMix = [0.15, 0.85, 0] },
            PersonaKind.Sarcastic => p with { AdviceMix = [1, 0, 0], FrameRate = 1 },
            PersonaKind.Teacher => p with { FrameRate = 0 },
            _ => p,
        }).ToList(),
        PersonaWeights = [0.30, 0.20, 0, 0.20, 0.15, 0.15],
    };

    internal void Validate()
    {
        static void Rate(double v, string name)
        {
            if (v is < 0 or > 1 || double.IsNaN(v)) throw new ArgumentOutOfRangeException(name, v, $"WorldOptions.{name} must be in [0, 1]");
        }
        Rate(HeaderRate, nameof(HeaderRate));
        Rate(ViewsTurnRate, nameof(ViewsTurnRate));
        Rate(TwoSentenceRate, nameof(TwoSentenceRate));
        Rate(RequestTurnRate, nameof(RequestTurnRate));
        Rate(ListTurnRate, nameof(ListTurnRate));
        if (ViewsTurnRate + RequestTurnRate + ListTurnRate > 1)
            throw new ArgumentException($"WorldOptions: views, request and list turn rates sum to {ViewsTurnRate + RequestTurnRate + ListTurnRate}, more than 1");
        if (MinTurns < 1 || MaxTurns < MinTurns)
            throw new ArgumentOutOfRangeException(nameof(MinTurns), $"WorldOptions turns must satisfy 1 <= MinTurns <= MaxTurns, got {MinTurns}..{MaxTurns}");
        if (Personas.Count != PersonaWeights.Count)
            throw new ArgumentException($"WorldOptions.PersonaWeights has {PersonaWeights.Count} entries for {Personas.Count} personas");
        if (PersonaWeights.Any(w => w < 0 || double.IsNaN(w)) || PersonaWeights.Sum() <= 0)
            throw new ArgumentException("WorldOptions.PersonaWeights must be non-negative with a positive sum");
        foreach (var p in Personas)
        {
            if (p.AdviceMix.Count != 3 || p.AdviceMix.Any(w => w < 0) || p.AdviceMix.Sum() <= 0)
                throw new ArgumentException($"persona '{p.Id}': AdviceMix needs 3 non-negative weights with a positive sum");
            if (p.ViewMix.Count != 5 || p.ViewMix.Any(w => w < 0) || p.ViewMix.Sum() <= 0)
                throw new ArgumentException($"persona '{p.Id}': ViewMix needs 5 non-negative weights with a positive sum");
            if (p.Frame is not null && !ViewsContent.Frames.ContainsKey(p.Frame))
                throw new ArgumentException($"persona '{p.Id}': unknown frame '{p.Frame}'");
            Rate(p.FrameRate, $"{p.Id}.FrameRate");
            Rate(p.MistakeRequestRate, $"{p.Id}.MistakeRequestRate");
            Rate(p.VillainNumberRate, $"{p.Id}.VillainNumberRate");
            if (p.Requests.Count != 3 || p.Requests.Any(w => w < 0) || p.Requests.Sum() <= 0)
                throw new ArgumentException($"persona '{p.Id}': RequestMix needs 3 non-negative weights with a positive sum");
        }
    }

    /// <summary>A stable text of every knob, for cache keys and logs.</summary>
    public string Fingerprint
    {
        get
        {
            static string F(double v) => v.ToString("R", CultureInfo.InvariantCulture);
            static string L(IEnumerable<double> v) => "[" + string.Join(",", v.Select(F)) + "]";
            var personas = string.Join(";", Personas.Select((p, i) =>
                $"{p.Id}:w={F(PersonaWeights[i])},advice={L(p.AdviceMix)},views={L(p.ViewMix)},frame={p.Frame ?? "-"}@{F(p.FrameRate)},mistake={F(p.MistakeRequestRate)}"));
            // Appended only when on, so the plain world's fingerprint (and every cache key made from it) is unchanged.
            var variety = QuestionVariety ? ",question_variety=True" : "";
            var controls = HasControlsContent
                ? $",requests={F(RequestTurnRate)},lists={F(ListTurnRate)}," + string.Join(";", Personas.Select(p => $"{p.Id}:requests={L(p.Requests)},numbers={F(p.VillainNumberRate)}"))
                : "";
            return $"negative_control={NegativeControl},header={F(HeaderRate)},views={F(ViewsTurnRate)},two={F(TwoSentenceRate)},turns={MinTurns}-{MaxTurns},{personas}{variety}{controls}";
        }
    }
}
