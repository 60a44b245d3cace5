using System;
using UserTcp.Stack.Phy;
using UserTcp.Stack.Wire;

namespace UserTcp.Stack.Iface;

/// <summary>
/// IPv6 on the interface, first part: with an address configured (<see cref="EnableIpv6"/>, USERTCP_IP6) the
/// interface is reachable over IPv6: it answers neighbour solicitations for its address (RFC 4861 §7.2.4, with
/// its link-layer address in a target option, straight to the solicitation's link-layer address) and echo requests
/// (RFC 4443 §4.2). <see cref="SendIpv6"/> sends through a neighbour cache (<see cref="NeighborCache6"/>: learned
/// from solicitations that carry the sender's address, resolved by multicast solicitations while packets wait, as
/// ARP does for IPv4); echo replies use it. No transport over IPv6 yet: TCP segments are refused with a reset
/// (<see cref="RefuseTcp"/>), everything else is a counted drop. Without an address, IPv6 frames are dropped as before
/// (unknown EtherType).
/// </summary>
public sealed partial class Interface : INeighborOwner<Ipv6Address>
{
    /// <summary>Room in front of an IPv6 transport segment: Ethernet + the IPv6 header.</summary>
    public const int HeaderRoom6 = EthernetFrameView.HeaderLength + Ipv6HeaderView.HeaderLength;
    private NeighborCache6? _nd;
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
        _nd ??= new NeighborCache6(_config.ArpCacheCapacity, _config.ArpQueuePerEntry, _config.ArpEntryLifetimeUs,
            _config.ArpRetryIntervalUs, _config.ArpMaxTries, _counters);
    }

    /// <summary>Frames waiting for IPv6 neighbour resolution.</summary>
    public int NeighborQueuedFrames => _nd?.QueuedFrames ?? 0;
    /// <summary>IPv6 neighbour resolutions that failed after all retries.</summary>
    public long NeighborFailures => _nd?.Failures ?? 0;
    private long NdTimerUs => _nd is null ? long.MaxValue : _nd.NextTimerUs;

    /// <summary>
    /// Sends the upper-layer message in <paramref name="packet"/> (from <see cref="TryAllocate"/>, written at
    /// <see cref="PacketBuf.Data"/>) to <paramref name="destination"/> on our prefix: prepends IPv6 (hop limit 64) and
    /// Ethernet, then batches it or queues it behind neighbour resolution. Takes the buffer in every case; failures
    /// are counted (<see cref="DropReason.Ipv6NoRoute"/>, <see cref="DropReason.Ipv6TooBig"/>,
    /// <see cref="DropReason.NdQueueFull"/>). The message's checksum is the caller's (it covers our addresses).
    /// </summary>
    public void SendIpv6(ref PacketBuf packet, Ipv6Address destination, byte nextHeader, long nowUs)
    {
        Start(nowUs);
        if (_nd is null || destination.IsMulticast || destination.IsAny || destination.IsLoopback || destination == _address6
            || !destination.InSubnet(_address6, _prefix6))
        {
            DropTx(ref packet, DropReason.Ipv6NoRoute);
            return;
        }
        int length = packet.Length;
        if (length + Ipv6HeaderView.HeaderLength > Mtu || packet.Headroom < HeaderRoom6)
        {
            DropTx(ref packet, DropReason.Ipv6TooBig);
            return;
        }
        Ipv6HeaderView.Emit(packet.Prepend(Ipv6HeaderView.HeaderLength), _address6, destination, nextHeader, length, 64);
        EthernetFrameView.Emit(packet.Prepend(EthernetFrameView.HeaderLength), MacAddress.Zero, MacAddress, Ipv6HeaderView.EtherType);
        if (_nd.TryLookup(destination, nowUs, out MacAddress mac))
        {
            new EthernetFrameView(packet.Data).Destination = mac;
            Append(ref packet);
        }
        else
        {
            _nd.Enqueue(destination, ref packet, nowUs, this);
        }
    }

    /// <summary>A multicast neighbour solicitation for <paramref name="target"/> (RFC 4861 §7.2.2), with our link-layer
    /// address in a source option.</summary>
    void INeighborOwner<Ipv6Address>.SendResolutionRequest(Ipv6Address target, long nowUs)
    {
        Ipv6Address group = target.SolicitedNode;
        if (SendNeighborMessage(group.MulticastMac, group, target, advertisement: false, solicited: false))
            _counters.NeighborSolicitations++;
    }

    /// <summary>Builds and batches one neighbour message about <paramref name="target"/> (a solicitation carrying our
    /// link-layer address, or an advertisement of it) to <paramref name="to"/> at <paramref name="toMac"/>, hop limit
    /// 255 as RFC 4861 requires. False when no buffer was available.</summary>
    private bool SendNeighborMessage(MacAddress toMac, Ipv6Address to, Ipv6Address target, bool advertisement, bool solicited)
    {
        if (!TryAllocate(out PacketBuf p)) return false;
        const int frame = HeaderRoom6 + Icmpv6.NeighborMessageLength + 8;
        if (frame > p.Tailroom + p.Length)
        {
            DropTx(ref p, DropReason.TxNoBuffer);
            return false;
        }
        p.SetLength(frame);
        Span<byte> f = p.Data;
        EthernetFrameView.Emit(f, toMac, MacAddress, Ipv6HeaderView.EtherType);
        Span<byte> ipBytes = f[EthernetFrameView.HeaderLength..];
        Span<byte> msg = ipBytes[Ipv6HeaderView.HeaderLength..];
        int n = advertisement
            ? Icmpv6.EmitAdvertisement(msg, _address6, to, target, MacAddress, solicited)
            : Icmpv6.EmitSolicitation(msg, _address6, to, target, MacAddress);
        Ipv6HeaderView.Emit(ipBytes, _address6, to, Ipv6NextHeader.Icmpv6, n, 255);
        Append(ref p);
        return true;
    }

    void INeighborOwner<Ipv6Address>.SendResolved(ref PacketBuf frame, MacAddress destination) =>
        SendResolvedFrame(ref frame, destination);

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
        if (ip.NextHeader == Ipv6NextHeader.Tcp && !multicast)
        {
            RefuseTcp(ip, nowUs);
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
            case Icmpv6Type.NeighborAdvertisement:
                ReceiveAdvertisement(ip, msg, nowUs);
                break;
            case Icmpv6Type.EchoRequest when msg[1] == 0 && msg.Length >= Icmpv6.HeaderLength && !multicast:
                if (AnswerEcho) ReplyToEcho6(src, msg, nowUs);
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
            !Icmpv6.TryParseSolicitation(msg, src.IsAny, out Ipv6Address target, out MacAddress srcMac, out bool hasMac))
        {
            _counters.Drop(DropReason.NdMalformed);
            return;
        }
        if (target != _address6)
        {
            _counters.Drop(DropReason.NdNotForUs);
            return;
        }
        // §7.2.3: the sender's link-layer address goes into the cache (what waited for it leaves now).
        if (hasMac) _nd!.Insert(src, srcMac, nowUs, this);
        // §7.2.4: to the solicitation's source, solicited; a DAD probe (someone wants our address) is answered to
        // all nodes, unsolicited, which tells the prober the address is taken.
        bool dad = src.IsAny;
        Ipv6Address to = dad ? Ipv6Address.AllNodes : src;
        MacAddress toMac = dad ? _allNodesMac : hasMac ? srcMac : from;
        if (SendNeighborMessage(toMac, to, _address6, advertisement: true, solicited: !dad))
            _counters.NeighborAdvertisements++;
    }

    /// <summary>An advertisement answering our solicitation (§7.2.5, minimal): its target link-layer address
    /// resolves the entry and sends what waited. One for a neighbour we never asked about is dropped.</summary>
    private void ReceiveAdvertisement(in Ipv6HeaderView ip, ReadOnlySpan<byte> msg, long nowUs)
    {
        if (ip.HopLimit != 255 ||
            !Icmpv6.TryParseAdvertisement(msg, ip.Destination.IsMulticast, out Ipv6Address target, out MacAddress mac, out bool hasMac))
        {
            _counters.Drop(DropReason.NdMalformed);
            return;
        }
        if (target == _address6)
        {
            _counters.Drop(DropReason.Ipv6BadSource); // someone else claims our address; we keep it
            return;
        }
        if (!hasMac || !_nd!.Update(target, mac, nowUs, this)) _counters.Drop(DropReason.Icmpv6Unsupported);
    }

    /// <summary>
    /// TCP over IPv6 has no sockets here yet (IPv6 sockets are the kernel's): every segment finds none and is answered
    /// as RFC 793 answers one in the CLOSED state (p. 36, 65), so a client is refused at once instead of waiting out
    /// its SYN retries. Counted as <see cref="DropReason.TcpNoSocket"/>; a reset is never answered.
    /// </summary>
    private void RefuseTcp(in Ipv6HeaderView ip, long nowUs)
    {
        Span<byte> segment = ip.Payload;
        if (!TcpHeaderView.TryParse(segment, out TcpHeaderView tcp, out DropReason reason))
        {
            _counters.Drop(reason);
            return;
        }
        Ipv6Address src = ip.Source;
        if (Ipv6HeaderView.UpperLayerChecksum(src, ip.Destination, Ipv6NextHeader.Tcp, segment) != 0)
        {
            _counters.Drop(DropReason.TcpBadChecksum);
            return;
        }
        _counters.Drop(DropReason.TcpNoSocket);
        TcpFlags flags = tcp.Flags;
        if ((flags & TcpFlags.Rst) != 0 || src.IsAny) return;
        uint seq, ack;
        TcpFlags reply;
        if ((flags & TcpFlags.Ack) != 0)
        {
            seq = tcp.AckNumber;
            ack = 0;
            reply = TcpFlags.Rst;
        }
        else
        {
            int length = segment.Length - tcp.HeaderLength + ((flags & TcpFlags.Syn) != 0 ? 1 : 0) + ((flags & TcpFlags.Fin) != 0 ? 1 : 0);
            seq = 0;
            ack = tcp.SequenceNumber + (uint)length;
            reply = TcpFlags.Rst | TcpFlags.Ack;
        }
        if (!TryAllocate(out PacketBuf p)) return;
        p.SetLength(TcpHeaderView.MinLength);
        Span<byte> rst = p.Data;
        TcpHeaderView.Emit(rst, tcp.DestinationPort, tcp.SourcePort, seq, ack, reply, 0, TcpHeaderView.MinLength);
        new TcpHeaderView(rst).Checksum = Ipv6HeaderView.UpperLayerChecksum(_address6, src, Ipv6NextHeader.Tcp, rst);
        _counters.TcpRstSent++;
        SendIpv6(ref p, src, Ipv6NextHeader.Tcp, nowUs);
    }

    private void ReplyToEcho6(Ipv6Address to, ReadOnlySpan<byte> request, long nowUs)
    {
        if (!TryAllocate(out PacketBuf p)) return;
        if (request.Length > p.Tailroom + p.Length)
        {
            DropTx(ref p, DropReason.Ipv6TooBig);
            return;
        }
        p.SetLength(request.Length);
        Span<byte> msg = p.Data;
        request.CopyTo(msg);
        Icmpv6.MakeEchoReply(msg, _address6, to);
        _counters.IcmpEchoReplies++;
        SendIpv6(ref p, to, Ipv6NextHeader.Icmpv6, nowUs);
    }
}
