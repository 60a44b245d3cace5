using System;
using System.Buffers.Binary;
using System.Diagnostics;
using UserTcp.Stack.Phy;

namespace UserTcp.Tests.Interop;

/// <summary>
/// What netem would do, done on our side of the wire for kernels built without sch_netem: drops and reorders IPv4
/// frames in both directions (ARP passes untouched, as it would through a lossy link most of the time, so that a
/// test's time stays bounded). Reordering holds one frame back until <see cref="ReorderDepth"/> later frames in the
/// same direction passed, or <see cref="ReorderHoldUs"/> elapsed (real clock; this is test code, not the stack).
/// One seeded Random per instance: the same seed gives the same choices for the same frame sequence.
/// Used from the driver thread only.
/// </summary>
internal sealed class LossyDevice : IDevice, IDisposable
{
    private readonly IDevice _inner;
    private readonly double _loss, _reorder;
    private readonly Random _rng;
    private Held _rxHeld, _txHeld;

    public int ReorderDepth { get; init; } = 3;
    public long ReorderHoldUs { get; init; } = 2_000;
    public long RxDropped, TxDropped, RxReordered, TxReordered;

    private struct Held
    {
        public bool Has;
        public PacketBuf Packet;
        public int Passed;
        public long SinceUs;
    }

    public LossyDevice(IDevice inner, double lossPercent, double reorderPercent, int seed)
    {
        _inner = inner;
        _loss = lossPercent / 100;
        _reorder = reorderPercent / 100;
        _rng = new Random(seed);
    }

    public DeviceCapabilities Capabilities => _inner.Capabilities;

    private static long NowUs => Stopwatch.GetTimestamp() * 1_000_000 / Stopwatch.Frequency;

    private static bool IsIpv4(in PacketBuf p) =>
        p.Length >= 14 && BinaryPrimitives.ReadUInt16BigEndian(p.Data[12..]) == 0x0800;

    public int Receive(Span<PacketBuf> burst)
    {
        int n = _inner.Receive(burst.Length > 1 ? burst[..^1] : burst); // room for a released held frame
        int w = 0;
        for (int i = 0; i < n; i++)
        {
            PacketBuf p = burst[i];
            if (IsIpv4(p))
            {
                double r = _rng.NextDouble();
                if (r < _loss)
                {
                    _inner.Free(ref p);
                    RxDropped++;
                    continue;
                }
                if (!_rxHeld.Has && r < _loss + _reorder)
                {
                    _rxHeld = new Held { Has = true, Packet = p, SinceUs = NowUs };
                    RxReordered++;
                    continue;
                }
                if (_rxHeld.Has) _rxHeld.Passed++;
            }
            burst[w++] = p;
        }
        if (_rxHeld.Has && w < burst.Length && (_rxHeld.Passed >= ReorderDepth || NowUs - _rxHeld.SinceUs >= ReorderHoldUs))
        {
            burst[w++] = _rxHeld.Packet;
            _rxHeld = default;
        }
        ReleaseTxIfDue(false);
        return w;
    }

    public int Allocate(Span<PacketBuf> burst) => _inner.Allocate(burst);

    public int Transmit(ReadOnlySpan<PacketBuf> burst)
    {
        for (int i = 0; i < burst.Length; i++)
        {
            PacketBuf p = burst[i];
            if (IsIpv4(p))
            {
                double r = _rng.NextDouble();
                if (r < _loss)
                {
                    _inner.Free(ref p);
                    TxDropped++;
                    continue;
                }
                if (!_txHeld.Has && r < _loss + _reorder)
                {
                    _txHeld = new Held { Has = true, Packet = p, SinceUs = NowUs };
                    TxReordered++;
                    continue;
                }
            }
            if (_inner.Transmit(burst.Slice(i, 1)) == 0) return i; // refused: the caller keeps this one and the rest
            if (_txHeld.Has) _txHeld.Passed++;
            ReleaseTxIfDue(false);
        }
        return burst.Length;
    }

    private void ReleaseTxIfDue(bool force)
    {
        if (!_txHeld.Has) return;
        if (!force && _txHeld.Passed < ReorderDepth && NowUs - _txHeld.SinceUs < ReorderHoldUs) return;
        Span<PacketBuf> one = [_txHeld.Packet];
        if (_inner.Transmit(one) == 0) _inner.Free(ref one[0]); // a full ring: count it as one more loss
        _txHeld = default;
    }

    public void Free(ref PacketBuf packet) => _inner.Free(ref packet);

    /// <summary>Gives held frames back to the device (StackDriver does this before disposing the device).</summary>
    public void Dispose()
    {
        if (_rxHeld.Has) { _inner.Free(ref _rxHeld.Packet); _rxHeld = default; }
        if (_txHeld.Has) { _inner.Free(ref _txHeld.Packet); _txHeld = default; }
    }

    public override string ToString() =>
        $"dropped rx {RxDropped} tx {TxDropped}, reordered rx {RxReordered} tx {TxReordered}";
}
