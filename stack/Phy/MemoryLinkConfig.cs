using System;
using UserTcp.Stack.Wire;

namespace UserTcp.Stack.Phy;

/// <summary>Settings for one end of a <see cref="MemoryLink"/>.</summary>
public sealed class MemoryLinkConfig
{
    /// <summary>MTU, MAC address, burst size, headroom and checksum offloads of this end.</summary>
    public DeviceCapabilities Capabilities { get; init; } = new() { MacAddress = new MacAddress(0x02_00_00_00_00_01) };
    /// <summary>Buffers in this end's pool (shared by its receive queue and its transmit allocations).</summary>
    public int PoolSize { get; init; } = 512;
    /// <summary>Bytes per buffer; 0 = headroom + MTU + Ethernet header, rounded up to 64 (with
    /// <see cref="DeviceCapabilities.TsoMaxBytes"/>: room for a large segment of that many bytes and its headers).</summary>
    public int BufferSize { get; init; }
    /// <summary>Frames that may wait in this end's receive queue. When it is full the peer's transmit is refused.</summary>
    public int RxQueueCapacity { get; init; } = 256;

    internal int EffectiveBufferSize =>
        BufferSize > 0 ? BufferSize
        : (Capabilities.Headroom + Math.Max(Capabilities.Mtu, Capabilities.TsoMaxBytes > 0 ? Capabilities.TsoMaxBytes + 80 : 0) + 14 + 63) & ~63;
}
