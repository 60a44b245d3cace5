using UserTcp.Stack.Wire;

namespace UserTcp.Stack.Iface;

/// <summary>
/// The IPv4 header fields a transport needs, copied out of a received packet (which it must not hold on to):
/// the addresses for the pseudo-header and connection lookup, TTL, and lengths.
/// </summary>
public readonly struct Ipv4Packet
{
    public Ipv4Packet(Ipv4Address source, Ipv4Address destination, byte protocol, byte ttl, int totalLength, int headerLength)
    {
        Source = source;
        Destination = destination;
        Protocol = protocol;
        Ttl = ttl;
        TotalLength = totalLength;
        HeaderLength = headerLength;
    }

    public Ipv4Address Source { get; }
    public Ipv4Address Destination { get; }
    public byte Protocol { get; }
    public byte Ttl { get; }
    /// <summary>Header plus payload, bytes.</summary>
    public int TotalLength { get; }
    /// <summary>Header (with options), bytes.</summary>
    public int HeaderLength { get; }
    /// <summary>Transport bytes: <see cref="TotalLength"/> − <see cref="HeaderLength"/>.</summary>
    public int PayloadLength => TotalLength - HeaderLength;

    public static Ipv4Packet From(in Ipv4HeaderView ip) =>
        new(ip.Source, ip.Destination, ip.Protocol, ip.Ttl, ip.TotalLength, ip.HeaderLength);
}
