using System;
using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace UserTcp.Stack.Wire;

/// <summary>TCP control bits (RFC 9293 §3.1, ECE/CWR from RFC 3168 §23.2).</summary>
[Flags]
public enum TcpFlags : byte
{
    None = 0,
    Fin = 0x01,
    Syn = 0x02,
    Rst = 0x04,
    Psh = 0x08,
    Ack = 0x10,
    Urg = 0x20,
    Ece = 0x40,
    Cwr = 0x80,
}

/// <summary>
/// Zero-copy view of a TCP header (RFC 9293 §3.1). Getters and setters read and write the bytes in place.
/// Only <see cref="TryParse"/> checks bounds against the data offset; the constructor trusts its caller.
/// </summary>
public readonly ref struct TcpHeaderView
{
    public const int MinLength = 20;
    public const int MaxLength = 60;

    // Field offsets (RFC 9293 §3.1, Figure 1).
    private const int SrcPortAt = 0, DstPortAt = 2, SeqAt = 4, AckAt = 8, DataOffsetAt = 12, FlagsAt = 13,
        WindowAt = 14, ChecksumAt = 16, UrgentAt = 18;

    private readonly Span<byte> _bytes;

    /// <summary>Wraps <paramref name="bytes"/> (header and payload) without checks.</summary>
    public TcpHeaderView(Span<byte> bytes) => _bytes = bytes;

    public Span<byte> Bytes => _bytes;

    public ushort SourcePort { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => BinaryPrimitives.ReadUInt16BigEndian(_bytes[SrcPortAt..]); set => BinaryPrimitives.WriteUInt16BigEndian(_bytes[SrcPortAt..], value); }
    public ushort DestinationPort { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => BinaryPrimitives.ReadUInt16BigEndian(_bytes[DstPortAt..]); set => BinaryPrimitives.WriteUInt16BigEndian(_bytes[DstPortAt..], value); }
    public uint SequenceNumber { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => BinaryPrimitives.ReadUInt32BigEndian(_bytes[SeqAt..]); set => BinaryPrimitives.WriteUInt32BigEndian(_bytes[SeqAt..], value); }
    public uint AckNumber { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => BinaryPrimitives.ReadUInt32BigEndian(_bytes[AckAt..]); set => BinaryPrimitives.WriteUInt32BigEndian(_bytes[AckAt..], value); }

    /// <summary>Header length in bytes (data offset field × 4). The reserved low nibble is written as zero.</summary>
    public int HeaderLength { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => (_bytes[DataOffsetAt] >> 4) * 4; set => _bytes[DataOffsetAt] = (byte)((value / 4) << 4); }

    public TcpFlags Flags { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => (TcpFlags)_bytes[FlagsAt]; set => _bytes[FlagsAt] = (byte)value; }
    public ushort Window { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => BinaryPrimitives.ReadUInt16BigEndian(_bytes[WindowAt..]); set => BinaryPrimitives.WriteUInt16BigEndian(_bytes[WindowAt..], value); }
    public ushort Checksum { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => BinaryPrimitives.ReadUInt16BigEndian(_bytes[ChecksumAt..]); set => BinaryPrimitives.WriteUInt16BigEndian(_bytes[ChecksumAt..], value); }
    public ushort UrgentPointer { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => BinaryPrimitives.ReadUInt16BigEndian(_bytes[UrgentAt..]); set => BinaryPrimitives.WriteUInt16BigEndian(_bytes[UrgentAt..], value); }

    public bool Has(TcpFlags f) => (Flags & f) == f;

    /// <summary>The option bytes between the fixed header and the payload.</summary>
    public Span<byte> Options => _bytes[MinLength..HeaderLength];

    /// <summary>The segment text after the header.</summary>
    public Span<byte> Payload => _bytes[HeaderLength..];

    /// <summary>Checks that <paramref name="segment"/> holds a whole TCP header: at least 20 bytes, a data offset of at
    /// least 5 words, and no more header than bytes. Payload length is whatever follows.</summary>
    public static bool TryParse(Span<byte> segment, out TcpHeaderView header, out DropReason reason)
    {
        header = default;
        if (segment.Length < MinLength) { reason = DropReason.TcpTruncated; return false; }
        int hl = (segment[DataOffsetAt] >> 4) * 4;
        if (hl < MinLength) { reason = DropReason.TcpBadHeaderLength; return false; }
        if (hl > segment.Length) { reason = DropReason.TcpTruncated; return false; }
        header = new TcpHeaderView(segment);
        reason = DropReason.None;
        return true;
    }

    /// <summary>Writes a fixed header (checksum zero, urgent zero) at <paramref name="b"/>, which must have room for
    /// 20 bytes: the same bytes as <see cref="Emit"/>, in five stores.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void EmitRaw(byte* b, ushort srcPort, ushort dstPort, uint seq, uint ack, TcpFlags flags,
        ushort window, int headerLength)
    {
        *(uint*)b = Be((uint)srcPort << 16 | dstPort);
        *(uint*)(b + 4) = Be(seq);
        *(uint*)(b + 8) = Be(ack);
        *(uint*)(b + 12) = Be((uint)(headerLength / 4) << 28 | (uint)(byte)flags << 16 | window);
        *(uint*)(b + 16) = 0; // checksum and urgent pointer
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Be(uint v) => BitConverter.IsLittleEndian ? BinaryPrimitives.ReverseEndianness(v) : v;

    /// <summary>Writes a fixed header (checksum zero, urgent zero) at the front of <paramref name="bytes"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TcpHeaderView Emit(Span<byte> bytes, ushort srcPort, ushort dstPort, uint seq, uint ack,
        TcpFlags flags, ushort window, int headerLength)
    {
        var h = new TcpHeaderView(bytes);
        h.SourcePort = srcPort;
        h.DestinationPort = dstPort;
        h.SequenceNumber = seq;
        h.AckNumber = ack;
        h.HeaderLength = headerLength;
        h.Flags = flags;
        h.Window = window;
        h.Checksum = 0;
        h.UrgentPointer = 0;
        return h;
    }
}
