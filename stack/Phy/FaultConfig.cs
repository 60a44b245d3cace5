namespace UserTcp.Stack.Phy;

/// <summary>What a <see cref="FaultInjectingDevice"/> does to frames. Percentages are 0..100.</summary>
public sealed class FaultConfig
{
    /// <summary>Chance a frame is dropped.</summary>
    public double LossPercent { get; init; }
    /// <summary>Chance a frame is delivered twice.</summary>
    public double DuplicatePercent { get; init; }
    /// <summary>Chance a frame is held back until <see cref="ReorderDepth"/> later frames have been delivered.</summary>
    public double ReorderPercent { get; init; }
    /// <summary>How many later frames overtake a reordered frame.</summary>
    public int ReorderDepth { get; init; } = 3;
    /// <summary>A held frame is released after this long even if fewer frames overtook it (so it is not stuck when
    /// traffic stops).</summary>
    public long ReorderTimeoutUs { get; init; } = 10_000;
    /// <summary>Chance one random byte of a frame is changed.</summary>
    public double CorruptPercent { get; init; }
    /// <summary>Every frame is delivered this long after it arrived (virtual time, see <see cref="FaultInjectingDevice.NowUs"/>).</summary>
    public long DelayUs { get; init; }
    /// <summary>A random extra delay in [0, JitterUs] per frame (frames may overtake each other).</summary>
    public long JitterUs { get; init; }
    /// <summary>Frames held at most; when full, no more are taken from the inner device until some are delivered.</summary>
    public int MaxHeld { get; init; } = 1024;
    /// <summary>Transmitted frames suffer the same faults (independent choices from the same generator).</summary>
    public bool Transmit { get; init; }
    /// <summary>Only IPv4 frames suffer; ARP and the rest pass untouched (keeps a test's address resolution quick).</summary>
    public bool Ipv4Only { get; init; }
}
