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
