using System;
using System.Buffers.Binary;
using UserTcp.Stack;
using UserTcp.Stack.Iface;
using UserTcp.Stack.Phy;
using UserTcp.Stack.Wire;
using Xunit;
using static UserTcp.Tests.Iface.IfaceTestUtil;
using static UserTcp.Tests.Phy.PhyTestUtil;

namespace UserTcp.Tests.Iface;

/// <summary>IPv6 on the interface: addresses, neighbour discovery, echo, and malformed packets as counted drops.</summary>
public class InterfaceIpv6Tests
{
    private static readonly Ipv6Address Ip6A = Ipv6Address.Parse("2001:db8::a");
    private static readonly Ipv6Address Ip6B = Ipv6Address.Parse("2001:db8::b");

    [Theory]
    [InlineData("::", "::")]
    [InlineData("::1", "::1")]
    [InlineData("2001:db8::2", "2001:db8::2")]
    [InlineData("2001:0DB8:0000:0000:0000:0000:0000:0002", "2001:db8::2")]
    [InlineData("fe80::1:0:0:5", "fe80::1:0:0:5")]
    [InlineData("1:0:0:2:0:0:0:3", "1:0:0:2::3")]
    [InlineData("::ffff:198.18.0.2", "::ffff:c612:2")]
    [InlineData("ff02::1:ff00:2", "ff02::1:ff00:2")]
    [InlineData("1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8")]
    [InlineData("1::", "1::")]
    public void AddressesParseAndFormat(string text, string canonical)
    {
        Assert.True(Ipv6Address.TryParse(text, out Ipv6Address a), text);
        Assert.Equal(canonical, a.ToString());
        Assert.Equal(a, Ipv6Address.Parse(canonical));
    }

    [Theory]
    [InlineData("")]
    [InlineData(":")]
    [InlineData(":::")]
    [InlineData("1::2::3")]
    [InlineData("1:2:3:4:5:6:7")]
    [InlineData("1:2:3:4:5:6:7:8:9")]
    [InlineData("12345::")]
    [InlineData("1:")]
    [InlineData("g::1")]
    [InlineData("::1.2.3")]
    [InlineData("1.2.3.4::")]
    public void BadAddressesAreRefused(string text) => Assert.False(Ipv6Address.TryParse(text, out _), text);

    [Fact]
    public void DerivedAddresses()
    {
        Ipv6Address a = Ipv6Address.Parse("2001:db8::12:3456");
        Assert.Equal(Ipv6Address.Parse("ff02::1:ff12:3456"), a.SolicitedNode);
        Assert.Equal(new MacAddress(0x3333_ff12_3456), a.SolicitedNode.MulticastMac);
        Assert.True(a.InSubnet(Ipv6Address.Parse("2001:db8::"), 64));
        Assert.False(a.InSubnet(Ipv6Address.Parse("2001:db9::"), 32));
        Assert.True(Ipv6Address.Parse("::ffff:1.2.3.4").IsV4Mapped);
    }

    /// <summary>An Ethernet + IPv6 + ICMPv6 frame with a correct checksum (unless <paramref name="fixup"/> breaks it).</summary>
    private static byte[] Icmp6Frame(MacAddress ethDst, MacAddress ethSrc, Ipv6Address src, Ipv6Address dst, byte[] msg,
        byte hopLimit = 255, Action<byte[]>? fixup = null)
    {
        byte[] f = new byte[14 + 40 + msg.Length];
        EthernetFrameView.Emit(f, ethDst, ethSrc, Ipv6HeaderView.EtherType);
        Ipv6HeaderView.Emit(f.AsSpan(14), src, dst, Ipv6NextHeader.Icmpv6, msg.Length, hopLimit);
        msg.CopyTo(f.AsSpan(54));
        Icmpv6.FillChecksum(f.AsSpan(54), src, dst);
        fixup?.Invoke(f);
        return f;
    }

    /// <summary>A 20-byte TCP segment from port 40000 to 8000 over IPv6, checksummed.</summary>
    private static byte[] Tcp6Frame(Ipv6Address src, Ipv6Address dst, TcpFlags flags, uint seq, uint ack, Action<byte[]>? fixup = null, int payload = 0)
    {
        byte[] f = new byte[14 + 40 + 20 + payload];
        EthernetFrameView.Emit(f, MacA, MacB, Ipv6HeaderView.EtherType);
        Ipv6HeaderView.Emit(f.AsSpan(14), src, dst, Ipv6NextHeader.Tcp, 20 + payload, 64);
        Span<byte> seg = f.AsSpan(54);
        TcpHeaderView.Emit(seg, 40000, 8000, seq, ack, flags, 65535, 20);
        new TcpHeaderView(seg).Checksum = Ipv6HeaderView.UpperLayerChecksum(src, dst, Ipv6NextHeader.Tcp, seg);
        fixup?.Invoke(f);
        return f;
    }

    private static byte[] Solicitation(Ipv6Address target, MacAddress? sourceMac)
    {
        byte[] m = new byte[24 + (sourceMac is null ? 0 : 8)];
        m[0] = Icmpv6Type.NeighborSolicitation;
        target.Write(m.AsSpan(8));
        if (sourceMac is { } mac)
        {
            m[24] = 1;
            m[25] = 1;
            mac.Write(m.AsSpan(26));
        }
        return m;
    }

    private static byte[] EchoRequest(ushort id, ushort seq, byte[] data)
    {
        byte[] m = new byte[8 + data.Length];
        m[0] = Icmpv6Type.EchoRequest;
        BinaryPrimitives.WriteUInt16BigEndian(m.AsSpan(4), id);
        BinaryPrimitives.WriteUInt16BigEndian(m.AsSpan(6), seq);
        data.CopyTo(m.AsSpan(8));
        return m;
    }

    private static (MemoryLink Link, Interface A, StackCounters Counters) NewIpv6Interface()
    {
        MemoryLink link = NewIfaceLink();
        var c = new StackCounters();
        Interface a = NewInterface(link.A, IpA, c, gratuitous: false);
        a.EnableIpv6(Ip6A, 64);
        return (link, a, c);
    }

    [Fact]
    public void SolicitationIsAnsweredWithOurLinkLayerAddress()
    {
        (MemoryLink link, Interface a, StackCounters c) = NewIpv6Interface();
        using MemoryLink owned = link;
        Send(link.B, Icmp6Frame(Ip6A.SolicitedNode.MulticastMac, MacB, Ip6B, Ip6A.SolicitedNode, Solicitation(Ip6A, MacB)));
        a.PollReceive(0);
        byte[] f = Assert.Single(Drain(link.B));
        var eth = new EthernetFrameView(f);
        Assert.Equal(MacB, eth.Destination);
        Assert.Equal(MacA, eth.Source);
        Assert.Equal(Ipv6HeaderView.EtherType, eth.EtherType);
        Assert.True(Ipv6HeaderView.TryParse(f.AsSpan(14), out Ipv6HeaderView ip, out _));
        Assert.Equal(Ip6A, ip.Source);
        Assert.Equal(Ip6B, ip.Destination);
        Assert.Equal(255, ip.HopLimit);
        Assert.Equal(Ipv6NextHeader.Icmpv6, ip.NextHeader);
        Span<byte> msg = ip.Payload;
        Assert.Equal(32, msg.Length);
        Assert.True(Icmpv6.ChecksumValid(msg, Ip6A, Ip6B));
        Assert.Equal(Icmpv6Type.NeighborAdvertisement, msg[0]);
        Assert.Equal(0x60, msg[4]); // solicited + override, not a router
        Assert.Equal(Ip6A, Ipv6Address.Read(msg[8..]));
        Assert.Equal(2, msg[24]); // target link-layer address option
        Assert.Equal(MacA, MacAddress.Read(msg[26..]));
        Assert.Equal(1, c.NeighborAdvertisements);
        Assert.Equal(0, c.TotalDrops);
        a.Dispose();
        Assert.Equal(0, link.A.Pool.Outstanding);
    }

    [Fact]
    public void DuplicateAddressProbeIsDefendedToAllNodes()
    {
        (MemoryLink link, Interface a, StackCounters c) = NewIpv6Interface();
        using MemoryLink owned = link;
        Send(link.B, Icmp6Frame(Ip6A.SolicitedNode.MulticastMac, MacB, Ipv6Address.Any, Ip6A.SolicitedNode, Solicitation(Ip6A, null)));
        a.PollReceive(0);
        byte[] f = Assert.Single(Drain(link.B));
        Assert.Equal(new MacAddress(0x3333_0000_0001), new EthernetFrameView(f).Destination);
        Assert.True(Ipv6HeaderView.TryParse(f.AsSpan(14), out Ipv6HeaderView ip, out _));
        Assert.Equal(Ipv6Address.AllNodes, ip.Destination);
        Assert.Equal(0x20, ip.Payload[4]); // override only: not solicited
        Assert.Equal(0, c.TotalDrops);
    }

    private static byte[] Advertisement(Ipv6Address target, MacAddress mac, bool solicited)
    {
        byte[] m = new byte[32];
        m[0] = Icmpv6Type.NeighborAdvertisement;
        m[4] = (byte)(solicited ? 0x60 : 0x20);
        target.Write(m.AsSpan(8));
        m[24] = 2;
        m[25] = 1;
        mac.Write(m.AsSpan(26));
        return m;
    }

    [Fact]
    public void EchoReplyWaitsForNeighbourResolution()
    {
        (MemoryLink link, Interface a, StackCounters c) = NewIpv6Interface();
        using MemoryLink owned = link;
        byte[] data = new byte[56];
        new Random(7).NextBytes(data);
        Send(link.B, Icmp6Frame(MacA, MacB, Ip6B, Ip6A, EchoRequest(0x1234, 9, data), hopLimit: 64));
        a.PollReceive(0);
        // B is unknown: a multicast solicitation goes out and the reply waits.
        byte[] ns = Assert.Single(Drain(link.B));
        Assert.Equal(Ip6B.SolicitedNode.MulticastMac, new EthernetFrameView(ns).Destination);
        Assert.True(Ipv6HeaderView.TryParse(ns.AsSpan(14), out Ipv6HeaderView nsIp, out _));
        Assert.Equal(Ip6B.SolicitedNode, nsIp.Destination);
        Assert.Equal(255, nsIp.HopLimit);
        Span<byte> nsMsg = nsIp.Payload;
        Assert.True(Icmpv6.ChecksumValid(nsMsg, Ip6A, Ip6B.SolicitedNode));
        Assert.Equal(Icmpv6Type.NeighborSolicitation, nsMsg[0]);
        Assert.Equal(Ip6B, Ipv6Address.Read(nsMsg[8..]));
        Assert.Equal(1, nsMsg[24]); // source link-layer address option
        Assert.Equal(MacA, MacAddress.Read(nsMsg[26..]));
        Assert.Equal(1, a.NeighborQueuedFrames);
        Assert.Equal(1_000_000, a.PollAt());

        Send(link.B, Icmp6Frame(MacA, MacB, Ip6B, Ip6A, Advertisement(Ip6B, MacB, solicited: true)));
        a.PollReceive(10);
        Assert.Equal(0, a.NeighborQueuedFrames);
        Assert.Equal(long.MaxValue, a.PollAt());
        byte[] f = Assert.Single(Drain(link.B));
        Assert.Equal(MacB, new EthernetFrameView(f).Destination);
        Assert.True(Ipv6HeaderView.TryParse(f.AsSpan(14), out Ipv6HeaderView ip, out _));
        Assert.Equal(Ip6B, ip.Destination);
        Span<byte> msg = ip.Payload;
        Assert.True(Icmpv6.ChecksumValid(msg, Ip6A, Ip6B));
        Assert.Equal(Icmpv6Type.EchoReply, msg[0]);
        Assert.Equal(0x1234, BinaryPrimitives.ReadUInt16BigEndian(msg[4..]));
        Assert.Equal(9, BinaryPrimitives.ReadUInt16BigEndian(msg[6..]));
        Assert.Equal(data, msg[8..].ToArray());
        Assert.Equal(1, c.IcmpEchoReplies);
        Assert.Equal(0, c.TotalDrops);

        // Known now: the next reply leaves at once.
        Send(link.B, Icmp6Frame(MacA, MacB, Ip6B, Ip6A, EchoRequest(0x1234, 10, data), hopLimit: 64));
        a.PollReceive(20);
        Assert.Equal(Icmpv6Type.EchoReply, Assert.Single(Drain(link.B))[54]);
        a.Dispose();
        Assert.Equal(0, link.A.Pool.Outstanding);
    }

    [Fact]
    public void SolicitationTeachesUsTheSender()
    {
        (MemoryLink link, Interface a, StackCounters c) = NewIpv6Interface();
        using MemoryLink owned = link;
        Send(link.B, Icmp6Frame(Ip6A.SolicitedNode.MulticastMac, MacB, Ip6B, Ip6A.SolicitedNode, Solicitation(Ip6A, MacB)));
        Send(link.B, Icmp6Frame(MacA, MacB, Ip6B, Ip6A, EchoRequest(1, 1, new byte[8])));
        a.PollReceive(0);
        var frames = Drain(link.B);
        Assert.Equal(2, frames.Count); // the advertisement and the reply, no solicitation of ours
        Assert.Equal(Icmpv6Type.NeighborAdvertisement, frames[0][54]);
        Assert.Equal(Icmpv6Type.EchoReply, frames[1][54]);
        Assert.Equal(MacB, new EthernetFrameView(frames[1]).Destination);
        Assert.Equal(0, c.NeighborSolicitations);
        Assert.Equal(0, c.TotalDrops);
    }

    [Fact]
    public void ResolutionIsRetriedThenGivenUp()
    {
        (MemoryLink link, Interface a, StackCounters c) = NewIpv6Interface();
        using MemoryLink owned = link;
        Send(link.B, Icmp6Frame(MacA, MacB, Ip6B, Ip6A, EchoRequest(1, 1, new byte[8])));
        a.PollReceive(0);
        Assert.Single(Drain(link.B));
        a.PollTimers(1_000_000);
        Assert.Single(Drain(link.B));
        a.PollTimers(2_000_000);
        Assert.Single(Drain(link.B));
        Assert.Equal(3, c.NeighborSolicitations);
        a.PollTimers(3_000_000);
        Assert.Empty(Drain(link.B));
        Assert.Equal(1, c.Drops(DropReason.NdResolutionFailed));
        Assert.Equal(1, a.NeighborFailures);
        Assert.Equal(0, a.NeighborQueuedFrames);
        Assert.Equal(long.MaxValue, a.PollAt());
        a.Dispose();
        Assert.Equal(0, link.A.Pool.Outstanding);
    }

    [Fact]
    public void TcpOverIpv6IsRefusedWithAReset()
    {
        (MemoryLink link, Interface a, StackCounters c) = NewIpv6Interface();
        using MemoryLink owned = link;
        Send(link.B, Icmp6Frame(Ip6A.SolicitedNode.MulticastMac, MacB, Ip6B, Ip6A.SolicitedNode, Solicitation(Ip6A, MacB)));
        a.PollReceive(0);
        Drain(link.B);
        // A SYN: RST|ACK acknowledging it (RFC 793, CLOSED state, no ACK in the segment).
        Send(link.B, Tcp6Frame(Ip6B, Ip6A, TcpFlags.Syn, 1000, 0));
        // An ACK with data: RST with the segment's ACK as its sequence number.
        Send(link.B, Tcp6Frame(Ip6B, Ip6A, TcpFlags.Ack | TcpFlags.Psh, 5000, 777, payload: 10));
        a.PollReceive(1);
        var frames = Drain(link.B);
        Assert.Equal(2, frames.Count);
        Assert.True(Ipv6HeaderView.TryParse(frames[0].AsSpan(14), out Ipv6HeaderView ip, out _));
        Assert.Equal(Ip6A, ip.Source);
        Assert.Equal(Ip6B, ip.Destination);
        Assert.Equal(Ipv6NextHeader.Tcp, ip.NextHeader);
        Assert.Equal(0, Ipv6HeaderView.UpperLayerChecksum(Ip6A, Ip6B, Ipv6NextHeader.Tcp, ip.Payload));
        var rst = new TcpHeaderView(ip.Payload);
        Assert.Equal(8000, rst.SourcePort);
        Assert.Equal(40000, rst.DestinationPort);
        Assert.Equal(TcpFlags.Rst | TcpFlags.Ack, rst.Flags);
        Assert.Equal(0u, rst.SequenceNumber);
        Assert.Equal(1001u, rst.AckNumber);
        Assert.True(Ipv6HeaderView.TryParse(frames[1].AsSpan(14), out Ipv6HeaderView ip2, out _));
        var rst2 = new TcpHeaderView(ip2.Payload);
        Assert.Equal(TcpFlags.Rst, rst2.Flags);
        Assert.Equal(777u, rst2.SequenceNumber);
        Assert.Equal(2, c.TcpRstSent);
        Assert.Equal(2, c.Drops(DropReason.TcpNoSocket));
        a.Dispose();
        Assert.Equal(0, link.A.Pool.Outstanding);
    }

    [Fact]
    public void SendIpv6RoutesOnlyOnLink()
    {
        (MemoryLink link, Interface a, StackCounters c) = NewIpv6Interface();
        using MemoryLink owned = link;
        foreach (string dst in new[] { "2001:db9::1", "ff02::1", "::1", "2001:db8::a" })
        {
            Assert.True(a.TryAllocate(out PacketBuf p));
            p.SetLength(8);
            a.SendIpv6(ref p, Ipv6Address.Parse(dst), Ipv6NextHeader.Icmpv6, 0);
        }
        Assert.Equal(4, c.Drops(DropReason.Ipv6NoRoute));
        Assert.True(a.TryAllocate(out PacketBuf big));
        big.SetLength(1500 - 40 + 1);
        a.SendIpv6(ref big, Ip6B, Ipv6NextHeader.Icmpv6, 0);
        Assert.Equal(1, c.Drops(DropReason.Ipv6TooBig));
        a.Flush();
        Assert.Empty(Drain(link.B));
        a.Dispose();
        Assert.Equal(0, link.A.Pool.Outstanding);
    }

    [Fact]
    public void WithoutAnAddressIpv6IsDroppedAsBefore()
    {
        using MemoryLink link = NewIfaceLink();
        var c = new StackCounters();
        Interface a = NewInterface(link.A, IpA, c, gratuitous: false);
        Send(link.B, Icmp6Frame(MacA, MacB, Ip6B, Ip6A, EchoRequest(1, 1, new byte[4])));
        Send(link.B, Icmp6Frame(Ip6A.SolicitedNode.MulticastMac, MacB, Ip6B, Ip6A.SolicitedNode, Solicitation(Ip6A, MacB)));
        a.PollReceive(0);
        Assert.Empty(Drain(link.B));
        Assert.Equal(1, c.Drops(DropReason.EthernetUnknownType));
        Assert.Equal(1, c.Drops(DropReason.EthernetNotForUs));
        Assert.Throws<ArgumentException>(() => a.EnableIpv6(Ipv6Address.Parse("::ffff:1.2.3.4"), 64));
        Assert.Throws<ArgumentException>(() => a.EnableIpv6(Ipv6Address.AllNodes, 64));
    }

    public static TheoryData<string, byte[], DropReason> Malformed()
    {
        MacAddress sol = Ip6A.SolicitedNode.MulticastMac;
        byte[] ns = Solicitation(Ip6A, MacB);
        byte[] echo = EchoRequest(1, 2, new byte[8]);
        byte[] Frame(byte[] msg, Action<byte[]>? fix = null, byte hop = 255, Ipv6Address? src = null, Ipv6Address? dst = null, MacAddress? ethDst = null) =>
            Icmp6Frame(ethDst ?? MacA, MacB, src ?? Ip6B, dst ?? Ip6A, msg, hop, fix);
        return new()
        {
            { "IPv6 header cut short", Frame(echo)[..40], DropReason.Ipv6Truncated },
            { "version 4 in an IPv6 frame", Frame(echo, f => f[14] = 0x45), DropReason.Ipv6BadVersion },
            { "payload length past the frame", Frame(echo, f => BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(18), 400)), DropReason.Ipv6BadPayloadLength },
            { "multicast source", Frame(echo, src: Ipv6Address.AllNodes), DropReason.Ipv6BadSource },
            { "our own address as source", Frame(echo, src: Ip6A), DropReason.Ipv6BadSource },
            { "IPv4-mapped source", Frame(echo, src: Ipv6Address.Parse("::ffff:10.0.0.2")), DropReason.Ipv6BadSource },
            { "another host's address", Frame(echo, dst: Ip6B), DropReason.Ipv6NotForUs },
            { "another group", Frame(echo, dst: Ipv6Address.Parse("ff02::2"), ethDst: new MacAddress(0x3333_0000_0001)), DropReason.Ipv6NotForUs },
            { "TCP header with data offset 0", Frame(new byte[20], f => f[20] = Ipv6NextHeader.Tcp), DropReason.TcpBadHeaderLength },
            { "TCP segment cut short", Frame(new byte[12], f => f[20] = Ipv6NextHeader.Tcp), DropReason.TcpTruncated },
            { "TCP with a bad checksum", Tcp6Frame(Ip6B, Ip6A, TcpFlags.Syn, 1, 0, f => f[70] ^= 1), DropReason.TcpBadChecksum },
            { "a reset is never answered", Tcp6Frame(Ip6B, Ip6A, TcpFlags.Rst, 1, 0), DropReason.TcpNoSocket },
            { "UDP over IPv6", Frame(new byte[8], f => f[20] = 17), DropReason.Ipv6UnknownProtocol },
            { "hop-by-hop extension header", Frame(echo, f => f[20] = 0), DropReason.Ipv6UnknownProtocol },
            { "ICMPv6 shorter than its header", Frame(new byte[4], f => BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(18), 2)), DropReason.Icmpv6Malformed },
            { "bad ICMPv6 checksum", Frame(echo, f => f[56] ^= 0xff), DropReason.Icmpv6BadChecksum },
            { "echo with a code", Frame(EchoRequest(1, 2, new byte[2]).AsSpan().ToArray().Also(m => m[1] = 1)), DropReason.Icmpv6Malformed },
            { "echo request to all nodes", Frame(echo, dst: Ipv6Address.AllNodes, ethDst: new MacAddress(0x3333_0000_0001)), DropReason.Icmpv6Unsupported },
            { "router advertisement", Frame(new byte[16].Also(m => m[0] = Icmpv6Type.RouterAdvertisement)), DropReason.Icmpv6Unsupported },
            { "echo reply we never asked for", Frame(echo.AsSpan().ToArray().Also(m => m[0] = Icmpv6Type.EchoReply)), DropReason.Icmpv6Unsupported },
            { "solicitation with hop limit 64", Frame(ns, hop: 64, dst: Ip6A.SolicitedNode, ethDst: sol), DropReason.NdMalformed },
            { "solicitation too short", Frame(ns[..20], dst: Ip6A.SolicitedNode, ethDst: sol), DropReason.NdMalformed },
            { "solicitation option of length 0", Frame(ns.AsSpan().ToArray().Also(m => m[25] = 0), dst: Ip6A.SolicitedNode, ethDst: sol), DropReason.NdMalformed },
            { "solicitation option past the end", Frame(ns.AsSpan().ToArray().Also(m => m[25] = 2), dst: Ip6A.SolicitedNode, ethDst: sol), DropReason.NdMalformed },
            { "DAD probe with a source link-layer option", Frame(ns, src: Ipv6Address.Any, dst: Ip6A.SolicitedNode, ethDst: sol), DropReason.NdMalformed },
            { "DAD probe sent unicast", Frame(Solicitation(Ip6A, null), src: Ipv6Address.Any), DropReason.NdMalformed },
            { "solicitation for a multicast target", Frame(Solicitation(Ipv6Address.AllNodes, MacB)), DropReason.NdMalformed },
            { "solicitation for another address", Frame(Solicitation(Ip6B, MacB), dst: Ip6B.SolicitedNode, ethDst: Ip6B.SolicitedNode.MulticastMac), DropReason.EthernetNotForUs },
            { "solicitation for another address, unicast", Frame(Solicitation(Ip6B, MacB)), DropReason.NdNotForUs },
            { "advertisement with hop limit 64", Frame(Advertisement(Ip6B, MacB, true), hop: 64), DropReason.NdMalformed },
            { "solicited advertisement to all nodes", Frame(Advertisement(Ip6B, MacB, true), dst: Ipv6Address.AllNodes, ethDst: new MacAddress(0x3333_0000_0001)), DropReason.NdMalformed },
            { "advertisement too short", Frame(Advertisement(Ip6B, MacB, true)[..20]), DropReason.NdMalformed },
            { "advertisement about a neighbour we never asked for", Frame(Advertisement(Ip6B, MacB, true)), DropReason.Icmpv6Unsupported },
        };
    }

    [Theory]
    [MemberData(nameof(Malformed))]
    public void MalformedPacketsAreCountedDrops(string name, byte[] frame, DropReason reason)
    {
        (MemoryLink link, Interface a, StackCounters c) = NewIpv6Interface();
        using MemoryLink owned = link;
        Assert.True(Send(link.B, frame), name);
        a.PollReceive(0);
        Assert.Empty(Drain(link.B));
        Assert.Equal(1, c.Drops(reason));
        Assert.Equal(1, c.TotalDrops);
        a.Dispose();
        Assert.Equal(0, link.A.Pool.Outstanding);
    }

    [Fact]
    public void RandomIpv6FramesNeverThrowAndAreAllAccountedFor()
    {
        (MemoryLink link, Interface a, StackCounters c) = NewIpv6Interface();
        using MemoryLink owned = link;
        var rng = new Random(1234);
        byte[] good = Icmp6Frame(MacA, MacB, Ip6B, Ip6A, EchoRequest(1, 1, new byte[16]));
        byte[] goodNs = Icmp6Frame(Ip6A.SolicitedNode.MulticastMac, MacB, Ip6B, Ip6A.SolicitedNode, Solicitation(Ip6A, MacB));
        Assert.True(Send(link.B, goodNs)); // B is known from here on: replies do not wait for resolution
        a.PollReceive(0);
        Drain(link.B);
        long seeded = c.NeighborAdvertisements;
        int frames = 20_000;
        for (int i = 0; i < frames; i++)
        {
            byte[] f = (i % 2 == 0 ? good : goodNs).AsSpan().ToArray();
            // Flip a few bytes after the Ethernet header (so most frames still reach the IPv6 code), or truncate.
            int flips = 1 + rng.Next(4);
            for (int k = 0; k < flips; k++) f[14 + rng.Next(f.Length - 14)] = (byte)rng.Next(256);
            if (rng.Next(4) == 0) f = f[..(14 + rng.Next(f.Length - 14))];
            Assert.True(Send(link.B, f));
            a.PollReceive(0);
            Drain(link.B);
        }
        // Every frame is either answered (a flip that left it valid) or a counted drop.
        long answered = c.IcmpEchoReplies + c.NeighborAdvertisements - seeded;
        Assert.Equal(frames, answered + c.TotalDrops);
        a.Dispose();
        Assert.Equal(0, link.A.Pool.Outstanding);
    }
}

internal static class ArrayExtensions
{
    public static T[] Also<T>(this T[] a, Action<T[]> change)
    {
        change(a);
        return a;
    }
}
