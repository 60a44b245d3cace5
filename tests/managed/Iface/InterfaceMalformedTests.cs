using System;
using UserTcp.Stack;
using UserTcp.Stack.Iface;
using UserTcp.Stack.Phy;
using UserTcp.Stack.Wire;
using Xunit;
using static UserTcp.Tests.Iface.IfaceTestUtil;
using static UserTcp.Tests.Phy.PhyTestUtil;

namespace UserTcp.Tests.Iface;

/// <summary>Every kind of bad frame is dropped under its own reason; nothing throws, nothing leaks.</summary>
public class InterfaceMalformedTests
{
    private static byte[] Udp => Ipv4Frame(MacA, MacB, IpB, IpA, IpProtocol.Udp, new byte[12]);
    private static byte[] Icmp(ReadOnlySpan<byte> message) => Ipv4Frame(MacA, MacB, IpB, IpA, IpProtocol.Icmp, message);

    private static byte[] Tcp => Ipv4Frame(MacA, MacB, IpB, IpA, IpProtocol.Tcp, new byte[20]);

    /// <summary>Applies a change to an IPv4 frame and (optionally) refreshes the header checksum.</summary>
    private static byte[] IpMutated(Action<byte[]> change, bool refresh = true)
    {
        byte[] f = Tcp;
        change(f);
        if (refresh && (f[14] & 0xF) >= 5 && (f[14] & 0xF) * 4 + 14 <= f.Length) new Ipv4HeaderView(f.AsSpan(14)).FillChecksum();
        return f;
    }

    private static byte[] Echo(Action<byte[]> change)
    {
        byte[] m = new byte[12];
        IcmpView.EmitEcho(m, IcmpType.EchoRequest, 1, 1, new byte[4]);
        change(m);
        return Icmp(m);
    }

    public static TheoryData<string, byte[], DropReason> Cases() => new()
    {
        { "runt", new byte[10], DropReason.EthernetTruncated },
        { "other host's MAC", Ipv4Frame(new MacAddress(0x02_00_00_00_00_99), MacB, IpB, IpA, IpProtocol.Tcp, new byte[20]), DropReason.EthernetNotForUs },
        { "multicast MAC", Ipv4Frame(new MacAddress(0x01_00_5e_00_00_01), MacB, IpB, IpA, IpProtocol.Tcp, new byte[20]), DropReason.EthernetNotForUs },
        { "IPv6 ethertype", ((Func<byte[]>)(() => { byte[] f = Tcp; f[12] = 0x86; f[13] = 0xdd; return f; }))(), DropReason.EthernetUnknownType },
        { "ARP truncated", ArpFrame(ArpOperation.Request, MacAddress.Broadcast, MacB, IpB, MacAddress.Zero, IpA)[..30], DropReason.ArpMalformed },
        { "ARP hardware type 6", ((Func<byte[]>)(() => { byte[] f = ArpFrame(ArpOperation.Request, MacAddress.Broadcast, MacB, IpB, MacAddress.Zero, IpA); f[15] = 6; return f; }))(), DropReason.ArpUnsupported },
        { "ARP op 3", ((Func<byte[]>)(() => { byte[] f = ArpFrame(ArpOperation.Request, MacAddress.Broadcast, MacB, IpB, MacAddress.Zero, IpA); f[21] = 3; return f; }))(), DropReason.ArpUnsupported },
        { "ARP for someone else", ArpFrame(ArpOperation.Request, MacAddress.Broadcast, MacB, IpB, MacAddress.Zero, new Ipv4Address(10, 0, 0, 7)), DropReason.ArpNotForUs },
        { "ARP broadcast sender MAC", ArpFrame(ArpOperation.Request, MacAddress.Broadcast, MacAddress.Broadcast, IpB, MacAddress.Zero, IpA), DropReason.ArpMalformed },
        { "IPv4 truncated", Tcp[..30], DropReason.Ipv4Truncated },
        { "IPv4 version 6", IpMutated(f => f[14] = 0x65), DropReason.Ipv4BadVersion },
        { "IPv4 IHL 4", IpMutated(f => f[14] = 0x44, refresh: false), DropReason.Ipv4BadHeaderLength },
        { "IPv4 IHL past end", IpMutated(f => f[14] = 0x4f), DropReason.Ipv4Truncated },
        { "IPv4 total < header", IpMutated(f => f[17] = 10), DropReason.Ipv4BadTotalLength },
        { "IPv4 total > frame", IpMutated(f => f[17] = 200), DropReason.Ipv4Truncated },
        { "IPv4 bad checksum", IpMutated(f => f[24] ^= 0x55, refresh: false), DropReason.Ipv4BadChecksum },
        { "IPv4 MF", IpMutated(f => f[20] = 0x20), DropReason.Ipv4Fragment },
        { "IPv4 offset", IpMutated(f => f[21] = 0x10), DropReason.Ipv4Fragment },
        { "IPv4 to someone else", IpMutated(f => f[33] = 3), DropReason.Ipv4NotForUs },
        { "IPv4 broadcast source", IpMutated(f => f.AsSpan(26, 4).Fill(0xff)), DropReason.Ipv4BadSource },
        { "IPv4 our own source", IpMutated(f => f[29] = 1), DropReason.Ipv4BadSource },
        { "IPv4 loopback source", IpMutated(f => f[26] = 127), DropReason.Ipv4BadSource },
        { "IPv4 unknown protocol", Udp, DropReason.Ipv4UnknownProtocol },
        { "ICMP truncated", Icmp(new byte[7]), DropReason.IcmpMalformed },
        { "ICMP bad checksum", Echo(m => m[9] ^= 1), DropReason.IcmpBadChecksum },
        { "ICMP unsolicited echo reply", Echo(m => { m[0] = 0; new IcmpView(m).FillChecksum(); }), DropReason.IcmpUnsupported },
        { "ICMP timestamp request", Echo(m => { m[0] = 13; new IcmpView(m).FillChecksum(); }), DropReason.IcmpUnsupported },
        { "ICMP error with short quote", Echo(m => { m[0] = 3; m[1] = 3; new IcmpView(m).FillChecksum(); }), DropReason.IcmpMalformed },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void DroppedAndCounted(string name, byte[] frame, DropReason expected)
    {
        using MemoryLink link = NewIfaceLink();
        var c = new StackCounters();
        var a = NewInterface(link.A, IpA, c, gratuitous: false);
        var t = new FakeTransport();
        a.Transport = t;
        Assert.True(Send(link.B, frame), name);
        Assert.Equal(1, a.PollReceive(0));
        Assert.Equal(1, c.Drops(expected));
        Assert.Equal(1, c.TotalDrops);
        Assert.Empty(t.Segments);
        Assert.Empty(t.Errors);
        a.Dispose();
        Drain(link.B);
        Assert.Equal(0, link.A.Pool.Outstanding);
    }

    [Fact]
    public void ValidBaselineIsDelivered()
    {
        using MemoryLink link = NewIfaceLink();
        var c = new StackCounters();
        var a = NewInterface(link.A, IpA, c, gratuitous: false);
        var t = new FakeTransport();
        a.Transport = t;
        Send(link.B, Tcp);
        a.PollReceive(0);
        Assert.Single(t.Segments);
        Assert.Equal(0, c.TotalDrops);
        a.Dispose();
    }

    [Fact]
    public void RandomFramesNeverThrowOrLeak()
    {
        using MemoryLink link = NewIfaceLink(queue: 1024);
        var c = new StackCounters();
        var a = NewInterface(link.A, IpA, c);
        a.Transport = new FakeTransport();
        var rng = new Random(11);
        byte[] valid = Tcp;
        for (int i = 0; i < 5000; i++)
        {
            byte[] f;
            if (i % 2 == 0)
            {
                f = new byte[rng.Next(0, 100)];
                rng.NextBytes(f);
                if (f.Length >= 14 && rng.Next(2) == 0) { MacA.Write(f); f[12] = 0x08; f[13] = (byte)(rng.Next(2) == 0 ? 0 : 6); }
            }
            else
            {
                // A valid frame with a few random bytes changed (header checksum refreshed half the time).
                f = (byte[])valid.Clone();
                for (int k = 0; k < 3; k++) f[rng.Next(12, f.Length)] = (byte)rng.Next(256);
                if (rng.Next(2) == 0 && (f[14] & 0xF) >= 5 && (f[14] & 0xF) * 4 + 14 <= f.Length) new Ipv4HeaderView(f.AsSpan(14)).FillChecksum();
            }
            Send(link.B, f);
            a.PollReceive(i * 1000);
            a.PollTimers(i * 1000);
            Drain(link.B);
        }
        Assert.Equal(5000, c.RxPackets);
        a.Dispose();
        Assert.Equal(0, link.A.Pool.Outstanding);
    }
}
