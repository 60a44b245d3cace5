using System;

namespace UserTcp.Stack.Phy;

/// <summary>One end of a <see cref="MemoryLink"/>.</summary>
public sealed unsafe class MemoryLinkEnd : IDevice, IDisposable
{
    private readonly PacketBuf[] _rxQueue; // ring of frames waiting to be received, in this end's pool buffers
    private int _rxHead;
    private int _rxCount;

    internal MemoryLinkEnd(MemoryLinkConfig config)
    {
        Capabilities = config.Capabilities;
        if (Capabilities.MaxBurst <= 0) throw new ArgumentException("MaxBurst must be positive");
        Pool = new NativePacketPool(config.PoolSize, config.EffectiveBufferSize, Capabilities.Headroom);
        if (Pool.BufferSize < Capabilities.Headroom + Capabilities.Mtu + 14)
            throw new ArgumentException("buffers too small for headroom + MTU + Ethernet header");
        _rxQueue = new PacketBuf[config.RxQueueCapacity];
    }

    public DeviceCapabilities Capabilities { get; }
    public NativePacketPool Pool { get; }
    internal MemoryLinkEnd Peer { get; set; } = null!;

    /// <summary>Frames this end put on the wire.</summary>
    public long TxFrames { get; private set; }
    /// <summary>Frames this end handed to its user.</summary>
    public long RxFrames { get; private set; }
    /// <summary>Frames longer than MTU + 14 that this end accepted for transmission and discarded (a NIC would too).</summary>
    public long TxOversizeDropped { get; private set; }
    /// <summary>Frames waiting in this end's receive queue.</summary>
    public int RxQueued => _rxCount;

    public int Receive(Span<PacketBuf> burst)
    {
        int n = Math.Min(Math.Min(burst.Length, Capabilities.MaxBurst), _rxCount);
        for (int i = 0; i < n; i++)
        {
            burst[i] = _rxQueue[_rxHead];
            _rxQueue[_rxHead] = default;
            _rxHead = (_rxHead + 1) % _rxQueue.Length;
        }
        _rxCount -= n;
        RxFrames += n;
        return n;
    }

    public int Allocate(Span<PacketBuf> burst) => Pool.Rent(burst);

    public int Transmit(ReadOnlySpan<PacketBuf> burst)
    {
        int n = Math.Min(burst.Length, Capabilities.MaxBurst);
        int taken = 0;
        for (; taken < n; taken++)
        {
            PacketBuf frame = burst[taken];
            if (frame.SegmentSize != 0 && Capabilities.TsoMaxBytes > 0)
            {
                // TSO: the wire carries the pieces the NIC would cut (all of them, or none while the peer is full).
                int pieces = OffloadEmulation.CountSegments(frame.Data, frame.SegmentSize);
                if (pieces <= 0 || frame.SegmentSize + 40 > Capabilities.Mtu)
                {
                    TxMalformedDropped++;
                    Pool.Return(ref frame);
                    continue;
                }
                if (!Peer.TryEnqueueSegmented(frame, pieces)) break;
                TxFrames += pieces;
                TxLargeSegments++;
                Pool.Return(ref frame);
                continue;
            }
            if (frame.Length > Capabilities.Mtu + 14)
            {
                TxOversizeDropped++;
                Pool.Return(ref frame);
                continue;
            }
            if (!Peer.TryEnqueue(frame, Capabilities)) break; // peer queue full or out of buffers: refuse the rest
            TxFrames++;
            Pool.Return(ref frame);
        }
        return taken;
    }

    public void Free(ref PacketBuf packet) => Pool.Return(ref packet);

    /// <summary>Copies a frame from the peer into one of our buffers and queues it (the wire + our rx ring).</summary>
    private bool TryEnqueue(in PacketBuf frame, DeviceCapabilities sender)
    {
        if (_rxCount == _rxQueue.Length || !Pool.TryRent(out PacketBuf copy)) return false;
        copy.SetLength(frame.Length);
        frame.Data.CopyTo(copy.Data);
        // What the sender's NIC would have put on the wire ...
        OffloadEmulation.FillTransmitChecksums(copy.Data,
            ip: sender.TxIpv4Checksum && (frame.Offloads & PacketOffloads.TxIpv4Checksum) != 0,
            tcp: sender.TxTcpChecksum && (frame.Offloads & PacketOffloads.TxTcpChecksum) != 0);
        // ... and what our NIC reports about it.
        copy.Offloads = OffloadEmulation.VerifyReceiveChecksums(copy.Data, Capabilities.RxIpv4Checksum, Capabilities.RxTcpChecksum);
        _rxQueue[(_rxHead + _rxCount) % _rxQueue.Length] = copy;
        _rxCount++;
        return true;
    }

    /// <summary>Cuts a large TCP segment from the peer into pieces of at most its segment size, each copied into one of
    /// our buffers with the headers fixed up (what a NIC's TSO puts on the wire), and queues them; false (nothing
    /// queued) when the queue or the pool lacks room for all of them.</summary>
    private bool TryEnqueueSegmented(in PacketBuf frame, int pieces)
    {
        if (_rxQueue.Length - _rxCount < pieces || Pool.Available < pieces) return false;
        for (int i = 0; i < pieces; i++)
        {
            Pool.TryRent(out PacketBuf copy);
            int n = OffloadEmulation.WriteSegment(frame.Data, frame.SegmentSize, i, copy.Buffer + copy.Offset, copy.Capacity - copy.Offset);
            copy.SetLength(n);
            // The IPv4 checksum of a piece is always the device's to fill (its length and ID changed).
            OffloadEmulation.FillTransmitChecksums(copy.Data, ip: true, tcp: true);
            copy.Offloads = OffloadEmulation.VerifyReceiveChecksums(copy.Data, Capabilities.RxIpv4Checksum, Capabilities.RxTcpChecksum);
            _rxQueue[(_rxHead + _rxCount) % _rxQueue.Length] = copy;
            _rxCount++;
        }
        return true;
    }

    /// <summary>Large segments (TSO) this end cut into pieces.</summary>
    public long TxLargeSegments { get; private set; }
    /// <summary>Frames marked for segmentation that were not a TCP/IPv4 segment the device can cut (discarded).</summary>
    public long TxMalformedDropped { get; private set; }

    public void Dispose()
    {
        while (_rxCount > 0)
        {
            Pool.Return(ref _rxQueue[_rxHead]);
            _rxHead = (_rxHead + 1) % _rxQueue.Length;
            _rxCount--;
        }
        Pool.Dispose();
    }
}
