using System;

namespace UserTcp.Stack.Phy;

/// <summary>
/// Wraps a device and misbehaves on its receive side: loss, duplication, reordering, corruption and delay, all
/// decided by a seeded random generator so a failing test replays exactly. Time is virtual: set
/// <see cref="NowUs"/> (or call <see cref="Advance"/>) before <see cref="Receive"/>. Transmit, Allocate and Free pass
/// straight through.
/// </summary>
/// <remarks>
/// Each <see cref="Receive"/> takes at most one burst from the inner device, applies the faults in a fixed order
/// (loss, corrupt, delay, reorder, duplicate) and then delivers every held frame that is due, oldest first.
/// A corrupted frame loses its "checksum good" receive flags: the damage happened on the wire, before the NIC looked.
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

    private const int PullBurst = 64;
    private readonly IDevice _inner;
    private readonly FaultConfig _config;
    private readonly Random _random;
    private readonly Held[] _held;
    private int _heldCount;

    public FaultInjectingDevice(IDevice inner, FaultConfig config, int seed)
    {
        _inner = inner;
        _config = config;
        _random = new Random(seed);
        _held = new Held[Math.Max(1, config.MaxHeld)];
    }

    public DeviceCapabilities Capabilities => _inner.Capabilities;

    /// <summary>Virtual time used for delays.</summary>
    public long NowUs { get; set; }

    public long Lost { get; private set; }
    public long Duplicated { get; private set; }
    public long Reordered { get; private set; }
    public long Corrupted { get; private set; }
    /// <summary>Frames taken from the inner device and not yet delivered.</summary>
    public int HeldCount => _heldCount;

    public void Advance(long nowUs) => NowUs = nowUs;

    /// <summary>The earliest time a held frame becomes deliverable by time alone; long.MaxValue if none is held.</summary>
    public long NextReleaseUs
    {
        get
        {
            long next = long.MaxValue;
            for (int i = 0; i < _heldCount; i++)
            {
                ref Held h = ref _held[i];
                next = Math.Min(next, h.Overtakes > 0 ? Math.Max(h.DueUs, h.HoldUntilUs) : h.DueUs);
            }
            return next;
        }
    }

    public int Receive(Span<PacketBuf> burst)
    {
        Span<PacketBuf> pulled = stackalloc PacketBuf[PullBurst];
        // Leave room for a duplicate of every pulled frame.
        int want = Math.Min(PullBurst, (_held.Length - _heldCount) / 2);
        int n = want > 0 ? _inner.Receive(pulled[..want]) : 0;
        for (int i = 0; i < n; i++) Admit(ref pulled[i]);
        return Deliver(burst[..Math.Min(burst.Length, Capabilities.MaxBurst)]);
    }

    private bool Roll(double percent) => _random.NextDouble() * 100.0 < percent;

    private void Admit(ref PacketBuf p)
    {
        if (Roll(_config.LossPercent))
        {
            Lost++;
            _inner.Free(ref p);
            return;
        }
        if (Roll(_config.CorruptPercent) && p.Length > 0)
        {
            Span<byte> data = p.Data;
            data[_random.Next(data.Length)] ^= (byte)_random.Next(1, 256);
            p.Offloads &= ~(PacketOffloads.RxIpv4ChecksumGood | PacketOffloads.RxTcpChecksumGood);
            Corrupted++;
        }
        long due = NowUs + _config.DelayUs + (_config.JitterUs > 0 ? _random.NextInt64(0, _config.JitterUs + 1) : 0);
        int overtakes = 0;
        if (Roll(_config.ReorderPercent) && _config.ReorderDepth > 0)
        {
            overtakes = _config.ReorderDepth;
            Reordered++;
        }
        _held[_heldCount++] = new Held { Packet = p, DueUs = due, Overtakes = overtakes, HoldUntilUs = NowUs + _config.ReorderTimeoutUs };

        if (Roll(_config.DuplicatePercent))
        {
            Span<PacketBuf> copy = stackalloc PacketBuf[1];
            bool got = _inner.Allocate(copy) == 1;
            if (got && copy[0].Capacity - copy[0].Offset >= p.Length)
            {
                copy[0].SetLength(p.Length);
                p.Data.CopyTo(copy[0].Data);
                copy[0].Offloads = p.Offloads;
                _held[_heldCount++] = new Held { Packet = copy[0], DueUs = due };
                Duplicated++;
            }
            else if (got)
            {
                _inner.Free(ref copy[0]);
            }
        }
    }

    private int Deliver(Span<PacketBuf> burst)
    {
        int delivered = 0;
        int i = 0;
        while (i < _heldCount && delivered < burst.Length)
        {
            ref Held h = ref _held[i];
            bool ready = h.DueUs <= NowUs && (h.Overtakes <= 0 || h.HoldUntilUs <= NowUs);
            if (!ready)
            {
                i++;
                continue;
            }
            burst[delivered++] = h.Packet;
            // Frames held back for reordering that arrived earlier have now been overtaken once more.
            for (int j = 0; j < i; j++)
                if (_held[j].Overtakes > 0) _held[j].Overtakes--;
            Array.Copy(_held, i + 1, _held, i, _heldCount - i - 1);
            _held[--_heldCount] = default;
        }
        return delivered;
    }

    public int Allocate(Span<PacketBuf> burst) => _inner.Allocate(burst);
    public int Transmit(ReadOnlySpan<PacketBuf> burst) => _inner.Transmit(burst);
    public void Free(ref PacketBuf packet) => _inner.Free(ref packet);

    /// <summary>Frees every held frame back to the inner device.</summary>
    public void Dispose()
    {
        for (int i = 0; i < _heldCount; i++) _inner.Free(ref _held[i].Packet);
        _heldCount = 0;
    }
}
