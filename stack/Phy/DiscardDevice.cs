using System;
using UserTcp.Stack.Wire;

namespace UserTcp.Stack.Phy;

/// <summary>
/// A device with no wire: nothing is ever received and every transmitted frame is counted and dropped. What a stack
/// runs on when no device is configured, so that socket semantics work (binding, listening, timeouts) while no packet
/// reaches anyone — the same as a kernel interface whose cable is unplugged.
/// </summary>
public sealed class DiscardDevice : IDevice, IDisposable
{
    private readonly NativePacketPool _pool;

    public DiscardDevice(MacAddress mac, int mtu = 1500)
    {
        Capabilities = new DeviceCapabilities { Mtu = mtu, MacAddress = mac };
        _pool = new NativePacketPool(64, mtu + 14 + Capabilities.Headroom, Capabilities.Headroom);
    }

    public DeviceCapabilities Capabilities { get; }
    /// <summary>Frames the stack transmitted (and this device dropped).</summary>
    public long Discarded { get; private set; }

    public int Receive(Span<PacketBuf> burst) => 0;
    public int Allocate(Span<PacketBuf> burst) => _pool.Rent(burst);

    public int Transmit(ReadOnlySpan<PacketBuf> burst)
    {
        foreach (PacketBuf p in burst)
        {
            PacketBuf copy = p;
            _pool.Return(ref copy);
        }
        Discarded += burst.Length;
        return burst.Length;
    }

    public void Free(ref PacketBuf packet) => _pool.Return(ref packet);
    public void Dispose() => _pool.Dispose();
}
