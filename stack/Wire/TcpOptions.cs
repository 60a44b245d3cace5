using System;
using System.Buffers.Binary;

namespace UserTcp.Stack.Wire;

/// <summary>One SACK block (RFC 2018 §3): the left edge and the sequence number just past the right edge.</summary>
public readonly record struct SackBlock(uint Start, uint End);

/// <summary>
/// The TCP options this stack understands, parsed into a value (RFC 9293 §3.2, RFC 7323, RFC 2018).
/// Parse rules (modelled on what Linux accepts, so a peer sees the same behaviour):
/// - EOL ends the list, NOP is skipped, every other kind carries a length byte.
/// - A length byte below 2 or running past the header end makes the whole segment malformed (drop, TcpBadOptions).
/// - A known option with the wrong length for its kind is ignored (Linux ignores it too), as is any unknown kind.
/// - Window scale is capped at 14 (RFC 7323 §2.3); SACK carries 1..4 blocks.
/// </summary>
public struct TcpOptions
{
    public const byte KindEol = 0, KindNop = 1, KindMss = 2, KindWindowScale = 3, KindSackPermitted = 4, KindSack = 5,
        KindTimestamps = 8;
    public const int MaxSackBlocks = 4;
    /// <summary>With timestamps (12 bytes incl. two NOPs) only three blocks fit in the 40 option bytes.</summary>
    public const int MaxSackBlocksWithTimestamps = 3;
    public const int MaxWindowScale = 14;
    public const int MaxLength = 40;

    public bool HasMss;
    public ushort Mss;
    public bool HasWindowScale;
    public byte WindowScale;
    public bool SackPermitted;
    public bool HasTimestamps;
    public uint TsVal;
    public uint TsEcr;
    public int SackCount;
    private SackBlock _sack0, _sack1, _sack2, _sack3;

    public readonly SackBlock GetSack(int i) => i switch
    {
        0 => _sack0, 1 => _sack1, 2 => _sack2, 3 => _sack3,
        _ => throw new ArgumentOutOfRangeException(nameof(i)),
    };

    /// <summary>Appends a SACK block; returns false when four are already held.</summary>
    public bool AddSack(SackBlock b)
    {
        switch (SackCount)
        {
            case 0: _sack0 = b; break;
            case 1: _sack1 = b; break;
            case 2: _sack2 = b; break;
            case 3: _sack3 = b; break;
            default: return false;
        }
        SackCount++;
        return true;
    }

    /// <summary>Parses the option bytes of a header. On a malformed list returns false with
    /// <see cref="DropReason.TcpBadOptions"/>.</summary>
    public static bool TryParse(ReadOnlySpan<byte> bytes, out TcpOptions options, out DropReason reason)
    {
        options = default;
        // Fast path: the layout nearly every segment of an established connection carries (RFC 7323 Appendix A,
        // what Linux and this stack emit): NOP, NOP, timestamps. Same result as the general loop below.
        if (bytes.Length == 12 && BinaryPrimitives.ReadUInt32BigEndian(bytes) == 0x0101080Au)
        {
            options.HasTimestamps = true;
            options.TsVal = BinaryPrimitives.ReadUInt32BigEndian(bytes[4..]);
            options.TsEcr = BinaryPrimitives.ReadUInt32BigEndian(bytes[8..]);
            reason = DropReason.None;
            return true;
        }
        // Fast path for a SYN or SYN-ACK in the layout Linux and this stack (Emit) send: MSS, SACK-permitted +
        // timestamps, NOP + window scale (20 bytes). Same result as the general loop below; any other layout takes it.
        if (bytes.Length == 20 && BinaryPrimitives.ReadUInt32BigEndian(bytes[4..]) == 0x0402080Au)
        {
            uint w0 = BinaryPrimitives.ReadUInt32BigEndian(bytes), w4 = BinaryPrimitives.ReadUInt32BigEndian(bytes[16..]);
            if ((w0 >> 16) == 0x0204u && (w4 >> 8) == 0x010303u)
            {
                options.HasMss = true;
                options.Mss = (ushort)w0;
                options.SackPermitted = true;
                options.HasTimestamps = true;
                options.TsVal = BinaryPrimitives.ReadUInt32BigEndian(bytes[8..]);
                options.TsEcr = BinaryPrimitives.ReadUInt32BigEndian(bytes[12..]);
                options.HasWindowScale = true;
                options.WindowScale = Math.Min((byte)w4, (byte)MaxWindowScale);
                reason = DropReason.None;
                return true;
            }
        }
        if (bytes.IsEmpty)
        {
            reason = DropReason.None;
            return true;
        }
        return ParseGeneral(bytes, ref options, out reason);
    }

    /// <summary>The option list walked kind by kind (every layout the fast paths of <see cref="TryParse"/> do not
    /// recognise).</summary>
    internal static bool ParseGeneral(ReadOnlySpan<byte> bytes, ref TcpOptions options, out DropReason reason)
    {
        int i = 0;
        while (i < bytes.Length)
        {
            byte kind = bytes[i];
            if (kind == KindEol) break;
            if (kind == KindNop) { i++; continue; }
            if (i + 1 >= bytes.Length) { reason = DropReason.TcpBadOptions; return false; }
            int len = bytes[i + 1];
            if (len < 2 || i + len > bytes.Length) { reason = DropReason.TcpBadOptions; return false; }
            ReadOnlySpan<byte> body = bytes.Slice(i + 2, len - 2);
            switch (kind)
            {
                case KindMss when len == 4:
                    options.HasMss = true;
                    options.Mss = BinaryPrimitives.ReadUInt16BigEndian(body);
                    break;
                case KindWindowScale when len == 3:
                    options.HasWindowScale = true;
                    // RFC 7323 §2.3: a shift above 14 is treated as 14 (and Linux logs it).
                    options.WindowScale = Math.Min(body[0], (byte)MaxWindowScale);
                    break;
                case KindSackPermitted when len == 2:
                    options.SackPermitted = true;
                    break;
                case KindSack when len >= 10 && (len - 2) % 8 == 0 && (len - 2) / 8 <= MaxSackBlocks:
                    options.SackCount = 0;
                    for (int b = 0; b < (len - 2) / 8; b++)
                        options.AddSack(new SackBlock(BinaryPrimitives.ReadUInt32BigEndian(body[(b * 8)..]),
                            BinaryPrimitives.ReadUInt32BigEndian(body[(b * 8 + 4)..])));
                    break;
                case KindTimestamps when len == 10:
                    options.HasTimestamps = true;
                    options.TsVal = BinaryPrimitives.ReadUInt32BigEndian(body);
                    options.TsEcr = BinaryPrimitives.ReadUInt32BigEndian(body[4..]);
                    break;
                default:
                    break; // unknown kind or wrong length for a known one: skipped by its length
            }
            i += len;
        }
        reason = DropReason.None;
        return true;
    }

    /// <summary>Bytes <see cref="Emit"/> writes (a multiple of 4). SACK blocks beyond what fits are not counted.</summary>
    public readonly int Length
    {
        get
        {
            int n = 0;
            if (HasMss) n += 4;
            if (SackPermitted || HasTimestamps) n += HasTimestamps ? 12 : 4;
            if (HasWindowScale) n += 4;
            int sacks = EmittedSackCount;
            if (sacks > 0) n += 4 + 8 * sacks;
            return n;
        }
    }

    private readonly int EmittedSackCount
    {
        get
        {
            int room = MaxLength - (HasMss ? 4 : 0) - ((SackPermitted || HasTimestamps) ? (HasTimestamps ? 12 : 4) : 0)
                - (HasWindowScale ? 4 : 0) - 4;
            return Math.Max(0, Math.Min(SackCount, room / 8));
        }
    }

    /// <summary>
    /// Writes the options in the layout Linux uses, each aligned to 4 bytes:
    /// MSS; SACK-permitted+timestamps (or NOP,NOP,TS or NOP,NOP,SACK-permitted); NOP,window scale; NOP,NOP,SACK blocks.
    /// Returns the bytes written (== <see cref="Length"/>).
    /// </summary>
    public readonly int Emit(Span<byte> dst)
    {
        int i = 0;
        if (HasMss)
        {
            dst[i] = KindMss; dst[i + 1] = 4;
            BinaryPrimitives.WriteUInt16BigEndian(dst[(i + 2)..], Mss);
            i += 4;
        }
        if (HasTimestamps)
        {
            if (SackPermitted) { dst[i] = KindSackPermitted; dst[i + 1] = 2; }
            else { dst[i] = KindNop; dst[i + 1] = KindNop; }
            dst[i + 2] = KindTimestamps; dst[i + 3] = 10;
            BinaryPrimitives.WriteUInt32BigEndian(dst[(i + 4)..], TsVal);
            BinaryPrimitives.WriteUInt32BigEndian(dst[(i + 8)..], TsEcr);
            i += 12;
        }
        else if (SackPermitted)
        {
            dst[i] = KindNop; dst[i + 1] = KindNop; dst[i + 2] = KindSackPermitted; dst[i + 3] = 2;
            i += 4;
        }
        if (HasWindowScale)
        {
            dst[i] = KindNop; dst[i + 1] = KindWindowScale; dst[i + 2] = 3; dst[i + 3] = WindowScale;
            i += 4;
        }
        int sacks = EmittedSackCount;
        if (sacks > 0)
        {
            dst[i] = KindNop; dst[i + 1] = KindNop; dst[i + 2] = KindSack; dst[i + 3] = (byte)(2 + 8 * sacks);
            i += 4;
            for (int b = 0; b < sacks; b++)
            {
                SackBlock s = GetSack(b);
                BinaryPrimitives.WriteUInt32BigEndian(dst[i..], s.Start);
                BinaryPrimitives.WriteUInt32BigEndian(dst[(i + 4)..], s.End);
                i += 8;
            }
        }
        return i;
    }
}
