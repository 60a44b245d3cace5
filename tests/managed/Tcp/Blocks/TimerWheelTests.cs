using System;
using System.Collections.Generic;
using System.Linq;
using FsCheck;
using FsCheck.Fluent;
using UserTcp.Stack.Tcp;
using Xunit;

namespace UserTcp.Tests.Tcp.Blocks;

public class TimerWheelTests
{
    /// <summary>A node that knows which one it is (nodes carry no owner field of their own).</summary>
    private sealed class Tagged(int kind) : TimerNode
    {
        public readonly int Kind = kind;
    }

    private sealed class Recorder : ITimerHandler
    {
        public readonly List<(TimerNode Node, long Now)> Fired = new();
        public Action<TimerNode, long>? Then;
        public void OnTimer(TimerNode node, long nowUs)
        {
            Fired.Add((node, nowUs));
            Then?.Invoke(node, nowUs);
        }
    }

    /// <summary>Advances to NextDue until nothing is left; returns the time each node fired.</summary>
    private static void RunToEnd(TimerWheel wheel, Recorder rec, long limitUs = long.MaxValue)
    {
        long last = long.MinValue;
        while (wheel.Count > 0)
        {
            long next = wheel.NextDue();
            if (next > limitUs) break;
            Assert.True(next >= last, "time must not go backwards");
            wheel.Advance(next, rec);
            last = next;
        }
    }

    [Fact]
    public void FiresInOrderNeverEarlyAndWithinOneTick()
    {
        var wheel = new TimerWheel(1000);
        var rng = new Random(7);
        var nodes = new TimerNode[5000];
        for (int i = 0; i < nodes.Length; i++)
        {
            nodes[i] = new Tagged(i);
            // Spread over every level up to ~3 hours, with many in the first second.
            long due = rng.Next(4) switch
            {
                0 => rng.Next(0, 64_000),
                1 => rng.Next(0, 1_000_000),
                2 => rng.NextInt64(0, 200_000_000),
                _ => rng.NextInt64(0, 11_000_000_000),
            };
            wheel.Schedule(nodes[i], due);
        }
        var rec = new Recorder();
        RunToEnd(wheel, rec);
        Assert.Equal(nodes.Length, rec.Fired.Count);
        long prevTick = long.MinValue;
        foreach (var (node, now) in rec.Fired)
        {
            Assert.True(now >= node.DueUs, $"fired early: due {node.DueUs} at {now}");
            Assert.True(now < node.DueUs + 1000, $"fired late: due {node.DueUs} at {now}");
            long tick = (node.DueUs + 999) / 1000;
            Assert.True(tick >= prevTick);
            prevTick = tick;
            Assert.False(node.IsScheduled);
        }
    }

    [Fact]
    public void NextDueIsExactForNearTimersAndNeverLate()
    {
        var wheel = new TimerWheel(1000, startUs: 5_000_000);
        Assert.Equal(long.MaxValue, wheel.NextDue());
        var a = new TimerNode();
        wheel.Schedule(a, 5_010_500);
        Assert.Equal(5_011_000, wheel.NextDue());
        var b = new TimerNode();
        wheel.Schedule(b, 5_002_000);
        Assert.Equal(5_002_000, wheel.NextDue());
        wheel.Cancel(b);
        Assert.Equal(5_011_000, wheel.NextDue());
        var rec = new Recorder();
        Assert.Equal(0, wheel.Advance(5_010_999, rec));
        Assert.Equal(1, wheel.Advance(5_011_000, rec));
        Assert.Equal(long.MaxValue, wheel.NextDue());

        // A far timer: NextDue may be a cascade point, but is never after the due time.
        var c = new TimerNode();
        wheel.Schedule(c, 65_000_000);
        long next;
        int wakeups = 0;
        while ((next = wheel.NextDue()) != long.MaxValue)
        {
            Assert.True(next <= 65_000_000);
            wheel.Advance(next, rec);
            wakeups++;
        }
        Assert.Equal(c, rec.Fired[^1].Node);
        Assert.Equal(65_000_000, rec.Fired[^1].Now);
        Assert.True(wakeups <= 8, $"{wakeups} wake-ups");
    }

    [Fact]
    public void PastDueTimerFiresOnNextAdvance()
    {
        var wheel = new TimerWheel(1000);
        var rec = new Recorder();
        wheel.Advance(10_000, rec);
        var a = new TimerNode();
        wheel.Schedule(a, 3_000);
        Assert.True(wheel.NextDue() <= 10_000);
        Assert.Equal(1, wheel.Advance(10_000, rec));
        Assert.Equal(0, wheel.Count);
    }

    [Fact]
    public void CancelAndReschedule()
    {
        var wheel = new TimerWheel(1000);
        var rec = new Recorder();
        var a = new TimerNode();
        var b = new TimerNode();
        var c = new TimerNode();
        wheel.Schedule(a, 5_000);
        wheel.Schedule(b, 5_000);
        wheel.Schedule(c, 300_000);
        Assert.True(wheel.IsScheduled(a));
        Assert.True(wheel.Cancel(a));
        Assert.False(wheel.Cancel(a));
        Assert.False(wheel.IsScheduled(a));
        wheel.Schedule(c, 2_000);   // moved earlier
        wheel.Schedule(b, 400_000); // moved later
        Assert.Equal(2, wheel.Count);
        wheel.Advance(299_999, rec);
        Assert.Equal(new[] { c }, rec.Fired.Select(f => f.Node));
        wheel.Advance(400_000, rec);
        Assert.Equal(new[] { c, b }, rec.Fired.Select(f => f.Node));
        Assert.Equal(0, wheel.Count);
    }

    [Fact]
    public void HandlerMayRearmAndCancelOthers()
    {
        var wheel = new TimerWheel(1000);
        var periodic = new TimerNode();
        var victim = new TimerNode();
        var rec = new Recorder();
        rec.Then = (node, now) =>
        {
            if (node == periodic)
            {
                wheel.Cancel(victim);              // same tick, not fired yet or fired: both fine
                wheel.Schedule(periodic, node.DueUs + 10_000);
            }
        };
        wheel.Schedule(periodic, 10_000);
        wheel.Schedule(victim, 10_000);
        wheel.Advance(55_000, rec);
        // Re-armed relative to its own due time: fires at 10, 20, 30, 40 and 50 ms within the one call.
        Assert.Equal(5, rec.Fired.Count(f => f.Node == periodic));
        Assert.True(rec.Fired.Count(f => f.Node == victim) <= 1);
        rec.Fired.Clear();
        for (long t = 60_000; t <= 100_000; t += 10_000) wheel.Advance(t, rec);
        Assert.Equal(5, rec.Fired.Count);
        Assert.True(periodic.IsScheduled);

        // A handler that re-arms "now" fires once per event, not forever.
        var busy = new TimerNode();
        var rec2 = new Recorder();
        rec2.Then = (node, now) => wheel.Schedule(node, now);
        var w2 = wheel;
        w2.Cancel(periodic);
        w2.Schedule(busy, 200_000);
        Assert.Equal(1, w2.Advance(200_000, rec2));
        Assert.Equal(1, w2.Advance(200_000, rec2));
        Assert.Throws<InvalidOperationException>(() =>
        {
            rec2.Then = (node, now) => w2.Advance(now, rec2);
            w2.Advance(200_000, rec2);
        });
    }

    [Fact]
    public void FarFutureTimersTimeWaitAndKeepalive()
    {
        var wheel = new TimerWheel(1000, startUs: 1_000_000);
        var timeWait = new TimerNode();
        var keepalive = new TimerNode();
        wheel.Schedule(timeWait, 1_000_000 + 60_000_000);
        wheel.Schedule(keepalive, 1_000_000 + 7_200_000_000);
        var rec = new Recorder();
        Assert.Equal(0, wheel.Advance(60_999_999, rec));
        Assert.Equal(1, wheel.Advance(61_000_000, rec));
        Assert.Equal(0, wheel.Advance(7_200_999_999, rec));
        Assert.Equal(1, wheel.Advance(7_201_000_000, rec));
    }

    [Fact]
    public void BeyondTheTopLevelUsesOverflow()
    {
        // 1 µs ticks: seven levels span 2^42 µs (~51 days); 60 days goes to the overflow list.
        var wheel = new TimerWheel(1);
        var far = new TimerNode();
        var farther = new TimerNode();
        long sixtyDays = 60L * 86_400_000_000;
        wheel.Schedule(far, sixtyDays);
        wheel.Schedule(farther, 3 * (1L << 42) + 5);
        var rec = new Recorder();
        Assert.Equal(0, wheel.Advance(sixtyDays - 1, rec));
        Assert.Equal(1, wheel.Advance(sixtyDays, rec));
        RunToEnd(wheel, rec);
        Assert.Equal(farther, rec.Fired[^1].Node);
        Assert.Equal(3 * (1L << 42) + 5, rec.Fired[^1].Now);
    }

    [Fact]
    public void ManyTimers()
    {
        const int N = 300_000;
        var wheel = new TimerWheel(1000);
        var nodes = new TimerNode[N];
        var rng = new Random(3);
        for (int i = 0; i < N; i++)
        {
            nodes[i] = new Tagged(i);
            wheel.Schedule(nodes[i], rng.NextInt64(200_000, 3_000_000));
        }
        // Like RTO timers: most are pushed back (rescheduled) or cancelled before they fire.
        for (int i = 0; i < N; i++)
        {
            if (i % 3 == 0) wheel.Cancel(nodes[i]);
            else if (i % 3 == 1) wheel.Schedule(nodes[i], 3_000_000 + i);
        }
        Assert.Equal(N - N / 3, wheel.Count);
        var rec = new Recorder();
        int fired = 0;
        for (long t = 0; t <= 4_000_000; t += 1000) fired += wheel.Advance(t, rec);
        Assert.Equal(N - N / 3, fired);
        Assert.All(rec.Fired, f => Assert.True(f.Now >= f.Node.DueUs && ((Tagged)f.Node).Kind % 3 != 0));
    }

    private sealed class Counter : ITimerHandler
    {
        public int N;
        public void OnTimer(TimerNode node, long nowUs) => N++;
    }

    [Fact]
    public void ScheduleCancelAdvanceDoNotAllocate()
    {
        var wheel = new TimerWheel(1000);
        var nodes = Enumerable.Range(0, 64).Select(_ => new TimerNode()).ToArray();
        var h = new Counter();
        wheel.Schedule(nodes[0], 1); wheel.Advance(5000, h); wheel.NextDue();
        long before = GC.GetAllocatedBytesForCurrentThread();
        long now = 5000;
        for (int round = 0; round < 200; round++)
        {
            foreach (var n in nodes) wheel.Schedule(n, now + 1000 * (round % 97) + 200_000);
            for (int i = 0; i < nodes.Length; i += 2) wheel.Cancel(nodes[i]);
            now += 50_000;
            wheel.Advance(now, h);
            wheel.NextDue();
        }
        Assert.Equal(before, GC.GetAllocatedBytesForCurrentThread());
    }

    /// <summary>
    /// Random schedule/cancel/advance sequences: each Advance(now) fires exactly the scheduled timers whose tick
    /// ceil(due / tick) is at most floor(now / tick), and NextDue is never after the earliest pending due tick.
    /// </summary>
    [Fact]
    public void MatchesModel()
    {
        var op = Gen.Zip(Gen.Choose(0, 9), Gen.Zip(Gen.Choose(0, 15), Gen.Choose(0, int.MaxValue)));
        Prop.ForAll(Arb.From(Gen.ArrayOf(op)), ops => RunModel(ops, 1000))
            .QuickCheckThrowOnFailure();
        Prop.ForAll(Arb.From(Gen.ArrayOf(op)), ops => RunModel(ops, 1))
            .QuickCheckThrowOnFailure();
    }

    private static bool RunModel((int, (int, int))[] ops, long tickUs)
    {
        var wheel = new TimerWheel(tickUs);
        var nodes = Enumerable.Range(0, 16).Select(i => new Tagged(i)).ToArray();
        var due = new long?[16];
        var rec = new Recorder();
        long now = 0;
        foreach (var (kind, (which, r)) in ops)
        {
            if (kind < 5)
            {
                // Due times spread over several levels, some in the past.
                long span = (r % 4) switch { 0 => 70 * tickUs, 1 => 5000 * tickUs, 2 => 300_000 * tickUs, _ => 20_000_000 * tickUs };
                long d = now - 5 * tickUs + (long)((ulong)r * 2654435761UL % (ulong)span);
                wheel.Schedule(nodes[which], d);
                due[which] = d;
            }
            else if (kind < 7)
            {
                bool was = wheel.Cancel(nodes[which]);
                if (was != due[which].HasValue) return false;
                due[which] = null;
            }
            else
            {
                long step = kind == 7 ? r % (3 * tickUs) : (long)((ulong)r * 40503UL % (ulong)(400_000 * tickUs));
                if (kind == 9 && wheel.NextDue() != long.MaxValue) step = Math.Max(0, wheel.NextDue() - now);
                now += step;
                rec.Fired.Clear();
                wheel.Advance(now, rec);
                long nowTick = now / tickUs;
                var expect = new HashSet<int>();
                for (int i = 0; i < 16; i++)
                    if (due[i] is long d && (d + tickUs - 1) / tickUs <= nowTick) expect.Add(i);
                var got = rec.Fired.Select(f => ((Tagged)f.Node).Kind).ToHashSet();
                if (!got.SetEquals(expect) || rec.Fired.Count != expect.Count) return false;
                foreach (int i in expect) due[i] = null;
            }
            if (wheel.Count != due.Count(d => d.HasValue)) return false;
            long next = wheel.NextDue();
            long earliest = due.Where(d => d.HasValue).Select(d => Math.Max(0, (d!.Value + tickUs - 1) / tickUs) * tickUs).DefaultIfEmpty(long.MaxValue).Min();
            if (earliest == long.MaxValue ? next != long.MaxValue : next > Math.Max(earliest, now)) return false;
            for (int i = 0; i < 16; i++) if (nodes[i].IsScheduled != due[i].HasValue) return false;
        }
        return true;
    }
}
