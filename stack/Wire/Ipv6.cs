using System;
using System.Buffers.Binary;

namespace UserTcp.Stack.Wire;

/// <summary>An IPv6 address as two 64-bit halves in host order (so comparisons and prefixes are integer operations).</summary>
public readonly record struct Ipv6Address(ulong High, ulong Low)
{
    public static readonly Ipv6Address Any = default;
    /// <summary>ff02::1, all nodes on the link (RFC 4291 §2.7.1).</summary>
    public static readonly Ipv6Address AllNodes = new(0xff02_0000_0000_0000UL, 1);

    public static Ipv6Address Read(ReadOnlySpan<byte> b) =>
        new(BinaryPrimitives.ReadUInt64BigEndian(b), BinaryPrimitives.ReadUInt64BigEndian(b[8..]));

    public void Write(Span<byte> b)
    {
        BinaryPrimitives.WriteUInt64BigEndian(b, High);
        BinaryPrimitives.WriteUInt64BigEndian(b[8..], Low);
    }

    public bool IsAny => High == 0 && Low == 0;
    public bool IsLoopback => High == 0 && Low == 1;
    public bool IsMulticast => (High >> 56) == 0xff;
    /// <summary>::ffff:a.b.c.d (RFC 4291 §2.5.5.2): never a source or destination on the wire.</summary>
    public bool IsV4Mapped => High == 0 && (Low >> 32) == 0xffff;

    /// <summary>The solicited-node multicast address for this address: the prefix ff02::1:ff00:0/104 followed by the
    /// address's low 24 bits (RFC 4291 §2.7.1).</summary>
    public Ipv6Address SolicitedNode => new(0xff02_0000_0000_0000UL, 0x0000_0001_ff00_0000UL | (Low & 0xff_ffff));

    /// <summary>The Ethernet address a multicast IPv6 address maps to: 33:33 and its low 32 bits (RFC 2464 §7).</summary>
    public MacAddress MulticastMac => new(0x3333_0000_0000UL | (Low & 0xffff_ffffUL));

    public bool InSubnet(Ipv6Address network, int prefixLength)
    {
        if (prefixLength <= 0) return true;
        if (prefixLength <= 64) return ((High ^ network.High) >> (64 - prefixLength)) == 0;
        return High == network.High && (prefixLength == 128 || ((Low ^ network.Low) >> (128 - prefixLength)) == 0);
    }

    /// <summary>Parses the RFC 4291 §2.2 text forms (with "::" and a trailing dotted IPv4 part). No zone ids.</summary>
    public static bool TryParse(ReadOnlySpan<char> text, out Ipv6Address address)
    {
        address = default;
        Span<ushort> words = stackalloc ushort[8];
        int n = 0, gap = -1, i = 0;
        if (text.StartsWith("::")) { gap = 0; i = 2; if (text.Length == 2) return true; }
        else if (text.Length == 0 || text[0] == ':') return false;
        while (i < text.Length)
        {
            int end = text[i..].IndexOf(':');
            ReadOnlySpan<char> part = end < 0 ? text[i..] : text.Slice(i, end);
            if (part.Contains('.'))
            {
                // The last 32 bits as a dotted IPv4 address.
                if (end >= 0 || n > 6 || !Ipv4Address.TryParse(part, out Ipv4Address v4)) return false;
                words[n++] = (ushort)(v4.Value >> 16);
                words[n++] = (ushort)v4.Value;
                i = text.Length;
                break;
            }
            if (part.Length is 0 or > 4 || n == 8) return false;
            if (!ushort.TryParse(part, System.Globalization.NumberStyles.AllowHexSpecifier, null, out ushort w)) return false;
            words[n++] = w;
            if (end < 0) { i = text.Length; break; }
            i += end + 1;
            if (i < text.Length && text[i] == ':')
            {
                if (gap >= 0) return false; // a second "::"
                gap = n;
                i++;
            }
            else if (i == text.Length) return false; // a trailing single ':'
        }
        if (gap < 0 ? n != 8 : n > 7) return false;
        Span<ushort> full = stackalloc ushort[8];
        full.Clear();
        if (gap < 0) words.CopyTo(full);
        else
        {
            words[..gap].CopyTo(full);
            words[gap..n].CopyTo(full[(8 - (n - gap))..]);
        }
        ulong hi = 0, lo = 0;
        for (int k = 0; k < 4; k++) hi = hi << 16 | full[k];
        for (int k = 4; k < 8; k++) lo = lo << 16 | full[k];
        address = new Ipv6Address(hi, lo);
        return true;
    }

    public static Ipv6Address Parse(string text) =>
        TryParse(text, out Ipv6Address a) ? a : throw new FormatException($"not an IPv6 address: '{text}'");

    /// <summary>RFC 5952 text: lower case, leading zeros dropped, the longest run of two or more zero words as "::".</summary>
    public override string ToString()
    {
        Span<ushort> w = stackalloc ushort[8];
        for (int k = 0; k < 4; k++) w[k] = (ushort)(High >> (48 - 16 * k));
        for (int k = 0; k < 4; k++) w[4 + k] = (ushort)(Low >> (48 - 16 * k));
        int bestAt = -1, bestLen = 1;
        for (int k = 0; k < 8;)
        {
            if (w[k] != 0) { k++; continue; }
            int j = k;
            while (j < 8 && w[j] == 0) j++;
            if (j - k > bestLen) { bestAt = k; bestLen = j - k; }
            k = j;
        }
        var sb = new System.Text.StringBuilder(39);
        for (int k = 0; k < 8; k++)
        {
            if (k == bestAt)
            {
                sb.Append("::");
                k += bestLen - 1;
                continue;
            }
            if (sb.Length > 0 && sb[^1] != ':') sb.Append(':');
            sb.Append(w[k].ToString("x"));
        }
        return sb.ToString();
    }
}

/// <summary>IPv6 next-header values we look at.</summary>
public static class Ipv6NextHeader
{
    public const byte Tcp = 6;
    public const byte Icmpv6 = 58;
}

/// <summary>
/// Zero-copy view of an IPv6 header (RFC 8200 §3): 40 bytes, no checksum. Extension headers are not followed: a
/// packet whose next header is not one we handle is dropped by the caller.
/// </summary>
public readonly ref struct Ipv6HeaderView
{
    public const int HeaderLength = 40;
    public const ushort EtherType = 0x86DD;

    private readonly Span<byte> _bytes;

    /// <summary>Wraps <paramref name="bytes"/> without checks.</summary>
    public Ipv6HeaderView(Span<byte> bytes) => _bytes = bytes;

    public Span<byte> Bytes => _bytes;
    public int Version => _bytes[0] >> 4;
    public byte TrafficClass => (byte)(BinaryPrimitives.ReadUInt16BigEndian(_bytes) >> 4);
    public uint FlowLabel => BinaryPrimitives.ReadUInt32BigEndian(_bytes) & 0xF_FFFF;
    public ushort PayloadLength => BinaryPrimitives.ReadUInt16BigEndian(_bytes[4..]);
    public byte NextHeader => _bytes[6];
    public byte HopLimit => _bytes[7];
    public Ipv6Address Source => Ipv6Address.Read(_bytes[8..]);
    public Ipv6Address Destination => Ipv6Address.Read(_bytes[24..]);
    /// <summary>The payload as the header sizes it (link padding excluded).</summary>
    public Span<byte> Payload => _bytes.Slice(HeaderLength, PayloadLength);

    /// <summary>Checks version and length; the view covers the header and its payload only (no link padding).
    /// A payload length of 0 with a Jumbo option (RFC 2675) is not supported: such a packet has no payload here.</summary>
    public static bool TryParse(Span<byte> packet, out Ipv6HeaderView view, out DropReason reason)
    {
        view = default;
        if (packet.Length < HeaderLength) { reason = DropReason.Ipv6Truncated; return false; }
        if (packet[0] >> 4 != 6) { reason = DropReason.Ipv6BadVersion; return false; }
        int payload = BinaryPrimitives.ReadUInt16BigEndian(packet[4..]);
        if (HeaderLength + payload > packet.Length) { reason = DropReason.Ipv6BadPayloadLength; return false; }
        view = new Ipv6HeaderView(packet[..(HeaderLength + payload)]);
        reason = DropReason.None;
        return true;
    }

    /// <summary>Writes a header at the front of <paramref name="bytes"/>.</summary>
    public static void Emit(Span<byte> bytes, Ipv6Address source, Ipv6Address destination, byte nextHeader,
        int payloadLength, byte hopLimit, byte trafficClass = 0)
    {
        BinaryPrimitives.WriteUInt32BigEndian(bytes, 6u << 28 | (uint)trafficClass << 20);
        BinaryPrimitives.WriteUInt16BigEndian(bytes[4..], (ushort)payloadLength);
        bytes[6] = nextHeader;
        bytes[7] = hopLimit;
        source.Write(bytes[8..]);
        destination.Write(bytes[24..]);
    }

    /// <summary>The upper-layer checksum over the RFC 8200 §8.1 pseudo-header and <paramref name="message"/>
    /// (whose checksum field must be zero to compute one, or hold it to verify: then the result is 0).</summary>
    public static ushort UpperLayerChecksum(Ipv6Address source, Ipv6Address destination, byte nextHeader, ReadOnlySpan<byte> message)
    {
        Span<byte> pseudo = stackalloc byte[40];
        source.Write(pseudo);
        destination.Write(pseudo[16..]);
        BinaryPrimitives.WriteUInt32BigEndian(pseudo[32..], (uint)message.Length);
        BinaryPrimitives.WriteUInt32BigEndian(pseudo[36..], nextHeader);
        return Checksum.Fold(Checksum.Add(Checksum.Add(0, pseudo), message));
    }
}

/// <summary>ICMPv6 message types we use (RFC 4443, RFC 4861).</summary>
public static class Icmpv6Type
{
    public const byte EchoRequest = 128, EchoReply = 129, RouterSolicitation = 133, RouterAdvertisement = 134,
        NeighborSolicitation = 135, NeighborAdvertisement = 136;
}

/// <summary>
/// ICMPv6 messages the interface answers: echo (RFC 4443 §4) and neighbour discovery (RFC 4861 §4.3, §4.4, §7).
/// Every parse checks lengths first; malformed input returns false with a drop reason.
/// </summary>
public static class Icmpv6
{
    public const int HeaderLength = 8;
    /// <summary>Neighbour solicitation/advertisement: 4 bytes of header, 4 of flags/reserved, the 16-byte target.</summary>
    public const int NeighborMessageLength = 24;
    private const byte OptionSourceLinkLayer = 1, OptionTargetLinkLayer = 2;
    private const uint FlagSolicited = 0x4000_0000, FlagOverride = 0x2000_0000;

    /// <summary>The checks of RFC 4861 §7.1.1 for a neighbour solicitation (the hop limit is the caller's): length,
    /// code 0, a non-multicast target, options well formed (none of length 0), no source link-layer option when the
    /// source is unspecified. Returns the target and the source link-layer address (when the option is there).</summary>
    public static bool TryParseSolicitation(ReadOnlySpan<byte> msg, bool sourceUnspecified, out Ipv6Address target,
        out MacAddress sourceMac, out bool hasSourceMac)
    {
        target = default;
        sourceMac = default;
        hasSourceMac = false;
        if (msg.Length < NeighborMessageLength || msg[1] != 0) return false;
        target = Ipv6Address.Read(msg[8..]);
        if (target.IsMulticast) return false;
        ReadOnlySpan<byte> opts = msg[NeighborMessageLength..];
        while (opts.Length > 0)
        {
            if (opts.Length < 2) return false;
            int len = opts[1] * 8;
            if (len == 0 || len > opts.Length) return false;
            if (opts[0] == OptionSourceLinkLayer)
            {
                if (sourceUnspecified || len < 8) return false;
                sourceMac = MacAddress.Read(opts[2..]);
                hasSourceMac = true;
            }
            opts = opts[len..];
        }
        return true;
    }

    /// <summary>The checks of RFC 4861 §7.1.2 for a neighbour advertisement (the hop limit is the caller's): length,
    /// code 0, a non-multicast target, the solicited flag clear when sent to a multicast address, options well formed.
    /// Returns the target and its link-layer address (when the option is there).</summary>
    public static bool TryParseAdvertisement(ReadOnlySpan<byte> msg, bool toMulticast, out Ipv6Address target,
        out MacAddress targetMac, out bool hasTargetMac)
    {
        target = default;
        targetMac = default;
        hasTargetMac = false;
        if (msg.Length < NeighborMessageLength || msg[1] != 0) return false;
        if (toMulticast && (BinaryPrimitives.ReadUInt32BigEndian(msg[4..]) & FlagSolicited) != 0) return false;
        target = Ipv6Address.Read(msg[8..]);
        if (target.IsMulticast) return false;
        ReadOnlySpan<byte> opts = msg[NeighborMessageLength..];
        while (opts.Length > 0)
        {
            if (opts.Length < 2) return false;
            int len = opts[1] * 8;
            if (len == 0 || len > opts.Length) return false;
            if (opts[0] == OptionTargetLinkLayer && len >= 8)
            {
                targetMac = MacAddress.Read(opts[2..]);
                hasTargetMac = true;
            }
            opts = opts[len..];
        }
        return true;
    }

    /// <summary>A neighbour solicitation for <paramref name="target"/> with our source link-layer option (32 bytes),
    /// checksummed for the given addresses.</summary>
    public static int EmitSolicitation(Span<byte> buf, Ipv6Address source, Ipv6Address destination, Ipv6Address target, MacAddress mac) =>
        EmitNeighborMessage(buf, Icmpv6Type.NeighborSolicitation, 0, OptionSourceLinkLayer, source, destination, target, mac);

    /// <summary>A neighbour advertisement for <paramref name="target"/> with its target link-layer option (32 bytes),
    /// checksummed for the given addresses.</summary>
    public static int EmitAdvertisement(Span<byte> buf, Ipv6Address source, Ipv6Address destination, Ipv6Address target,
        MacAddress mac, bool solicited) =>
        EmitNeighborMessage(buf, Icmpv6Type.NeighborAdvertisement, FlagOverride | (solicited ? FlagSolicited : 0),
            OptionTargetLinkLayer, source, destination, target, mac);

    /// <summary>Both neighbour messages have one layout (RFC 4861 §4.3, §4.4): type, code 0, checksum, a 32-bit word
    /// (reserved, or the advertisement's flags), the target address, then one link-layer address option.</summary>
    private static int EmitNeighborMessage(Span<byte> buf, byte type, uint flags, byte option, Ipv6Address source,
        Ipv6Address destination, Ipv6Address target, MacAddress mac)
    {
        const int length = NeighborMessageLength + 8;
        buf[..length].Clear();
        buf[0] = type;
        BinaryPrimitives.WriteUInt32BigEndian(buf[4..], flags);
        target.Write(buf[8..]);
        buf[24] = option;
        buf[25] = 1;
        mac.Write(buf[26..]);
        FillChecksum(buf[..length], source, destination);
        return length;
    }

    /// <summary>Turns the echo request copied into <paramref name="msg"/> into its reply (same identifier, sequence
    /// and data) for the given addresses.</summary>
    public static void MakeEchoReply(Span<byte> msg, Ipv6Address source, Ipv6Address destination)
    {
        msg[0] = Icmpv6Type.EchoReply;
        msg[1] = 0;
        FillChecksum(msg, source, destination);
    }

    public static void FillChecksum(Span<byte> msg, Ipv6Address source, Ipv6Address destination)
    {
        msg[2] = msg[3] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(msg[2..], Ipv6HeaderView.UpperLayerChecksum(source, destination, Ipv6NextHeader.Icmpv6, msg));
    }

    public static bool ChecksumValid(ReadOnlySpan<byte> msg, Ipv6Address source, Ipv6Address destination) =>
        Ipv6HeaderView.UpperLayerChecksum(source, destination, Ipv6NextHeader.Icmpv6, msg) == 0;
}
