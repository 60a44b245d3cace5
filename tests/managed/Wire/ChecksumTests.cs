using System;
using System.Buffers.Binary;
using FsCheck;
using FsCheck.Fluent;
using UserTcp.Stack.Wire;
using Xunit;

namespace UserTcp.Tests.Wire;

public class ChecksumTests
{
    // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2 (one's complement), so the checksum is 220d.
    private static readonly byte[] s_rfc1071 = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];

    // A real IPv4 header (UDP, 192.168.0.1 -> 192.168.0.199) with its checksum b861 in bytes 10-11.
    private static readonly byte[] s_ipHeader =
    [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61,
        0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
    ];

    [Fact]
    public unsafe void CopyAndSumCopiesAndSumsLikeASeparatePass()
    {
        var rng = new Random(7);
        byte[] src = new byte[1600];
        rng.NextBytes(src);
        for (int len = 0; len <= 200; len++)
        {
            // The copied part follows a header at an even offset (as a payload follows the TCP header).
            int hl = 2 * (len % 17);
            byte[] header = new byte[hl];
            rng.NextBytes(header);
            byte[] dst = new byte[hl + len + 3];
            header.CopyTo(dst, 0);
            ulong sum;
            fixed (byte* s = &src[len % 5], d = &dst[hl]) sum = Checksum.CopyAndSum(s, d, len);
            Assert.Equal(src.AsSpan(len % 5, len).ToArray(), dst.AsSpan(hl, len).ToArray());
            Assert.Equal(0, dst[hl + len]); // nothing past the copy
            uint pseudo = 0x1_2345;
            Assert.Equal(Checksum.Fold(Checksum.Add(pseudo, dst.AsSpan(0, hl + len))),
                Checksum.Fold(Checksum.AddNative(Checksum.Add(pseudo, header), sum)));
        }
        // A whole 1,460-byte payload too.
        byte[] big = new byte[1460];
        ulong bigSum;
        fixed (byte* s = src, d = big) bigSum = Checksum.CopyAndSum(s, d, big.Length);
        Assert.Equal(Checksum.Compute(big), Checksum.Fold(Checksum.AddNative(0, bigSum)));
    }

    /// <summary>RFC 1071 by the book: big-endian words added one by one with end-around carry.</summary>
    private static ushort CarryEachWord(ReadOnlySpan<byte> data)
    {
        uint sum = 0;
        for (int i = 0; i < data.Length; i += 2)
        {
            sum += (uint)(data[i] << 8 | (i + 1 < data.Length ? data[i + 1] : 0));
            sum = (sum & 0xFFFF) + (sum >> 16);
        }
        return (ushort)~sum;
    }

    [Theory]
    [InlineData(0x00)]
    [InlineData(0xFF)]
    [InlineData(0x80)]
    [InlineData(-1)]
    public unsafe void WideLoopsMatchTheReference(int fill)
    {
        // Lengths around the 64-byte steps and the 16/8/4/2/1-byte tails, and past the 64 KB lane flush.
        var rng = new Random(fill + 10);
        foreach (int len in new[] { 0, 1, 2, 15, 16, 17, 31, 32, 33, 63, 64, 65, 66, 127, 128, 129, 191, 200, 255, 256, 257, 300, 319, 1448, 1460,
                     4096, 9001, 65535, 65536, 65537, 65600, 200_003 })
        {
            byte[] data = new byte[len];
            if (fill < 0) rng.NextBytes(data);
            else data.AsSpan().Fill((byte)fill);
            ushort expected = CarryEachWord(data);
            Assert.Equal(expected, Checksum.Compute(data));
            byte[] copy = new byte[len + 1];
            ulong sum;
            fixed (byte* s = data, d = copy) sum = Checksum.CopyAndSum(s, d, len);
            Assert.True(data.AsSpan().SequenceEqual(copy.AsSpan(0, len)));
            Assert.Equal(0, copy[len]);
            Assert.Equal(expected, Checksum.Fold(Checksum.AddNative(0, sum)));
        }
    }

    [Fact]
    public void Rfc1071Example()
    {
        Assert.Equal(0xddf2, Checksum.FoldUncomplemented(Checksum.Add(0, s_rfc1071)));
        Assert.Equal(0x220d, Checksum.Compute(s_rfc1071));
    }

    [Fact]
    public void CapturedIpv4Header()
    {
        // With the checksum in place the header sums to 0xffff: the computed checksum is zero.
        Assert.Equal(0, Checksum.Compute(s_ipHeader));
        byte[] h = (byte[])s_ipHeader.Clone();
        h[10] = h[11] = 0;
        Assert.Equal(0xb861, Checksum.Compute(h));
    }

    [Fact]
    public void OddLengthPadsWithZero()
    {
        Assert.Equal(Checksum.Compute([0xab, 0xcd, 0x12, 0x00]), Checksum.Compute([0xab, 0xcd, 0x12]));
        Assert.Equal(unchecked((ushort)~0xab00), Checksum.Compute([0xab]));
        Assert.Equal(0xffff, Checksum.Compute([]));
    }

    [Fact]
    public void PseudoHeaderMatchesExplicitBytes()
    {
        var src = new Ipv4Address(10, 0, 0, 1);
        var dst = new Ipv4Address(192, 168, 200, 77);
        byte[] ph = [10, 0, 0, 1, 192, 168, 200, 77, 0, 6, 0x05, 0xdc];
        Assert.Equal(Checksum.Compute(ph), Checksum.Fold(Checksum.PseudoHeader(src, dst, 6, 1500)));
    }

    [Fact]
    public void RunningSumDoesNotOverflow()
    {
        uint sum = 0xFFFF_FFF0;
        sum = Checksum.Add(sum, [0xff, 0xff, 0xff, 0xff]);
        // 0xFFFFFFF0 = 0xFFFF + 0xFFF0 -> 0xFFF0 (mod 0xffff) + 0xffff + 0xffff.
        Assert.Equal(Checksum.FoldUncomplemented(0xFFF0), Checksum.FoldUncomplemented(sum));
    }

    /// <summary>Straightforward word-at-a-time reference implementation.</summary>
    private static ushort Reference(ReadOnlySpan<byte> d)
    {
        uint s = 0;
        int i = 0;
        for (; i + 1 < d.Length; i += 2) s += BinaryPrimitives.ReadUInt16BigEndian(d[i..]);
        if (i < d.Length) s += (uint)d[i] << 8;
        while ((s >> 16) != 0) s = (s & 0xffff) + (s >> 16);
        return (ushort)~s;
    }

    [Fact]
    public void MatchesReferenceForAllLengthsAndSplits()
    {
        Prop.ForAll<byte[], int>((data, split) =>
        {
            data ??= [];
            ushort expected = Reference(data);
            // Split at an even point: the running form must agree with the one-shot form.
            int cut = data.Length == 0 ? 0 : (Math.Abs(split % (data.Length + 1)) & ~1);
            uint sum = Checksum.Add(Checksum.Add(0, data.AsSpan(0, cut)), data.AsSpan(cut));
            return Checksum.Compute(data) == expected && Checksum.Fold(sum) == expected;
        }).QuickCheckThrowOnFailure();
    }

    [Fact]
    public void LongBuffersMatchReference()
    {
        var rng = new Random(7);
        foreach (int len in new[] { 15, 16, 17, 31, 32, 33, 47, 63, 64, 96, 97, 1500, 9001, 65535 })
        {
            byte[] b = new byte[len];
            rng.NextBytes(b);
            Assert.Equal(Reference(b), Checksum.Compute(b));
            Array.Fill(b, (byte)0xff);
            Assert.Equal(Reference(b), Checksum.Compute(b));
        }
    }

    [Fact]
    public void TransportSumsToOnesAgreesWithTheValueOrderCheck()
    {
        // The native-order receive check against Fold(Add(PseudoHeader, segment)) == 0: segments with a correct
        // checksum, with one byte changed, and random ones, over odd and even lengths and varied addresses.
        var rng = new Random(17);
        byte[] seg = new byte[1600];
        int good = 0;
        for (int round = 0; round < 4000; round++)
        {
            int len = round < 400 ? round : rng.Next(1, seg.Length);
            if (len < 18) len = 18;
            var src = new Ipv4Address((uint)rng.Next() * 2u + (uint)rng.Next(2));
            var dst = new Ipv4Address((uint)rng.Next() * 2u + (uint)rng.Next(2));
            byte proto = round % 3 == 0 ? (byte)17 : (byte)6;
            Span<byte> s = seg.AsSpan(0, len);
            rng.NextBytes(s);
            if (round % 2 == 0)
            {
                BinaryPrimitives.WriteUInt16BigEndian(s[16..], 0);
                BinaryPrimitives.WriteUInt16BigEndian(s[16..], Checksum.Fold(Checksum.Add(Checksum.PseudoHeader(src, dst, proto, len), s)));
                if (round % 4 == 2) s[rng.Next(len)] ^= (byte)(1 + rng.Next(255));
            }
            bool reference = Checksum.Fold(Checksum.Add(Checksum.PseudoHeader(src, dst, proto, len), s)) == 0;
            if (reference) good++;
            Assert.Equal(reference, Checksum.TransportSumsToOnes(src, dst, proto, s));
        }
        Assert.True(good >= 1000, $"only {good} segments with a correct checksum");
    }

    [Fact]
    public void FieldNativeStoresTheBytesOfTheValueOrderChecksum()
    {
        var rng = new Random(19);
        byte[] data = new byte[300];
        Span<byte> a = stackalloc byte[2], b = stackalloc byte[2];
        for (int round = 0; round < 20000; round++)
        {
            // Value sums as the transmit path has them (pseudo-header + header words, below 2^20), native sums of
            // payloads of every size, the all-zero and all-ones extremes.
            uint valueSum = round % 97 == 0 ? 0xFFFFu : (uint)rng.Next(1, 1 << 20);
            int len = rng.Next(data.Length + 1);
            if (round % 50 == 0) Array.Fill(data, (byte)0xFF);
            else if (round % 50 == 1) Array.Clear(data);
            else rng.NextBytes(data);
            ulong nativeSum = Checksum.SumNative(data.AsSpan(0, len));
            BinaryPrimitives.WriteUInt16BigEndian(a, Checksum.Fold(Checksum.AddNative(valueSum, nativeSum)));
            System.Runtime.InteropServices.MemoryMarshal.Write(b, Checksum.FieldNative(valueSum, nativeSum));
            Assert.True(a.SequenceEqual(b), $"round {round}: value sum {valueSum:x}, {len} bytes");
        }
    }
}
