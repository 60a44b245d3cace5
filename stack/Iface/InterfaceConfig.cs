using UserTcp.Stack.Wire;

namespace UserTcp.Stack.Iface;

/// <summary>Settings of one <see cref="Interface"/>.</summary>
public sealed class InterfaceConfig
{
    public Ipv4Address Address { get; init; }
    public int PrefixLength { get; init; } = 24;
    /// <summary>Next hop for destinations outside the subnet; <see cref="Ipv4Address.Any"/> = none (off-link
    /// destinations are dropped as <see cref="DropReason.Ipv4NoRoute"/>).</summary>
    public Ipv4Address Gateway { get; init; } = Ipv4Address.Any;

    /// <summary>ARP entries held at most (neighbours plus gateway).</summary>
    public int ArpCacheCapacity { get; init; } = 64;
    /// <summary>Packets that may wait for one address to resolve; more are dropped (<see cref="DropReason.ArpQueueFull"/>).
    /// A stack that does not yet know a busy client's address answers a burst of SYNs at once: with 4 here, 1,000
    /// connections opened together lost all but 4 SYN-ACKs, and a new nginx worker after a reload 36 of 40; each waited
    /// a second for the retransmitted SYN. Linux keeps about 100 packets per unresolved neighbour (unres_qlen).</summary>
    public int ArpQueuePerEntry { get; init; } = 64;
    /// <summary>How long a learned address is trusted before it is resolved again.</summary>
    public long ArpEntryLifetimeUs { get; init; } = 60_000_000;
    /// <summary>Time between ARP requests for an unresolved address (RFC 1122 §2.3.2.1: at most one per second).</summary>
    public long ArpRetryIntervalUs { get; init; } = 1_000_000;
    /// <summary>Requests sent before giving up; then the waiting packets are dropped (<see cref="DropReason.ArpResolutionFailed"/>).</summary>
    public int ArpMaxTries { get; init; } = 3;
    /// <summary>Announce our address with a gratuitous ARP when the interface starts.</summary>
    public bool GratuitousArpOnStart { get; init; } = true;

    /// <summary>ICMP errors we may send back to back (RFC 1812 §4.3.2.8 asks for rate limiting).</summary>
    public int IcmpErrorBurst { get; init; } = 10;
    /// <summary>One more ICMP error is allowed after each interval.</summary>
    public long IcmpErrorIntervalUs { get; init; } = 100_000;
}
