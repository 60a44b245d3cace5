using System;
using UserTcp.Stack.Phy;
using UserTcp.Stack.Wire;

namespace UserTcp.Stack.Iface;

/// <summary>What a <see cref="NeighborCache6"/> needs from its interface.</summary>
internal interface INeighborOwner6
{
    /// <summary>Multicast a neighbour solicitation for <paramref name="target"/> to its solicited-node group.</summary>
    void SendSolicitation(Ipv6Address target);

    /// <summary>A queued frame whose next hop resolved to <paramref name="destination"/>: fill it in and send. The owner
    /// takes the buffer.</summary>
    void SendResolved(ref PacketBuf frame, MacAddress destination);

    /// <summary>Return a dropped frame to the device.</summary>
    void Free(ref PacketBuf frame);
}

/// <summary>
/// IPv6 neighbour cache (RFC 4861 §7.2, minimal), with the behaviour of <see cref="ArpCache"/>: fixed capacity, no
/// allocation after construction; an entry is Incomplete (a solicitation is out, up to N frames wait in the entry's own
/// slots) or Reachable until it expires, then resolved again on next use (no STALE/DELAY/PROBE states, no unreachability
/// detection). Solicitations are re-sent every retry interval; after the last try the waiting frames are dropped
/// (<see cref="DropReason.NdResolutionFailed"/>).
/// </summary>
internal sealed class NeighborCache6
{
    private enum State : byte { Free, Incomplete, Reachable }

    private struct Entry
    {
        public Ipv6Address Ip;
        public MacAddress Mac;
        public State State;
        public long ExpiresUs;
        public long NextRetryUs;
        public int Tries;
        public int Queued;
    }

    private readonly Entry[] _entries;
    private readonly PacketBuf[] _queue; // entry i owns slots [i * _perEntry, (i + 1) * _perEntry)
    private readonly int _perEntry;
    private readonly long _lifetimeUs, _retryUs;
    private readonly int _maxTries;
    private readonly StackCounters _counters;
    private int _last;
    private bool _resolving;

    public NeighborCache6(int capacity, int queuePerEntry, long lifetimeUs, long retryIntervalUs, int maxTries, StackCounters counters)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capacity);
        _entries = new Entry[capacity];
        _perEntry = Math.Max(0, queuePerEntry);
        _queue = new PacketBuf[capacity * _perEntry];
        _lifetimeUs = lifetimeUs;
        _retryUs = retryIntervalUs;
        _maxTries = Math.Max(1, maxTries);
        _counters = counters;
    }

    public long Failures { get; private set; }

    public int QueuedFrames
    {
        get
        {
            int n = 0;
            foreach (ref readonly Entry e in _entries.AsSpan()) n += e.Queued;
            return n;
        }
    }

    public bool TryLookup(Ipv6Address ip, long nowUs, out MacAddress mac)
    {
        int i = Find(ip);
        if (i >= 0 && _entries[i].State == State.Reachable && _entries[i].ExpiresUs > nowUs)
        {
            mac = _entries[i].Mac;
            return true;
        }
        mac = default;
        return false;
    }

    /// <summary>Queues <paramref name="frame"/> until <paramref name="ip"/> resolves, soliciting it if no resolution is
    /// under way. Takes the frame in every case (a full queue drops it: <see cref="DropReason.NdQueueFull"/>).</summary>
    public void Enqueue(Ipv6Address ip, ref PacketBuf frame, long nowUs, INeighborOwner6 owner)
    {
        int i = Find(ip);
        if (i < 0 || _entries[i].State != State.Incomplete)
        {
            if (i < 0) i = Allocate(owner);
            _entries[i] = new Entry { Ip = ip, State = State.Incomplete, Tries = 1, NextRetryUs = nowUs + _retryUs };
            _resolving = true;
            owner.SendSolicitation(ip);
        }
        ref Entry e = ref _entries[i];
        if (e.Queued == _perEntry)
        {
            _counters.Drop(DropReason.NdQueueFull);
            owner.Free(ref frame);
            return;
        }
        _queue[i * _perEntry + e.Queued++] = frame;
        frame = default;
    }

    /// <summary>Refreshes an existing entry (an advertisement answered us), sending what waited. False if none.</summary>
    public bool Update(Ipv6Address ip, MacAddress mac, long nowUs, INeighborOwner6 owner)
    {
        int i = Find(ip);
        if (i < 0) return false;
        SetReachable(i, mac, nowUs, owner);
        return true;
    }

    /// <summary>Adds or refreshes a mapping (a solicitation with the sender's link-layer address, §7.2.3).</summary>
    public void Insert(Ipv6Address ip, MacAddress mac, long nowUs, INeighborOwner6 owner)
    {
        int i = Find(ip);
        if (i < 0)
        {
            i = Allocate(owner);
            _entries[i] = new Entry { Ip = ip };
        }
        SetReachable(i, mac, nowUs, owner);
    }

    private void SetReachable(int i, MacAddress mac, long nowUs, INeighborOwner6 owner)
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

    public void PollTimers(long nowUs, INeighborOwner6 owner)
    {
        if (!_resolving) return;
        for (int i = 0; i < _entries.Length; i++)
        {
            ref Entry e = ref _entries[i];
            if (e.State != State.Incomplete || e.NextRetryUs > nowUs) continue;
            if (e.Tries >= _maxTries)
            {
                Failures++;
                Release(i, DropReason.NdResolutionFailed, owner);
                continue;
            }
            e.Tries++;
            e.NextRetryUs = nowUs + _retryUs;
            owner.SendSolicitation(e.Ip);
        }
    }

    public long NextTimerUs
    {
        get
        {
            if (!_resolving) return long.MaxValue;
            long next = long.MaxValue;
            foreach (ref readonly Entry e in _entries.AsSpan())
                if (e.State == State.Incomplete && e.NextRetryUs < next) next = e.NextRetryUs;
            if (next == long.MaxValue) _resolving = false;
            return next;
        }
    }

    public void Clear(INeighborOwner6 owner)
    {
        for (int i = 0; i < _entries.Length; i++) Release(i, DropReason.None, owner);
    }

    private int Find(Ipv6Address ip)
    {
        ref Entry last = ref _entries[_last];
        if (last.State != State.Free && last.Ip == ip) return _last;
        for (int i = 0; i < _entries.Length; i++)
        {
            if (_entries[i].State != State.Free && _entries[i].Ip == ip)
            {
                _last = i;
                return i;
            }
        }
        return -1;
    }

    /// <summary>A free slot, else the reachable entry closest to expiry, else the incomplete one closest to giving up.</summary>
    private int Allocate(INeighborOwner6 owner)
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
        Release(victim, DropReason.NdResolutionFailed, owner);
        return victim;
    }

    private void Release(int i, DropReason reason, INeighborOwner6 owner)
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
