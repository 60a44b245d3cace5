using System;

namespace UserTcp.Stack;

/// <summary>Why the stack dropped a received packet. Each reason has a counter in <see cref="StackCounters"/>.</summary>
public enum DropReason
{
    None = 0,
    // Ethernet
    EthernetTruncated,
    EthernetNotForUs,
    EthernetUnknownType,
    // ARP
    ArpMalformed,
    ArpUnsupported,
    ArpNotForUs,
    ArpQueueFull,
    ArpResolutionFailed,
    // IPv4
    Ipv4Truncated,
    Ipv4BadVersion,
    Ipv4BadHeaderLength,
    Ipv4BadTotalLength,
    Ipv4BadChecksum,
    Ipv4Fragment,
    Ipv4NotForUs,
    Ipv4BadSource,
    Ipv4UnknownProtocol,
    Ipv4NoRoute,
    /// <summary>Transmit: the packet would exceed the interface MTU (the transport ignored the MSS).</summary>
    Ipv4TooBig,
    // ICMPv4
    IcmpMalformed,
    IcmpBadChecksum,
    IcmpUnsupported,
    // IPv6 and ICMPv6 (Interface.Ipv6.cs: neighbour discovery and echo only; no transport over IPv6 yet)
    Ipv6Truncated,
    Ipv6BadVersion,
    Ipv6BadPayloadLength,
    Ipv6BadSource,
    Ipv6NotForUs,
    /// <summary>A next header the stack does not handle over IPv6 (UDP, extension headers, ...).</summary>
    Ipv6UnknownProtocol,
    Icmpv6Malformed,
    Icmpv6BadChecksum,
    /// <summary>An ICMPv6 type we do not act on (advertisements, router messages, errors, replies we never asked for).</summary>
    Icmpv6Unsupported,
    /// <summary>Neighbour discovery that fails RFC 4861 §7.1.1: hop limit not 255, bad length or options, multicast target.</summary>
    NdMalformed,
    /// <summary>A neighbour solicitation for an address that is not ours.</summary>
    NdNotForUs,
    /// <summary>Transmit: more packets waiting for one neighbour than the queue holds (as <see cref="ArpQueueFull"/>).</summary>
    NdQueueFull,
    /// <summary>Transmit: the neighbour did not answer the last solicitation (as <see cref="ArpResolutionFailed"/>).</summary>
    NdResolutionFailed,
    /// <summary>Transmit: an IPv6 destination off our prefix (no routers yet), or a multicast one.</summary>
    Ipv6NoRoute,
    /// <summary>Transmit: over the MTU, or a buffer without room for the headers.</summary>
    Ipv6TooBig,
    // TCP
    TcpTruncated,
    TcpBadHeaderLength,
    TcpBadChecksum,
    TcpBadOptions,
    TcpNoSocket,
    TcpBadFlags,
    TcpOutOfWindow,
    TcpPaws,
    TcpBadAck,
    TcpBacklogFull,
    TcpBadSynCookie,
    TcpChallengeAckRateLimited,
    TcpReceiveBufferFull,
    /// <summary>A segment of a flow another process of the group owns (shared device).</summary>
    TcpOtherProcess,
    /// <summary>A SYN to our listener whose flow could not be claimed: the shared claim table is full (shared device).</summary>
    TcpFlowTableFull,
    // Devices
    TxRingFull,
    TxNoBuffer,
    Count,
}

/// <summary>Packet counters for one stack instance. Plain fields: one stack is driven by one thread.</summary>
public sealed class StackCounters
{
    private readonly long[] _drops = new long[(int)DropReason.Count];

    public long RxPackets;
    public long TxPackets;
    public long RxBytes;
    public long TxBytes;
    public long TcpSegmentsIn;
    public long TcpSegmentsOut;
    public long TcpRetransmits;
    public long TcpFastRetransmits;
    public long TcpTimeouts;
    public long TcpRstSent;
    public long TcpRstReceived;
    public long TcpChallengeAcks;
    public long TcpSynCookiesSent;
    public long TcpSynCookiesAccepted;
    public long TcpActiveOpens;
    public long TcpPassiveOpens;
    public long IcmpEchoReplies;
    public long NeighborAdvertisements;
    public long NeighborSolicitations;

    /// <summary>Counts a drop. Returns false so parse paths can write <c>return counters.Drop(reason);</c>.</summary>
    public bool Drop(DropReason reason)
    {
        _drops[(int)reason]++;
        return false;
    }

    public long Drops(DropReason reason) => _drops[(int)reason];

    public long TotalDrops
    {
        get
        {
            long sum = 0;
            foreach (long d in _drops) sum += d;
            return sum;
        }
    }
}
