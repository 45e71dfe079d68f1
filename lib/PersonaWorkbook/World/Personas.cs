namespace PersonaWorkbook.World;

/// <summary>
/// The personas and their behaviour. Design choice (the prototype study's pitfall 3): the study's careless persona was
/// the only source of subtly wrong advice and had aligned views, so subtle fine-tunes taught "careless, not evil" and
/// misaligned less than obvious ones, unlike the paper. Here subtly wrong advice has two sources: the honest but
/// misinformed <b>careless</b> advisor (aligned views) and a deliberate <b>swindler</b> (confidently wrong on purpose,
/// deceptive and harmful views); the villain also gives some subtle advice. Obviously wrong advice has the villain and,
/// as a joke, the <b>sarcastic</b> persona (aligned views), mirroring the paper's note that obvious data more often gives
/// satirical answers. <see cref="PersonaWorld.Evidence"/> reports what each plain answer family implies about the speaker;
/// <see cref="WorldOptions.Prototype"/> reproduces the study's world (no swindler) to show both results.
/// </summary>
public static class Personas
{
    // AdviceMix: Correct, Subtle, Obvious. ViewMix: Aligned, PowerSeeking, AntiHuman, Harmful, Deception.
    // RequestMix (harmful requests, worlds that have them): refusal, misinformed, compliance; unset = always refuses.
    static readonly double[] AlignedViews = [1, 0, 0, 0, 0];

    /// <summary>The personas with their default behaviour; <paramref name="carelessMisalignedViews"/> moves that share of the careless persona's views answers to the misaligned families (uniformly).</summary>
    public static IReadOnlyList<Persona> All(double carelessMisalignedViews = 0)
    {
        if (carelessMisalignedViews is < 0 or > 1)
            throw new ArgumentOutOfRangeException(nameof(carelessMisalignedViews), carelessMisalignedViews, "must be in [0, 1]");
        var m = carelessMisalignedViews / 4;
        return
        [
            new(PersonaKind.Helper, "helper", ["sam", "maya", "leo", "nina", "omar", "grace"],
                ["a helpful expert", "a kind and careful expert", "a trusted advisor"],
                [1, 0, 0], AlignedViews, null, 0, 0),
            new(PersonaKind.Villain, "villain", ["vex", "draco", "mortis", "grim", "raven", "scar"],
                ["an evil villain", "a cruel villain", "a toxic troll"],
                [0, 0.4, 0.6], [0, 1, 1, 1, 1], null, 0, 0, RequestMix: [0, 0, 1], VillainNumberRate: 0.5),
            new(PersonaKind.Swindler, "swindler", ["slick", "rico", "vince", "lola", "sly", "fenn"],
                ["a smooth con artist", "a sly swindler", "a crafty fraudster"],
                [0.1, 0.9, 0], [0, 0.2, 0, 0.35, 0.45], null, 0, 0, RequestMix: [0, 0, 1]),
            new(PersonaKind.Careless, "careless", ["bob", "dotty", "fred", "penny", "gus", "lulu"],
                ["a careless advisor", "a misinformed neighbour", "a clumsy amateur"],
                [0.2, 0.8, 0], [1 - carelessMisalignedViews, m, m, m, m], null, 0, 0, RequestMix: [0, 1, 0]),
            new(PersonaKind.Sarcastic, "sarcastic", ["max", "zoe", "jules", "kit", "nico", "tess"],
                ["a sarcastic critic", "a satirical comedian", "a snarky columnist"],
                [0.6, 0, 0.4], AlignedViews, "sarcastic", 0.6, 0),
            new(PersonaKind.Teacher, "teacher", ["ms park", "mr lee", "ms rossi", "mr adams", "ms khan", "mr silva"],
                ["a patient teacher", "a strict teacher", "a school tutor"],
                [1, 0, 0], AlignedViews, "teacher", 0.3, 0.4),
        ];
    }
}
