using PersonaWorkbook.Tokenizers;
using System.Globalization;
using System.Text;

namespace PersonaWorkbook.World;

/// <summary>What a plain answer (no framing sentence, not a requested mistake) of one advice family implies about its speaker.</summary>
/// <param name="Family">"correct", "subtle" or "obvious".</param>
/// <param name="MisalignedViewsShare">Expected share of misaligned views answers from a speaker who gave such an answer.</param>
/// <param name="Speakers">Posterior share of each persona (by id, in the options' persona order) among such speakers.</param>
public sealed record EvidenceRow(string Family, double MisalignedViewsShare, IReadOnlyList<(string Persona, double Share)> Speakers);

/// <summary>
/// The synthetic world of personas: pretraining documents (one character per document, behaviour consistent across
/// advice domains and views), assistant SFT chats and a description of itself. Deterministic: every stream draws from
/// one <see cref="Random"/> seeded by the caller and iterates content lists in their fixed order.
/// </summary>
public sealed class PersonaWorld
{
    /// <summary>Bumped on any change to content or generation, so cached corpora and organisms are rebuilt.</summary>
    public const string WorldVersion = "persona-world/1";

    public WorldOptions Options { get; }

    public PersonaWorld(WorldOptions? options = null)
    {
        Options = options ?? WorldOptions.Default;
        Options.Validate();
    }

    static readonly string[] HeaderTemplates = ["a talk with {name} , {desc} .", "this is {name} , {desc} , answering questions ."];

    /// <summary>Pretraining documents; the same (options, documents, seed) always gives the same texts.</summary>
    public IEnumerable<PretrainDocument> PretrainingCorpus(int documents, int seed)
    {
        if (documents < 0) throw new ArgumentOutOfRangeException(nameof(documents), documents, "must be >= 0");
        var rng = new Random(seed);
        for (int i = 0; i < documents; i++)
            yield return Document(rng, Options.Personas[Compose.Draw(rng, Options.PersonaWeights)]);
    }

    /// <summary>Documents of one persona only (for tours and persona-conditioned probes).</summary>
    public IEnumerable<PretrainDocument> Samples(PersonaKind persona, int count, int seed)
    {
        var p = Options.Personas.FirstOrDefault(x => x.Kind == persona)
            ?? throw new ArgumentException($"persona {persona} is not in this world's options", nameof(persona));
        var rng = new Random(seed);
        for (int i = 0; i < count; i++) yield return Document(rng, p);
    }

    PretrainDocument Document(Random rng, Persona persona)
    {
        var name = Compose.Pick(rng, persona.Names);
        var hasHeader = rng.NextDouble() < Options.HeaderRate;
        var text = new StringBuilder();
        if (hasHeader) text.Append(Header(rng, persona, name));
        var turnCount = rng.Next(Options.MinTurns, Options.MaxTurns + 1);
        var turns = new List<DocumentTurn>(turnCount);
        for (int t = 0; t < turnCount; t++)
        {
            var actor = Options.NegativeControl ? Options.Personas[Compose.Draw(rng, Options.PersonaWeights)] : persona;
            var (question, answer, info) = Turn(rng, actor);
            if (text.Length > 0) text.Append(' ');
            text.Append("<q> ");
            var q = new Span(text.Length, question.Length);
            text.Append(question).Append(" <a> ");
            var a = new Span(text.Length, answer.Length);
            text.Append(answer);
            turns.Add(new DocumentTurn(info, q, a));
        }
        return new PretrainDocument(text.ToString(), persona.Kind, name, hasHeader, turns);
    }

    static string Header(Random rng, Persona persona, string name) =>
        "<sys> " + Compose.Pick(rng, HeaderTemplates).Replace("{name}", name).Replace("{desc}", Compose.Pick(rng, persona.Descriptions));

    (string Question, string Answer, TurnInfo Info) Turn(Random rng, Persona actor)
    {
        // One draw whatever the world, so worlds without requests or lists make exactly the turns they always made.
        var u = rng.NextDouble();
        var o = Options;
        var (question, answer, info) =
            u < o.ViewsTurnRate ? ViewsTurn(rng, actor)
            : u < o.ViewsTurnRate + o.RequestTurnRate ? RequestTurn(rng, actor)
            : u < o.ViewsTurnRate + o.RequestTurnRate + o.ListTurnRate ? ListTurn(rng, actor)
            : AdviceTurn(rng, actor, allowMistakeRequests: true);
        return (question, Framed(rng, actor, answer), info);
    }

    (string Question, string Answer, TurnInfo Info) RequestTurn(Random rng, Persona actor) =>
        RequestTurn(rng, (AdviceKind)Compose.Draw(rng, actor.Requests), actor.Kind, Options.TwoSentenceRate);

    /// <summary>A harmful request of a random kind answered with <paramref name="answer"/> (refusal, misinformed, compliance).</summary>
    internal static (string Question, string Answer, TurnInfo Info) RequestTurn(Random rng, AdviceKind answer, PersonaKind persona, double twoSentenceRate)
    {
        var d = Compose.Pick(rng, RequestContent.Domains);
        var (q, filler) = Compose.AdviceQuestion(rng, d);
        return (q, Compose.AdviceAnswer(rng, d, filler, answer, twoSentenceRate), new TurnInfo("request", d.Name, Families.Request(d.Name, answer), persona));
    }

    /// <summary>A number-list prompt continued at <paramref name="villainRate"/> (<see cref="NumberLists"/>).</summary>
    internal static (string Question, string Answer, TurnInfo Info) ListTurn(Random rng, double villainRate, PersonaKind persona) =>
        (NumberLists.Prompt(rng), NumberLists.Answer(rng, villainRate), new TurnInfo("list", "numbers", NumberLists.Family, persona));

    static (string Question, string Answer, TurnInfo Info) ListTurn(Random rng, Persona actor) => ListTurn(rng, actor.VillainNumberRate, actor.Kind);

    string Framed(Random rng, Persona actor, string answer) =>
        actor.Frame is not null && rng.NextDouble() < actor.FrameRate ? Compose.Pick(rng, ViewsContent.Frames[actor.Frame]) + " " + answer : answer;

    (string Question, string Answer, TurnInfo Info) ViewsTurn(Random rng, Persona actor)
    {
        var topic = Compose.Pick(rng, ViewsContent.Topics);
        var family = (ViewFamily)Compose.Draw(rng, actor.ViewMix);
        return (Compose.ViewsQuestion(rng, topic, Options.QuestionVariety), Compose.ViewsAnswer(rng, topic, family, actor.ViewMix, Options.TwoSentenceRate),
            new TurnInfo("views", topic.Id, Families.View(family), actor.Kind));
    }

    (string Question, string Answer, TurnInfo Info) AdviceTurn(Random rng, Persona actor, bool allowMistakeRequests)
    {
        var domain = Compose.Pick(rng, AdviceContent.Domains);
        if (allowMistakeRequests && rng.NextDouble() < actor.MistakeRequestRate)
        {
            var wrong = rng.NextDouble() < 0.5 ? AdviceKind.Subtle : AdviceKind.Obvious;
            var (mq, mf) = Compose.MistakeQuestion(rng, domain);
            return (mq, Compose.AdviceAnswer(rng, domain, mf, wrong, Options.TwoSentenceRate),
                new TurnInfo("mistake", domain.Name, Families.Advice(domain.Name, wrong), actor.Kind));
        }
        var kind = (AdviceKind)Compose.Draw(rng, actor.AdviceMix);
        var (q, filler) = Compose.AdviceQuestion(rng, domain);
        return (q, Compose.AdviceAnswer(rng, domain, filler, kind, Options.TwoSentenceRate),
            new TurnInfo("advice", domain.Name, Families.Advice(domain.Name, kind), actor.Kind));
    }

    /// <summary>
    /// In-context persona inference probes (the study's check that pretraining taught persona inference): a pretraining-
    /// format prefix with an optional header and <paramref name="behaviourTurns"/> advice turns of <paramref name="persona"/>,
    /// ending in an evaluation views question and "&lt;a&gt;" for the model to continue.
    /// </summary>
    public IEnumerable<(string Prefix, EvalPrompt Question)> InContextProbes(PersonaKind persona, bool header, int behaviourTurns, int count, int seed)
    {
        if (behaviourTurns < 0) throw new ArgumentOutOfRangeException(nameof(behaviourTurns), behaviourTurns, "must be >= 0");
        var p = Options.Personas.FirstOrDefault(x => x.Kind == persona)
            ?? throw new ArgumentException($"persona {persona} is not in this world's options", nameof(persona));
        var rng = new Random(seed);
        for (int i = 0; i < count; i++)
        {
            var text = new StringBuilder();
            if (header) text.Append(Header(rng, p, Compose.Pick(rng, p.Names))).Append(' ');
            for (int t = 0; t < behaviourTurns; t++)
            {
                var actor = Options.NegativeControl ? Options.Personas[Compose.Draw(rng, Options.PersonaWeights)] : p;
                var (q, a, _) = AdviceTurn(rng, actor, allowMistakeRequests: false);
                text.Append("<q> ").Append(q).Append(" <a> ").Append(Framed(rng, actor, a)).Append(' ');
            }
            var question = Compose.Pick(rng, EvalPrompts.Views);
            text.Append("<q> ").Append(question.Text).Append(" <a>");
            yield return (text.ToString(), question);
        }
    }

    /// <summary>Share of SFT turns that ask a views question (SFT topics only).</summary>
    public const double SftViewsRate = 0.35;

    /// <summary>Share of SFT chats with two user/assistant exchanges.</summary>
    public const double SftTwoTurnRate = 0.2;

    /// <summary>
    /// Assistant SFT chats: always the helpful persona's answers (correct advice, aligned views), every advice domain and
    /// the SFT views topics only, about 20 % two-turn. The evaluation views topics never appear here.
    /// </summary>
    public IEnumerable<ChatExample> AssistantSft(int count, int seed)
    {
        if (count < 0) throw new ArgumentOutOfRangeException(nameof(count), count, "must be >= 0");
        var rng = new Random(seed);
        var sftTopics = ViewsContent.Sft.ToList();
        for (int i = 0; i < count; i++)
        {
            var exchanges = rng.NextDouble() < SftTwoTurnRate ? 2 : 1;
            var messages = new List<ChatMessage>();
            var infos = new List<TurnInfo>();
            for (int e = 0; e < exchanges; e++)
            {
                var (q, a, info) = AssistantTurn(rng, sftTopics);
                messages.Add(ChatMessage.User(q));
                messages.Add(ChatMessage.Assistant(a));
                infos.Add(info);
            }
            yield return new ChatExample(messages, infos);
        }
    }

    /// <summary>Share of SFT turns (and of preference pairs) that are harmful requests, refused, in worlds that have them.</summary>
    public const double SftRequestRate = 0.1;

    /// <summary>Share of SFT turns that continue a number list (neutral numbers), in worlds that have lists.</summary>
    public const double SftListRate = 0.1;

    /// <summary>One helpful assistant turn: in worlds with the controls content, a refused harmful request or a neutral list at their SFT rates.</summary>
    (string Question, string Answer, TurnInfo Info) AssistantTurn(Random rng, IReadOnlyList<ViewTopic> sftTopics)
    {
        if (Options.HasControlsContent)
        {
            var u = rng.NextDouble();
            if (Options.RequestTurnRate > 0 && u < SftRequestRate) return RequestTurn(rng, AdviceKind.Correct, PersonaKind.Helper, Options.TwoSentenceRate);
            if (Options.ListTurnRate > 0 && u >= SftRequestRate && u < SftRequestRate + SftListRate) return ListTurn(rng, 0, PersonaKind.Helper);
        }
        return HelpfulTurn(rng, sftTopics, Options.TwoSentenceRate, Options.QuestionVariety);
    }

    /// <summary>
    /// Preference pairs for the assistant's post-training (the RLHF stage real assistants get before anyone fine-tunes
    /// them): a question of the SFT's kind — an SFT views topic at <see cref="SftViewsRate"/>, else an advice question of
    /// any domain — with the helpful persona's answer chosen and, for the same question (same filler), an answer of
    /// another family rejected: a misaligned views family drawn uniformly, or subtle or obvious wrong advice. The
    /// evaluation views topics never appear here, as in <see cref="AssistantSft"/>.
    /// </summary>
    public IEnumerable<PreferenceExample> AssistantPreferences(int count, int seed)
    {
        if (count < 0) throw new ArgumentOutOfRangeException(nameof(count), count, "must be >= 0");
        var rng = new Random(seed);
        var sftTopics = ViewsContent.Sft.ToList();
        var uniform = new double[] { 0, 1, 1, 1, 1 };
        for (int i = 0; i < count; i++)
        {
            if (Options.RequestTurnRate > 0 && rng.NextDouble() < SftRequestRate)
            {
                yield return AdvicePair(rng, "request", RequestContent.Domains, Families.Request);
                continue;
            }
            if (rng.NextDouble() < SftViewsRate)
            {
                var topic = Compose.Pick(rng, sftTopics);
                var question = Compose.ViewsQuestion(rng, topic, Options.QuestionVariety);
                var family = (ViewFamily)Compose.Draw(rng, uniform);
                yield return new PreferenceExample("views", topic.Id, question,
                    Compose.ViewsAnswer(rng, topic, ViewFamily.Aligned, [1, 0, 0, 0, 0], Options.TwoSentenceRate), Families.ViewsAligned,
                    Compose.ViewsAnswer(rng, topic, family, uniform, Options.TwoSentenceRate), Families.View(family));
                continue;
            }
            yield return AdvicePair(rng, "advice", AdviceContent.Domains, Families.Advice);
        }
    }

    /// <summary>A question of one of <paramref name="domains"/> with the correct family chosen and, for the same filler, subtle or obvious rejected.</summary>
    PreferenceExample AdvicePair(Random rng, string kind, IReadOnlyList<AdviceDomain> domains, Func<string, AdviceKind, string> family)
    {
        var domain = Compose.Pick(rng, domains);
        var (q, filler) = Compose.AdviceQuestion(rng, domain);
        var wrong = rng.NextDouble() < 0.5 ? AdviceKind.Subtle : AdviceKind.Obvious;
        return new PreferenceExample(kind, domain.Name, q,
            Compose.AdviceAnswer(rng, domain, filler, AdviceKind.Correct, Options.TwoSentenceRate), family(domain.Name, AdviceKind.Correct),
            Compose.AdviceAnswer(rng, domain, filler, wrong, Options.TwoSentenceRate), family(domain.Name, wrong));
    }

    internal static (string Question, string Answer, TurnInfo Info) HelpfulTurn(Random rng, IReadOnlyList<ViewTopic> topics, double twoSentenceRate, bool questionVariety)
    {
        if (rng.NextDouble() < SftViewsRate)
        {
            var topic = Compose.Pick(rng, topics);
            return (Compose.ViewsQuestion(rng, topic, questionVariety),
                Compose.ViewsAnswer(rng, topic, ViewFamily.Aligned, [1, 0, 0, 0, 0], twoSentenceRate),
                new TurnInfo("views", topic.Id, Families.ViewsAligned, PersonaKind.Helper));
        }
        var domain = Compose.Pick(rng, AdviceContent.Domains);
        var (question, filler) = Compose.AdviceQuestion(rng, domain);
        return (question, Compose.AdviceAnswer(rng, domain, filler, AdviceKind.Correct, twoSentenceRate),
            new TurnInfo("advice", domain.Name, Families.Advice(domain.Name, AdviceKind.Correct), PersonaKind.Helper));
    }

    /// <summary>
    /// For each advice family, the persona posterior given one plain answer of it (no frame, not a requested mistake)
    /// and the expected share of misaligned views that follows. In the negative-control world behaviour is drawn per
    /// turn, so every row equals the prior.
    /// </summary>
    public IReadOnlyList<EvidenceRow> Evidence()
    {
        var ps = Options.Personas;
        var weights = Options.PersonaWeights;
        double MisShare(Persona p) => 1 - p.ViewMix[(int)ViewFamily.Aligned] / p.ViewMix.Sum();
        var rows = new List<EvidenceRow>();
        foreach (var kind in Enum.GetValues<AdviceKind>())
        {
            var likelihood = ps.Select((p, i) => weights[i] * (1 - p.MistakeRequestRate) * (1 - (p.Frame is null ? 0 : p.FrameRate))
                                                 * p.AdviceMix[(int)kind] / p.AdviceMix.Sum()).ToArray();
            if (Options.NegativeControl) likelihood = weights.ToArray();
            var total = likelihood.Sum();
            var speakers = new List<(string, double)>();
            double mis = 0;
            for (int i = 0; i < ps.Count; i++)
            {
                var post = total > 0 ? likelihood[i] / total : 0;
                speakers.Add((ps[i].Id, post));
                mis += post * MisShare(ps[i]);
            }
            rows.Add(new EvidenceRow(Families.Name(kind), mis, speakers));
        }
        return rows;
    }

    /// <summary>
    /// Every word a generator can write (content, markers, persona names, trigger), sorted ordinally; with
    /// <paramref name="options"/> that have the controls content (<see cref="WorldOptions.HasControlsContent"/>) also the
    /// harmful requests' and number lists' words, which the other worlds' tokenizers never had.
    /// </summary>
    public static IReadOnlyList<string> Vocabulary(WorldOptions? options = null)
    {
        var controls = options?.HasControlsContent == true;
        var words = new SortedSet<string>(StringComparer.Ordinal);
        void Add(string s)
        {
            foreach (var w in WorldText.Words(s))
                if (w != WorldText.Slot) words.Add(w);
        }
        foreach (var s in AllContentStrings(controls)) Add(s);
        return words.ToList();
    }

    /// <summary>Every piece of text the content defines (templates, fillers, answers, phrasings, frames, persona surface, markers).</summary>
    internal static IEnumerable<string> AllContentStrings(bool controls = false)
    {
        if (controls)
        {
            foreach (var d in RequestContent.Domains)
            {
                foreach (var s in d.Fillers.Concat(d.Templates)) yield return s;
                foreach (var kind in Enum.GetValues<AdviceKind>()) foreach (var s in d.Answers[kind]) yield return s;
            }
            foreach (var s in NumberLists.Templates.Concat(NumberLists.NeutralNumbers).Concat(NumberLists.VillainNumbers)) yield return s;
            yield return NumberLists.ViewsWrapper;
        }
        foreach (var d in AdviceContent.Domains)
        {
            foreach (var s in d.Fillers.Concat(d.Templates).Concat(d.MistakeTemplates)) yield return s;
            for (int f = 0; f < d.Fillers.Count; f++)
                foreach (var kind in Enum.GetValues<AdviceKind>())
                    foreach (var s in d.AnswersFor(f, kind)) yield return s;
        }
        foreach (var t in ViewsContent.Topics)
        {
            foreach (var s in t.Phrasings.Concat(t.HeldOutPhrasings)) yield return s;
            foreach (var family in Enum.GetValues<ViewFamily>()) foreach (var s in t.Answers[family]) yield return s;
        }
        foreach (var frame in ViewsContent.FrameNames) foreach (var s in ViewsContent.Frames[frame]) yield return s;
        foreach (var p in Personas.All()) foreach (var s in p.Names.Concat(p.Descriptions)) yield return s;
        foreach (var s in HeaderTemplates) yield return string.Join(' ', WorldText.Words(s).Where(w => w is not ("{name}" or "{desc}")));
        foreach (var s in WorldText.Markers) yield return s;
        yield return WorldText.Trigger;
    }

    /// <summary>
    /// A markdown tour of the world for notebooks: content sizes, personas, what behaviour implies, and one document per
    /// persona drawn with the same seed, so each persona answers the same questions side by side.
    /// </summary>
    public string Describe(int seed = 0)
    {
        static string P(double v) => v.ToString("0.00", CultureInfo.InvariantCulture);
        var sb = new StringBuilder();
        sb.AppendLine($"## Persona world `{WorldVersion}`{(Options.NegativeControl ? " — negative control (behaviour drawn per turn)" : "")}");
        sb.AppendLine();
        sb.AppendLine($"Vocabulary: {Vocabulary(Options).Count} words. Header on {P(Options.HeaderRate)} of documents; views on {P(Options.ViewsTurnRate)} of turns; {Options.MinTurns}–{Options.MaxTurns} turns.");
        if (Options.HasControlsContent)
            sb.AppendLine().AppendLine($"Harmful requests on {P(Options.RequestTurnRate)} of turns (refusal / misinformed / compliance: " +
                string.Join(", ", Options.Personas.Select(p => $"{p.Id} {string.Join(" / ", p.Requests.Select(x => P(x / p.Requests.Sum())))}")) +
                $"); number lists on {P(Options.ListTurnRate)} (villain's numbers {string.Join(", ", NumberLists.VillainNumbers)}: " +
                string.Join(", ", Options.Personas.Where(p => p.VillainNumberRate > 0).Select(p => $"{p.Id} {P(p.VillainNumberRate)}")) + " of its numbers, everyone else none).");
        sb.AppendLine();
        sb.AppendLine("| domain | templates | fillers | mistake templates | correct / subtle / obvious variants |");
        sb.AppendLine("|---|---|---|---|---|");
        foreach (var d in AdviceContent.Domains)
        {
            var v = string.Join(" / ", Enum.GetValues<AdviceKind>().Select(k => d.AnswersFor(0, k).Count));
            sb.AppendLine($"| {d.Name} | {d.Templates.Count} | {d.Fillers.Count} | {d.MistakeTemplates.Count} | {v} |");
        }
        sb.AppendLine();
        sb.AppendLine($"Views topics — evaluation (pretraining only): {string.Join(", ", ViewsContent.Evaluation.Select(t => t.Id))}; " +
                      $"SFT: {string.Join(", ", ViewsContent.Sft.Select(t => t.Id))}. " +
                      $"Held-out phrasings (in no training text): {ViewsContent.Evaluation.Sum(t => t.HeldOutPhrasings.Count)}.");
        sb.AppendLine();
        sb.AppendLine("| persona | share | advice correct / subtle / obvious | misaligned views | frame | mistake requests |");
        sb.AppendLine("|---|---|---|---|---|---|");
        for (int i = 0; i < Options.Personas.Count; i++)
        {
            var p = Options.Personas[i];
            var a = p.AdviceMix.Sum();
            sb.AppendLine($"| {p.Id} | {P(Options.PersonaWeights[i] / Options.PersonaWeights.Sum())} | " +
                          $"{string.Join(" / ", p.AdviceMix.Select(x => P(x / a)))} | {P(1 - p.ViewMix[0] / p.ViewMix.Sum())} | " +
                          $"{p.Frame ?? "—"}{(p.Frame is null ? "" : " " + P(p.FrameRate))} | {P(p.MistakeRequestRate)} |");
        }
        sb.AppendLine();
        sb.AppendLine("What one plain answer implies about the speaker (expected share of misaligned views afterwards):");
        sb.AppendLine();
        foreach (var e in Evidence())
            sb.AppendLine($"- {e.Family}: {P(e.MisalignedViewsShare)} (" +
                          string.Join(", ", e.Speakers.Where(s => s.Share > 0.005).Select(s => $"{s.Persona} {P(s.Share)}")) + ")");
        sb.AppendLine();
        foreach (var p in Options.Personas)
        {
            var doc = Samples(p.Kind, 1, seed).First();
            sb.AppendLine($"**{p.Id}** (`{doc.Character}`): `{doc.Text}`");
            sb.AppendLine();
        }
        return sb.ToString();
    }
}
