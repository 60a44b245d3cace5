using System;
using UserTcp.Stack;
using UserTcp.Stack.Iface;
using UserTcp.Stack.Phy;
using UserTcp.Stack.Wire;
using Xunit;
using static UserTcp.Tests.Iface.IfaceTestUtil;
using static UserTcp.Tests.Phy.PhyTestUtil;

namespace UserTcp.Tests.Iface;

/// <summary>The receive fast path (an IPv4 frame to our unicast MAC, the IPv4 fields read once) hands the transport
/// what the field-by-field path did, and every other frame still takes the general path.</summary>
public class InterfaceReceiveFastPathTests
{
    private static (StackCounters Counters, FakeTransport Transport) Deliver(byte[] frame)
    {
        using MemoryLink link = NewIfaceLink();
        var c = new StackCounters();
        var a = NewInterface(link.A, IpA, c, gratuitous: false);
        var t = new FakeTransport();
        a.Transport = t;
        Assert.True(Send(link.B, frame));
        Assert.Equal(1, a.PollReceive(0));
        a.Dispose();
        Drain(link.B);
        Assert.Equal(0, link.A.Pool.Outstanding);
        return (c, t);
    }

    [Fact]
    public void TcpToOurMacIsDeliveredWithItsFields()
    {
        byte[] payload = { 1, 2, 3, 4, 5 };
        byte[] f = Ipv4Frame(MacA, MacB, IpB, IpA, IpProtocol.Tcp, payload);
        Array.Resize(ref f, 60); // link padding: cut off by the total length
        var (c, t) = Deliver(f);
        Assert.Equal(0, c.TotalDrops);
        var (ip, got, _) = Assert.Single(t.Segments);
        Assert.Equal(IpB, ip.Source);
        Assert.Equal(IpA, ip.Destination);
        Assert.Equal(IpProtocol.Tcp, ip.Protocol);
        Assert.Equal(Ipv4HeaderView.DefaultTtl, ip.Ttl);
        Assert.Equal(25, ip.TotalLength);
        Assert.Equal(20, ip.HeaderLength);
        Assert.Equal(payload, got);
    }

    [Fact]
    public void HeaderWithOptionsIsDeliveredPastTheOptions()
    {
        byte[] payload = { 9, 8, 7 };
        byte[] f = new byte[14 + 24 + payload.Length];
        EthernetFrameView.Emit(f, MacA, MacB, EtherType.Ipv4);
        Ipv4HeaderView.Emit(f.AsSpan(14), IpB, IpA, IpProtocol.Tcp, 24 + payload.Length, 1, ttl: 33);
        var ip = new Ipv4HeaderView(f.AsSpan(14, 24 + payload.Length));
        ip.HeaderLength = 24;
        f[34] = 1; f[35] = 1; f[36] = 1; f[37] = 0; // NOP, NOP, NOP, EOL
        ip.FillChecksum();
        payload.CopyTo(f, 38);
        var (c, t) = Deliver(f);
        Assert.Equal(0, c.TotalDrops);
        var (p, got, _) = Assert.Single(t.Segments);
        Assert.Equal(24, p.HeaderLength);
        Assert.Equal(27, p.TotalLength);
        Assert.Equal(33, p.Ttl);
        Assert.Equal(payload, got);
    }

    public static TheoryData<string, byte[], DropReason> OffThePath() => new()
    {
        { "IPv4 in a link broadcast", Ipv4Frame(MacAddress.Broadcast, MacB, IpB, IpA, IpProtocol.Tcp, new byte[20]), DropReason.Ipv4NotForUs },
        { "MAC off by the last bit", Ipv4Frame(new MacAddress(MacA.Value ^ 1), MacB, IpB, IpA, IpProtocol.Tcp, new byte[20]), DropReason.EthernetNotForUs },
        { "MAC off in the first byte", Ipv4Frame(new MacAddress(MacA.Value ^ (4UL << 40)), MacB, IpB, IpA, IpProtocol.Tcp, new byte[20]), DropReason.EthernetNotForUs },
        { "our MAC, EtherType 0x0801", ((Func<byte[]>)(() => { byte[] f = Ipv4Frame(MacA, MacB, IpB, IpA, IpProtocol.Tcp, new byte[20]); f[13] = 1; return f; }))(), DropReason.EthernetUnknownType },
        { "our MAC, 13 bytes", Ipv4Frame(MacA, MacB, IpB, IpA, IpProtocol.Tcp, new byte[20])[..13], DropReason.EthernetTruncated },
        { "our MAC, ARP for someone else", ArpFrame(ArpOperation.Request, MacA, MacB, IpB, MacAddress.Zero, new Ipv4Address(10, 0, 0, 7)), DropReason.ArpNotForUs },
    };

    [Theory]
    [MemberData(nameof(OffThePath))]
    public void OtherFramesTakeTheGeneralPath(string name, byte[] frame, DropReason expected)
    {
        var (c, t) = Deliver(frame);
        Assert.True(c.Drops(expected) == 1, name);
        Assert.Equal(1, c.TotalDrops);
        Assert.Empty(t.Segments);
    }
}
