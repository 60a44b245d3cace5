using System;
using UserTcp.Stack.Wire;

namespace UserTcp.Stack.Phy;

/// <summary>What a device can do. Fixed for the device's lifetime.</summary>
public sealed class DeviceCapabilities
{
    /// <summary>IP MTU: the largest IPv4 packet (header included) the link carries. Ethernet frames add 14 bytes.</summary>
    public int Mtu { get; init; } = 1500;
    public MacAddress MacAddress { get; init; }
    /// <summary>The most packets one <see cref="IDevice.Receive"/> or <see cref="IDevice.Transmit"/> call handles.</summary>
    public int MaxBurst { get; init; } = 32;
    /// <summary>Headroom every buffer from <see cref="IDevice.Allocate"/> has in front of its data.</summary>
    public int Headroom { get; init; } = 128;
    public bool RxIpv4Checksum { get; init; }
    public bool RxTcpChecksum { get; init; }
    public bool TxIpv4Checksum { get; init; }
    public bool TxTcpChecksum { get; init; }
    /// <summary>TCP segmentation offload: the most TCP payload bytes one frame with <see cref="PacketBuf.SegmentSize"/>
    /// set may carry (the device cuts it into MSS-sized segments); 0 = no TSO. A device that reports it also reports
    /// <see cref="TxTcpChecksum"/>, and every buffer from <see cref="IDevice.Allocate"/> holds <see cref="Headroom"/>
    /// + 14 + 20 + 60 + this many bytes.</summary>
    public int TsoMaxBytes { get; init; }
}

/// <summary>
/// A link-layer device moving Ethernet frames in bursts. Implementations: DPDK (production), MemoryLink (tests),
/// and wrappers (fault injection, pcap). Not thread-safe: one stack instance drives one device (queue).
/// </summary>
public interface IDevice
{
    DeviceCapabilities Capabilities { get; }

    /// <summary>Fills up to <c>burst.Length</c> received frames and returns how many. The caller owns them and must
    /// <see cref="Free"/> each.</summary>
    int Receive(Span<PacketBuf> burst);

    /// <summary>Fills up to <c>burst.Length</c> empty transmit buffers (Offset = Headroom, Length = 0) and returns how
    /// many. Fewer than asked means the pool is short.</summary>
    int Allocate(Span<PacketBuf> burst);

    /// <summary>Queues frames for transmission. The device takes ownership of the first N (the return value); the
    /// caller still owns the rest and decides to retry or free them.</summary>
    int Transmit(ReadOnlySpan<PacketBuf> burst);

    /// <summary>Returns a buffer to the device.</summary>
    void Free(ref PacketBuf packet);

    /// <summary>Returns every buffer of <paramref name="packets"/> to the device; a device that can do it in one call
    /// (DPDK: one glue call per burst instead of one per frame) overrides this.</summary>
    void FreeBurst(Span<PacketBuf> packets)
    {
        for (int i = 0; i < packets.Length; i++) Free(ref packets[i]);
    }
}
