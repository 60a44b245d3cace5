using System;
using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace UserTcp.Stack.Wire;

/// <summary>
/// The Internet checksum (RFC 1071): the 16-bit one's complement of the one's complement sum of 16-bit big-endian
/// words. Used by IPv4, ICMPv4 and TCP (with the pseudo-header, RFC 9293 §3.1).
/// </summary>
/// <remarks>
/// The one's complement sum does not depend on byte order (RFC 1071 §2(B)), so the loop adds native-order 32-bit
/// halves of 8-byte reads into a 64-bit accumulator (no carry handling needed: 2^32 additions cannot overflow) and
/// swaps the folded result to network order once at the end.
/// <para>Accumulating: <c>uint sum = Add(Add(PseudoHeader(...), header), payload); ushort c = Fold(sum);</c>. A sum
/// is kept in network (big-endian) word order, not complemented, and may be larger than 16 bits. Every chunk passed to
/// <see cref="Add"/> except the last must have an even length (an odd chunk is padded with one zero byte, RFC 1071 §4.1).</para>
/// </remarks>
public static class Checksum
{
    /// <summary>The checksum of <paramref name="data"/>: the value to store in a checksum field that was zero while
    /// summing. Over data that already holds a correct checksum, the result is 0.</summary>
    public static ushort Compute(ReadOnlySpan<byte> data) => Fold(Add(0, data));

    /// <summary>True when <paramref name="data"/>, checksum field included, sums to all ones (the receive check of a
    /// header: the same as <c>Compute(data) == 0</c>, without the byte swap and complement).</summary>
    public static bool SumsToOnes(ReadOnlySpan<byte> data) => FoldNative(SumNative(data)) == 0xFFFF;

    /// <summary>Adds <paramref name="data"/> (as big-endian 16-bit words) to a running one's complement sum.</summary>
    public static uint Add(uint sum, ReadOnlySpan<byte> data) => AddNative(sum, SumNative(data));

    /// <summary>Adds a native-order partial sum (from <see cref="CopyAndSum"/> or <see cref="SumNative"/>, of data
    /// starting at an even offset of the summed region) to a running sum.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint AddNative(uint sum, ulong local)
    {
        ushort folded = FoldNative(local);
        if (BitConverter.IsLittleEndian) folded = BinaryPrimitives.ReverseEndianness(folded);
        // sum + folded may carry into bit 32; 2^32 is congruent to 1 modulo 0xFFFF, so add the carry back in.
        ulong t = (ulong)sum + folded;
        return (uint)((t & 0xFFFF_FFFF) + (t >> 32));
    }

    /// <summary>Adds one 16-bit word (host order value, e.g. a length or port) to a running sum.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Add(uint sum, ushort word)
    {
        ulong t = (ulong)sum + word;
        return (uint)((t & 0xFFFF_FFFF) + (t >> 32));
    }

    /// <summary>Folds a running sum to 16 bits and complements it: the value for the checksum field.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort Fold(uint sum) => (ushort)~FoldUncomplemented(sum);

    /// <summary>Folds a running sum to 16 bits without complementing it. This is what goes in the TCP checksum field
    /// when the device finishes the checksum (transmit offload: the pseudo-header sum is pre-filled).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort FoldUncomplemented(uint sum)
    {
        sum = (sum & 0xFFFF) + (sum >> 16); // at most 0x1FFFE
        sum = (sum & 0xFFFF) + (sum >> 16); // at most 0xFFFF
        return (ushort)sum;
    }

    /// <summary>The sum of the TCP/UDP pseudo-header (RFC 9293 §3.1): source, destination, zero+protocol, and the
    /// transport length (header + data) in bytes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint PseudoHeader(Ipv4Address source, Ipv4Address destination, byte protocol, int length)
    {
        ulong s = (source.Value >> 16) + (source.Value & 0xFFFF)
                + (destination.Value >> 16) + (destination.Value & 0xFFFF)
                + protocol + (uint)(ushort)length;
        return (uint)s; // at most 6 * 0xFFFF: no overflow
    }

    /// <summary>The receive check of a TCP or UDP segment over IPv4: true when the segment, checksum field included,
    /// and its pseudo-header sum to all ones (the same as <c>Fold(Add(PseudoHeader(...), segment)) == 0</c>). The
    /// pseudo-header is added in native order (its words byte-swapped: the addresses swapped whole, the
    /// zero+protocol word and the length word each), so the data's native sum is folded once, with no swap.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool TransportSumsToOnes(Ipv4Address source, Ipv4Address destination, byte protocol, ReadOnlySpan<byte> segment)
    {
        uint s = source.Value, d = destination.Value;
        if (BitConverter.IsLittleEndian)
        {
            s = BinaryPrimitives.ReverseEndianness(s);
            d = BinaryPrimitives.ReverseEndianness(d);
        }
        ulong pseudo = (ulong)s + d + (BitConverter.IsLittleEndian
            ? ((uint)protocol << 8) + BinaryPrimitives.ReverseEndianness((ushort)segment.Length)
            : (uint)protocol + (ushort)segment.Length);
        return FoldNative(SumNative(segment) + pseudo) == 0xFFFF;
    }

    /// <summary>The checksum field of a segment whose parts are summed: <paramref name="valueSum"/>, a sum of 16-bit
    /// word values below 2^32 (pseudo-header and header, as <see cref="PseudoHeader"/> gives), and
    /// <paramref name="nativeSum"/>, a native-order sum (the payload, from <see cref="CopyAndSum"/>). Returns the field
    /// in memory order, to be stored as a native 16-bit value: the same bytes as storing
    /// <c>Fold(AddNative(valueSum, nativeSum))</c> big-endian, folded once.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort FieldNative(uint valueSum, ulong nativeSum)
    {
        ushort v = FoldUncomplemented(valueSum);
        if (BitConverter.IsLittleEndian) v = BinaryPrimitives.ReverseEndianness(v);
        return (ushort)~FoldNative(nativeSum + v);
    }

    /// <summary>From this length on the 64-byte loop's setup (accumulators, the final widening sum) pays for itself:
    /// callgrind put it at ~60 instructions, more than the 16-byte loops spend on a 64 B payload.</summary>
    private const int WideMin = 256;

    /// <summary>Long data: the 64-byte loop, then the short loops for the tail (which starts at an even offset).
    /// A separate method so the short path keeps its code as it was.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static unsafe ulong CopyAndSumWide(byte* source, byte* destination, int length)
    {
        int bulk = length & ~63;
        return SumWords64(source, destination, bulk) + CopyAndSum(source + bulk, destination + bulk, length - bulk);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static unsafe ulong SumNativeWide(ReadOnlySpan<byte> data)
    {
        int bulk = data.Length & ~63;
        ulong s;
        fixed (byte* b = data) s = SumWords64(b, null, bulk);
        return s + SumNative(data[bulk..]);
    }

    /// <summary>
    /// The sum of the native-order 16-bit words of <paramref name="length"/> bytes (a multiple of 64) at
    /// <paramref name="source"/>, copying them to <paramref name="destination"/> unless it is null: 64 bytes per step
    /// in four SSE2 registers. PMADDWD with all-ones multipliers adds adjacent words into 32-bit lanes, but as signed
    /// values; each word is first flipped in its top bit (w XOR 0x8000 read as signed is w − 0x8000), and the
    /// 0x8000 per word is added back at the end, so the result is the exact sum of the words (congruent modulo 0xFFFF
    /// to the 32-bit-word sums the other loops take, and zero only for zero data, which is all the folds need).
    /// A lane gains at most 2^16 per step: the lanes are emptied into the 64-bit total every 64 KB.
    /// </summary>
    private static unsafe ulong SumWords64(byte* source, byte* destination, int length)
    {
        Vector128<short> flip = Vector128.Create(unchecked((short)0x8000));
        Vector128<short> ones = Vector128.Create((short)1);
        long total = 0;
        int done = 0;
        while (done < length)
        {
            int chunk = Math.Min(length - done, 1 << 16);
            Vector128<int> a0 = Vector128<int>.Zero, a1 = Vector128<int>.Zero, a2 = Vector128<int>.Zero, a3 = Vector128<int>.Zero;
            byte* p = source + done, end = p + chunk;
            if (destination != null)
            {
                byte* d = destination + done;
                for (; p < end; p += 64, d += 64)
                {
                    Vector128<byte> v0 = Vector128.Load(p), v1 = Vector128.Load(p + 16), v2 = Vector128.Load(p + 32), v3 = Vector128.Load(p + 48);
                    v0.Store(d);
                    v1.Store(d + 16);
                    v2.Store(d + 32);
                    v3.Store(d + 48);
                    a0 += Sse2.MultiplyAddAdjacent(v0.AsInt16() ^ flip, ones);
                    a1 += Sse2.MultiplyAddAdjacent(v1.AsInt16() ^ flip, ones);
                    a2 += Sse2.MultiplyAddAdjacent(v2.AsInt16() ^ flip, ones);
                    a3 += Sse2.MultiplyAddAdjacent(v3.AsInt16() ^ flip, ones);
                }
            }
            else
            {
                for (; p < end; p += 64)
                {
                    a0 += Sse2.MultiplyAddAdjacent(Vector128.Load(p).AsInt16() ^ flip, ones);
                    a1 += Sse2.MultiplyAddAdjacent(Vector128.Load(p + 16).AsInt16() ^ flip, ones);
                    a2 += Sse2.MultiplyAddAdjacent(Vector128.Load(p + 32).AsInt16() ^ flip, ones);
                    a3 += Sse2.MultiplyAddAdjacent(Vector128.Load(p + 48).AsInt16() ^ flip, ones);
                }
            }
            // 16 lanes of at most 2^26 in magnitude each: the widening sum cannot overflow.
            (Vector128<long> lo, Vector128<long> hi) = Vector128.Widen((a0 + a1) + (a2 + a3));
            total += Vector128.Sum(lo + hi);
            done += chunk;
        }
        return (ulong)(total + 0x8000L * (length / 2));
    }

    /// <summary>
    /// Copies <paramref name="length"/> bytes from <paramref name="source"/> to <paramref name="destination"/> (the
    /// ranges must not overlap) and returns their native-order sum (what <see cref="SumNative"/> returns for the
    /// copy): the payload of a segment is checksummed in the pass that moves it into the frame instead of being read
    /// again. Combine with <see cref="AddNative"/>; the copied data must start at an even offset of the summed region.
    /// </summary>
    public static unsafe ulong CopyAndSum(byte* source, byte* destination, int length)
    {
        if (Sse2.IsSupported && length >= WideMin) return CopyAndSumWide(source, destination, length);
        int i = 0;
        ulong s = 0;
        if (Vector128.IsHardwareAccelerated && length >= 16)
        {
            Vector128<ulong> lo = Vector128<ulong>.Zero, hi = Vector128<ulong>.Zero;
            for (; i + 16 <= length; i += 16)
            {
                Vector128<byte> v = Vector128.Load(source + i);
                v.Store(destination + i);
                (Vector128<ulong> a, Vector128<ulong> b) = Vector128.Widen(v.AsUInt32());
                lo += a;
                hi += b;
            }
            s = Vector128.Sum(lo + hi);
        }
        for (; i + 8 <= length; i += 8)
        {
            ulong a = Unsafe.ReadUnaligned<ulong>(source + i);
            Unsafe.WriteUnaligned(destination + i, a);
            s += (uint)a + (a >> 32);
        }
        if (i + 4 <= length)
        {
            uint a = Unsafe.ReadUnaligned<uint>(source + i);
            Unsafe.WriteUnaligned(destination + i, a);
            s += a;
            i += 4;
        }
        if (i + 2 <= length)
        {
            ushort a = Unsafe.ReadUnaligned<ushort>(source + i);
            Unsafe.WriteUnaligned(destination + i, a);
            s += a;
            i += 2;
        }
        if (i < length)
        {
            byte last = source[i];
            destination[i] = last;
            s += BitConverter.IsLittleEndian ? last : (ulong)last << 8;
        }
        return s;
    }

    /// <summary>Native-order sum of the data as 32-bit (then 16-bit, then 8-bit) pieces; not folded.</summary>
    internal static ulong SumNative(ReadOnlySpan<byte> data)
    {
        ref byte p = ref MemoryMarshal.GetReference(data);
        int n = data.Length;
        if (Sse2.IsSupported && n >= WideMin) return SumNativeWide(data);
        int i = 0;
        ulong s0 = 0, s1 = 0;
        if (Vector128.IsHardwareAccelerated && n >= 32)
        {
            // 16 bytes per step: four 32-bit words widened to 64-bit lanes (no carries to handle, as above).
            Vector128<ulong> lo = Vector128<ulong>.Zero, hi = Vector128<ulong>.Zero;
            for (; i + 16 <= n; i += 16)
            {
                (Vector128<ulong> a, Vector128<ulong> b) = Vector128.Widen(Vector128.LoadUnsafe(ref p, (nuint)i).AsUInt32());
                lo += a;
                hi += b;
            }
            s0 = Vector128.Sum(lo + hi);
        }
        // Two independent accumulators over 16 bytes per iteration let the CPU overlap the additions.
        for (; i + 16 <= n; i += 16)
        {
            ulong a = Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref p, i));
            ulong b = Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref p, i + 8));
            s0 += (uint)a + (a >> 32);
            s1 += (uint)b + (b >> 32);
        }
        if (i + 8 <= n)
        {
            ulong a = Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref p, i));
            s0 += (uint)a + (a >> 32);
            i += 8;
        }
        ulong s = s0 + s1;
        if (i + 4 <= n) { s += Unsafe.ReadUnaligned<uint>(ref Unsafe.Add(ref p, i)); i += 4; }
        if (i + 2 <= n) { s += Unsafe.ReadUnaligned<ushort>(ref Unsafe.Add(ref p, i)); i += 2; }
        if (i < n)
        {
            // The odd last byte is the high (first) byte of a word whose low byte is zero.
            byte last = Unsafe.Add(ref p, i);
            s += BitConverter.IsLittleEndian ? last : (ulong)last << 8;
        }
        return s;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ushort FoldNative(ulong s)
    {
        s = (s & 0xFFFF_FFFF) + (s >> 32);
        s = (s & 0xFFFF_FFFF) + (s >> 32);
        s = (s & 0xFFFF) + (s >> 16);
        s = (s & 0xFFFF) + (s >> 16);
        s = (s & 0xFFFF) + (s >> 16);
        return (ushort)s;
    }
}
