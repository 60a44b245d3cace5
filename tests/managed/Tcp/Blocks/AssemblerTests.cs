using System;
using System.Collections.Generic;
using System.Linq;
using FsCheck;
using FsCheck.Fluent;
using UserTcp.Stack.Tcp;
using Xunit;

namespace UserTcp.Tests.Tcp.Blocks;

public class AssemblerTests
{
    private static List<ByteRange> Intervals(Assembler a)
    {
        var list = new List<ByteRange>();
        for (int i = 0; i < a.Count; i++) list.Add(a[i]);
        return list;
    }

    [Fact]
    public void MergesOverlappingAndAdjacentRanges()
    {
        var a = new Assembler(8);
        Assert.True(a.Add(10, 5));   // [10,15)
        Assert.True(a.Add(20, 5));   // [20,25)
        Assert.True(a.Add(30, 5));   // [30,35)
        Assert.True(a.Add(15, 5));   // adjacent on both sides: [10,25)
        Assert.Equal(new[] { new ByteRange(10, 25), new ByteRange(30, 35) }, Intervals(a));
        Assert.True(a.Add(12, 30));  // covers everything: [10,42)
        Assert.Equal(new[] { new ByteRange(10, 42) }, Intervals(a));
        Assert.Equal(0, a.PopContiguous());
        Assert.True(a.Add(-5, 12));  // old bytes cut at 0: [0,7)
        Assert.Equal(7, a.PopContiguous());
        Assert.Equal(new[] { new ByteRange(3, 35) }, Intervals(a));
        Assert.Equal(35, a.HighestEnd);
        Assert.Equal(32, a.TotalBytes);
    }

    [Fact]
    public void FullTableRefusesFurthestRangeButAcceptsMerges()
    {
        var a = new Assembler(2);
        Assert.True(a.Add(10, 1));
        Assert.True(a.Add(20, 1));
        Assert.False(a.Add(30, 1));
        Assert.Equal(new[] { new ByteRange(10, 11), new ByteRange(20, 21) }, Intervals(a));
        Assert.Equal(0, a.Evictions);
        Assert.True(a.Add(11, 2));   // touches [10,11)
        Assert.True(a.Add(13, 7));   // bridges to [20,21)
        Assert.Equal(new[] { new ByteRange(10, 21) }, Intervals(a));
        Assert.True(a.Add(0, 10));
        Assert.Equal(21, a.PopContiguous());
        Assert.True(a.IsEmpty);
    }

    [Fact]
    public void FullTableEvictsFurthestForNearerRange()
    {
        var a = new Assembler(2);
        Assert.True(a.Add(10, 1));
        Assert.True(a.Add(20, 1));
        Assert.True(a.Add(0, 1));    // in-order data always gets in: [20,21) is forgotten
        Assert.Equal(1, a.Evictions);
        Assert.Equal(new[] { new ByteRange(0, 1), new ByteRange(10, 11) }, Intervals(a));
        Assert.True(a.Add(5, 1));    // nearer than [10,11): that one goes
        Assert.Equal(new[] { new ByteRange(0, 1), new ByteRange(5, 6) }, Intervals(a));
        Assert.Equal(1, a.PopContiguous());
    }

    [Fact]
    public void IgnoresEmptyAndOldRangesAndRejectsOverflow()
    {
        var a = new Assembler(4);
        Assert.True(a.Add(5, 0));
        Assert.True(a.Add(-10, 10));
        Assert.True(a.IsEmpty);
        Assert.False(a.Add(int.MaxValue - 1, 10));
        Assert.True(a.IsEmpty);
    }

    [Fact]
    public void ShiftCutsAndForgets()
    {
        var a = new Assembler(4);
        a.Add(5, 5); a.Add(20, 10);
        a.Shift(25);
        Assert.Equal(new[] { new ByteRange(0, 5) }, Intervals(a));
        a.Shift(100);
        Assert.True(a.IsEmpty);
    }

    [Fact]
    public void SackBlocksMostRecentFirst()
    {
        var a = new Assembler(8);
        a.Add(10, 10);
        a.Add(30, 10);
        a.Add(50, 10);
        Span<ByteRange> blocks = stackalloc ByteRange[4];
        Assert.Equal(3, a.GetSackBlocks(blocks));
        Assert.Equal(new ByteRange(50, 60), blocks[0]);
        Assert.Equal(new ByteRange(30, 40), blocks[1]);
        Assert.Equal(new ByteRange(10, 20), blocks[2]);
        a.Add(12, 2); // a duplicate inside [10,20) triggers the ACK: that block goes first
        Assert.Equal(3, a.GetSackBlocks(blocks));
        Assert.Equal(new ByteRange(10, 20), blocks[0]);
        Assert.Equal(new ByteRange(50, 60), blocks[1]);
        Span<ByteRange> two = stackalloc ByteRange[2];
        Assert.Equal(2, a.GetSackBlocks(two));
        Assert.Equal(new ByteRange(50, 60), two[1]);
        a.Add(0, 10); // contiguous at 0: not a SACK block
        Assert.Equal(2, a.GetSackBlocks(blocks));
        Assert.Equal(new ByteRange(50, 60), blocks[0]);
        Assert.Equal(new ByteRange(30, 40), blocks[1]);
    }

    [Fact]
    public void SackOrderSurvivesClockRenumbering()
    {
        var a = new Assembler(8);
        a.Add(10, 1);
        a.Add(30, 1);
        a.Add(50, 1);
        a.Add(10, 1);            // order now: [10,11), [50,51), [30,31)
        a.SetClock(int.MaxValue - 1);
        a.Add(70, 1);            // takes the last stamp
        a.Add(90, 1);            // forces renumbering
        Span<ByteRange> blocks = stackalloc ByteRange[8];
        Assert.Equal(5, a.GetSackBlocks(blocks));
        Assert.Equal(new[] { 90, 70, 10, 50, 30 }, blocks[..5].ToArray().Select(b => b.Start));
        a.Add(50, 1);
        Assert.Equal(5, a.GetSackBlocks(blocks));
        Assert.Equal(new[] { 50, 90, 70, 10, 30 }, blocks[..5].ToArray().Select(b => b.Start));
    }

    [Fact]
    public void DoesNotAllocate()
    {
        var a = new Assembler(32);
        Span<ByteRange> blocks = stackalloc ByteRange[4];
        // One warm-up pass through every call (first calls may allocate once: lazy statics, tiering), then the
        // measured pass: steady state allocates nothing.
        for (int pass = 0; pass < 2; pass++)
        {
            a.Clear();
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 1000; i++)
            {
                a.Add(100 + i % 7 * 20, 10);
                a.Add(i % 50, 3);
                a.GetSackBlocks(blocks);
                a.PopContiguous();
                if (i % 10 == 0) a.Shift(5);
            }
            if (pass == 1) Assert.Equal(before, GC.GetAllocatedBytesForCurrentThread());
        }
    }

    /// <summary>
    /// Arbitrary arrival orders, duplicates and overlaps against a bitmap of received bytes. After every step the
    /// intervals are exactly the runs of set bits; when the table is full a range touching no run is refused if it
    /// lies beyond every run and otherwise evicts the furthest run; PopContiguous returns the run at 0; the first
    /// SACK block holds the latest range.
    /// </summary>
    [Fact]
    public void MatchesBitmapModel()
    {
        var op = Gen.Zip(Gen.Choose(0, 9), Gen.Zip(Gen.Choose(-20, 300), Gen.Choose(0, 40)));
        foreach (int max in new[] { 1, 3, 32 })
        {
            Prop.ForAll(Arb.From(Gen.ArrayOf(op)), ops => RunModel(ops, max))
                .QuickCheckThrowOnFailure();
        }
    }

    private static bool RunModel((int, (int, int))[] ops, int max)
    {
        const int Window = 400;
        var a = new Assembler(max);
        var bits = new bool[Window];
        Span<ByteRange> sack = stackalloc ByteRange[4];
        foreach (var (kind, (offset, length)) in ops)
        {
            if (kind < 7)
            {
                bool touches = false;
                for (int k = Math.Max(0, offset - 1); k < Math.Min(Window, offset + length + 1); k++) touches |= bits[k];
                var before = Runs(bits);
                bool trivial = length <= 0 || offset + length <= 0;
                bool beyondAll = before.Count == 0 || Math.Max(offset, 0) > before[^1].End;
                long evictions = a.Evictions;
                bool ok = a.Add(offset, length);
                bool full = !trivial && !touches && before.Count == max;
                if (ok == (full && beyondAll)) return false;
                if (a.Evictions != evictions + (full && !beyondAll ? 1 : 0)) return false;
                if (ok && full)
                {
                    // The furthest run was forgotten.
                    for (int k = before[^1].Start; k < before[^1].End; k++) bits[k] = false;
                }
                if (ok)
                {
                    for (int k = Math.Max(0, offset); k < offset + length; k++) bits[k] = true;
                    int st = Math.Max(offset, 0);
                    int runStart = st;
                    while (runStart > 0 && bits[runStart - 1]) runStart--;
                    if (!trivial && runStart > 0)
                    {
                        // The range sits in a run not starting at 0: it must be in the first SACK block.
                        if (a.GetSackBlocks(sack) == 0) return false;
                        if (sack[0].Start > st || sack[0].End < offset + length) return false;
                    }
                }
            }
            else if (kind < 9)
            {
                int run = 0;
                while (run < Window && bits[run]) run++;
                if (a.PopContiguous() != run) return false;
                ShiftBits(bits, run);
            }
            else
            {
                int n = Math.Abs(offset) % 50;
                a.Shift(n);
                ShiftBits(bits, n);
            }
            var expect = Runs(bits);
            if (expect.Count != a.Count) return false;
            for (int i = 0; i < expect.Count; i++) if (a[i] != expect[i]) return false;
            int blocks = a.GetSackBlocks(sack);
            int nonZero = expect.Count > 0 && expect[0].Start == 0 ? expect.Count - 1 : expect.Count;
            if (blocks != Math.Min(4, nonZero)) return false;
            for (int i = 0; i < blocks; i++)
            {
                if (sack[i].Start == 0 || !expect.Contains(sack[i])) return false;
                for (int j = 0; j < i; j++) if (sack[j] == sack[i]) return false;
            }
        }
        return true;
    }

    private static void ShiftBits(bool[] bits, int n)
    {
        Array.Copy(bits, n, bits, 0, bits.Length - n);
        Array.Fill(bits, false, bits.Length - n, n);
    }

    private static List<ByteRange> Runs(bool[] bits)
    {
        var runs = new List<ByteRange>();
        for (int i = 0; i < bits.Length;)
        {
            if (!bits[i]) { i++; continue; }
            int s = i;
            while (i < bits.Length && bits[i]) i++;
            runs.Add(new ByteRange(s, i));
        }
        return runs;
    }
}

public class SeqNumberTests
{
    [Fact]
    public void OrderingAcrossWrap()
    {
        var a = new SeqNumber(0xFFFF_FFF0);
        var b = a + 0x20;
        Assert.Equal(0x10u, b.Value);
        Assert.True(a < b);
        Assert.True(b > a);
        Assert.Equal(0x20, b - a);
        Assert.Equal(-0x20, a - b);
        Assert.True(new SeqNumber(0xFFFF_FFFF).InRange(a, b));
        Assert.True(new SeqNumber(0).InRange(a, b));
        Assert.False(b.InRange(a, b));
        Assert.Equal(b, SeqNumber.Max(a, b));
    }

    [Fact]
    public void AheadByLessThanHalfTheSpaceIsGreater()
    {
        Prop.ForAll(Arb.From(Gen.Zip(Gen.Choose(int.MinValue, int.MaxValue), Gen.Choose(1, int.MaxValue))), t =>
        {
            var a = new SeqNumber(unchecked((uint)t.Item1));
            var b = a + t.Item2;
            return a < b && b > a && a <= b && !(b <= a) && b - a == t.Item2 && a - b == -t.Item2
                   && a.CompareTo(b) < 0 && b.CompareTo(a) > 0 && (b - t.Item2) == a;
        }).QuickCheckThrowOnFailure();
    }

    [Fact]
    public void InRangeMatchesOffsets()
    {
        Prop.ForAll(Arb.From(Gen.Zip(Gen.Choose(int.MinValue, int.MaxValue), Gen.Zip(Gen.Choose(0, 1 << 30), Gen.Choose(-(1 << 30), 1 << 30)))), t =>
        {
            var start = new SeqNumber(unchecked((uint)t.Item1));
            int len = t.Item2.Item1, off = t.Item2.Item2;
            return (start + off).InRange(start, start + len) == (off >= 0 && off < len);
        }).QuickCheckThrowOnFailure();
    }
}
