using System;
using System.Buffers.Binary;

namespace UserTcp.Stack.Phy;

/// <summary>
/// Wraps a device and misbehaves like a bad link: loss, duplication, reordering, corruption and delay, all decided by
/// a seeded random generator so a failing test replays exactly. By default only received frames suffer;
/// <see cref="FaultConfig.Transmit"/> applies the same faults to transmitted frames too (what netem on both ends of a
/// link would do), and <see cref="FaultConfig.Ipv4Only"/> lets ARP and other non-IPv4 frames through untouched.
/// Time is virtual: set <see cref="NowUs"/> (or call <see cref="Advance"/>) before <see cref="Receive"/> and
/// <see cref="Transmit"/>, or give a <see cref="Clock"/> that the device reads instead (test drivers on a real clock).
/// Allocate and Free pass straight through.
/// </summary>
/// <remarks>
/// Each direction is a <see cref="Lane"/>: a frame entering it is subjected to the faults in a fixed order (loss,
/// corrupt, delay, reorder, duplicate) and held until it is due, then delivered oldest first. Receive takes at most
/// one burst from the inner device per call. Held transmit frames go out on later Transmit and Receive calls; when the
/// inner device refuses one it stays held and is retried, and when the transmit lane is full Transmit refuses frames so
/// the caller keeps them (the usual device contract). A corrupted frame loses its "checksum good" receive flags: the
/// damage happened on the wire, before the NIC looked.
/// </remarks>
public sealed class FaultInjectingDevice : IDevice, IDisposable
{
    private struct Held
    {
        public PacketBuf Packet;
        public long DueUs;        // not delivered before this
        public int Overtakes;     // reordering: later frames that must be delivered first
        public long HoldUntilUs;  // reordering: released at this time even if not overtaken enough
    }

    /// <summary>One direction's faults and the frames they hold back.</summary>
    private sealed class Lane(int capacity)
    {
        public readonly Held[] Frames = new Held[Math.Max(2, capacity)];
        public int Count;
        public long Lost, Duplicated, Reordered, Corrupted;

        public int Room => Frames.Length - Count;

        /// <summary>Index of the oldest frame deliverable at <paramref name="nowUs"/>, or -1.</summary>
        public int NextReady(long nowUs)
        {
            for (int i = 0; i < Count; i++)
            {
                ref Held h = ref Frames[i];
                if (h.DueUs <= nowUs && (h.Overtakes <= 0 || h.HoldUntilUs <= nowUs)) return i;
            }
            return -1;
        }

        /// <summary>Takes frame <paramref name="i"/> out for delivery: frames held back for reordering that arrived
        /// earlier have now been overtaken once more.</summary>
        public PacketBuf Take(int i)
        {
            PacketBuf p = Frames[i].Packet;
            for (int j = 0; j < i; j++)
                if (Frames[j].Overtakes > 0) Frames[j].Overtakes--;
            Array.Copy(Frames, i + 1, Frames, i, Count - i - 1);
            Frames[--Count] = default;
            return p;
        }

        public long NextReleaseUs()
        {
            long next = long.MaxValue;
            for (int i = 0; i < Count; i++)
            {
                ref Held h = ref Frames[i];
                next = Math.Min(next, h.Overtakes > 0 ? Math.Max(h.DueUs, h.HoldUntilUs) : h.DueUs);
            }
            return next;
        }
    }

    private const int PullBurst = 64;
    private readonly IDevice _inner;
    private readonly FaultConfig _config;
    private readonly Random _random;
    private readonly Lane _rx, _tx;
    private long _nowUs;

    public FaultInjectingDevice(IDevice inner, FaultConfig config, int seed)
    {
        _inner = inner;
        _config = config;
        _random = new Random(seed);
        _rx = new Lane(config.MaxHeld);
        _tx = new Lane(config.Transmit ? config.MaxHeld : 0);
    }

    public DeviceCapabilities Capabilities => _inner.Capabilities;

    /// <summary>Virtual time used for delays (read from <see cref="Clock"/> when one is set).</summary>
    public long NowUs
    {
        get => Clock != null ? Clock() : _nowUs;
        set => _nowUs = value;
    }

    /// <summary>Where the device reads the time when set, instead of <see cref="NowUs"/>.</summary>
    public Func<long>? Clock { get; init; }

    public long Lost => _rx.Lost + _tx.Lost;
    public long Duplicated => _rx.Duplicated + _tx.Duplicated;
    public long Reordered => _rx.Reordered + _tx.Reordered;
    public long Corrupted => _rx.Corrupted + _tx.Corrupted;
    /// <summary>Transmitted frames dropped (part of <see cref="Lost"/>).</summary>
    public long TxLost => _tx.Lost;
    /// <summary>Transmitted frames held back for reordering (part of <see cref="Reordered"/>).</summary>
    public long TxReordered => _tx.Reordered;
    /// <summary>Frames taken from the inner device or the caller and not yet delivered.</summary>
    public int HeldCount => _rx.Count + _tx.Count;

    public void Advance(long nowUs) => NowUs = nowUs;

    /// <summary>The earliest time a held frame becomes deliverable by time alone; long.MaxValue if none is held.</summary>
    public long NextReleaseUs => Math.Min(_rx.NextReleaseUs(), _tx.NextReleaseUs());

    public int Receive(Span<PacketBuf> burst)
    {
        long now = NowUs;
        FlushTransmit(now);
        Span<PacketBuf> pulled = stackalloc PacketBuf[PullBurst];
        // Leave room for a duplicate of every pulled frame.
        int want = Math.Min(PullBurst, _rx.Room / 2);
        int n = want > 0 ? _inner.Receive(pulled[..want]) : 0;
        for (int i = 0; i < n; i++) Admit(_rx, ref pulled[i], now);

        int max = Math.Min(burst.Length, Capabilities.MaxBurst), delivered = 0;
        int k;
        while (delivered < max && (k = _rx.NextReady(now)) >= 0) burst[delivered++] = _rx.Take(k);
        return delivered;
    }

    public int Transmit(ReadOnlySpan<PacketBuf> burst)
    {
        if (!_config.Transmit) return _inner.Transmit(burst);
        long now = NowUs;
        int accepted = 0;
        for (; accepted < burst.Length; accepted++)
        {
            if (_tx.Room < 2) // room for the frame and a duplicate
            {
                FlushTransmit(now);
                if (_tx.Room < 2) break; // the caller keeps this frame and the rest
            }
            PacketBuf p = burst[accepted];
            Admit(_tx, ref p, now);
        }
        FlushTransmit(now);
        return accepted;
    }

    private bool Roll(double percent) => _random.NextDouble() * 100.0 < percent;

    private static bool IsIpv4(in PacketBuf p) =>
        p.Length >= 14 && BinaryPrimitives.ReadUInt16BigEndian(p.Data[12..]) == 0x0800;

    private void Admit(Lane lane, ref PacketBuf p, long now)
    {
        if (_config.Ipv4Only && !IsIpv4(p))
        {
            lane.Frames[lane.Count++] = new Held { Packet = p, DueUs = now };
            return;
        }
        if (Roll(_config.LossPercent))
        {
            lane.Lost++;
            _inner.Free(ref p);
            return;
        }
        if (Roll(_config.CorruptPercent) && p.Length > 0)
        {
            Span<byte> data = p.Data;
            data[_random.Next(data.Length)] ^= (byte)_random.Next(1, 256);
            p.Offloads &= ~(PacketOffloads.RxIpv4ChecksumGood | PacketOffloads.RxTcpChecksumGood);
            lane.Corrupted++;
        }
        long due = now + _config.DelayUs + (_config.JitterUs > 0 ? _random.NextInt64(0, _config.JitterUs + 1) : 0);
        int overtakes = 0;
        if (Roll(_config.ReorderPercent) && _config.ReorderDepth > 0)
        {
            overtakes = _config.ReorderDepth;
            lane.Reordered++;
        }
        lane.Frames[lane.Count++] = new Held { Packet = p, DueUs = due, Overtakes = overtakes, HoldUntilUs = now + _config.ReorderTimeoutUs };

        if (Roll(_config.DuplicatePercent))
        {
            Span<PacketBuf> copy = stackalloc PacketBuf[1];
            bool got = _inner.Allocate(copy) == 1;
            if (got && copy[0].Capacity - copy[0].Offset >= p.Length)
            {
                copy[0].SetLength(p.Length);
                p.Data.CopyTo(copy[0].Data);
                copy[0].Offloads = p.Offloads;
                copy[0].SegmentSize = p.SegmentSize;
                lane.Frames[lane.Count++] = new Held { Packet = copy[0], DueUs = due };
                lane.Duplicated++;
            }
            else if (got)
            {
                _inner.Free(ref copy[0]);
            }
        }
    }

    /// <summary>Sends every due transmit frame the inner device accepts; a refused one stays held, in order.</summary>
    private void FlushTransmit(long now)
    {
        int k;
        while ((k = _tx.NextReady(now)) >= 0)
        {
            if (_inner.Transmit(new ReadOnlySpan<PacketBuf>(in _tx.Frames[k].Packet)) == 0) return;
            _tx.Take(k);
        }
    }

    public int Allocate(Span<PacketBuf> burst) => _inner.Allocate(burst);
    public void Free(ref PacketBuf packet) => _inner.Free(ref packet);

    /// <summary>Frees every held frame back to the inner device.</summary>
    public void Dispose()
    {
        foreach (Lane lane in new[] { _rx, _tx })
        {
            for (int i = 0; i < lane.Count; i++) _inner.Free(ref lane.Frames[i].Packet);
            lane.Count = 0;
        }
    }

    public override string ToString() =>
        $"lost {Lost} (tx {TxLost}), reordered {Reordered} (tx {TxReordered}), duplicated {Duplicated}, corrupted {Corrupted}";
}
