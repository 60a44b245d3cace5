using System;

namespace UserTcp.Stack.Tcp;

public enum CongestionAlgorithm { NewReno, Cubic }

/// <summary>TCP tunables. Defaults follow Linux's so a peer sees familiar behaviour; times are microseconds.</summary>
public sealed class TcpConfig
{
    /// <summary>Secret for ISNs, SYN cookies and timestamp offsets (RFC 6528). Tests fix it; production seeds it
    /// from a random source.</summary>
    public ulong Seed { get; init; } = 0x5EED_0000_0000_0001UL;

    public int SendBufferSize { get; init; } = 256 * 1024;
    public int ReceiveBufferSize { get; init; } = 256 * 1024;
    /// <summary>Largest socket buffer a SO_SNDBUF/SO_RCVBUF may ask for; also fixes the window scale we offer.</summary>
    public int MaxBufferSize { get; init; } = 1 << 20;

    public bool WindowScaling { get; init; } = true;
    public bool Timestamps { get; init; } = true;
    public bool Sack { get; init; } = true;
    public bool SynCookies { get; init; } = true;

    public long InitialRtoUs { get; init; } = 1_000_000;  // RFC 6298 §2.1
    public long MinRtoUs { get; init; } = 200_000;        // Linux TCP_RTO_MIN
    public long MaxRtoUs { get; init; } = 120_000_000;    // Linux TCP_RTO_MAX
    public int SynRetries { get; init; } = 6;             // net.ipv4.tcp_syn_retries
    public int SynAckRetries { get; init; } = 5;          // net.ipv4.tcp_synack_retries
    public int MaxRetries { get; init; } = 15;            // net.ipv4.tcp_retries2
    public long DelayedAckUs { get; init; } = 40_000;     // Linux TCP_DELACK_MIN
    /// <summary>The peer's FIN that moves an established connection to CLOSE-WAIT is acknowledged after the
    /// delayed-ACK time, as Linux does, so that a close at end of file sends FIN and ACK in one segment.</summary>
    public bool DelayFinAck { get; init; } = true;
    /// <summary>How long a drained ring keeps its block before giving it back to the pool (0: at once). A busy
    /// connection then rents once per this period instead of twice per request; an idle one still holds nothing
    /// after it. Under pool pressure (more than half the pool rented) blocks go back at once.</summary>
    public long IdleBufferReleaseUs { get; init; } = 200_000;
    /// <summary>Maximum segment lifetime; TIME_WAIT lasts 2*MSL (Linux: 60 s in total).</summary>
    public long MslUs { get; init; } = 30_000_000;
    /// <summary>Most connections kept in TIME_WAIT at once (net.ipv4.tcp_max_tw_buckets). Past it a connection that
    /// would enter TIME_WAIT closes at once, as Linux does on overflow: a server closing 20k connections a second
    /// would otherwise hold 1.2M of them for the 60 s.</summary>
    public int MaxTimeWait { get; init; } = 32768;
    /// <summary>How long an orphaned connection may sit in FIN_WAIT_2 (net.ipv4.tcp_fin_timeout).</summary>
    public long FinWait2TimeoutUs { get; init; } = 60_000_000;

    public long KeepAliveIdleUs { get; init; } = 7_200_000_000;
    public long KeepAliveIntervalUs { get; init; } = 75_000_000;
    public int KeepAliveCount { get; init; } = 9;

    /// <summary>RFC 5961 §7: challenge ACKs sent per second across the stack.</summary>
    public int ChallengeAckLimit { get; init; } = 1000;
    /// <summary>Congestion control for new connections (Linux defaults to CUBIC).</summary>
    public CongestionAlgorithm CongestionControl { get; init; } = CongestionAlgorithm.Cubic;
    public int DefaultMss { get; init; } = 536;           // RFC 9293 §3.7.1 when the peer sends no MSS option

    public int EphemeralPortFirst { get; init; } = 32768;
    public int EphemeralPortLast { get; init; } = 60999;
    /// <summary>Connections the 4-tuple table is pre-sized for.</summary>
    public int ExpectedConnections { get; init; } = 1024;
    /// <summary>Released connection objects kept for reuse (short connections then allocate nothing); 0 = none.
    /// At ~480 B each the default holds at most ~2 MB after a burst of closes.</summary>
    public int ConnectionPoolSize { get; init; } = 4096;

    /// <summary>The window scale we offer: the smallest shift that lets the largest buffer be advertised.</summary>
    internal byte OurWindowScale =>
        // (MaxBufferSize >> s) <= 65535 first holds at s = floor(log2 MaxBufferSize) - 15 (read per connection: no loop).
        MaxBufferSize <= 65535 ? (byte)0 : (byte)Math.Min(System.Numerics.BitOperations.Log2((uint)MaxBufferSize) - 15, 14);
}
