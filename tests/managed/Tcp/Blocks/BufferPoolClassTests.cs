using System;
using UserTcp.Stack.Tcp;
using Xunit;

namespace UserTcp.Tests.Tcp.Blocks;

/// <summary>The pool finds a byte count's size class by a table indexed by ceil(log2) instead of a scan over the
/// classes: the same answers as the scan for every count around each power of two, for several class sets.</summary>
public unsafe class BufferPoolClassTests
{
    private static int ScanBlockSizeFor(int[] sizes, int bytes)
    {
        foreach (int s in sizes) if (s >= bytes) return s;
        return -1;
    }

    [Theory]
    [InlineData(new[] { 4096, 16384, 65536, 262144, 1 << 20 })]
    [InlineData(new[] { 64 })]
    [InlineData(new[] { 64, 128, 256, 512, 1024 })]
    [InlineData(new[] { 1 << 30 })]
    [InlineData(new[] { 128, 1 << 30 })]
    public void BlockSizeForMatchesTheScan(int[] sizes)
    {
        using var pool = new BufferPool(1 << 20, sizes);
        Array.Sort(sizes);
        var probes = new System.Collections.Generic.List<int> { int.MinValue, -1, 0, 1, 2, 3, int.MaxValue };
        for (int k = 1; k < 31; k++)
            foreach (int d in new[] { -1, 0, 1 }) probes.Add((1 << k) + d);
        foreach (int bytes in probes)
            Assert.Equal(ScanBlockSizeFor(sizes, bytes), pool.BlockSizeFor(bytes));
    }

    [Fact]
    public void ReturnByPointerAndLengthFindsTheClassAndRefusesForeignLengths()
    {
        using var pool = BufferPool.CreateDefault(16L << 20);
        foreach (int want in new[] { 1, 4096, 4097, 16384, 70000, 1 << 20 })
        {
            Assert.True(pool.TryRent(want, out PoolBlock b));
            Assert.Equal(ScanBlockSizeFor(new[] { 4096, 16384, 65536, 262144, 1 << 20 }, want), b.Length);
            Assert.Equal(1, pool.OutstandingBlocks);
            Assert.Throws<ArgumentException>(() => pool.Return(b.Pointer, b.Length / 2));   // no class of that length
            Assert.Throws<ArgumentException>(() => pool.Return(b.Pointer, b.Length + 1));   // not a class length
            pool.Return(b.Pointer, b.Length);
            Assert.Equal(0, pool.OutstandingBlocks);
        }
        Assert.False(pool.TryRent((1 << 20) + 1, out _));
    }
}
