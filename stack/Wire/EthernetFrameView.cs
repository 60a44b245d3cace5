using System;
using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace UserTcp.Stack.Wire;

/// <summary>EtherType values we handle (IEEE 802.3 Clause 3.2.6; Ethernet II framing, RFC 894).</summary>
public static class EtherType
{
    public const ushort Ipv4 = 0x0800;
    public const ushort Arp = 0x0806;
    /// <summary>Values below this are 802.3 length fields, not types.</summary>
    public const ushort MinType = 0x0600;
}

/// <summary>
/// Zero-copy view of an Ethernet II frame: destination, source, EtherType, payload. The frame check sequence is not
/// part of the buffer (devices strip it). VLAN tags are not understood: an 802.1Q frame shows type 0x8100.
/// </summary>
public readonly ref struct EthernetFrameView
{
    public const int HeaderLength = 14;

    private const int DestinationAt = 0, SourceAt = 6, EtherTypeAt = 12;

    private readonly Span<byte> _bytes;

    /// <summary>Wraps <paramref name="bytes"/> without checks.</summary>
    public EthernetFrameView(Span<byte> bytes) => _bytes = bytes;

    public Span<byte> Bytes => _bytes;

    public MacAddress Destination { get => MacAddress.Read(_bytes[DestinationAt..]); set => value.Write(_bytes[DestinationAt..]); }
    public MacAddress Source { get => MacAddress.Read(_bytes[SourceAt..]); set => value.Write(_bytes[SourceAt..]); }
    public ushort EtherType { get => BinaryPrimitives.ReadUInt16BigEndian(_bytes[EtherTypeAt..]); set => BinaryPrimitives.WriteUInt16BigEndian(_bytes[EtherTypeAt..], value); }

    /// <summary>Everything after the header (may include padding up to the 60-byte minimum frame).</summary>
    public Span<byte> Payload => _bytes[HeaderLength..];

    /// <summary>Checks that the buffer holds a whole header.</summary>
    public static bool TryParse(Span<byte> frame, out EthernetFrameView view, out DropReason reason)
    {
        view = default;
        if (frame.Length < HeaderLength) { reason = DropReason.EthernetTruncated; return false; }
        view = new EthernetFrameView(frame);
        reason = DropReason.None;
        return true;
    }

    /// <summary>Writes a header at the front of <paramref name="bytes"/>.</summary>
    public static EthernetFrameView Emit(Span<byte> bytes, MacAddress destination, MacAddress source, ushort etherType)
    {
        if (bytes.Length < HeaderLength) throw new ArgumentOutOfRangeException(nameof(bytes));
        // Three stores: destination and the first two bytes of the source, the rest of the source, the type.
        ref byte p = ref MemoryMarshal.GetReference(bytes);
        ulong d = destination.Value & 0xFFFF_FFFF_FFFFUL, s = source.Value & 0xFFFF_FFFF_FFFFUL;
        ulong first = d << 16 | s >> 32;
        uint rest = (uint)s;
        ushort type = etherType;
        if (BitConverter.IsLittleEndian)
        {
            first = BinaryPrimitives.ReverseEndianness(first);
            rest = BinaryPrimitives.ReverseEndianness(rest);
            type = BinaryPrimitives.ReverseEndianness(type);
        }
        Unsafe.WriteUnaligned(ref p, first);
        Unsafe.WriteUnaligned(ref Unsafe.Add(ref p, 8), rest);
        Unsafe.WriteUnaligned(ref Unsafe.Add(ref p, 12), type);
        return new EthernetFrameView(bytes);
    }
}
