using System;
using UserTcp.Stack.Phy;
using Xunit;

namespace UserTcp.Tests.Phy;

public unsafe class NativePacketPoolTests
{
    [Fact]
    public void RentsUpToCountThenFails()
    {
        using var pool = new NativePacketPool(4, 2048, 128);
        Span<PacketBuf> bufs = stackalloc PacketBuf[6];
        Assert.Equal(4, pool.Rent(bufs));
        Assert.Equal(4, pool.Outstanding);
        Assert.False(pool.TryRent(out _));
        for (int i = 0; i < 4; i++)
        {
            Assert.Equal(128, bufs[i].Offset);
            Assert.Equal(0, bufs[i].Length);
            Assert.Equal(2048, bufs[i].Capacity);
            Assert.Equal(i, (int)bufs[i].Handle);
            Assert.True(((nint)bufs[i].Buffer & 63) == 0);
        }
        for (int i = 0; i < 4; i++) pool.Return(ref bufs[i]);
        Assert.Equal(0, pool.Outstanding);
        Assert.Equal(4, pool.Available);
    }

    [Fact]
    public void BuffersDoNotOverlap()
    {
        using var pool = new NativePacketPool(3, 100, 0);
        Span<PacketBuf> b = stackalloc PacketBuf[3];
        pool.Rent(b);
        for (int i = 0; i < 3; i++) { b[i].SetLength(100); b[i].Data.Fill((byte)(i + 1)); }
        for (int i = 0; i < 3; i++) Assert.True(b[i].Data.IndexOfAnyExcept((byte)(i + 1)) < 0);
        for (int i = 0; i < 3; i++) pool.Return(ref b[i]);
    }

    [Fact]
    public void DoubleReturnThrowsAndReusesSlot()
    {
        using var pool = new NativePacketPool(2, 256);
        Assert.True(pool.TryRent(out PacketBuf p));
        PacketBuf copy = p;
        pool.Return(ref p);
        Assert.Equal(default, p.Handle);
        Assert.Throws<InvalidOperationException>(() => pool.Return(ref copy));
        Assert.True(pool.TryRent(out PacketBuf again));
        Assert.Equal(copy.Handle, again.Handle); // LIFO: the warm buffer comes back first
        pool.Return(ref again);
        Assert.Equal(0, pool.Outstanding);
    }

    [Fact]
    public void ForeignBufferRejected()
    {
        using var a = new NativePacketPool(1, 256);
        using var b = new NativePacketPool(1, 256);
        Assert.True(a.TryRent(out PacketBuf p));
        Assert.False(b.Owns(p));
        Assert.Throws<InvalidOperationException>(() => b.Return(ref p));
        a.Return(ref p);
    }
}
