using System;
using System.Buffers.Binary;

namespace UserTcp.Bench.Harness;

/// <summary>
/// A captured, valid TCP segment (header, options, payload) that a benchmark replays with a new sequence or
/// acknowledgment number. The checksum is patched incrementally (RFC 1624, eqn. 3: HC' = ~(~HC + ~m + m')) so the
/// harness costs a few nanoseconds per segment rather than a second pass over the payload; the stack still verifies
/// the whole checksum when the benchmark does not claim receive offload.
/// </summary>
internal sealed class SegmentTemplate
{
    private const int SeqOffset = 4, AckOffset = 8, WindowOffset = 14, ChecksumOffset = 16;

    /// <summary>The segment bytes (pinned, allocated once).</summary>
    public readonly byte[] Bytes;

    public SegmentTemplate(ReadOnlySpan<byte> captured)
    {
        Bytes = GC.AllocateArray<byte>(captured.Length, pinned: true);
        captured.CopyTo(Bytes);
    }

    public Span<byte> Span => Bytes;
    public uint Seq => BinaryPrimitives.ReadUInt32BigEndian(Bytes.AsSpan(SeqOffset));
    public uint Ack => BinaryPrimitives.ReadUInt32BigEndian(Bytes.AsSpan(AckOffset));
    public int HeaderLength => (Bytes[12] >> 4) * 4;
    public int PayloadLength => Bytes.Length - HeaderLength;

    public void SetSeq(uint value) => Rewrite(SeqOffset, value);
    public void SetAck(uint value) => Rewrite(AckOffset, value);

    /// <summary>Rewrites the raw (unscaled) window field.</summary>
    public void SetWindow(ushort value)
    {
        Span<byte> b = Bytes;
        ushort old = BinaryPrimitives.ReadUInt16BigEndian(b[WindowOffset..]);
        ushort hc = Patch(BinaryPrimitives.ReadUInt16BigEndian(b[ChecksumOffset..]), old, value);
        BinaryPrimitives.WriteUInt16BigEndian(b[WindowOffset..], value);
        BinaryPrimitives.WriteUInt16BigEndian(b[ChecksumOffset..], hc);
    }

    private void Rewrite(int offset, uint value)
    {
        Span<byte> b = Bytes;
        uint old = BinaryPrimitives.ReadUInt32BigEndian(b[offset..]);
        ushort hc = BinaryPrimitives.ReadUInt16BigEndian(b[ChecksumOffset..]);
        hc = Patch(hc, (ushort)(old >> 16), (ushort)(value >> 16));
        hc = Patch(hc, (ushort)old, (ushort)value);
        BinaryPrimitives.WriteUInt32BigEndian(b[offset..], value);
        BinaryPrimitives.WriteUInt16BigEndian(b[ChecksumOffset..], hc);
    }

    private static ushort Patch(ushort hc, ushort oldWord, ushort newWord)
    {
        uint sum = (uint)(~hc & 0xFFFF) + (uint)(~oldWord & 0xFFFF) + newWord;
        sum = (sum & 0xFFFF) + (sum >> 16);
        sum = (sum & 0xFFFF) + (sum >> 16);
        return (ushort)~sum;
    }
}
