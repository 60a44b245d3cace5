using System;
using UserTcp.Stack.Phy;
using UserTcp.Stack.Wire;

namespace UserTcp.Stack.Iface;

/// <summary>What a <see cref="NeighborCache{TAddr}"/> needs from its interface: send resolution requests, send or
/// release queued frames.</summary>
internal interface INeighborOwner<TAddr> where TAddr : struct, IEquatable<TAddr>
{
    /// <summary>Ask the link for <paramref name="target"/>'s MAC: a broadcast ARP request (IPv4) or a multicast
    /// neighbour solicitation (IPv6).</summary>
    void SendResolutionRequest(TAddr target, long nowUs);

    /// <summary>A queued frame whose next hop resolved to <paramref name="destination"/>: fill it in and send.
    /// The owner takes the buffer.</summary>
    void SendResolved(ref PacketBuf frame, MacAddress destination);

    /// <summary>Return a dropped frame to the device.</summary>
    void Free(ref PacketBuf frame);
}

/// <summary>
/// Neighbour cache for one interface, for either address family: ARP (RFC 826, RFC 1122 §2.3.2) as
/// <see cref="ArpCache"/>, IPv6 neighbour discovery (RFC 4861 §7.2, minimal) as <see cref="NeighborCache6"/>. Fixed
/// capacity, no allocation after construction.
/// </summary>
/// <remarks>
/// An entry is Free, Incomplete (a request is out; up to N frames wait in the entry's own slots of one preallocated
/// array) or Reachable (MAC known until it expires; an expired entry is simply resolved again on next use, there is no
/// probing state). Incomplete entries re-send the request every retry interval and fail after the last try, dropping
/// their frames. Lookups scan the table (sized for tens of neighbours), remembering the last hit: most traffic goes
/// to one next hop (the gateway). IPv6 keeps the same simple states (no STALE/DELAY/PROBE, no unreachability detection).
/// </remarks>
internal class NeighborCache<TAddr> where TAddr : struct, IEquatable<TAddr>
{
    private enum State : byte { Free, Incomplete, Reachable }

    private struct Entry
    {
        public TAddr Ip;
        public MacAddress Mac;
        public State State;
        public long ExpiresUs;   // Reachable: trusted until
        public long NextRetryUs; // Incomplete: next request (or failure) at
        public int Tries;        // Incomplete: requests sent
        public int Queued;       // Incomplete: frames in this entry's queue slots
    }

    private readonly Entry[] _entries;
    private readonly PacketBuf[] _queue; // entry i owns slots [i * _perEntry, (i + 1) * _perEntry)
    private readonly int _perEntry;
    private readonly long _lifetimeUs;
    private readonly long _retryUs;
    private readonly int _maxTries;
    private readonly StackCounters _counters;
    private readonly DropReason _queueFull, _resolutionFailed;
    private int _last; // index of the last lookup hit
    private bool _resolving; // an entry may be Incomplete (false only after a scan found none)

    protected NeighborCache(int capacity, int queuePerEntry, long lifetimeUs, long retryIntervalUs, int maxTries,
        StackCounters counters, DropReason queueFull, DropReason resolutionFailed)
    {
        _queueFull = queueFull;
        _resolutionFailed = resolutionFailed;
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capacity);
        _entries = new Entry[capacity];
        _perEntry = Math.Max(0, queuePerEntry);
        _queue = new PacketBuf[capacity * _perEntry];
        _lifetimeUs = lifetimeUs;
        _retryUs = retryIntervalUs;
        _maxTries = Math.Max(1, maxTries);
        _counters = counters;
    }

    public int Capacity => _entries.Length;

    /// <summary>Address resolutions given up after the last retry.</summary>
    public long Failures { get; private set; }

    /// <summary>Frames waiting for resolution, over all entries.</summary>
    public int QueuedFrames
    {
        get
        {
            int n = 0;
            foreach (ref readonly Entry e in _entries.AsSpan()) n += e.Queued;
            return n;
        }
    }

    /// <summary>The MAC for <paramref name="ip"/> if it is known and not expired.</summary>
    public bool TryLookup(TAddr ip, long nowUs, out MacAddress mac) => TryLookup(ip, nowUs, out mac, out _);

    /// <summary>The MAC for <paramref name="ip"/> if it is known and not expired, and until when it is trusted.</summary>
    public bool TryLookup(TAddr ip, long nowUs, out MacAddress mac, out long expiresUs)
    {
        int i = Find(ip);
        if (i >= 0 && _entries[i].State == State.Reachable && _entries[i].ExpiresUs > nowUs)
        {
            mac = _entries[i].Mac;
            expiresUs = _entries[i].ExpiresUs;
            return true;
        }
        mac = default;
        expiresUs = 0;
        return false;
    }

    /// <summary>True when an entry (in any state) exists for <paramref name="ip"/>.</summary>
    public bool Contains(TAddr ip) => Find(ip) >= 0;

    /// <summary>
    /// Queues <paramref name="frame"/> (Ethernet header written except the destination) until <paramref name="ip"/>
    /// resolves, starting resolution if none is under way. Takes the frame in every case (a full queue drops it).
    /// </summary>
    public void Enqueue(TAddr ip, ref PacketBuf frame, long nowUs, INeighborOwner<TAddr> owner)
    {
        int i = Find(ip);
        if (i < 0 || _entries[i].State != State.Incomplete)
        {
            if (i < 0) i = Allocate(nowUs, owner);
            ref Entry e = ref _entries[i];
            e = new Entry { Ip = ip, State = State.Incomplete, Tries = 1, NextRetryUs = nowUs + _retryUs };
            _resolving = true;
            owner.SendResolutionRequest(ip, nowUs);
        }
        ref Entry entry = ref _entries[i];
        if (entry.Queued == _perEntry)
        {
            // RFC 1122 §2.3.2.2 asks to keep at least one; we keep the oldest and drop the newest.
            _counters.Drop(_queueFull);
            owner.Free(ref frame);
            return;
        }
        _queue[i * _perEntry + entry.Queued++] = frame;
        frame = default;
    }

    /// <summary>
    /// Refreshes an existing entry with a mapping seen in an ARP packet (RFC 826 "merge"), sending any frames that
    /// waited for it. False when there is no entry for <paramref name="ip"/>.
    /// </summary>
    public bool Update(TAddr ip, MacAddress mac, long nowUs, INeighborOwner<TAddr> owner)
    {
        int i = Find(ip);
        if (i < 0) return false;
        SetReachable(i, mac, nowUs, owner);
        return true;
    }

    /// <summary>Adds or refreshes a mapping (we were the target of the ARP packet, RFC 826).</summary>
    public void Insert(TAddr ip, MacAddress mac, long nowUs, INeighborOwner<TAddr> owner)
    {
        int i = Find(ip);
        if (i < 0)
        {
            i = Allocate(nowUs, owner);
            _entries[i] = new Entry { Ip = ip };
        }
        SetReachable(i, mac, nowUs, owner);
    }

    private void SetReachable(int i, MacAddress mac, long nowUs, INeighborOwner<TAddr> owner)
    {
        ref Entry e = ref _entries[i];
        e.Mac = mac;
        e.State = State.Reachable;
        e.ExpiresUs = nowUs + _lifetimeUs;
        int queued = e.Queued;
        e.Queued = 0;
        for (int k = 0; k < queued; k++)
        {
            ref PacketBuf slot = ref _queue[i * _perEntry + k];
            owner.SendResolved(ref slot, mac);
            slot = default;
        }
    }

    /// <summary>Retries requests that are due and fails resolutions that ran out of tries.</summary>
    public void PollTimers(long nowUs, INeighborOwner<TAddr> owner)
    {
        if (!_resolving) return;
        for (int i = 0; i < _entries.Length; i++)
        {
            ref Entry e = ref _entries[i];
            if (e.State != State.Incomplete || e.NextRetryUs > nowUs) continue;
            if (e.Tries >= _maxTries)
            {
                Failures++;
                Release(i, _resolutionFailed, owner);
                continue;
            }
            e.Tries++;
            e.NextRetryUs = nowUs + _retryUs;
            owner.SendResolutionRequest(e.Ip, nowUs);
        }
    }

    /// <summary>When <see cref="PollTimers"/> next has work; long.MaxValue if no resolution is under way.</summary>
    public long NextTimerUs
    {
        get
        {
            // Polled before every wait: with nothing resolving (the steady state) no scan of the entries.
            if (!_resolving) return long.MaxValue;
            long next = long.MaxValue;
            foreach (ref readonly Entry e in _entries.AsSpan())
                if (e.State == State.Incomplete && e.NextRetryUs < next) next = e.NextRetryUs;
            if (next == long.MaxValue) _resolving = false;
            return next;
        }
    }

    /// <summary>Drops every queued frame and forgets every entry (without counting drops).</summary>
    public void Clear(INeighborOwner<TAddr> owner)
    {
        for (int i = 0; i < _entries.Length; i++) Release(i, DropReason.None, owner);
    }

    private int Find(TAddr ip)
    {
        ref Entry last = ref _entries[_last];
        if (last.State != State.Free && last.Ip.Equals(ip)) return _last;
        for (int i = 0; i < _entries.Length; i++)
        {
            if (_entries[i].State != State.Free && _entries[i].Ip.Equals(ip))
            {
                _last = i;
                return i;
            }
        }
        return -1;
    }

    /// <summary>A free slot, else the reachable entry closest to expiry, else the incomplete entry closest to giving up
    /// (whose frames are dropped as failed).</summary>
    private int Allocate(long nowUs, INeighborOwner<TAddr> owner)
    {
        int victim = -1;
        for (int i = 0; i < _entries.Length; i++)
        {
            ref Entry e = ref _entries[i];
            if (e.State == State.Free) return i;
            if (e.State == State.Reachable && (victim < 0 || _entries[victim].State != State.Reachable || e.ExpiresUs < _entries[victim].ExpiresUs))
                victim = i;
            else if (e.State == State.Incomplete && (victim < 0 || (_entries[victim].State == State.Incomplete && e.NextRetryUs < _entries[victim].NextRetryUs)))
                victim = i;
        }
        Release(victim, _resolutionFailed, owner);
        return victim;
    }

    private void Release(int i, DropReason reason, INeighborOwner<TAddr> owner)
    {
        ref Entry e = ref _entries[i];
        for (int k = 0; k < e.Queued; k++)
        {
            if (reason != DropReason.None) _counters.Drop(reason);
            owner.Free(ref _queue[i * _perEntry + k]);
        }
        e = default;
    }
}

/// <summary>The IPv4 neighbour cache: ARP.</summary>
internal sealed class ArpCache(int capacity, int queuePerEntry, long lifetimeUs, long retryIntervalUs, int maxTries,
    StackCounters counters)
    : NeighborCache<Ipv4Address>(capacity, queuePerEntry, lifetimeUs, retryIntervalUs, maxTries, counters,
        DropReason.ArpQueueFull, DropReason.ArpResolutionFailed);

/// <summary>The IPv6 neighbour cache: resolved by multicast neighbour solicitations.</summary>
internal sealed class NeighborCache6(int capacity, int queuePerEntry, long lifetimeUs, long retryIntervalUs, int maxTries,
    StackCounters counters)
    : NeighborCache<Ipv6Address>(capacity, queuePerEntry, lifetimeUs, retryIntervalUs, maxTries, counters,
        DropReason.NdQueueFull, DropReason.NdResolutionFailed);
