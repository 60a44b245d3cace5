using System;
using UserTcp.Stack.Phy;
using UserTcp.Stack.Wire;

namespace UserTcp.Stack.Iface;

/// <summary>
/// The transport above an <see cref="Interface"/> (TCP). The interface has validated the IPv4 header and that the
/// packet is addressed to us; the transport validates its own header and checksum.
/// </summary>
public interface IIpv4Transport
{
    /// <summary>
    /// A packet for us with protocol 6. <paramref name="payload"/> is the transport segment (exactly the IPv4 payload,
    /// no link padding) inside the receive buffer: valid only during the call; the transport may modify it in place
    /// but must copy what it keeps. <paramref name="rxFlags"/> says whether the device verified the TCP checksum
    /// (<see cref="PacketOffloads.RxTcpChecksumGood"/>). The transport may call <see cref="Interface.SendIpv4"/>
    /// from here; those packets leave in the same burst at the end of <see cref="Interface.PollReceive"/>.
    /// </summary>
    void Receive(in Ipv4Packet ip, Span<byte> payload, PacketOffloads rxFlags, long nowUs);

    /// <summary>
    /// An ICMP destination-unreachable or time-exceeded message about a datagram we sent with protocol 6.
    /// <paramref name="originalDatagram"/> is the quoted original IPv4 header (options included) and at least 8
    /// bytes of its payload (RFC 792; RFC 1122 §3.2.2 says to use the ports to find the connection); its source is
    /// our address. <paramref name="nextHopMtu"/> is set only for <see cref="IcmpErrorKind.FragmentationNeeded"/>
    /// (0 when the router did not say, RFC 1191 §5). <paramref name="reporter"/> is the sender of the ICMP message.
    /// </summary>
    void ReceiveIcmpError(IcmpErrorKind kind, Ipv4Address reporter, ReadOnlySpan<byte> originalDatagram, int nextHopMtu, long nowUs);
}
