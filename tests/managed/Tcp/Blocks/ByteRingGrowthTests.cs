using System;
using UserTcp.Stack.Tcp;
using Xunit;

namespace UserTcp.Tests.Tcp.Blocks;

/// <summary>A ring holds a block sized to what it holds, not to its capacity, and grows without losing bytes.</summary>
public class ByteRingGrowthTests
{
    [Fact]
    public void SmallContentHoldsTheSmallestBlock()
    {
        using var pool = BufferPool.CreateDefault(64L << 20);
        var ring = new ByteRing(pool, 256 * 1024);
        Assert.Equal(100, ring.Write(pool, new byte[100]));
        Assert.Equal(ByteRing.MinBlockBytes, pool.BytesInUse);
        ring.Consume(100);
        Assert.True(ring.ReleaseIfEmpty(pool));
        Assert.Equal(0, pool.BytesInUse);
    }

    [Fact]
    public void GrowsThroughSizeClassesKeepingOrderAcrossTheWrap()
    {
        using var pool = BufferPool.CreateDefault(64L << 20);
        var ring = new ByteRing(pool, 256 * 1024);
        var rng = new Random(7);
        byte[] all = new byte[200_000];
        rng.NextBytes(all);
        // Wrap the small block first: write 3000, consume 2500, then keep writing past 4 KiB and beyond.
        Assert.Equal(3000, ring.Write(pool, all.AsSpan(0, 3000)));
        ring.Consume(2500);
        int written = 3000, consumed = 2500;
        while (written < all.Length)
        {
            int n = Math.Min(7000, all.Length - written);
            Assert.Equal(n, ring.Write(pool, all.AsSpan(written, n)));
            written += n;
        }
        Assert.True(pool.BytesInUse >= 256 * 1024 - 4096 && pool.BytesInUse <= 256 * 1024);
        byte[] back = new byte[written - consumed];
        Assert.Equal(back.Length, ring.Peek(0, back));
        Assert.Equal(all.AsSpan(consumed, back.Length).ToArray(), back);
    }

    [Fact]
    public void OutOfOrderBytesSurviveGrowth()
    {
        using var pool = BufferPool.CreateDefault(64L << 20);
        var ring = new ByteRing(pool, 64 * 1024);
        byte[] tail = new byte[1000];
        new Random(3).NextBytes(tail);
        Assert.Equal(1000, ring.WriteAt(pool, 2000, tail));        // fits the first 4 KiB block
        Assert.Equal(ByteRing.MinBlockBytes, pool.BytesInUse);
        Assert.Equal(5000, ring.WriteAt(pool, 10_000, new byte[5000])); // needs 16 KiB: the block grows
        byte[] head = new byte[2000];
        Assert.Equal(2000, ring.WriteAt(pool, 0, head));
        ring.Advance(3000);
        byte[] got = new byte[1000];
        Assert.Equal(1000, ring.Peek(2000, got));
        Assert.Equal(tail, got);
    }
}
