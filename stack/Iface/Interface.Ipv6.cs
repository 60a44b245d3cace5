using System;
using UserTcp.Stack.Phy;
using UserTcp.Stack.Wire;

namespace UserTcp.Stack.Iface;

/// <summary>
/// IPv6 on the interface, first part: with an address configured (<see cref="EnableIpv6"/>, USERTCP_IP6) the
/// interface is reachable over IPv6: it answers neighbour solicitations for its address (RFC 4861 §7.2.4, with
/// its link-layer address in a target option) and echo requests (RFC 4443 §4.2). Replies go to the Ethernet
/// source of the request: they are answers on the link the request came from, so no neighbour cache is needed yet
/// (a transport over IPv6 will need one, with the queue-while-resolving behaviour of ARP). Everything else over
/// IPv6 is a counted drop. Without an address, IPv6 frames are dropped as before (unknown EtherType).
/// </summary>
public sealed partial class Interface
{
    private Ipv6Address _address6;
    private int _prefix6;
    private MacAddress _solicitedMac, _allNodesMac;

    /// <summary>The interface's IPv6 address (<see cref="Ipv6Address.Any"/>: none).</summary>
    public Ipv6Address Address6 => _address6;
    public int PrefixLength6 => _prefix6;
    public bool HasIpv6 => !_address6.IsAny;

    /// <summary>Gives the interface an IPv6 address (unicast, not IPv4-mapped).</summary>
    public void EnableIpv6(Ipv6Address address, int prefixLength)
    {
        if (address.IsAny || address.IsMulticast || address.IsLoopback || address.IsV4Mapped)
            throw new ArgumentException($"not a unicast IPv6 address: {address}", nameof(address));
        if (prefixLength is < 1 or > 128) throw new ArgumentOutOfRangeException(nameof(prefixLength));
        _address6 = address;
        _prefix6 = prefixLength;
        _solicitedMac = address.SolicitedNode.MulticastMac;
        _allNodesMac = Ipv6Address.AllNodes.MulticastMac;
    }

    /// <summary>Multicast frames we take: all-nodes and our solicited-node group (only with an IPv6 address).</summary>
    private bool AcceptsMulticast(MacAddress dst) => HasIpv6 && (dst == _solicitedMac || dst == _allNodesMac);

    private void ReceiveIpv6(Span<byte> packet, MacAddress from, long nowUs)
    {
        if (!Ipv6HeaderView.TryParse(packet, out Ipv6HeaderView ip, out DropReason reason))
        {
            _counters.Drop(reason);
            return;
        }
        Ipv6Address src = ip.Source, dst = ip.Destination;
        if (src.IsMulticast || src.IsLoopback || src.IsV4Mapped || src == _address6 || from.IsMulticast)
        {
            _counters.Drop(DropReason.Ipv6BadSource);
            return;
        }
        bool multicast = dst.IsMulticast;
        if (dst != _address6 && dst != Ipv6Address.AllNodes && dst != _address6.SolicitedNode)
        {
            _counters.Drop(DropReason.Ipv6NotForUs);
            return;
        }
        if (ip.NextHeader != Ipv6NextHeader.Icmpv6)
        {
            _counters.Drop(DropReason.Ipv6UnknownProtocol);
            return;
        }
        Span<byte> msg = ip.Payload;
        if (msg.Length < 4)
        {
            _counters.Drop(DropReason.Icmpv6Malformed);
            return;
        }
        if (!Icmpv6.ChecksumValid(msg, src, dst))
        {
            _counters.Drop(DropReason.Icmpv6BadChecksum);
            return;
        }
        switch (msg[0])
        {
            case Icmpv6Type.NeighborSolicitation:
                ReceiveSolicitation(ip, msg, from, nowUs);
                break;
            case Icmpv6Type.EchoRequest when msg[1] == 0 && msg.Length >= Icmpv6.HeaderLength && !multicast:
                if (AnswerEcho) ReplyToEcho6(src, msg, from);
                break;
            case Icmpv6Type.EchoRequest:
                _counters.Drop(multicast ? DropReason.Icmpv6Unsupported : DropReason.Icmpv6Malformed);
                break;
            default:
                _counters.Drop(DropReason.Icmpv6Unsupported);
                break;
        }
    }

    private void ReceiveSolicitation(in Ipv6HeaderView ip, ReadOnlySpan<byte> msg, MacAddress from, long nowUs)
    {
        Ipv6Address src = ip.Source;
        // RFC 4861 §7.1.1: hop limit 255 (it came from this link), and a DAD probe (unspecified source) goes to the
        // solicited-node group.
        if (ip.HopLimit != 255 || (src.IsAny && ip.Destination != _address6.SolicitedNode) ||
            !Icmpv6.TryParseSolicitation(msg, src.IsAny, out Ipv6Address target, out MacAddress srcMac, out bool hasMac, out DropReason reason))
        {
            _counters.Drop(DropReason.NdMalformed);
            return;
        }
        if (target != _address6)
        {
            _counters.Drop(DropReason.NdNotForUs);
            return;
        }
        // §7.2.4: to the solicitation's source, solicited; a DAD probe (someone wants our address) is answered to
        // all nodes, unsolicited, which tells the prober the address is taken.
        bool dad = src.IsAny;
        Ipv6Address to = dad ? Ipv6Address.AllNodes : src;
        MacAddress toMac = dad ? _allNodesMac : hasMac ? srcMac : from;
        if (!TryAllocate(out PacketBuf p)) return;
        const int frame = EthernetFrameView.HeaderLength + Ipv6HeaderView.HeaderLength + Icmpv6.NeighborMessageLength + 8;
        if (frame > p.Tailroom + p.Length)
        {
            DropTx(ref p, DropReason.TxNoBuffer);
            return;
        }
        p.SetLength(frame);
        Span<byte> f = p.Data;
        EthernetFrameView.Emit(f, toMac, MacAddress, Ipv6HeaderView.EtherType);
        Span<byte> ipBytes = f[EthernetFrameView.HeaderLength..];
        int n = Icmpv6.EmitAdvertisement(ipBytes[Ipv6HeaderView.HeaderLength..], _address6, to, _address6, MacAddress, solicited: !dad);
        Ipv6HeaderView.Emit(ipBytes, _address6, to, Ipv6NextHeader.Icmpv6, n, 255);
        _counters.NeighborAdvertisements++;
        Append(ref p);
    }

    private void ReplyToEcho6(Ipv6Address to, ReadOnlySpan<byte> request, MacAddress toMac)
    {
        if (!TryAllocate(out PacketBuf p)) return;
        int frame = EthernetFrameView.HeaderLength + Ipv6HeaderView.HeaderLength + request.Length;
        if (frame > p.Tailroom + p.Length || frame - EthernetFrameView.HeaderLength > Mtu)
        {
            DropTx(ref p, DropReason.Ipv4TooBig);
            return;
        }
        p.SetLength(frame);
        Span<byte> f = p.Data;
        EthernetFrameView.Emit(f, toMac, MacAddress, Ipv6HeaderView.EtherType);
        Span<byte> ipBytes = f[EthernetFrameView.HeaderLength..];
        Span<byte> msg = ipBytes[Ipv6HeaderView.HeaderLength..];
        request.CopyTo(msg);
        Icmpv6.MakeEchoReply(msg, _address6, to);
        Ipv6HeaderView.Emit(ipBytes, _address6, to, Ipv6NextHeader.Icmpv6, request.Length, 64);
        _counters.IcmpEchoReplies++;
        Append(ref p);
    }
}
