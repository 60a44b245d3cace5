using System;
using UserTcp.Stack;
using UserTcp.Stack.Iface;
using UserTcp.Stack.Phy;
using UserTcp.Stack.Wire;
using Xunit;
using static UserTcp.Tests.Iface.IfaceTestUtil;

namespace UserTcp.Tests.Iface;

public class InterfaceAllocationTests
{
    private sealed class CountingTransport : IIpv4Transport
    {
        public long Bytes;
        public void Receive(in Ipv4Packet ip, Span<byte> payload, PacketOffloads rxFlags, long nowUs) => Bytes += payload.Length;
        public void ReceiveIcmpError(IcmpErrorKind kind, Ipv4Address reporter, ReadOnlySpan<byte> originalDatagram, int nextHopMtu, long nowUs) { }
    }

    private static void RoundTrip(Interface a, Interface b, long now)
    {
        a.TryAllocate(out PacketBuf p);
        p.SetLength(1000);
        a.SendIpv4(ref p, IpB, IpProtocol.Tcp, now);
        a.Flush();
        b.PollReceive(now);
        a.PollReceive(now);
        a.PollTimers(now);
    }

    [Fact]
    public void SteadyStateTransmitAndReceiveDoNotAllocate()
    {
        using MemoryLink link = NewIfaceLink();
        var a = NewInterface(link.A, IpA, new StackCounters());
        var b = NewInterface(link.B, IpB, new StackCounters());
        var t = new CountingTransport();
        b.Transport = t;
        for (int i = 0; i < 10; i++) RoundTrip(a, b, i); // ARP resolution and JIT warm-up
        // A full warm-up pass first (first calls may allocate once: lazy statics, tiering; a loaded machine once saw
        // it), then the measured pass.
        long allocated = 0;
        for (int pass = 0; pass < 2; pass++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 1000; i++) RoundTrip(a, b, 100 + i);
            allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        }

        Assert.Equal(0, allocated);
        Assert.Equal(2010 * 1000, t.Bytes); // 10 warm-up frames and two passes of 1,000, 1,000 B each
        a.Dispose();
        b.Dispose();
        Assert.Equal(0, link.A.Pool.Outstanding + link.B.Pool.Outstanding);
    }
}
