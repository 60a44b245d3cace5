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

    private static byte[] Ipv4Frame(int n)
    {
        byte[] f = NumberedFrame(n);
        f[12] = 0x08; f[13] = 0x00;
        return f;
    }

    [Fact]
    public void TransmitFaultsDropAndReorderSentFramesWithoutLosingTheRest()
    {
        using MemoryLink link = NewLink(pool: 2048, queue: 1024);
        var dev = new FaultInjectingDevice(link.A, new FaultConfig
        {
            LossPercent = 10, ReorderPercent = 10, ReorderDepth = 2, Transmit = true,
        }, 9);
        for (int i = 0; i < 500; i++)
        {
            dev.NowUs = i * 10;
            Assert.True(Send(dev, Ipv4Frame(i)));
        }
        dev.NowUs = long.MaxValue / 2;
        Drain(dev); // a Receive call also flushes held transmit frames
        int[] got = Drain(link.B).Select(Number).ToArray();
        Assert.InRange(dev.TxLost, 25, 80);
        Assert.Equal(dev.TxLost, dev.Lost);
        Assert.True(dev.TxReordered > 20);
        Assert.Equal(500 - dev.TxLost, got.Length);
        Assert.Equal(got.Length, got.Distinct().Count());
        Assert.NotEqual(got.OrderBy(x => x), got);
        Assert.Equal(0, dev.HeldCount);
        Assert.Equal(0, link.A.Pool.Outstanding);
    }

    [Fact]
    public void TransmitRefusedByTheInnerDeviceIsHeldAndRetried()
    {
        using MemoryLink link = NewLink(queue: 4, pool: 64);
        var dev = new FaultInjectingDevice(link.A, new FaultConfig { Transmit = true, MaxHeld = 8 }, 1);
        int sent = 0;
        for (int i = 0; i < 20; i++)
            if (Send(dev, Ipv4Frame(i))) sent++;
        // The peer's queue holds 4 and the lane 8 (room for a duplicate each): the rest was refused, not dropped.
        Assert.InRange(sent, 4, 12);
        var got = new List<int>();
        for (int round = 0; round < 10 && got.Count < sent; round++)
        {
            got.AddRange(Drain(link.B).Select(Number));
            Drain(dev);
        }
        Assert.Equal(Enumerable.Range(0, sent), got);
        Assert.Equal(0, dev.Lost);
    }

    [Fact]
    public void Ipv4OnlyLetsOtherFramesThrough()
    {
        List<byte[]> got = Run(new FaultConfig { LossPercent = 100, Ipv4Only = true }, 1, 50, out MemoryLink link, out FaultInjectingDevice dev);
        Assert.Equal(50, got.Count); // experimental EtherType: untouched
        Assert.Equal(0, dev.Lost);
        Assert.True(Send(link.A, Ipv4Frame(7)));
        Assert.Empty(Drain(dev));
        Assert.Equal(1, dev.Lost);
        link.Dispose();
    }
}
