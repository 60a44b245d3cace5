using System;
using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace UserTcp.Stack.Wire;

/// <summary>IP protocol numbers we know (IANA "Assigned Internet Protocol Numbers").</summary>
public static class IpProtocol
{
    public const byte Icmp = 1;
    public const byte Tcp = 6;
    public const byte Udp = 17;
}

/// <summary>
/// Zero-copy view of an IPv4 packet (RFC 791 §3.1). After <see cref="TryParse"/> the view spans exactly
/// <see cref="TotalLength"/> bytes (link-layer padding cut off), so <see cref="Payload"/> is the transport data.
/// Options are not interpreted; the header length is honoured.
/// </summary>
public readonly ref struct Ipv4HeaderView
{
    public const int MinHeaderLength = 20;
    public const int MaxHeaderLength = 60;
    public const byte DefaultTtl = 64;

    private const int VersionIhlAt = 0, TosAt = 1, TotalLengthAt = 2, IdentificationAt = 4, FlagsFragmentAt = 6,
        TtlAt = 8, ProtocolAt = 9, ChecksumAt = 10, SourceAt = 12, DestinationAt = 16;
    private const ushort DontFragmentBit = 0x4000, MoreFragmentsBit = 0x2000, FragmentOffsetMask = 0x1FFF;

    private readonly Span<byte> _bytes;

    /// <summary>Wraps <paramref name="bytes"/> without checks.</summary>
    public Ipv4HeaderView(Span<byte> bytes) => _bytes = bytes;

    public Span<byte> Bytes => _bytes;

    public int Version => _bytes[VersionIhlAt] >> 4;
    /// <summary>Header length in bytes (IHL × 4). Setting it also sets version 4.</summary>
    public int HeaderLength { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => (_bytes[VersionIhlAt] & 0xF) * 4; set => _bytes[VersionIhlAt] = (byte)(0x40 | (value / 4)); }
    public byte TypeOfService { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => _bytes[TosAt]; set => _bytes[TosAt] = value; }
    public ushort TotalLength { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => BinaryPrimitives.ReadUInt16BigEndian(_bytes[TotalLengthAt..]); set => BinaryPrimitives.WriteUInt16BigEndian(_bytes[TotalLengthAt..], value); }
    public ushort Identification { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => BinaryPrimitives.ReadUInt16BigEndian(_bytes[IdentificationAt..]); set => BinaryPrimitives.WriteUInt16BigEndian(_bytes[IdentificationAt..], value); }
    /// <summary>Flags (3 bits) and fragment offset (13 bits) as one field.</summary>
    public ushort FlagsAndFragmentOffset { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => BinaryPrimitives.ReadUInt16BigEndian(_bytes[FlagsFragmentAt..]); set => BinaryPrimitives.WriteUInt16BigEndian(_bytes[FlagsFragmentAt..], value); }
    public bool DontFragment => (FlagsAndFragmentOffset & DontFragmentBit) != 0;
    public bool MoreFragments => (FlagsAndFragmentOffset & MoreFragmentsBit) != 0;
    /// <summary>Fragment offset in bytes.</summary>
    public int FragmentOffset => (FlagsAndFragmentOffset & FragmentOffsetMask) * 8;
    /// <summary>A fragment of a larger datagram: more fragments follow, or this one is not the first.</summary>
    public bool IsFragment => (FlagsAndFragmentOffset & (MoreFragmentsBit | FragmentOffsetMask)) != 0;
    public byte Ttl { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => _bytes[TtlAt]; set => _bytes[TtlAt] = value; }
    public byte Protocol { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => _bytes[ProtocolAt]; set => _bytes[ProtocolAt] = value; }
    public ushort HeaderChecksum { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => BinaryPrimitives.ReadUInt16BigEndian(_bytes[ChecksumAt..]); set => BinaryPrimitives.WriteUInt16BigEndian(_bytes[ChecksumAt..], value); }
    public Ipv4Address Source { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => Ipv4Address.Read(_bytes[SourceAt..]); set => value.Write(_bytes[SourceAt..]); }
    public Ipv4Address Destination { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => Ipv4Address.Read(_bytes[DestinationAt..]); set => value.Write(_bytes[DestinationAt..]); }

    public Span<byte> Header => _bytes[..HeaderLength];
    /// <summary>The options between the fixed header and the payload (not interpreted).</summary>
    public Span<byte> Options => _bytes[MinHeaderLength..HeaderLength];
    /// <summary>The data after the header, up to <see cref="TotalLength"/> (valid after <see cref="TryParse"/>).</summary>
    public Span<byte> Payload => _bytes[HeaderLength..TotalLength];

    /// <summary>True when the header checksum verifies (RFC 791 §3.1: the header sums to all ones).</summary>
    public bool ChecksumValid => Checksum.SumsToOnes(Header);

    /// <summary>Fills the header checksum.</summary>
    public void FillChecksum()
    {
        HeaderChecksum = 0;
        HeaderChecksum = Checksum.Compute(Header);
    }

    /// <summary>
    /// Checks version, header length, total length against the buffer (RFC 1122 §3.2.1.1-3.2.1.2), the checksum
    /// (unless the NIC already verified it: <paramref name="checksumVerified"/>), and rejects fragments: we do not
    /// reassemble (MF set or offset non-zero → <see cref="DropReason.Ipv4Fragment"/>). On success the view is cut to
    /// the total length.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // the fast path inlined into the receive path; the rest is a call
    public static bool TryParse(Span<byte> packet, bool checksumVerified, out Ipv4HeaderView view, out DropReason reason)
    {
        // The common packet first: version 4 without options (0x45), read with five loads. Anything it does not
        // accept goes through the field-by-field checks below, which name the drop reason.
        if (packet.Length >= MinHeaderLength && packet[0] == 0x45)
        {
            ref byte p = ref MemoryMarshal.GetReference(packet);
            uint w0 = Unsafe.ReadUnaligned<uint>(ref p), w1 = Unsafe.ReadUnaligned<uint>(ref Unsafe.Add(ref p, 4));
            int length = BitConverter.IsLittleEndian ? BinaryPrimitives.ReverseEndianness((ushort)(w0 >> 16)) : (ushort)w0;
            ushort fragment = BitConverter.IsLittleEndian ? BinaryPrimitives.ReverseEndianness((ushort)(w1 >> 16)) : (ushort)w1;
            if (length >= MinHeaderLength && length <= packet.Length && (fragment & (MoreFragmentsBit | FragmentOffsetMask)) == 0)
            {
                bool good = checksumVerified;
                if (!good)
                {
                    ulong sum = (ulong)w0 + w1 + Unsafe.ReadUnaligned<uint>(ref Unsafe.Add(ref p, 8))
                        + Unsafe.ReadUnaligned<uint>(ref Unsafe.Add(ref p, 12)) + Unsafe.ReadUnaligned<uint>(ref Unsafe.Add(ref p, 16));
                    sum = (sum & 0xFFFF_FFFF) + (sum >> 32); // at most 2^32 + 3: fold to 32 bits, then to 16
                    sum = (sum & 0xFFFF_FFFF) + (sum >> 32);
                    sum = (sum & 0xFFFF) + (sum >> 16);
                    sum = (sum & 0xFFFF) + (sum >> 16);
                    good = sum == 0xFFFF; // RFC 791 §3.1: the header, checksum included, sums to all ones
                }
                if (good)
                {
                    view = new Ipv4HeaderView(packet[..length]);
                    reason = DropReason.None;
                    return true;
                }
            }
        }
        return TryParseGeneral(packet, checksumVerified, out view, out reason);
    }

    /// <summary>The field-by-field checks of <see cref="TryParse"/>, which name the drop reason.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static bool TryParseGeneral(Span<byte> packet, bool checksumVerified, out Ipv4HeaderView view, out DropReason reason)
    {
        view = default;
        if (packet.Length < MinHeaderLength) { reason = DropReason.Ipv4Truncated; return false; }
        var v = new Ipv4HeaderView(packet);
        if (v.Version != 4) { reason = DropReason.Ipv4BadVersion; return false; }
        int hl = v.HeaderLength;
        if (hl < MinHeaderLength) { reason = DropReason.Ipv4BadHeaderLength; return false; }
        if (hl > packet.Length) { reason = DropReason.Ipv4Truncated; return false; }
        int total = v.TotalLength;
        if (total < hl) { reason = DropReason.Ipv4BadTotalLength; return false; }
        if (total > packet.Length) { reason = DropReason.Ipv4Truncated; return false; }
        if (!checksumVerified && !v.ChecksumValid) { reason = DropReason.Ipv4BadChecksum; return false; }
        if (v.IsFragment) { reason = DropReason.Ipv4Fragment; return false; }
        view = new Ipv4HeaderView(packet[..total]);
        reason = DropReason.None;
        return true;
    }

    /// <summary>
    /// Writes a 20-byte header (no options) at the front of <paramref name="bytes"/>, which must hold the whole
    /// packet. The checksum is filled unless the device will (<paramref name="fillChecksum"/> false leaves it zero).
    /// </summary>
    public static Ipv4HeaderView Emit(Span<byte> bytes, Ipv4Address source, Ipv4Address destination, byte protocol,
        int totalLength, ushort identification, byte ttl = DefaultTtl, bool dontFragment = true, bool fillChecksum = true)
    {
        Span<byte> b = bytes[..totalLength];
        if (b.Length < MinHeaderLength) throw new ArgumentOutOfRangeException(nameof(totalLength));
        // One pass of stores, and the checksum summed from the field values rather than re-read from memory
        // (RFC 1071: the sum of the ten 16-bit words; the checksum word is zero while summing).
        ushort flags = dontFragment ? DontFragmentBit : (ushort)0;
        ref byte p = ref MemoryMarshal.GetReference(b);
        Unsafe.WriteUnaligned(ref p, BigEndian((uint)(0x4500_0000u | (ushort)totalLength)));
        Unsafe.WriteUnaligned(ref Unsafe.Add(ref p, 4), BigEndian((uint)identification << 16 | flags));
        Unsafe.WriteUnaligned(ref Unsafe.Add(ref p, 8), BigEndian((uint)ttl << 24 | (uint)protocol << 16));
        Unsafe.WriteUnaligned(ref Unsafe.Add(ref p, 12), BigEndian(source.Value));
        Unsafe.WriteUnaligned(ref Unsafe.Add(ref p, 16), BigEndian(destination.Value));
        if (fillChecksum)
        {
            ulong sum = 0x4500u + (uint)(ushort)totalLength + identification + flags + ((uint)ttl << 8 | protocol)
                + (source.Value >> 16) + (source.Value & 0xFFFF) + (destination.Value >> 16) + (destination.Value & 0xFFFF);
            ushort c = Checksum.Fold((uint)sum); // at most 9 * 0xFFFF: no overflow
            Unsafe.WriteUnaligned(ref Unsafe.Add(ref p, ChecksumAt), BitConverter.IsLittleEndian ? BinaryPrimitives.ReverseEndianness(c) : c);
        }
        return new Ipv4HeaderView(b);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint BigEndian(uint v) => BitConverter.IsLittleEndian ? BinaryPrimitives.ReverseEndianness(v) : v;
}
