using System.IO;
using UserTcp.Stack;
using UserTcp.Stack.Iface;
using UserTcp.Stack.Phy;
using UserTcp.Stack.Wire;
using Xunit;
using static UserTcp.Tests.Iface.IfaceTestUtil;

namespace UserTcp.Tests.Iface;

public class InterfaceCompositionTests
{
    [Fact]
    public void AllocatedBufferCanBeFreedUnsent()
    {
        using MemoryLink link = NewIfaceLink();
        var a = NewInterface(link.A, IpA, new StackCounters());
        Assert.True(a.TryAllocate(out PacketBuf p));
        a.Free(ref p);
        Assert.Equal(default, p.Handle);
        a.Dispose();
        Assert.Equal(0, link.A.Pool.Outstanding);
    }

    [Fact]
    public void WorksOverFaultInjectorAndPcapWrappers()
    {
        using MemoryLink link = NewIfaceLink();
        var faults = new FaultInjectingDevice(link.B, new FaultConfig { LossPercent = 30 }, seed: 4);
        var capture = new MemoryStream();
        var pcap = new PcapDevice(faults, capture);
        var ca = new StackCounters();
        var a = NewInterface(link.A, IpA, ca);
        var b = NewInterface(pcap, IpB, new StackCounters());
        var t = new FakeTransport();
        b.Transport = t;

        // Lossy path A -> B: ARP retries get through eventually; count what arrives.
        long now = 0;
        for (int i = 0; i < 50; i++, now += 10_000)
        {
            SendPayload(a, IpB, IpProtocol.Tcp, new byte[] { (byte)i }, now);
            a.Flush();
            faults.NowUs = pcap.NowUs = now;
            Pump(now, a, b);
            if (a.PollAt() <= now + 10_000) a.PollTimers(a.PollAt());
        }
        Assert.True(faults.Lost > 0);
        Assert.InRange(t.Segments.Count, 10, 50 - (int)faults.Lost + 5);
        // Every frame B received or sent is in the capture.
        Assert.True(capture.Length > PcapDevice.FileHeaderLength + t.Segments.Count * (PcapDevice.RecordHeaderLength + 35));
        a.Dispose();
        b.Dispose();
        faults.Dispose();
        Assert.Equal(0, link.A.Pool.Outstanding + link.B.Pool.Outstanding);
    }
}
