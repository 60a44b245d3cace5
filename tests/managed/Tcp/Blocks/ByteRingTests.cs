using System;
using System.Collections.Generic;
using FsCheck;
using FsCheck.Fluent;
using UserTcp.Stack.Tcp;
using Xunit;

namespace UserTcp.Tests.Tcp.Blocks;

public class BufferPoolTests
{
    [Fact]
    public void RentPicksSmallestClassAndCountsOutstanding()
    {
        using var pool = new BufferPool(1 << 20, 65536, 4096, 16384);
        Assert.True(pool.TryRent(5000, out PoolBlock a));
        Assert.Equal(16384, a.Length);
        Assert.True(pool.TryRent(1, out PoolBlock b));
        Assert.Equal(4096, b.Length);
        Assert.Equal(2, pool.OutstandingBlocks);
        Assert.Equal(16384 + 4096, pool.BytesInUse);
        Assert.False(pool.TryRent(65537, out _));
        pool.Return(a);
        pool.Return(b);
        Assert.Equal(0, pool.OutstandingBlocks);
        Assert.Equal(0, pool.BytesInUse);
        Assert.Equal(16384 + 4096, pool.BytesCached);
    }

    [Fact]
    public unsafe void ReturnedBlockIsReused()
    {
        using var pool = new BufferPool(1 << 20, 4096);
        Assert.True(pool.TryRent(4096, out PoolBlock a));
        byte* p = a.Pointer;
        Assert.Equal(0, (long)p % 64);
        pool.Return(a);
        Assert.True(pool.TryRent(100, out PoolBlock b));
        Assert.True(p == b.Pointer);
        pool.Return(b);
    }

    [Fact]
    public void BoundIsEnforcedAndCacheIsEvictedForOtherClasses()
    {
        using var pool = new BufferPool(3 * 4096, 4096, 8192);
        Assert.True(pool.TryRent(4096, out PoolBlock a));
        Assert.True(pool.TryRent(4096, out PoolBlock b));
        Assert.True(pool.TryRent(4096, out PoolBlock c));
        Assert.False(pool.TryRent(4096, out PoolBlock d));
        Assert.True(d.IsNull);
        Assert.Equal(1, pool.FailedRents);
        pool.Return(a);
        pool.Return(b);
        // Two cached 4 KiB blocks must be freed to make room for one 8 KiB block.
        Assert.True(pool.TryRent(8192, out PoolBlock e));
        Assert.Equal(0, pool.BytesCached);
        Assert.Equal(4096 + 8192, pool.BytesInUse);
        pool.Return(c);
        pool.Return(e);
        Assert.Equal(0, pool.OutstandingBlocks);
    }

    [Fact]
    public void RejectsBadConfigurationAndForeignBlocks()
    {
        Assert.Throws<ArgumentException>(() => new BufferPool(1 << 20, 3000));
        Assert.Throws<ArgumentException>(() => new BufferPool(1 << 20, 4096, 4096));
        using var p1 = new BufferPool(1 << 20, 4096);
        using var p2 = new BufferPool(1 << 20, 8192);
        Assert.True(p1.TryRent(10, out PoolBlock a));
        Assert.Throws<ArgumentException>(() => p2.Return(a));
        p1.Return(a);
    }
}

public class ByteRingTests
{
    [Fact]
    public void IdleRingHoldsNoBlockAndReleasesWhenDrained()
    {
        using var pool = new BufferPool(1 << 20, 4096);
        var ring = new ByteRing(pool, 4096);
        Assert.False(ring.HasBlock);
        Assert.Equal(4096, ring.Free);
        Assert.Equal(3, ring.Write(pool, new byte[] { 1, 2, 3 }));
        Assert.True(ring.HasBlock);
        Assert.Equal(1, pool.OutstandingBlocks);
        Assert.False(ring.ReleaseIfEmpty(pool));
        ring.Consume(3);
        Assert.True(ring.ReleaseIfEmpty(pool));
        Assert.False(ring.HasBlock);
        Assert.Equal(0, pool.OutstandingBlocks);
    }

    [Fact]
    public unsafe void PeekSumCopiesLikePeekAndSumsTheCopyAcrossTheWrap()
    {
        using var pool = new BufferPool(1 << 20, 4096);
        var ring = new ByteRing(pool, 4096);
        var rng = new Random(3);
        var data = new byte[4096];
        rng.NextBytes(data);
        // Move the head to an odd position so the wrap point falls inside the range at odd and even offsets.
        Assert.Equal(4001, ring.Write(pool, data.AsSpan(0, 4001)));
        ring.Consume(3999); // head at 3999 (an emptied ring would restart at 0)
        Assert.Equal(300, ring.Write(pool, data.AsSpan(0, 300)));
        var buf = new byte[400];
        var peeked = new byte[400];
        for (int offset = 0; offset < 300; offset += 7)
        {
            for (int len = 0; len <= 120; len += 13)
            {
                Array.Clear(buf);
                int n;
                ulong sum;
                fixed (byte* d = buf) n = ring.PeekSum(offset, d, len, out sum);
                int expect = ring.Peek(offset, peeked.AsSpan(0, len));
                Assert.Equal(expect, n);
                Assert.Equal(peeked.AsSpan(0, n).ToArray(), buf.AsSpan(0, n).ToArray());
                Assert.Equal(UserTcp.Stack.Wire.Checksum.Compute(buf.AsSpan(0, n)),
                    UserTcp.Stack.Wire.Checksum.Fold(UserTcp.Stack.Wire.Checksum.AddNative(0, sum)));
            }
        }
        fixed (byte* d = buf) Assert.Equal(0, ring.PeekSum(302, d, 10, out _)); // past the data
    }

    [Fact]
    public unsafe void SmallCopiesMoveExactlyTheirBytes()
    {
        // ByteRing.Copy: 0..64 bytes by overlapping loads and stores, longer ones by memmove. Every length around the
        // boundaries (4, 8, 16, 32, 64) at several alignments, with guard bytes around the destination untouched.
        var rng = new Random(5);
        byte[] src = new byte[300], dst = new byte[340];
        rng.NextBytes(src);
        for (int len = 0; len <= 200; len++)
        {
            for (int align = 0; align < 3; align++)
            {
                Array.Fill(dst, (byte)0xA5);
                fixed (byte* s = src, d = dst) ByteRing.Copy(s + align, d + 16 + align, len);
                Assert.Equal(src.AsSpan(align, len).ToArray(), dst.AsSpan(16 + align, len).ToArray());
                for (int i = 0; i < 16 + align; i++) Assert.Equal(0xA5, dst[i]);
                for (int i = 16 + align + len; i < dst.Length; i++) Assert.Equal(0xA5, dst[i]);
            }
        }
    }

    [Fact]
    public void WritesAndPeeksOfEverySmallLengthAcrossTheWrapKeepTheStream()
    {
        // The ring as a FIFO against a reference queue: writes and reads of 0..100 bytes from every head position,
        // so each small length meets the wrap at every split.
        using var pool = new BufferPool(1 << 20, 4096);
        var ring = new ByteRing(pool, 4096);
        var rng = new Random(9);
        var queue = new Queue<byte>();
        var chunk = new byte[200];
        var got = new byte[200];
        for (int step = 0; step < 20000; step++)
        {
            int w = rng.Next(101);
            rng.NextBytes(chunk);
            int n = ring.Write(pool, chunk.AsSpan(0, w));
            for (int i = 0; i < n; i++) queue.Enqueue(chunk[i]);
            int r = rng.Next(101);
            int m = ring.Peek(0, got.AsSpan(0, r));
            Assert.Equal(Math.Min(r, queue.Count), m);
            ring.Consume(m);
            for (int i = 0; i < m; i++) Assert.Equal(queue.Dequeue(), got[i]);
            if (queue.Count > 3000) { int k = ring.Count; ring.Consume(k); queue.Clear(); }
        }
    }

    [Fact]
    public void ReadEqualsPeekThenConsumeAcrossTheWrapAndWithOutOfOrderBytes()
    {
        // Two rings fed the same bytes: one read with Read, the other with Peek(0) + Consume; the same bytes come out
        // and the rings stay alike (count, extent via HasOutOfOrderBytes/IsDrained, later peeks at every offset).
        using var pool = new BufferPool(1 << 20, 4096, 16384);
        var a = new ByteRing(pool, 8192);
        var b = new ByteRing(pool, 8192);
        var rng = new Random(17);
        var chunk = new byte[3000];
        var ga = new byte[3000];
        var gb = new byte[3000];
        for (int step = 0; step < 20000; step++)
        {
            rng.NextBytes(chunk);
            int w = rng.Next(step % 50 == 0 ? 3000 : 101);
            if (rng.Next(10) == 0)
            {
                // Out-of-order bytes past the contiguous end, sometimes made contiguous.
                int off = rng.Next(1, 200);
                int sa = a.WriteAt(pool, off, chunk.AsSpan(0, w)), sb = b.WriteAt(pool, off, chunk.AsSpan(0, w));
                Assert.Equal(sa, sb);
                if (sa > 0 && rng.Next(2) == 0)
                {
                    int fill = a.WriteAt(pool, 0, chunk.AsSpan(0, off));
                    Assert.Equal(fill, b.WriteAt(pool, 0, chunk.AsSpan(0, off)));
                    if (fill == off) { a.Advance(off + sa); b.Advance(off + sa); }
                }
            }
            else Assert.Equal(a.Write(pool, chunk.AsSpan(0, w)), b.Write(pool, chunk.AsSpan(0, w)));
            int r = rng.Next(step % 7 == 0 ? 3000 : 101);
            int m = a.Read(ga.AsSpan(0, r));
            int k = b.Peek(0, gb.AsSpan(0, r));
            b.Consume(k);
            Assert.Equal(k, m);
            Assert.True(ga.AsSpan(0, m).SequenceEqual(gb.AsSpan(0, k)));
            Assert.Equal(b.Count, a.Count);
            Assert.Equal(b.HasOutOfOrderBytes, a.HasOutOfOrderBytes);
            Assert.Equal(b.IsDrained, a.IsDrained);
            if (a.Count > 0)
            {
                int off = rng.Next(a.Count);
                Assert.Equal(b.Peek(off, gb.AsSpan(0, 100)), a.Peek(off, ga.AsSpan(0, 100)));
                Assert.True(ga.AsSpan(0, Math.Min(100, a.Count - off)).SequenceEqual(gb.AsSpan(0, Math.Min(100, a.Count - off))));
            }
            if (a.Count > 6000 || rng.Next(500) == 0)
            {
                a.Clear(pool);
                b.Clear(pool);
            }
        }
        Assert.Equal(0, a.Read(ga)); // empty
    }

    [Fact]
    public void WriteStopsAtCapacityAndWrapsAround()
    {
        using var pool = new BufferPool(1 << 20, 4096);
        var ring = new ByteRing(pool, 4096);
        var data = new byte[5000];
        for (int i = 0; i < data.Length; i++) data[i] = (byte)i;
        Assert.Equal(4096, ring.Write(pool, data));
        Assert.Equal(0, ring.Write(pool, data));
        ring.Consume(4000);
        Assert.Equal(904, ring.Write(pool, data.AsSpan(4096)));
        // Bytes 4000..4095 then the 904 wrapped bytes.
        int n = ring.GetReadSpans(0, 1000, out ReadOnlySpan<byte> first, out ReadOnlySpan<byte> second);
        Assert.Equal(1000, n);
        Assert.Equal(96, first.Length);
        Assert.Equal(904, second.Length);
        Assert.Equal(unchecked((byte)4000), first[0]);
        Assert.Equal(unchecked((byte)4096), second[0]);
        var peek = new byte[1000];
        Assert.Equal(1000, ring.Peek(0, peek));
        for (int i = 0; i < 1000; i++) Assert.Equal((byte)(4000 + i), peek[i]);
    }

    [Fact]
    public void OutOfOrderBytesKeepTheBlock()
    {
        using var pool = new BufferPool(1 << 20, 4096);
        var ring = new ByteRing(pool, 4096);
        Assert.Equal(2, ring.WriteAt(pool, 10, new byte[] { 7, 8 }));
        Assert.Equal(0, ring.Count);
        Assert.True(ring.HasOutOfOrderBytes);
        Assert.False(ring.ReleaseIfEmpty(pool));
        Assert.Throws<ArgumentOutOfRangeException>(() => ring.Advance(13));
        Assert.Equal(10, ring.WriteAt(pool, 0, new byte[10]));
        ring.Advance(12);
        var b = new byte[2];
        Assert.Equal(2, ring.Peek(10, b));
        Assert.Equal(new byte[] { 7, 8 }, b);
        Assert.Equal(1, ring.WriteAt(pool, 4096 - 13, new byte[] { 1, 2, 3 }));
        ring.ForgetOutOfOrderFrom(100);
        Assert.True(ring.HasOutOfOrderBytes);
        ring.ForgetOutOfOrderFrom(0);
        Assert.False(ring.HasOutOfOrderBytes);
        Assert.Throws<ArgumentOutOfRangeException>(() => ring.Advance(1));
        ring.Consume(12);
        Assert.True(ring.ReleaseIfEmpty(pool));
        Assert.Equal(2, ring.WriteAt(pool, 0, new byte[] { 5, 6 }));
        ring.Clear(pool);
        Assert.Equal(0, pool.OutstandingBlocks);
    }

    [Fact]
    public void ExhaustedPoolMeansNothingIsAccepted()
    {
        using var pool = new BufferPool(4096, 4096);
        var a = new ByteRing(pool, 4096);
        var b = new ByteRing(pool, 4096);
        Assert.Equal(1, a.Write(pool, new byte[] { 1 }));
        Assert.Equal(0, b.Write(pool, new byte[] { 1 }));
        Assert.Equal(0, b.WriteAt(pool, 3, new byte[] { 1 }));
        Assert.False(b.HasBlock);
        a.Clear(pool);
        Assert.Equal(1, b.Write(pool, new byte[] { 1 }));
        b.Clear(pool);
    }

    [Fact]
    public void OperationsDoNotAllocate()
    {
        using var pool = new BufferPool(1 << 20, 4096);
        var ring = new ByteRing(pool, 4096);
        Span<byte> buf = stackalloc byte[1500];
        // One warm-up pass (first calls may allocate once: lazy statics, tiering), then the measured pass.
        for (int pass = 0; pass < 2; pass++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 1000; i++)
            {
                ring.Write(pool, buf);
                ring.WriteAt(pool, 100, buf[..100]);
                ring.GetReadSpans(10, 1400, out _, out _);
                ring.Peek(0, buf);
                ring.Consume(1500);
                ring.ReleaseIfEmpty(pool);
            }
            if (pass == 1) Assert.Equal(before, GC.GetAllocatedBytesForCurrentThread());
        }
        ring.Clear(pool);
    }

    /// <summary>
    /// Random operation sequences against a model: an array indexed by offset from the read position, holding the
    /// byte (or nothing) at each offset; the first <c>count</c> entries are the contiguous data.
    /// </summary>
    [Fact]
    public void MatchesModel()
    {
        Prop.ForAll(Arb.From(Gen.ArrayOf(Gen.Choose(0, int.MaxValue))), (int[] ops) => RunModel(ops, 4096, 4096))
            .QuickCheckThrowOnFailure();
        Prop.ForAll(Arb.From(Gen.ArrayOf(Gen.Choose(0, int.MaxValue))), (int[] ops) => RunModel(ops, 3000, 4096))
            .QuickCheckThrowOnFailure();
    }

    private static bool RunModel(int[] ops, int capacity, int blockSize)
    {
        using var pool = new BufferPool(1 << 20, blockSize);
        var ring = new ByteRing(pool, capacity);
        var model = new int[capacity]; // -1 = not written
        Array.Fill(model, -1);
        int count = 0;
        byte next = 1;
        var scratch = new byte[capacity + 100];
        foreach (int op in ops)
        {
            int kind = op % 6;
            int arg = op / 6;
            switch (kind)
            {
                case 0: // Write
                {
                    int len = arg % 2000;
                    for (int i = 0; i < len; i++) scratch[i] = next++;
                    int n = ring.Write(pool, scratch.AsSpan(0, len));
                    if (n != Math.Min(len, capacity - count)) return false;
                    for (int i = 0; i < n; i++) model[count + i] = scratch[i];
                    count += n;
                    break;
                }
                case 1: // Consume
                {
                    int n = count == 0 ? 0 : arg % (count + 1);
                    ring.Consume(n);
                    Array.Copy(model, n, model, 0, capacity - n);
                    for (int i = capacity - n; i < capacity; i++) model[i] = -1;
                    count -= n;
                    break;
                }
                case 2: // Peek
                {
                    int offset = arg % (count + 2);
                    int len = (arg / 7) % 1500;
                    int n = ring.Peek(offset, scratch.AsSpan(0, len));
                    if (n != Math.Max(0, Math.Min(len, count - offset))) return false;
                    for (int i = 0; i < n; i++) if (scratch[i] != model[offset + i]) return false;
                    int m = ring.GetReadSpans(offset, len, out ReadOnlySpan<byte> a, out ReadOnlySpan<byte> b);
                    if (m != n || a.Length + b.Length != n) return false;
                    for (int i = 0; i < n; i++) if ((i < a.Length ? a[i] : b[i - a.Length]) != model[offset + i]) return false;
                    break;
                }
                case 3: // WriteAt
                {
                    int offset = arg % 1500;
                    int len = (arg / 1500) % 1500;
                    for (int i = 0; i < len; i++) scratch[i] = next++;
                    int n = ring.WriteAt(pool, offset, scratch.AsSpan(0, len));
                    int expect = len == 0 || count + offset >= capacity ? 0 : Math.Min(len, capacity - count - offset);
                    if (n != expect) return false;
                    for (int i = 0; i < n; i++) model[count + offset + i] = scratch[i];
                    break;
                }
                case 4: // Advance over what the model says is written beyond the contiguous end
                {
                    int run = 0;
                    while (count + run < capacity && model[count + run] >= 0) run++;
                    int n = run == 0 ? 0 : arg % (run + 1);
                    ring.Advance(n);
                    count += n;
                    break;
                }
                case 5: // ReleaseIfEmpty
                {
                    bool anyWritten = Array.Exists(model, v => v >= 0);
                    bool released = ring.ReleaseIfEmpty(pool);
                    if (anyWritten ? released || !ring.HasBlock : ring.HasBlock) return false;
                    break;
                }
            }
            if (ring.Count != count || ring.Free != capacity - count) return false;
        }
        ring.Clear(pool);
        return pool.OutstandingBlocks == 0;
    }
}
