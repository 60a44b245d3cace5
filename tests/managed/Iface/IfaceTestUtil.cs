using System;
using System.Collections.Generic;
using UserTcp.Stack;
using UserTcp.Stack.Iface;
using UserTcp.Stack.Phy;
using UserTcp.Stack.Wire;

namespace UserTcp.Tests.Iface;

/// <summary>Records what an interface hands to its transport.</summary>
internal sealed class FakeTransport : IIpv4Transport
{
    public readonly List<(Ipv4Packet Ip, byte[] Payload, PacketOffloads Flags)> Segments = new();
    public readonly List<(IcmpErrorKind Kind, Ipv4Address Reporter, byte[] Original, int Mtu)> Errors = new();

    public void Receive(in Ipv4Packet ip, Span<byte> payload, PacketOffloads rxFlags, long nowUs) =>
        Segments.Add((ip, payload.ToArray(), rxFlags));

    public void ReceiveIcmpError(IcmpErrorKind kind, Ipv4Address reporter, ReadOnlySpan<byte> originalDatagram, int nextHopMtu, long nowUs) =>
        Errors.Add((kind, reporter, originalDatagram.ToArray(), nextHopMtu));
}

internal static class IfaceTestUtil
{
    public static readonly MacAddress MacA = new(0x02_00_00_00_00_0a);
    public static readonly MacAddress MacB = new(0x02_00_00_00_00_0b);
    public static readonly Ipv4Address IpA = new(10, 0, 0, 1);
    public static readonly Ipv4Address IpB = new(10, 0, 0, 2);

    public static MemoryLink NewIfaceLink(int queue = 256, bool offload = false, int mtu = 1500)
    {
        MemoryLinkConfig End(MacAddress mac) => new()
        {
            Capabilities = new DeviceCapabilities
            {
                MacAddress = mac, Mtu = mtu,
                TxIpv4Checksum = offload, TxTcpChecksum = offload, RxIpv4Checksum = offload, RxTcpChecksum = offload,
            },
            RxQueueCapacity = queue,
            PoolSize = 256,
        };
        return new MemoryLink(End(MacA), End(MacB));
    }

    public static Interface NewInterface(IDevice dev, Ipv4Address ip, StackCounters counters, Ipv4Address gateway = default,
        int queuePerEntry = 4, bool gratuitous = true) =>
        new(dev, new InterfaceConfig { Address = ip, PrefixLength = 24, Gateway = gateway, ArpQueuePerEntry = queuePerEntry, GratuitousArpOnStart = gratuitous }, counters);

    /// <summary>Sends <paramref name="payload"/> as an IPv4 packet through the interface.</summary>
    public static void SendPayload(Interface iface, Ipv4Address dst, byte protocol, ReadOnlySpan<byte> payload, long nowUs,
        PacketOffloads flags = PacketOffloads.None)
    {
        if (!iface.TryAllocate(out PacketBuf p)) throw new InvalidOperationException("no buffer");
        p.SetLength(payload.Length);
        payload.CopyTo(p.Data);
        p.Offloads = flags;
        iface.SendIpv4(ref p, dst, protocol, nowUs);
    }

    /// <summary>Polls both interfaces until neither receives anything.</summary>
    public static void Pump(long nowUs, params Interface[] ifaces)
    {
        for (int round = 0; round < 100; round++)
        {
            int n = 0;
            foreach (Interface i in ifaces) n += i.PollReceive(nowUs);
            if (n == 0) return;
        }
        throw new InvalidOperationException("no quiescence");
    }

    /// <summary>A 60-byte ARP frame from a raw host.</summary>
    public static byte[] ArpFrame(ArpOperation op, MacAddress ethDst, MacAddress senderMac, Ipv4Address senderIp, MacAddress targetMac, Ipv4Address targetIp)
    {
        byte[] f = new byte[60];
        EthernetFrameView eth = EthernetFrameView.Emit(f, ethDst, senderMac, EtherType.Arp);
        ArpPacketView.Emit(eth.Payload, op, senderMac, senderIp, targetMac, targetIp);
        return f;
    }

    /// <summary>An Ethernet + IPv4 frame from a raw host with the given IP payload.</summary>
    public static byte[] Ipv4Frame(MacAddress ethDst, MacAddress ethSrc, Ipv4Address src, Ipv4Address dst, byte protocol, ReadOnlySpan<byte> payload, ushort id = 1)
    {
        byte[] f = new byte[14 + 20 + payload.Length];
        EthernetFrameView eth = EthernetFrameView.Emit(f, ethDst, ethSrc, EtherType.Ipv4);
        Ipv4HeaderView.Emit(eth.Payload, src, dst, protocol, 20 + payload.Length, id);
        payload.CopyTo(f.AsSpan(34));
        return f;
    }
}
