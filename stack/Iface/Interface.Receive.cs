using System;
using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using UserTcp.Stack.Phy;
using UserTcp.Stack.Wire;

namespace UserTcp.Stack.Iface;

public sealed partial class Interface
{
    /// <summary>ICMP errors quote at most this much so the whole error stays within 576 bytes (RFC 1812 §4.3.2.3).</summary>
    private const int MaxIcmpQuote = 576 - Ipv4HeaderView.MinHeaderLength - IcmpView.HeaderLength;

    /// <summary>
    /// Receives one burst and handles each frame: Ethernet → ARP or IPv4 → ICMP or the transport. Every received
    /// buffer is freed here; anything dropped is counted. Replies built meanwhile leave in one burst at the end.
    /// Returns the number of frames received.
    /// </summary>
    [System.Runtime.CompilerServices.SkipLocalsInit] // the burst is not zeroed per call: only [0, n) is read
    public int PollReceive(long nowUs)
    {
        _lastPollUs = nowUs;
        Start(nowUs);
        Span<PacketBuf> burst = stackalloc PacketBuf[_txBatch.Length];
        int n = _device.Receive(burst);
        if (n > 0)
        {
            ulong ourMac = _rxMacKey;
            if (ourMac == 0) _rxMacKey = ourMac = RxMacKey();
            for (int i = 0; i < n; i++)
            {
                _counters.RxPackets++;
                _counters.RxBytes += burst[i].Length;
                ReceiveFrame(burst[i].Data, burst[i].Offloads, ourMac, nowUs);
            }
        }
        if (n > 0) _device.FreeBurst(burst[..n]); // nothing keeps a received frame past ReceiveFrame
        Flush();
        return n;
    }

    /// <summary>Our unicast address as the first 48 bits of a frame read big-endian (the receive fast path's key),
    /// taken once from the device (its capabilities are fixed for its lifetime and sit behind an interface call);
    /// 0 until the first burst. A group address never matches: such frames take the general path, which knows
    /// broadcast and multicast.</summary>
    private ulong _rxMacKey;

    private ulong RxMacKey()
    {
        MacAddress mac = MacAddress;
        return mac.IsMulticast || mac.Value > 0xFFFF_FFFF_FFFFUL ? ulong.MaxValue : mac.Value;
    }

    private void ReceiveFrame(Span<byte> frame, PacketOffloads flags, ulong ourMac, long nowUs)
    {
        // The common frame first: IPv4 to our unicast address, checked with two loads. Anything else (ARP, IPv6,
        // broadcast, multicast, not for us, truncated) takes the general path below, which names the drop reason.
        if (frame.Length >= EthernetFrameView.HeaderLength)
        {
            ref byte f = ref MemoryMarshal.GetReference(frame);
            ulong head = Unsafe.ReadUnaligned<ulong>(ref f);
            ushort type = Unsafe.ReadUnaligned<ushort>(ref Unsafe.Add(ref f, 12));
            if (BitConverter.IsLittleEndian)
            {
                head = BinaryPrimitives.ReverseEndianness(head);
                type = BinaryPrimitives.ReverseEndianness(type);
            }
            if ((head >> 16) == ourMac && type == EtherType.Ipv4)
            {
                ReceiveIpv4(frame[EthernetFrameView.HeaderLength..], flags, linkBroadcast: false, nowUs);
                return;
            }
        }
        if (!EthernetFrameView.TryParse(frame, out EthernetFrameView eth, out DropReason reason))
        {
            _counters.Drop(reason);
            return;
        }
        MacAddress dst = eth.Destination;
        if (dst != MacAddress && !dst.IsBroadcast && !AcceptsMulticast(dst))
        {
            _counters.Drop(DropReason.EthernetNotForUs);
            return;
        }
        switch (eth.EtherType)
        {
            case EtherType.Arp: ReceiveArp(eth.Payload, nowUs); break;
            case EtherType.Ipv4: ReceiveIpv4(eth.Payload, flags, dst.IsBroadcast, nowUs); break;
            case Ipv6HeaderView.EtherType when HasIpv6: ReceiveIpv6(eth.Payload, eth.Source, nowUs); break;
            default: _counters.Drop(DropReason.EthernetUnknownType); break;
        }
    }

    private void ReceiveIpv4(Span<byte> packet, PacketOffloads flags, bool linkBroadcast, long nowUs)
    {
        bool verified = (flags & PacketOffloads.RxIpv4ChecksumGood) != 0;
        if (!Ipv4HeaderView.TryParse(packet, verified, out Ipv4HeaderView ip, out DropReason reason))
        {
            _counters.Drop(reason);
            return;
        }
        // The fields read once: TryParse has checked that the header (at least 20 bytes) is all there and cut the
        // view to the total length.
        Span<byte> bytes = ip.Bytes;
        ref byte p = ref MemoryMarshal.GetReference(bytes);
        int hl = (p & 0xF) * 4;
        var src = new Ipv4Address(BigEndian(Unsafe.ReadUnaligned<uint>(ref Unsafe.Add(ref p, 12))));
        var dst = new Ipv4Address(BigEndian(Unsafe.ReadUnaligned<uint>(ref Unsafe.Add(ref p, 16))));
        byte protocol = Unsafe.Add(ref p, 9);
        // RFC 1122 §3.2.1.3: a source that is broadcast, multicast, loopback, unspecified or ourselves is bogus.
        Ipv4Address us = _config.Address;
        if (src.IsBroadcast || src.IsMulticast || src.IsLoopback || src.IsAny || src == us)
        {
            _counters.Drop(DropReason.Ipv4BadSource);
            return;
        }
        // Only unicast to our address: we serve TCP and ping, neither of which uses broadcast.
        if (dst != us || linkBroadcast)
        {
            _counters.Drop(DropReason.Ipv4NotForUs);
            return;
        }
        switch (protocol)
        {
            case IpProtocol.Tcp:
                if (Transport is not { } transport)
                {
                    _counters.Drop(DropReason.Ipv4UnknownProtocol);
                    return;
                }
                transport.Receive(new Ipv4Packet(src, dst, protocol, Unsafe.Add(ref p, 8), bytes.Length, hl), bytes[hl..],
                    flags, nowUs);
                break;
            case IpProtocol.Icmp:
                ReceiveIcmp(ip, nowUs);
                break;
            default:
                _counters.Drop(DropReason.Ipv4UnknownProtocol);
                SendIcmpError(ip, IcmpType.DestinationUnreachable, IcmpUnreachableCode.Protocol, 0, nowUs);
                break;
        }
    }

    private void ReceiveIcmp(in Ipv4HeaderView ip, long nowUs)
    {
        if (!IcmpView.TryParse(ip.Payload, out IcmpView icmp, out DropReason reason))
        {
            _counters.Drop(reason);
            return;
        }
        if (icmp.Type == IcmpType.EchoRequest && icmp.Code == 0)
        {
            if (AnswerEcho) ReplyToEcho(ip, icmp, nowUs);
            return;
        }
        if (!icmp.TryGetError(out IcmpErrorKind kind, out reason))
        {
            _counters.Drop(reason); // echo replies and informational types: we never asked
            return;
        }
        // The quote must be about a datagram we sent, and we only hand TCP's to the transport.
        var quoted = new Ipv4HeaderView(icmp.Payload);
        if (quoted.Source != _config.Address || quoted.Protocol != IpProtocol.Tcp || Transport is null)
        {
            _counters.Drop(DropReason.IcmpUnsupported);
            return;
        }
        int mtu = kind == IcmpErrorKind.FragmentationNeeded ? icmp.NextHopMtu : 0;
        Transport.ReceiveIcmpError(kind, ip.Source, icmp.Payload, mtu, nowUs);
    }

    /// <summary>RFC 1122 §3.2.2.6: the reply carries the request's identifier, sequence number and data.</summary>
    private void ReplyToEcho(in Ipv4HeaderView ip, in IcmpView request, long nowUs)
    {
        if (!TryAllocate(out PacketBuf p)) return;
        int length = request.Bytes.Length;
        if (length > p.Tailroom || length + Ipv4HeaderView.MinHeaderLength > Mtu)
        {
            DropTx(ref p, DropReason.Ipv4TooBig); // only with IP options on a full-MTU request
            return;
        }
        p.SetLength(length);
        IcmpView.EmitEcho(p.Data, IcmpType.EchoReply, request.Identifier, request.SequenceNumber, request.Payload);
        _counters.IcmpEchoReplies++;
        SendIpv4(ref p, ip.Source, IpProtocol.Icmp, nowUs);
    }

    /// <summary>
    /// Sends an ICMP error about <paramref name="offending"/> to its source, rate-limited. Never about ICMP errors,
    /// broadcasts or fragments (RFC 1122 §3.2.2); the callers only pass unicast, unfragmented, non-ICMP datagrams.
    /// </summary>
    private void SendIcmpError(in Ipv4HeaderView offending, IcmpType type, byte code, uint restOfHeader, long nowUs)
    {
        if (!_icmpErrors.TryTake(nowUs))
        {
            IcmpErrorsRateLimited++;
            return;
        }
        if (!TryAllocate(out PacketBuf p)) return;
        int quote = Math.Min(offending.Bytes.Length, Math.Min(MaxIcmpQuote, Mtu - Ipv4HeaderView.MinHeaderLength - IcmpView.HeaderLength));
        quote = Math.Min(quote, p.Tailroom - IcmpView.HeaderLength);
        p.SetLength(IcmpView.HeaderLength + quote);
        IcmpView.EmitError(p.Data, type, code, restOfHeader, offending.Bytes[..quote]);
        SendIpv4(ref p, offending.Source, IpProtocol.Icmp, nowUs);
    }
}
