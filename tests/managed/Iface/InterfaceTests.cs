using System;
using System.Collections.Generic;
using System.Linq;
using UserTcp.Stack;
using UserTcp.Stack.Iface;
using UserTcp.Stack.Phy;
using UserTcp.Stack.Wire;
using Xunit;
using static UserTcp.Tests.Iface.IfaceTestUtil;
using static UserTcp.Tests.Phy.PhyTestUtil;

namespace UserTcp.Tests.Iface;

public class InterfaceTests
{
    [Fact]
    public void ArpResolvesBothWaysAndQueuedPacketIsDelivered()
    {
        using MemoryLink link = NewIfaceLink();
        var ca = new StackCounters();
        var cb = new StackCounters();
        var a = NewInterface(link.A, IpA, ca);
        var b = NewInterface(link.B, IpB, cb);
        var tb = new FakeTransport();
        var ta = new FakeTransport();
        b.Transport = tb;
        a.Transport = ta;
        a.Start(0);
        b.Start(0);
        Pump(0, a, b); // gratuitous ARPs: nobody has entries yet, so nothing is learned

        SendPayload(a, IpB, IpProtocol.Tcp, "hello"u8, 10);
        Assert.Equal(1, a.ArpQueuedFrames);
        Assert.Equal(10 + 1_000_000, a.PollAt());
        Pump(10, a, b);
        Assert.Equal(0, a.ArpQueuedFrames);
        Assert.Equal(long.MaxValue, a.PollAt());
        var seg = Assert.Single(tb.Segments);
        Assert.Equal("hello", System.Text.Encoding.ASCII.GetString(seg.Payload));
        Assert.Equal(IpA, seg.Ip.Source);
        Assert.Equal(IpB, seg.Ip.Destination);
        Assert.Equal(IpProtocol.Tcp, seg.Ip.Protocol);
        Assert.Equal(64, seg.Ip.Ttl);
        Assert.Equal(25, seg.Ip.TotalLength);
        Assert.Equal(20, seg.Ip.HeaderLength);

        // B learned A from A's request (it was the target): its answer needs no ARP.
        long bTx = link.B.TxFrames;
        SendPayload(b, IpA, IpProtocol.Tcp, "world"u8, 20);
        b.Flush();
        Assert.Equal(bTx + 1, link.B.TxFrames);
        Pump(20, a, b);
        Assert.Equal("world", System.Text.Encoding.ASCII.GetString(Assert.Single(ta.Segments).Payload));

        Assert.Equal(0, ca.TotalDrops - ca.Drops(DropReason.ArpNotForUs));
        Assert.Equal(0, cb.TotalDrops - cb.Drops(DropReason.ArpNotForUs));
        a.Dispose();
        b.Dispose();
        Assert.Equal(0, link.A.Pool.Outstanding);
        Assert.Equal(0, link.B.Pool.Outstanding);
    }

    [Fact]
    public void SendsReuseTheLastDestinationsHeadersUntilItsNeighbourChangesOrExpires()
    {
        using MemoryLink link = NewIfaceLink();
        var c = new StackCounters();
        var a = NewInterface(link.A, IpA, c, gratuitous: false);
        var macB2 = new MacAddress(0x02_00_00_00_00_0c);
        // B asks for A: A learns B (it is the target) and answers.
        Send(link.B, ArpFrame(ArpOperation.Request, MacAddress.Broadcast, MacB, IpB, MacAddress.Zero, IpA));
        a.PollReceive(0);
        Assert.Single(Drain(link.B));
        ushort id = 0;
        var rng = new Random(5);
        // Frames byte for byte as the routed path writes them (Ipv4Frame emits the same headers field by field):
        // the first send builds the template, the others use it; IDs count up, the checksum follows length and ID.
        foreach (byte proto in new[] { IpProtocol.Tcp, IpProtocol.Tcp, IpProtocol.Icmp, IpProtocol.Tcp, IpProtocol.Udp })
        {
            byte[] payload = new byte[1 + id * 301];
            rng.NextBytes(payload);
            SendPayload(a, IpB, proto, payload, 10);
            a.Flush();
            Assert.Equal(Ipv4Frame(MacB, MacA, IpA, IpB, proto, payload, id++), Assert.Single(Drain(link.B)));
        }
        // Too big for the MTU: dropped as before, the template notwithstanding.
        SendPayload(a, IpB, IpProtocol.Tcp, new byte[1481], 10);
        Assert.Equal(1, c.Drops(DropReason.Ipv4TooBig));

        // B's address moves to another MAC (it asks for A again from there): the next frame goes to the new one.
        Send(link.B, ArpFrame(ArpOperation.Request, MacAddress.Broadcast, macB2, IpB, MacAddress.Zero, IpA));
        a.PollReceive(20);
        Assert.Single(Drain(link.B));
        SendPayload(a, IpB, IpProtocol.Tcp, "x"u8, 20);
        a.Flush();
        Assert.Equal(Ipv4Frame(macB2, MacA, IpA, IpB, IpProtocol.Tcp, "x"u8, id++), Assert.Single(Drain(link.B)));

        // Once the entry's lifetime is over the address is resolved again, not sent on the remembered headers.
        SendPayload(a, IpB, IpProtocol.Tcp, "y"u8, 61_000_000);
        a.Flush();
        Assert.Equal(1, a.ArpQueuedFrames);
        Assert.Equal(EtherType.Arp, new EthernetFrameView(Assert.Single(Drain(link.B))).EtherType);
        a.Dispose();
        Assert.Equal(0, link.A.Pool.Outstanding);
    }

    [Fact]
    public void GratuitousArpIsSentOnStartAndRefreshesPeersEntry()
    {
        using MemoryLink link = NewIfaceLink();
        var c = new StackCounters();
        var a = NewInterface(link.A, IpA, c);
        a.Start(0);
        byte[] g = Assert.Single(Drain(link.B));
        Assert.Equal(ArpFrame(ArpOperation.Request, MacAddress.Broadcast, MacA, IpA, MacAddress.Zero, IpA), g);

        // A is resolving 10.0.0.2; the peer's gratuitous ARP (sender = target = 10.0.0.2) resolves it.
        SendPayload(a, IpB, IpProtocol.Tcp, "x"u8, 0);
        a.Flush();
        Drain(link.B); // the request
        Send(link.B, ArpFrame(ArpOperation.Request, MacAddress.Broadcast, MacB, IpB, MacAddress.Zero, IpB));
        a.PollReceive(0);
        byte[] data = Assert.Single(Drain(link.B));
        Assert.Equal(MacB, MacAddress.Read(data));
        Assert.Equal(0, c.TotalDrops);
        a.Dispose();
    }

    [Fact]
    public void PingIsAnsweredByteForByte()
    {
        using MemoryLink link = NewIfaceLink();
        var c = new StackCounters();
        var a = NewInterface(link.A, IpA, c, gratuitous: false);

        // The raw host asks for A's MAC; A answers and learns the host.
        Send(link.B, ArpFrame(ArpOperation.Request, MacAddress.Broadcast, MacB, IpB, MacAddress.Zero, IpA));
        Assert.Equal(1, a.PollReceive(0));
        Assert.Equal(ArpFrame(ArpOperation.Reply, MacB, MacA, IpA, MacB, IpB), Assert.Single(Drain(link.B)));

        byte[] request = Convert.FromHexString(
            "02000000000a02000000000b08004500003c1c46400040010a790a0000020a00000108004d5400010007" +
            "6162636465666768696a6b6c6d6e6f7071727374757677616263646566676869");
        byte[] expectedReply = Convert.FromHexString(
            "02000000000b02000000000a08004500003c00004000400126bf0a0000010a00000200005554000100076162636465666768696a6b6c6d6e6f7071727374757677616263646566676869");
        Send(link.B, request);
        Assert.Equal(1, a.PollReceive(1));
        Assert.Equal(expectedReply, Assert.Single(Drain(link.B)));
        Assert.Equal(1, c.IcmpEchoReplies);
        Assert.Equal(0, c.TotalDrops);
        Assert.Equal(2, c.RxPackets);
        Assert.Equal(2, c.TxPackets);
        a.Dispose();
        Assert.Equal(0, link.A.Pool.Outstanding);
    }

    [Fact]
    public void ArpRetriesThenFailsAndDropsTheQueue()
    {
        using MemoryLink link = NewIfaceLink();
        var c = new StackCounters();
        var a = NewInterface(link.A, IpA, c, queuePerEntry: 4, gratuitous: false);
        var nobody = new Ipv4Address(10, 0, 0, 99);
        for (int i = 0; i < 6; i++) SendPayload(a, nobody, IpProtocol.Tcp, "q"u8, 0);
        a.Flush();
        Assert.Equal(2, c.Drops(DropReason.ArpQueueFull));
        Assert.Equal(4, a.ArpQueuedFrames);

        var requests = new List<long>();
        void CollectRequests(long now)
        {
            foreach (byte[] f in Drain(link.B))
            {
                Assert.True(ArpPacketView.TryParse(f.AsSpan(14), out ArpPacketView arp, out _));
                Assert.Equal(ArpOperation.Request, arp.Operation);
                Assert.Equal(nobody, arp.TargetIp);
                requests.Add(now);
            }
        }
        CollectRequests(0);
        long now = 0;
        while (a.PollAt() != long.MaxValue)
        {
            now = a.PollAt();
            a.PollTimers(now);
            CollectRequests(now);
        }
        Assert.Equal(new long[] { 0, 1_000_000, 2_000_000 }, requests);
        Assert.Equal(3_000_000, now);
        Assert.Equal(4, c.Drops(DropReason.ArpResolutionFailed));
        Assert.Equal(1, a.ArpFailures);
        Assert.Equal(0, a.ArpQueuedFrames);
        a.Dispose();
        Assert.Equal(0, link.A.Pool.Outstanding);
    }

    [Fact]
    public void OffLinkGoesThroughGatewayAndNoGatewayMeansNoRoute()
    {
        using MemoryLink link = NewIfaceLink();
        var c = new StackCounters();
        var gw = new Ipv4Address(10, 0, 0, 254);
        var a = NewInterface(link.A, IpA, c, gateway: gw, gratuitous: false);
        SendPayload(a, new Ipv4Address(8, 8, 8, 8), IpProtocol.Tcp, "x"u8, 0);
        a.Flush();
        byte[] req = Assert.Single(Drain(link.B));
        Assert.True(ArpPacketView.TryParse(req.AsSpan(14), out ArpPacketView arp, out _));
        Assert.Equal(gw, arp.TargetIp);
        // The gateway answers; the packet goes to its MAC, still addressed to 8.8.8.8.
        Send(link.B, ArpFrame(ArpOperation.Reply, MacA, MacB, gw, MacA, IpA));
        a.PollReceive(1);
        byte[] f = Assert.Single(Drain(link.B));
        Assert.Equal(MacB, MacAddress.Read(f));
        Assert.Equal(new Ipv4Address(8, 8, 8, 8), Ipv4Address.Read(f.AsSpan(30)));

        var lone = NewInterface(link.A, IpA, c, gratuitous: false);
        SendPayload(lone, new Ipv4Address(8, 8, 8, 8), IpProtocol.Tcp, "x"u8, 0);
        SendPayload(lone, IpA, IpProtocol.Tcp, "x"u8, 0); // ourselves: no loopback here
        Assert.Equal(2, c.Drops(DropReason.Ipv4NoRoute));
        a.Dispose();
        lone.Dispose();
        Assert.Equal(0, link.A.Pool.Outstanding);
    }

    [Fact]
    public void TooBigPacketIsDropped()
    {
        using MemoryLink link = NewIfaceLink(mtu: 600);
        var c = new StackCounters();
        var a = NewInterface(link.A, IpA, c, gratuitous: false);
        SendPayload(a, IpB, IpProtocol.Tcp, new byte[581], 0);
        Assert.Equal(1, c.Drops(DropReason.Ipv4TooBig));
        SendPayload(a, IpB, IpProtocol.Tcp, new byte[580], 0);
        Assert.Equal(1, a.ArpQueuedFrames);
        a.Dispose();
        Assert.Equal(0, link.A.Pool.Outstanding);
    }

    [Fact]
    public void TransportGetsTcpSegmentsAndIcmpErrorsAboutTcp()
    {
        using MemoryLink link = NewIfaceLink();
        var c = new StackCounters();
        var a = NewInterface(link.A, IpA, c, gratuitous: false);
        var t = new FakeTransport();
        a.Transport = t;
        byte[] segment = Convert.FromHexString("04d2005000000001000000005002721000000000" + "61626364");
        byte[] frame = Ipv4Frame(MacA, MacB, IpB, IpA, IpProtocol.Tcp, segment);
        Array.Resize(ref frame, 64); // Ethernet padding is not part of the segment
        Send(link.B, frame);
        a.PollReceive(5);
        var s = Assert.Single(t.Segments);
        Assert.Equal(segment, s.Payload);
        Assert.Equal(PacketOffloads.None, s.Flags);

        // Fragmentation needed about a TCP segment we sent (the quote's source is us).
        byte[] ourDatagram = Ipv4Frame(MacB, MacA, IpA, new Ipv4Address(192, 0, 2, 1), IpProtocol.Tcp, segment)[14..];
        byte[] icmp = new byte[8 + 28];
        IcmpView.EmitError(icmp, IcmpType.DestinationUnreachable, IcmpUnreachableCode.FragmentationNeeded, 1280, ourDatagram.AsSpan(0, 28));
        var router = new Ipv4Address(10, 0, 0, 254);
        Send(link.B, Ipv4Frame(MacA, MacB, router, IpA, IpProtocol.Icmp, icmp));
        a.PollReceive(6);
        var e = Assert.Single(t.Errors);
        Assert.Equal(IcmpErrorKind.FragmentationNeeded, e.Kind);
        Assert.Equal(router, e.Reporter);
        Assert.Equal(1280, e.Mtu);
        Assert.Equal(ourDatagram.AsSpan(0, 28).ToArray(), e.Original);

        // The same error quoting someone else's datagram is not passed on.
        byte[] theirs = Ipv4Frame(MacB, MacA, IpB, IpA, IpProtocol.Tcp, segment)[14..];
        IcmpView.EmitError(icmp, IcmpType.DestinationUnreachable, IcmpUnreachableCode.Port, 0, theirs.AsSpan(0, 28));
        Send(link.B, Ipv4Frame(MacA, MacB, router, IpA, IpProtocol.Icmp, icmp));
        a.PollReceive(7);
        Assert.Single(t.Errors);
        Assert.Equal(1, c.Drops(DropReason.IcmpUnsupported));
        a.Dispose();
        Assert.Equal(0, link.A.Pool.Outstanding);
    }

    [Fact]
    public void UnknownProtocolGetsRateLimitedProtocolUnreachable()
    {
        using MemoryLink link = NewIfaceLink();
        var c = new StackCounters();
        var a = NewInterface(link.A, IpA, c, gratuitous: false);
        Send(link.B, ArpFrame(ArpOperation.Request, MacAddress.Broadcast, MacB, IpB, MacAddress.Zero, IpA));
        a.PollReceive(0);
        Drain(link.B);

        byte[] udp = Convert.FromHexString("14e9829a000c0000" + "31323334");
        byte[] frame = Ipv4Frame(MacA, MacB, IpB, IpA, IpProtocol.Udp, udp);
        for (int i = 0; i < 15; i++) Send(link.B, frame);
        a.PollReceive(0);
        List<byte[]> errors = Drain(link.B);
        Assert.Equal(10, errors.Count);
        Assert.Equal(5, a.IcmpErrorsRateLimited);
        Assert.Equal(15, c.Drops(DropReason.Ipv4UnknownProtocol));

        byte[] err = errors[0];
        Assert.True(Ipv4HeaderView.TryParse(err.AsSpan(14), false, out Ipv4HeaderView ip, out _));
        Assert.Equal(IpB, ip.Destination);
        Assert.True(IcmpView.TryParse(ip.Payload, out IcmpView icmp, out _));
        Assert.Equal(IcmpType.DestinationUnreachable, icmp.Type);
        Assert.Equal(IcmpUnreachableCode.Protocol, icmp.Code);
        Assert.Equal(frame.AsSpan(14).ToArray(), icmp.Payload.ToArray()); // small datagram: quoted whole

        Send(link.B, frame);
        a.PollReceive(100_000); // one interval later: one more token
        Assert.Single(Drain(link.B));
        a.Dispose();
        Assert.Equal(0, link.A.Pool.Outstanding);
    }

    [Fact]
    public void TransmitOffloadLeavesChecksumToTheDevice()
    {
        using MemoryLink link = NewIfaceLink(offload: true);
        var ca = new StackCounters();
        var cb = new StackCounters();
        var a = NewInterface(link.A, IpA, ca);
        var b = NewInterface(link.B, IpB, cb);
        var t = new FakeTransport();
        b.Transport = t;
        byte[] segment = Convert.FromHexString("04d2005000000001000000005002721000000000");
        // The transport's part of TCP offload: pseudo-header sum in the checksum field, flag set.
        ushort ph = Checksum.FoldUncomplemented(Checksum.PseudoHeader(IpA, IpB, IpProtocol.Tcp, segment.Length));
        segment[16] = (byte)(ph >> 8);
        segment[17] = (byte)ph;
        SendPayload(a, IpB, IpProtocol.Tcp, segment, 0, PacketOffloads.TxTcpChecksum);
        Pump(0, a, b);
        var s = Assert.Single(t.Segments);
        Assert.Equal(PacketOffloads.RxIpv4ChecksumGood | PacketOffloads.RxTcpChecksumGood, s.Flags);
        Assert.Equal(0, Checksum.Fold(Checksum.Add(Checksum.PseudoHeader(IpA, IpB, 6, 20), s.Payload)));
        a.Dispose();
        b.Dispose();
        Assert.Equal(0, link.A.Pool.Outstanding + link.B.Pool.Outstanding);
    }

    [Fact]
    public void RefusedFramesWaitForTheNextFlushAndOverflowIsCounted()
    {
        using MemoryLink link = NewIfaceLink(queue: 2);
        var c = new StackCounters();
        var a = NewInterface(link.A, IpA, c, gratuitous: false);
        Send(link.B, ArpFrame(ArpOperation.Reply, MacA, MacB, IpB, MacA, IpA));
        a.PollReceive(0);
        for (int i = 0; i < 5; i++) SendPayload(a, IpB, IpProtocol.Tcp, new[] { (byte)('a' + i) }, 0);
        a.Flush();
        // The link took two; the other three wait (nothing dropped) and the interface wants to run again at once.
        Assert.Equal(2, c.TxPackets);
        Assert.Equal(0, c.Drops(DropReason.TxRingFull));
        Assert.Equal(1, a.PollAt());
        var got = new System.Collections.Generic.List<byte>();
        for (int round = 0; round < 3; round++)
        {
            foreach (byte[] f in Drain(link.B)) got.Add(f[^1]);
            a.Flush();
        }
        Assert.Equal(5, c.TxPackets);
        Assert.Equal("abcde", System.Text.Encoding.ASCII.GetString(got.ToArray())); // in order
        Assert.Equal(long.MaxValue, a.PollAt());
        // A frame that finds the queue full while the device keeps refusing is dropped and counted.
        for (int i = 0; i < 40; i++) SendPayload(a, IpB, IpProtocol.Tcp, "z"u8, 0);
        Assert.True(c.Drops(DropReason.TxRingFull) > 0);
        a.Dispose();
        Drain(link.B);
        Assert.Equal(0, link.A.Pool.Outstanding);
    }

    [Fact]
    public void ADeviceThatKeepsRefusingIsRetriedWithBackOffNotInASpin()
    {
        using MemoryLink link = NewIfaceLink(queue: 1);
        var c = new StackCounters();
        var a = NewInterface(link.A, IpA, c, gratuitous: false);
        Send(link.B, ArpFrame(ArpOperation.Reply, MacA, MacB, IpB, MacA, IpA));
        a.PollTimers(100);
        a.PollReceive(100);
        SendPayload(a, IpB, IpProtocol.Tcp, "x"u8, 0);
        SendPayload(a, IpB, IpProtocol.Tcp, "y"u8, 0);
        a.Flush(); // the peer's queue takes "x" only
        // Nobody drains the peer (a link that is down, a ring that stays full): each poll that finds the device
        // still refusing waits twice as long before the next, up to MaxTxRetryUs, so a waiting caller sleeps.
        long now = 100;
        var waits = new System.Collections.Generic.List<long>();
        for (int i = 0; i < 14; i++)
        {
            now = a.PollAt();
            a.PollTimers(now);
            waits.Add(a.PollAt() - now);
        }
        Assert.Equal(new long[] { 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000, 1000, 1000, 1000, 1000 }, waits);
        Assert.Equal(1, c.TxPackets);
        // The device recovers: the next retry sends and the back-off is forgotten.
        Drain(link.B);
        a.PollTimers(a.PollAt());
        Assert.Equal(2, c.TxPackets);
        Assert.Equal(long.MaxValue, a.PollAt());
        a.Dispose();
        Drain(link.B);
        Assert.Equal(0, link.A.Pool.Outstanding);
    }
}
