using System;

namespace UserTcp.Stack.Phy;

/// <summary>
/// Two <see cref="IDevice"/> ends joined by an in-memory wire. A frame transmitted on one end is copied into a buffer
/// from the other end's pool and queued for its <see cref="IDevice.Receive"/>. Each end has its own
/// <see cref="NativePacketPool"/>, so a leak on either side shows in that end's <see cref="MemoryLinkEnd.Pool"/>.
/// Transmit offloads are emulated the way a NIC does them (the wire carries correct checksums), and receive offloads
/// verify the checksums and set the "good" flags. Not thread-safe.
/// </summary>
public sealed class MemoryLink : IDisposable
{
    public MemoryLink(MemoryLinkConfig a, MemoryLinkConfig b)
    {
        A = new MemoryLinkEnd(a);
        B = new MemoryLinkEnd(b);
        A.Peer = B;
        B.Peer = A;
    }

    public MemoryLinkEnd A { get; }
    public MemoryLinkEnd B { get; }

    public void Dispose()
    {
        A.Dispose();
        B.Dispose();
    }
}
