using System;
using System.Collections.Generic;
using System.Linq;
using FsCheck;
using FsCheck.Fluent;
using UserTcp.Stack.Tcp;
using Xunit;

namespace UserTcp.Tests.Tcp.Blocks;

/// <summary>
/// ByteRing + Assembler + SeqNumber together as the receive path uses them: a byte stream cut into segments that
/// arrive in any order, duplicated, overlapping, some beyond the window; the application reads whenever it likes.
/// What it reads must be exactly the stream, and the ring must give its block back at the end.
/// </summary>
public class ReceivePathTests
{
    [Fact]
    public void ReassemblesAnyArrivalOrder()
    {
        var gen = Gen.Zip(Gen.Choose(0, int.MaxValue), Gen.Choose(1, 3));
        Prop.ForAll(Arb.From(gen), t => Run(t.Item1, t.Item2 == 1 ? 2 : 32)).QuickCheckThrowOnFailure();
    }

    private static bool Run(int seed, int maxIntervals)
    {
        var rng = new Random(seed);
        const int StreamLength = 20_000;
        var stream = new byte[StreamLength];
        rng.NextBytes(stream);
        var isn = new SeqNumber((uint)rng.NextInt64(0, 1L << 32)); // any start: wrap-around included

        // Segments: random cuts, then duplicates and overlapping re-cuts, shuffled.
        var segments = new List<(int Start, int Length)>();
        for (int pos = 0; pos < StreamLength;)
        {
            int len = Math.Min(rng.Next(1, 1500), StreamLength - pos);
            segments.Add((pos, len));
            pos += len;
        }
        int extra = segments.Count / 2;
        for (int i = 0; i < extra; i++)
        {
            int s = rng.Next(StreamLength);
            segments.Add((s, Math.Min(rng.Next(1, 3000), StreamLength - s)));
        }

        using var pool = new BufferPool(1 << 20, 4096, 8192);
        var ring = new ByteRing(pool, 8192);
        var asm = new Assembler(maxIntervals);
        SeqNumber rcvNxt = isn;
        var received = new List<byte>();
        var readBuf = new byte[3000];
        var pending = new Queue<(int Start, int Length)>(segments.OrderBy(_ => rng.Next()));
        int rounds = 0;
        while (received.Count < StreamLength)
        {
            if (++rounds > 1_000_000) return false;
            if (pending.Count == 0 || rounds % 16 == 0)
            {
                // The "peer" retransmits from RCV.NXT now and then, as it would after a timeout.
                int from = rcvNxt - isn;
                pending.Enqueue((from, Math.Min(1460, StreamLength - from)));
            }
            var (start, length) = pending.Dequeue();
            SeqNumber seq = isn + start;
            // Trim to the window [RCV.NXT, RCV.NXT + free) as the segment acceptance test does.
            int offset = seq - rcvNxt;
            int skip = Math.Max(0, -offset);
            int usable = Math.Min(length - skip, ring.Free - Math.Max(offset, 0));
            if (usable > 0)
            {
                int o = Math.Max(offset, 0);
                var data = stream.AsSpan(start + skip, usable);
                if (ring.WriteAt(pool, o, data) != usable) return false;
                if (asm.Add(o, usable))
                {
                    int n = asm.PopContiguous();
                    ring.Advance(n);
                    rcvNxt += n;
                }
                // else: no room in the table, the segment is dropped (a retransmission brings it back).
                // Bytes the assembler does not track (refused or evicted) need not keep the block.
                ring.ForgetOutOfOrderFrom(asm.HighestEnd);
            }
            // The application reads a random amount now and then.
            if (rng.Next(3) == 0)
            {
                int n = ring.Peek(0, readBuf.AsSpan(0, rng.Next(1, readBuf.Length)));
                ring.Consume(n);
                received.AddRange(readBuf.AsSpan(0, n).ToArray());
                ring.ReleaseIfEmpty(pool);
            }
        }
        if (!received.SequenceEqual(stream) || rcvNxt != isn + StreamLength || !asm.IsEmpty) return false;
        ring.ReleaseIfEmpty(pool);
        return !ring.HasBlock && pool.OutstandingBlocks == 0;
    }
}
