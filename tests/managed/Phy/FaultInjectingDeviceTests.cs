using System;
using System.Collections.Generic;
using System.Linq;
using UserTcp.Stack.Phy;
using Xunit;
using static UserTcp.Tests.Phy.PhyTestUtil;

namespace UserTcp.Tests.Phy;

public class FaultInjectingDeviceTests
{
    /// <summary>Sends <paramref name="count"/> numbered frames one at a time, receiving through the fault injector
    /// after each, then advances time far enough to flush everything held.</summary>
    private static List<byte[]> Run(FaultConfig cfg, int seed, int count, out MemoryLink link, out FaultInjectingDevice dev)
    {
        link = NewLink(pool: 2048, queue: 1024);
        dev = new FaultInjectingDevice(link.B, cfg, seed);
        var got = new List<byte[]>();
        for (int i = 0; i < count; i++)
        {
            Assert.True(Send(link.A, NumberedFrame(i)));
            dev.NowUs = i * 10;
            got.AddRange(Drain(dev));
        }
        dev.NowUs = long.MaxValue / 2;
        got.AddRange(Drain(dev));
        return got;
    }

    [Fact]
    public void SameSeedSameOutcome()
    {
        var cfg = new FaultConfig { LossPercent = 10, DuplicatePercent = 10, ReorderPercent = 10, CorruptPercent = 10, JitterUs = 50 };
        List<byte[]> a = Run(cfg, 42, 300, out MemoryLink l1, out FaultInjectingDevice d1);
        List<byte[]> b = Run(cfg, 42, 300, out MemoryLink l2, out FaultInjectingDevice d2);
        List<byte[]> c = Run(cfg, 43, 300, out MemoryLink l3, out _);
        Assert.Equal(a.Count, b.Count);
        for (int i = 0; i < a.Count; i++) Assert.Equal(a[i], b[i]);
        Assert.Equal(d1.Lost, d2.Lost);
        Assert.True(d1.Lost > 0 && d1.Duplicated > 0 && d1.Reordered > 0 && d1.Corrupted > 0);
        Assert.False(a.Count == c.Count && a.Zip(c).All(p => p.First.AsSpan().SequenceEqual(p.Second)));
        foreach (MemoryLink l in new[] { l1, l2, l3 })
        {
            Assert.Equal(0, l.A.Pool.Outstanding + l.B.Pool.Outstanding);
            l.Dispose();
        }
    }

    [Fact]
    public void LossRateIsRoughlyAsConfigured()
    {
        List<byte[]> got = Run(new FaultConfig { LossPercent = 30 }, 1, 2000, out MemoryLink link, out FaultInjectingDevice dev);
        Assert.InRange(dev.Lost, 500, 700);
        Assert.Equal(2000 - dev.Lost, got.Count);
        Assert.Equal(got.Select(Number).OrderBy(x => x), got.Select(Number)); // no reordering asked for
        Assert.Equal(0, link.B.Pool.Outstanding);
        link.Dispose();
    }

    [Fact]
    public void FullDuplicationDeliversEveryFrameTwice()
    {
        List<byte[]> got = Run(new FaultConfig { DuplicatePercent = 100 }, 1, 50, out MemoryLink link, out _);
        Assert.Equal(Enumerable.Range(0, 50).SelectMany(i => new[] { i, i }), got.Select(Number));
        Assert.Equal(0, link.B.Pool.Outstanding);
        link.Dispose();
    }

    [Fact]
    public void ReorderedFramesAreOvertakenButNotLost()
    {
        List<byte[]> got = Run(new FaultConfig { ReorderPercent = 20, ReorderDepth = 2 }, 5, 200, out MemoryLink link, out FaultInjectingDevice dev);
        int[] numbers = got.Select(Number).ToArray();
        Assert.Equal(Enumerable.Range(0, 200), numbers.OrderBy(x => x));
        Assert.NotEqual(Enumerable.Range(0, 200), numbers);
        Assert.True(dev.Reordered > 10);
        // A held frame is overtaken by (at most) ReorderDepth later frames while traffic flows.
        for (int i = 0; i < numbers.Length; i++)
            Assert.True(numbers.Take(i).Count(n => n > numbers[i]) <= 3);
        link.Dispose();
    }

    [Fact]
    public void HeldFrameReleasedByTimeoutWhenTrafficStops()
    {
        using MemoryLink link = NewLink();
        var dev = new FaultInjectingDevice(link.B, new FaultConfig { ReorderPercent = 100, ReorderTimeoutUs = 500 }, 3);
        Send(link.A, NumberedFrame(7));
        Assert.Empty(Drain(dev));
        Assert.Equal(500, dev.NextReleaseUs);
        dev.NowUs = 499;
        Assert.Empty(Drain(dev));
        dev.NowUs = 500;
        Assert.Equal(new[] { 7 }, Drain(dev).Select(Number));
    }

    [Fact]
    public void CorruptionChangesExactlyOneByte()
    {
        List<byte[]> got = Run(new FaultConfig { CorruptPercent = 100 }, 9, 100, out MemoryLink link, out _);
        Assert.Equal(100, got.Count);
        for (int i = 0; i < got.Count; i++)
        {
            byte[] orig = NumberedFrame(i);
            Assert.Equal(1, orig.Zip(got[i]).Count(p => p.First != p.Second));
        }
        link.Dispose();
    }

    [Fact]
    public void DelayHoldsFramesUntilDue()
    {
        using MemoryLink link = NewLink();
        var dev = new FaultInjectingDevice(link.B, new FaultConfig { DelayUs = 1000 }, 1);
        dev.NowUs = 100;
        Send(link.A, NumberedFrame(1));
        Assert.Empty(Drain(dev));
        Assert.Equal(1, dev.HeldCount);
        Assert.Equal(1100, dev.NextReleaseUs);
        dev.Advance(1099);
        Assert.Empty(Drain(dev));
        dev.Advance(1100);
        Assert.Single(Drain(dev));
        Assert.Equal(long.MaxValue, dev.NextReleaseUs);
    }

    [Fact]
    public void DisposeReturnsHeldFrames()
    {
        using MemoryLink link = NewLink();
        var dev = new FaultInjectingDevice(link.B, new FaultConfig { DelayUs = 1000 }, 1);
        for (int i = 0; i < 5; i++) Send(link.A, NumberedFrame(i));
        Drain(dev);
        Assert.Equal(5, link.B.Pool.Outstanding);
        dev.Dispose();
        Assert.Equal(0, link.B.Pool.Outstanding);
    }
}
