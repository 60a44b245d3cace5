using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Threading;
using UserTcp.Stack.Dpdk;
using UserTcp.Stack.Phy;
using UserTcp.Stack.Wire;
using Xunit;

namespace UserTcp.Tests.Dpdk;

[Collection("Dpdk")]
public sealed unsafe class DpdkDeviceTests
{
    private const ushort TestEtherType = 0x88B5; // IEEE 802 local experimental

    [DpdkFact]
    public void MbufLayoutMirror_MatchesGlueOffsetof()
    {
        Assert.True(DpdkNativeAccess.Load(DpdkTestEnv.Eal.GluePath, out string error), error);
        long[] native = RteMbuf.NativeLayout();
        long[] managed = RteMbuf.Layout();
        Assert.Equal(native.Length, managed.Length);
        for (int i = 0; i < native.Length; i++)
            Assert.True(native[i] == managed[i], $"layout value {i}: glue says {native[i]}, the C# mirror {managed[i]}");
    }

    [DpdkFact]
    public void PacketBufMirror_MatchesGlueStruct()
    {
        // The glue reads and writes PacketBuf arrays directly (struct utd_packet): a field moved in C# must fail here.
        Assert.True(DpdkNativeAccess.Load(DpdkTestEnv.Eal.GluePath, out string error), error);
        Assert.Equal(RteMbuf.NativePacketLayout(), RteMbuf.PacketLayout());
    }

    [DpdkFact]
    public void MemifPair_Burst32_FramesArriveIntact_BothWays_NoMbufLeak()
    {
        (DpdkPort a, DpdkPort b) = OpenMemifPair();
        try
        {
            DpdkDevice da = a.Devices[0], db = b.Devices[0];
            Assert.Equal(32, da.Capabilities.MaxBurst);
            Assert.Equal(RteMbuf.Headroom, da.Capabilities.Headroom);
            Assert.Equal(1500, da.Capabilities.Mtu);
            Assert.NotEqual(da.Capabilities.MacAddress, db.Capabilities.MacAddress);
            int availA = a.PoolAvailable, availB = b.PoolAvailable;

            var rng = new Random(1234);
            for (int round = 0; round < 20; round++)
            {
                bool forward = round % 2 == 0;
                SendAndCheckBurst(forward ? da : db, forward ? db : da, 32, rng);
            }

            Assert.Equal(availA, a.PoolAvailable);
            Assert.Equal(availB, b.PoolAvailable);
            DpdkPortStats sa = a.GetStats(), sb = b.GetStats();
            Assert.Equal(10UL * 32, sa.TxPackets);
            Assert.Equal(10UL * 32, sb.RxPackets);
            Assert.Equal(10UL * 32, sb.TxPackets);
            Assert.Equal(10UL * 32, sa.RxPackets);
        }
        finally
        {
            ClosePair(a, b);
        }
        Assert.Null(a.CloseError);
        Assert.Null(b.CloseError);
        // After close the devices refuse work instead of touching a stopped port.
        Span<PacketBuf> bufs = stackalloc PacketBuf[4];
        Assert.Equal(0, a.Devices[0].Receive(bufs));
        Assert.Equal(0, a.Devices[0].Allocate(bufs));
    }

    [DpdkFact]
    public void MemifPair_MtuArgument_CarriesJumboFramesInOneSegment()
    {
        // mtu= is ours (taken out before the PMD sees the arguments): both ends report it, and a full-size frame
        // crosses in one buffer each way (a multi-segment arrival would be dropped and counted).
        (DpdkPort a, DpdkPort b) = OpenMemifPair(mtu: 16000);
        try
        {
            DpdkDevice da = a.Devices[0], db = b.Devices[0];
            Assert.Equal(16000, da.Capabilities.Mtu);
            Assert.Equal(16000, db.Capabilities.Mtu);
            foreach ((DpdkDevice from, DpdkDevice to) in new[] { (da, db), (db, da) })
            {
                Span<PacketBuf> tx = stackalloc PacketBuf[4];
                Assert.Equal(4, from.Allocate(tx));
                var sent = new List<byte[]>();
                var rng = new Random(7);
                for (int i = 0; i < 4; i++)
                {
                    Assert.True(tx[i].Capacity - tx[i].Offset >= 16014, $"buffer room {tx[i].Capacity - tx[i].Offset}");
                    tx[i].SetLength(i == 0 ? 16014 : 9000 + i * 1000);
                    Span<byte> f = tx[i].Data;
                    rng.NextBytes(f);
                    to.Capabilities.MacAddress.Write(f);
                    from.Capabilities.MacAddress.Write(f[6..]);
                    BinaryPrimitives.WriteUInt16BigEndian(f[12..], TestEtherType);
                    sent.Add(f.ToArray());
                }
                List<byte[]> got = TransmitAndReceive(from, tx, to, from.Capabilities.MacAddress);
                Assert.Equal(4, got.Count);
                for (int i = 0; i < 4; i++) Assert.True(sent[i].AsSpan().SequenceEqual(got[i]), $"frame {i} differs");
                Assert.Equal(0, to.RxMultiSegmentDrops);
            }
        }
        finally
        {
            ClosePair(a, b);
        }
    }

    [Fact]
    public void MemifPoolSize_CoversTheZeroCopyClientsRings()
    {
        // zero-copy=yes (the PMD's, client role only) puts the client's own mbufs in the rings: its receive ring holds
        // one per slot and transmitted ones stay referenced until the peer copied them, so the pool grows by two rings.
        var cfg = new DpdkPortConfig { Device = "x" };
        Assert.Equal(8191, DpdkPort.PoolSizeFor(cfg, DpdkPort.ParseMemif("net_memif0,role=server"))); // 2 x (1024 + 1024) + 1024
        Assert.Equal(2047, DpdkPort.PoolSizeFor(cfg, DpdkPort.ParseMemif("net_memif0,role=client,mtu=16000"))); // 1024 (+ 1, rounded)
        Assert.Equal(4095, DpdkPort.PoolSizeFor(cfg, DpdkPort.ParseMemif("net_memif0,role=client,mtu=16000,zero-copy=yes")));
        Assert.Equal(2047, DpdkPort.PoolSizeFor(cfg, DpdkPort.ParseMemif("net_memif0,role=server,mtu=16000,zero-copy=yes")));
        Assert.Equal(8191, DpdkPort.PoolSizeFor(cfg, DpdkPort.ParseMemif("net_memif0,role=client,mtu=16000,zero-copy=yes,rsize=11")));
        // A pool size given explicitly is the user's (only rounded to 2^n - 1).
        Assert.Equal(127, DpdkPort.PoolSizeFor(cfg with { PoolSize = 100 }, DpdkPort.ParseMemif("net_memif0,role=client,zero-copy=yes")));
    }

    [DpdkFact]
    public void MemifWithoutPeer_RefusesTransmit_CountedAsEmptyBurst()
    {
        // A memif port whose peer never came (or left) takes nothing; the interface keeps such frames for a retry.
        // The counters tell these calls apart from a ring that was merely full (USERTCP_STATS: "none taken").
        string sock = "/" + DpdkTestEnv.Unique("usertcp-memif-alone") + ".sock";
        DpdkPort port = DpdkPort.Open(DpdkTestEnv.Eal, new DpdkPortConfig
        { Device = $"net_memif{DpdkTestEnv.Unique("")}s,role=server,socket={sock},mac=02:00:c6:12:01:07" });
        try
        {
            DpdkDevice d = port.Devices[0];
            Assert.False(port.LinkUp);
            Span<PacketBuf> tx = stackalloc PacketBuf[3];
            Assert.Equal(3, d.Allocate(tx));
            for (int i = 0; i < 3; i++) tx[i].SetLength(60);
            Assert.Equal(0, d.Transmit(tx));
            Assert.Equal(0, d.Transmit(tx[..1]));
            Assert.Equal(2L, d.TxShortBursts);
            Assert.Equal(2L, d.TxEmptyBursts);
            Assert.Equal(4L, d.TxRefusedFrames);
            Assert.Contains("short 2 (none taken 2, frames refused 4)", d.BurstSummary());
            d.FreeBurst(tx);
        }
        finally
        {
            port.Dispose();
        }
    }

    [Fact]
    public void MemifArguments_AreReadOrRejectedWithTheArgumentNamed()
    {
        DpdkPort.MemifOptions o = DpdkPort.ParseMemif("net_memif1,role=client,socket=/x.sock,zero-copy=yes,rsize=9,mtu=16000,trusted=1");
        Assert.Equal("net_memif1,role=client,socket=/x.sock,zero-copy=yes,rsize=9,bsize=16064", o.DeviceArgs);
        Assert.True(o.ZeroCopyClient && o.Trusted);
        Assert.Equal(16000, o.Mtu);
        Assert.Equal(512, o.RingSlots);
        Assert.False(DpdkPort.ParseMemif("net_memif0,role=server,zero-copy=yes").ZeroCopyClient); // the PMD ignores it there
        Assert.Equal(1024, DpdkPort.ParseMemif("net_memif0").RingSlots);
        Assert.Equal(-1, o.RxWakeUs);
        DpdkPort.MemifOptions w = DpdkPort.ParseMemif("net_memif0,role=server,rxwake=20,socket=/y.sock");
        Assert.Equal(20, w.RxWakeUs);
        Assert.Equal("net_memif0,role=server,socket=/y.sock", w.DeviceArgs); // ours: not passed to the PMD
        Assert.Equal("net_af_packet0,iface=x,mtu=9000", DpdkPort.ParseMemif("net_af_packet0,iface=x,mtu=9000").DeviceArgs);
        foreach ((string arg, string named) in new[]
                 {
                     ("zero-copy=1", "zero-copy="), ("rsize=15", "rsize="), ("rsize=x", "rsize="), ("role=master", "role="),
                     ("mtu=100", "mtu="), ("mtu=70000", "mtu="), ("trusted=yes", "trusted="), ("rxwake=-5", "rxwake="),
                     ("rxwake=2000000", "rxwake="),
                 })
        {
            var e = Assert.Throws<ArgumentException>(() => DpdkPort.ParseMemif("net_memif0,role=client," + arg));
            Assert.Contains(named, e.Message);
            Assert.Contains(arg, e.Message);
        }
        // DpdkPort.Open checks them before the EAL or the PMD sees anything.
        Assert.Throws<ArgumentException>(() => DpdkPort.Open(new DpdkEalConfig(), new DpdkPortConfig { Device = "net_memif9,zero-copy=on" }));
    }

    [DpdkFact]
    public void MemifPair_Trusted_ReportsChecksumOffloads_AndMarksReceivedFramesGood()
    {
        (DpdkPort a, DpdkPort b) = OpenMemifPair(extraArgs: ",trusted=1");
        try
        {
            DpdkDevice da = a.Devices[0], db = b.Devices[0];
            Assert.True(a.TrustedLink && b.TrustedLink);
            DeviceCapabilities c = da.Capabilities;
            Assert.True(c.TxIpv4Checksum && c.TxTcpChecksum && c.RxIpv4Checksum && c.RxTcpChecksum);
            // A frame asking for checksum offload leaves as it is (nothing computed) and arrives marked good.
            Span<PacketBuf> tx = stackalloc PacketBuf[1];
            Assert.Equal(1, da.Allocate(tx));
            tx[0].SetLength(80);
            Span<byte> f = tx[0].Data;
            f.Fill(0xA5);
            db.Capabilities.MacAddress.Write(f);
            da.Capabilities.MacAddress.Write(f[6..]);
            BinaryPrimitives.WriteUInt16BigEndian(f[12..], 0x0800);
            byte[] sent = f.ToArray();
            tx[0].Offloads = PacketOffloads.TxIpv4Checksum | PacketOffloads.TxTcpChecksum;
            Span<PacketBuf> rx = stackalloc PacketBuf[32];
            int n = 0, accepted = 0;
            var sw = Stopwatch.StartNew();
            while (n == 0 && sw.ElapsedMilliseconds < 2000)
            {
                n = db.Receive(rx); // the client posts its receive buffers in its rx calls
                if (accepted == 0) accepted = da.Transmit(tx);
            }
            Assert.Equal(1, accepted);
            Assert.Equal(1, n);
            Assert.True(rx[0].Data.SequenceEqual(sent), "a trusted link changed the frame");
            Assert.Equal(PacketOffloads.RxIpv4ChecksumGood | PacketOffloads.RxTcpChecksumGood, rx[0].Offloads);
            db.FreeBurst(rx[..n]);
            Assert.Equal(0L, da.TxSoftwareChecksums);
        }
        finally
        {
            ClosePair(a, b);
        }
    }

    [DpdkFact]
    public void MemifPair_RxInterrupt_ArmedReceiverIsSignalled_DisarmedIsNot()
    {
        (DpdkPort a, DpdkPort b) = OpenMemifPair();
        try
        {
            DpdkDevice server = a.Devices[0], client = b.Devices[0];
            Assert.True(server.HasRxInterrupt && client.HasRxInterrupt);
            // Both ring directions: the server receives on a client-to-server ring, the client on a server-to-client one.
            Span<PacketBuf> burst = stackalloc PacketBuf[32];
            foreach ((DpdkDevice rx, DpdkDevice tx) in new[] { (server, client), (client, server) })
            {
                Assert.Equal(0, rx.Receive(burst)); // the client posts its receive buffers in its first rx call
                int fd = rx.ArmRxInterrupt();
                Assert.True(fd >= 0, $"arm: errno {-fd}");
                Assert.False(Readable(fd, 0), "signalled with nothing sent");
                SendOne(tx, rx);
                Assert.True(Readable(fd, 2000), "an armed receiver was not signalled");
                Assert.Equal(1, ReceiveAll(rx));
                Assert.Equal(0, rx.DisarmRxInterrupt(drain: true));
                Assert.False(Readable(fd, 0), "the eventfd stayed readable after the drain");
                // Disarmed: the peer sends without signalling (no system call per burst on a busy link).
                SendOne(tx, rx);
                Assert.False(Readable(fd, 100), "a disarmed receiver was signalled");
                // A frame that arrived before the arm: the arm signals it itself, so the sleep ends at once.
                Assert.Equal(fd, rx.ArmRxInterrupt());
                Assert.True(Readable(fd, 0), "a frame waiting at arm time did not make the eventfd readable");
                Assert.Equal(1, ReceiveAll(rx));
                Assert.Equal(0, rx.DisarmRxInterrupt(drain: true));
                Assert.False(Readable(fd, 0));
            }
        }
        finally
        {
            ClosePair(a, b);
        }
        Assert.True(a.Devices[0].ArmRxInterrupt() < 0); // closed: nothing to sleep on
    }

    private static void SendOne(DpdkDevice from, DpdkDevice to)
    {
        Span<PacketBuf> tx = stackalloc PacketBuf[1];
        Assert.Equal(1, from.Allocate(tx));
        tx[0].SetLength(60);
        Span<byte> f = tx[0].Data;
        f.Clear();
        to.Capabilities.MacAddress.Write(f);
        from.Capabilities.MacAddress.Write(f[6..]);
        BinaryPrimitives.WriteUInt16BigEndian(f[12..], TestEtherType);
        Assert.Equal(1, from.Transmit(tx));
    }

    private static int ReceiveAll(DpdkDevice dev)
    {
        Span<PacketBuf> rx = stackalloc PacketBuf[32];
        int total = 0;
        var sw = Stopwatch.StartNew();
        while (sw.ElapsedMilliseconds < 200)
        {
            int n = dev.Receive(rx);
            dev.FreeBurst(rx[..n]);
            total += n;
            if (n == 0 && total > 0) break;
        }
        return total;
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "poll", SetLastError = true)]
    private static extern int Poll(long* fds, ulong n, int timeoutMs);

    private static bool Readable(int fd, int timeoutMs)
    {
        long pfd = (uint)fd | (1L << 32); // struct pollfd { int fd; short events = POLLIN; short revents; }
        int r = Poll(&pfd, 1, timeoutMs);
        return r == 1 && ((pfd >> 48) & 1) != 0;
    }

    [DpdkFact]
    public void MemifPair_TwoQueuePairs_EachQueueIsItsOwnDevice()
    {
        // memif maps transmit queue q of one end to receive queue q of the other: a frame sent on device q must
        // arrive on the peer's device q and nowhere else, in both directions and for both queues.
        (DpdkPort a, DpdkPort b) = OpenMemifPair(queues: 2);
        try
        {
            Assert.Equal(2, a.Devices.Length);
            Assert.Equal(2, b.Devices.Length);
            Assert.False(a.Rss); // memif has no RSS: the sender picks the queue
            int availA = a.PoolAvailable, availB = b.PoolAvailable;
            var rng = new Random(77);
            Span<PacketBuf> rx = stackalloc PacketBuf[32];
            for (int q = 0; q < 2; q++)
            {
                SendAndCheckBurst(a.Devices[q], b.Devices[q], 16, rng);
                SendAndCheckBurst(b.Devices[q], a.Devices[q], 16, rng);
                Assert.Equal(0, b.Devices[1 - q].Receive(rx));
                Assert.Equal(0, a.Devices[1 - q].Receive(rx));
            }
            Assert.Equal(availA, a.PoolAvailable);
            Assert.Equal(availB, b.PoolAvailable);
        }
        finally
        {
            ClosePair(a, b);
        }
    }

    [DpdkFact]
    public void Allocate_GivesEmptyBuffersWithHeadroom_AndFreeReturnsThem()
    {
        (DpdkPort a, DpdkPort b) = OpenMemifPair();
        try
        {
            DpdkDevice d = a.Devices[0];
            int before = a.PoolAvailable;
            Span<PacketBuf> bufs = stackalloc PacketBuf[64];
            int n = d.Allocate(bufs);
            Assert.Equal(32, n); // capped at MaxBurst
            for (int i = 0; i < n; i++)
            {
                Assert.Equal(128, bufs[i].Offset);
                Assert.Equal(0, bufs[i].Length);
                Assert.True(bufs[i].Capacity >= 128 + 1514);
                Assert.NotEqual(0, bufs[i].Handle);
                Assert.True(bufs[i].Buffer != null);
            }
            Assert.Equal(before - 32, a.PoolAvailable);
            for (int i = 0; i < 16; i++) d.Free(ref bufs[i]);
            Assert.Equal(0, bufs[0].Handle);
            d.FreeBurst(bufs.Slice(16, 16));
            Assert.Equal(before, a.PoolAvailable);
        }
        finally
        {
            ClosePair(a, b);
        }
    }

    [DpdkFact]
    public void ThreadWithoutLcore_GetsOneOnFirstAllocation_AndGivesItAndItsCachedMbufsBackAtExit()
    {
        // glue.c, "lcore ids for every thread": a thread other than the EAL's gets an lcore id (so the pool's
        // per-lcore cache serves it) the first time it allocates or receives; at its exit the mbufs in that cache go
        // back to the pool's shared ring and the id is free for the next thread.
        (DpdkPort a, DpdkPort b) = OpenMemifPair();
        try
        {
            DpdkDevice d = a.Devices[0];
            int avail = a.PoolAvailable;
            int shared = a.PoolSharedAvailable;
            // Nothing in the thread asserts (an exception there would take the test host down): it reports.
            (int got, uint given, int lcore, int cached) RunThread()
            {
                int got = 0, lcore = -2, cached = -1;
                uint given = 0;
                var t = new Thread(() =>
                {
                    var bufs = new PacketBuf[32];
                    got = d.Allocate(bufs);
                    given = Given(out _);
                    lcore = DpdkNative.ThreadRegister(); // registered already: returns its id
                    d.FreeBurst(bufs);
                    cached = shared - a.PoolSharedAvailable;
                });
                uint released0 = Released();
                t.Start();
                t.Join();
                // Join can return before the native thread's exit ran the key destructor that flushes the cache and
                // gives the id back: wait for that (bounded) before asserting on it.
                var deadline = DateTime.UtcNow.AddSeconds(10);
                while (Released() == released0 && DateTime.UtcNow < deadline) Thread.Sleep(1);
                return (got, given, lcore, cached);
            }
            uint before = Given(out uint refused0);
            (int got1, uint given1, int lcore1, int cached1) = RunThread();
            Assert.Equal(32, got1);
            Assert.Equal(before + 1, given1);
            Assert.True(lcore1 > 0, $"lcore id {lcore1}");
            Assert.True(cached1 > 0, "the thread's frees went to its lcore cache, not straight to the ring");
            Assert.Equal(avail, a.PoolAvailable);
            Assert.Equal(shared, a.PoolSharedAvailable); // flushed back at the thread's exit
            (int got2, uint given2, int lcore2, _) = RunThread();
            Assert.Equal(32, got2);
            Assert.Equal(before + 2, given2);
            Assert.Equal(lcore1, lcore2); // the first thread's id was given back
            Assert.Equal(shared, a.PoolSharedAvailable);
            Given(out uint refused);
            Assert.Equal(refused0, refused);
        }
        finally
        {
            ClosePair(a, b);
        }

        static uint Given(out uint refused)
        {
            uint given, r, released;
            DpdkNative.LcoreStats(&given, &r, &released);
            refused = r;
            return given;
        }
        static uint Released()
        {
            uint given, r, released;
            DpdkNative.LcoreStats(&given, &r, &released);
            return released;
        }
    }

    [DpdkFact]
    public void Transmit_ForeignOrOverlongBuffer_ThrowsAndSendsNothing()
    {
        (DpdkPort a, DpdkPort b) = OpenMemifPair();
        try
        {
            DpdkDevice da = a.Devices[0], db = b.Devices[0];
            int before = a.PoolAvailable;
            using var pool = new NativePacketPool(4, 2048);
            PacketBuf[] tx = new PacketBuf[3];
            Assert.Equal(2, da.Allocate(tx.AsSpan(0, 2)));
            tx[0].SetLength(64);
            tx[1].SetLength(64);
            Assert.True(pool.TryRent(out tx[2]));
            Assert.True(pool.TryRent(out tx[2])); // slot 1: a small integer handle, not an mbuf
            tx[2].SetLength(64);
            var e = Assert.Throws<ArgumentException>(() => da.Transmit(tx));
            Assert.Contains("packet 2", e.Message);
            PacketBuf saved = tx[1];
            tx[1].Length = tx[1].Capacity; // data past the end of the mbuf
            e = Assert.Throws<ArgumentException>(() => da.Transmit(tx.AsSpan(0, 2)));
            Assert.Contains("packet 1", e.Message);
            tx[1] = saved;
            Span<PacketBuf> rx = stackalloc PacketBuf[32];
            Thread.Sleep(20);
            Assert.Equal(0, db.Receive(rx)); // nothing left
            da.FreeBurst(tx.AsSpan(0, 2));
            Assert.Equal(before, a.PoolAvailable);
            pool.Return(ref tx[2]);
        }
        finally
        {
            ClosePair(a, b);
        }
    }

    [DpdkFact]
    public void Transmit_StaleTransmitFlags_AreClearedBeforeSending()
    {
        // A frame once prepared for offload (then refused and retried, or a received mbuf whose flags were set)
        // must not reach the driver with checksum requests it no longer makes.
        (DpdkPort a, DpdkPort b) = OpenMemifPair();
        try
        {
            DpdkDevice da = a.Devices[0], db = b.Devices[0];
            Span<PacketBuf> tx = stackalloc PacketBuf[1];
            Assert.Equal(1, da.Allocate(tx));
            tx[0].SetLength(60);
            Span<byte> f = tx[0].Data;
            f.Clear();
            BinaryPrimitives.WriteUInt16BigEndian(f[12..], 0x0800);
            RteMbuf* m = (RteMbuf*)tx[0].Handle;
            m->OlFlags |= RteMbuf.TxIpv4 | RteMbuf.TxIpCksum;
            byte[] got = TransmitAndReceive(da, tx, db, null).Single();
            Assert.Equal(60, got.Length);
            // memif copies the frame and frees the mbuf at once; the pool keeps its header as it was left.
            Assert.Equal(0UL, m->OlFlags & RteMbuf.TxFlagsMask);
        }
        finally
        {
            ClosePair(a, b);
        }
    }

    [DpdkFact]
    public void Transmit_ChecksumRequestOnPortWithoutOffload_IsComputedInSoftware()
    {
        (DpdkPort a, DpdkPort b) = OpenMemifPair();
        try
        {
            DpdkDevice da = a.Devices[0], db = b.Devices[0];
            Assert.False(da.Capabilities.TxTcpChecksum); // memif offloads nothing
            Span<PacketBuf> tx = stackalloc PacketBuf[1];
            Assert.Equal(1, da.Allocate(tx));
            byte[] payload = "hello, checksum"u8.ToArray();
            int len = 14 + 20 + 20 + payload.Length;
            tx[0].SetLength(len);
            Span<byte> f = tx[0].Data;
            f.Clear();
            BinaryPrimitives.WriteUInt16BigEndian(f[12..], 0x0800);
            Span<byte> ip = f[14..];
            ip[0] = 0x45; BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)(20 + 20 + payload.Length));
            ip[8] = 64; ip[9] = 6;
            byte[] src = [198, 18, 0, 2], dst = [198, 18, 0, 1];
            src.CopyTo(ip[12..]); dst.CopyTo(ip[16..]);
            Span<byte> tcp = ip[20..];
            BinaryPrimitives.WriteUInt16BigEndian(tcp, 5555);
            BinaryPrimitives.WriteUInt16BigEndian(tcp[2..], 80);
            tcp[12] = 5 << 4; tcp[13] = 0x18;
            payload.CopyTo(tcp[20..]);
            // The stack's contract: the TCP checksum field holds the pseudo-header sum when it asks for offload.
            ushort pseudo = OnesSum([.. src, .. dst, 0, 6, 0, (byte)(20 + payload.Length)]);
            BinaryPrimitives.WriteUInt16BigEndian(tcp[16..], pseudo);
            tx[0].Offloads = PacketOffloads.TxIpv4Checksum | PacketOffloads.TxTcpChecksum;
            byte[] got = TransmitAndReceive(da, tx[..1], db, null).Single();
            Assert.True(da.TxSoftwareChecksums >= 1); // once per Transmit attempt (memif may refuse the first)
            Assert.Equal(len, got.Length);
            Assert.Equal(0xFFFF, OnesSum(got.AsSpan(14, 20)));                           // IPv4 header sums to ~0
            byte[] pseudoAndSegment = [.. src, .. dst, 0, 6, 0, (byte)(20 + payload.Length), .. got.AsSpan(34)];
            Assert.Equal(0xFFFF, OnesSum(pseudoAndSegment));                              // so does the TCP segment
        }
        finally
        {
            ClosePair(a, b);
        }
    }

    [DpdkFact]
    public void TapPort_TwoQueues_KernelFlowsSpreadOverBothAndEachFlowStaysOnOneQueue()
    {
        // Multi-queue receive: the kernel sends UDP datagrams of 32 flows out of a two-queue tap interface; each
        // DpdkDevice polls its own queue. The flows must reach both queues, and every frame of one flow the same one.
        // (On tap the kernel's tun driver picks the queue by flow hash; the port's RSS setting is what a NIC uses.)
        string ns = DpdkTestEnv.Unique("utdmq");
        Assert.Equal(0, DpdkTestEnv.Run("ip", "netns", "add", ns).Code);
        DpdkPort? tap = null;
        try
        {
            string iface = "utq" + DpdkTestEnv.Unique("");
            tap = DpdkPort.Open(DpdkTestEnv.Eal, new DpdkPortConfig
            {
                Device = $"net_tap{ns},iface={iface}", NetworkNamespace = ns, RxQueues = 2, TxQueues = 2,
                RxDescriptors = 256, TxDescriptors = 256,
            });
            Assert.Equal(2, tap.Devices.Length);
            Assert.True(tap.Rss, "the tap PMD reports RSS hash types; with two receive queues the port must enable RSS");
            foreach (string[] cmd in new[]
            {
                new[] { "ip", "-n", ns, "link", "set", iface, "up" },
                new[] { "ip", "-n", ns, "addr", "add", "198.18.7.1/24", "dev", iface },
                new[] { "ip", "-n", ns, "neigh", "replace", "198.18.7.2", "lladdr", "02:00:c6:12:07:02", "dev", iface },
            })
            {
                var (code, output) = DpdkTestEnv.Run(cmd[0], cmd[1..]);
                Assert.True(code == 0, string.Join(' ', cmd) + ": " + output);
            }
            const int flows = 32, perFlow = 4;
            string py = "import socket\n" +
                        "for r in range(" + perFlow + "):\n" +
                        " for f in range(" + flows + "):\n" +
                        "  s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n" +
                        "  s.bind(('198.18.7.1',20000+f)); s.sendto(b'x'*16,('198.18.7.2',30000+f)); s.close()\n";
            var sent = DpdkTestEnv.Run("ip", "netns", "exec", ns, "python3", "-c", py);
            Assert.True(sent.Code == 0, sent.Output);

            var queueOfFlow = new Dictionary<int, int>();
            var perQueue = new int[2];
            int frames = 0;
            Span<PacketBuf> rx = stackalloc PacketBuf[32];
            var sw = Stopwatch.StartNew();
            while (frames < flows * perFlow && sw.Elapsed < TimeSpan.FromSeconds(5))
            {
                for (int q = 0; q < 2; q++)
                {
                    int n = tap.Devices[q].Receive(rx);
                    for (int i = 0; i < n; i++)
                    {
                        Span<byte> f = rx[i].Data;
                        // IPv4 + UDP from our source ports only (the kernel also sends IPv6 router solicitations etc.).
                        if (f.Length < 42 || BinaryPrimitives.ReadUInt16BigEndian(f[12..]) != 0x0800 || f[23] != 17) continue;
                        int port = BinaryPrimitives.ReadUInt16BigEndian(f[34..]);
                        if (port < 20000 || port >= 20000 + flows) continue;
                        frames++;
                        perQueue[q]++;
                        if (queueOfFlow.TryGetValue(port, out int seen))
                            Assert.True(seen == q, $"flow {port} arrived on queue {seen} and on queue {q}");
                        else
                            queueOfFlow[port] = q;
                    }
                    tap.Devices[q].FreeBurst(rx[..n]);
                }
            }
            Assert.Equal(flows * perFlow, frames);
            Assert.True(perQueue[0] > 0 && perQueue[1] > 0, $"frames per queue: {perQueue[0]}, {perQueue[1]}");
        }
        finally
        {
            tap?.Dispose();
            DpdkTestEnv.Run("ip", "netns", "del", ns);
        }
    }

    [DpdkFact]
    public void Transmit_ChecksumOffload_OnTapPort_SetsFlagsAndTheDriverFillsTheSums()
    {
        // The tap PMD offers IPv4/TCP transmit checksum offload (it computes the sums itself when the mbuf asks),
        // so it exercises the hardware-offload path: ol_flags, l2_len/l3_len, zeroed IPv4 field, pseudo-header sum
        // in the TCP field. The frame is read back from the kernel tap interface with af_packet.
        string ns = DpdkTestEnv.Unique("utdtap");
        Assert.Equal(0, DpdkTestEnv.Run("ip", "netns", "add", ns).Code);
        DpdkPort? tap = null, reader = null;
        try
        {
            string iface = "utt" + DpdkTestEnv.Unique("");
            tap = DpdkPort.Open(DpdkTestEnv.Eal, new DpdkPortConfig
            { Device = $"net_tap{ns},iface={iface}", NetworkNamespace = ns, RxDescriptors = 256, TxDescriptors = 256 });
            DpdkDevice dt = tap.Devices[0];
            Assert.True(dt.Capabilities.TxIpv4Checksum && dt.Capabilities.TxTcpChecksum, "tap PMD should offer tx checksum offload");
            var (code, output) = DpdkTestEnv.Run("ip", "-n", ns, "link", "set", iface, "up");
            Assert.True(code == 0, output);
            reader = DpdkPort.Open(DpdkTestEnv.Eal, new DpdkPortConfig
            { Device = $"net_af_packet{ns},iface={iface}", NetworkNamespace = ns, RxDescriptors = 256, TxDescriptors = 256 });
            DpdkDevice dr = reader.Devices[0];

            byte[] payload = "offloaded checksum"u8.ToArray();
            byte[] src = [198, 18, 0, 2], dst = [198, 18, 0, 1];
            Span<PacketBuf> tx = stackalloc PacketBuf[1];
            Assert.Equal(1, dt.Allocate(tx));
            int len = 14 + 20 + 20 + payload.Length;
            tx[0].SetLength(len);
            Span<byte> f = tx[0].Data;
            f.Clear();
            new MacAddress(0x02_00_c6_12_09_09UL).Write(f);
            dt.Capabilities.MacAddress.Write(f[6..]);
            BinaryPrimitives.WriteUInt16BigEndian(f[12..], 0x0800);
            Span<byte> ip = f[14..];
            ip[0] = 0x45; BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)(40 + payload.Length));
            ip[8] = 64; ip[9] = 6;
            ip[10] = 0xAB; ip[11] = 0xCD; // garbage: the device must zero it before the driver fills it
            src.CopyTo(ip[12..]); dst.CopyTo(ip[16..]);
            Span<byte> tcp = ip[20..];
            BinaryPrimitives.WriteUInt16BigEndian(tcp, 5555);
            BinaryPrimitives.WriteUInt16BigEndian(tcp[2..], 80);
            tcp[12] = 5 << 4; tcp[13] = 0x18;
            payload.CopyTo(tcp[20..]);
            BinaryPrimitives.WriteUInt16BigEndian(tcp[16..], OnesSum([.. src, .. dst, 0, 6, 0, (byte)(20 + payload.Length)]));
            tx[0].Offloads = PacketOffloads.TxIpv4Checksum | PacketOffloads.TxTcpChecksum;

            byte[] got = TransmitAndReceive(dt, tx[..1], dr, null).Single();
            Assert.Equal(0, dt.TxSoftwareChecksums); // the driver did it
            Assert.Equal(len, got.Length);
            Assert.Equal(0xFFFF, OnesSum(got.AsSpan(14, 20)));
            Assert.Equal(0xFFFF, OnesSum([.. src, .. dst, 0, 6, 0, (byte)(20 + payload.Length), .. got.AsSpan(34)]));
            Assert.Equal(payload, got.AsSpan(54).ToArray());
        }
        finally
        {
            reader?.Dispose();
            tap?.Dispose();
            DpdkTestEnv.Run("ip", "netns", "del", ns);
        }
    }

    [DpdkFact]
    public void Open_UnknownDriver_ThrowsDpdkException()
    {
        var e = Assert.Throws<DpdkException>(() => DpdkPort.Open(DpdkTestEnv.Eal, new DpdkPortConfig { Device = "net_nosuchdriver0" }));
        Assert.Contains("net_nosuchdriver0", e.Message);
    }

    [DpdkFact]
    public void Open_AfPacketOnMissingInterface_SaysTheInterfaceDoesNotExist()
    {
        var e = Assert.Throws<DpdkException>(() => DpdkPort.Open(DpdkTestEnv.Eal,
            new DpdkPortConfig { Device = "net_af_packet9,iface=ut-nosuch0" }));
        Assert.Contains("does not exist", e.Message);
        Assert.Equal(19, e.Errno); // ENODEV
    }

    [DpdkFact]
    public void Open_MissingNetworkNamespace_Throws()
    {
        var e = Assert.Throws<DpdkException>(() => DpdkPort.Open(DpdkTestEnv.Eal,
            new DpdkPortConfig { Device = "net_af_packet9,iface=lo", NetworkNamespace = "ut-no-such-namespace" }));
        Assert.Contains("network namespace", e.Message);
    }

    [DpdkFact]
    public void AfPacket_VethPairInPrivateNamespace_FramesArriveIntact_NoMbufLeak()
    {
        string ns = DpdkTestEnv.Unique("utdpdk");
        Assert.Equal(0, DpdkTestEnv.Run("ip", "netns", "add", ns).Code);
        try
        {
            var (code, output) = DpdkTestEnv.Run("ip", "-n", ns, "link", "add", "va", "type", "veth", "peer", "name", "vb");
            Assert.True(code == 0, output);
            Assert.Equal(0, DpdkTestEnv.Run("ip", "-n", ns, "link", "set", "va", "up").Code);
            Assert.Equal(0, DpdkTestEnv.Run("ip", "-n", ns, "link", "set", "vb", "up").Code);
            DpdkPort a = DpdkPort.Open(DpdkTestEnv.Eal, new DpdkPortConfig
            { Device = $"net_af_packet{ns},iface=va", NetworkNamespace = ns, RxDescriptors = 256, TxDescriptors = 256 });
            DpdkPort b;
            try
            {
                b = DpdkPort.Open(DpdkTestEnv.Eal, new DpdkPortConfig
                { Device = $"net_af_packet{ns}b,iface=vb", NetworkNamespace = ns, RxDescriptors = 256, TxDescriptors = 256 });
            }
            catch
            {
                a.Dispose();
                throw;
            }
            try
            {
                Assert.Equal("net_af_packet", a.Driver);
                int availA = a.PoolAvailable, availB = b.PoolAvailable;
                var rng = new Random(99);
                for (int round = 0; round < 6; round++)
                    SendAndCheckBurst(round % 2 == 0 ? a.Devices[0] : b.Devices[0], round % 2 == 0 ? b.Devices[0] : a.Devices[0], 32, rng);
                Assert.Equal(availA, a.PoolAvailable);
                Assert.Equal(availB, b.PoolAvailable);
            }
            finally
            {
                a.Dispose();
                b.Dispose();
            }
            Assert.Null(a.CloseError);
            Assert.Null(b.CloseError);

            // Closing detached the virtual device, so the same name can be opened again.
            using (DpdkPort again = DpdkPort.Open(DpdkTestEnv.Eal, new DpdkPortConfig
                   { Device = $"net_af_packet{ns},iface=va", NetworkNamespace = ns, RxDescriptors = 256, TxDescriptors = 256 }))
            {
                Assert.Equal("net_af_packet", again.Driver);
            }
        }
        finally
        {
            DpdkTestEnv.Run("ip", "netns", "del", ns);
        }
    }

    [DpdkFact]
    public void ArpAndIcmpEchoResponder_OnAfPacketInNamespace_AnswersKernelPing()
    {
        string suffix = DpdkTestEnv.Unique("p");
        string script = System.IO.Path.Combine(DpdkTestEnv.RepoRoot, "scripts", "testnet.sh");
        var up = DpdkTestEnv.Run("bash", script, "up", "--suffix", suffix);
        Assert.True(up.Code == 0, up.Output);
        try
        {
            using DpdkDevice dev = DpdkDevice.Open(DpdkTestEnv.Eal, new DpdkPortConfig
            { Device = $"net_af_packet{suffix},iface=ut-srv0", NetworkNamespace = "ut-srv" + suffix, RxDescriptors = 256, TxDescriptors = 256 });
            int avail = dev.Port.PoolAvailable;
            var responder = new EchoResponder(dev, new Ipv4Address(198, 18, 0, 2));
            using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            var thread = new Thread(() => responder.Run(stop.Token)) { IsBackground = true, Name = "dpdk-responder" };
            thread.Start();
            (int code, string output) ping;
            try
            {
                ping = DpdkTestEnv.Run("ip", "netns", "exec", "ut-cli" + suffix, "ping", "-c", "3", "-i", "0.2", "-W", "2", "198.18.0.2");
            }
            finally
            {
                stop.Cancel();
                thread.Join();
            }
            Assert.True(ping.code == 0, $"ping failed: {ping.output}; responder saw {responder.Arp} ARP, {responder.Echo} echo requests");
            Assert.Contains("3 received", ping.output);
            Assert.True(responder.Arp >= 1);
            Assert.Equal(3, responder.Echo);
            Assert.Equal(avail, dev.Port.PoolAvailable);
        }
        finally
        {
            DpdkTestEnv.Run("bash", script, "down", "--suffix", suffix);
        }
    }

    [DpdkFact]
    public void StackInterface_OnAfPacketInNamespace_AnswersKernelPing()
    {
        // The real stack/Iface.Interface over a DpdkDevice: ARP and ICMP echo handled by the stack, the device doing
        // the I/O, the test thread supplying time (the stack reads no clock).
        string suffix = DpdkTestEnv.Unique("i");
        string script = System.IO.Path.Combine(DpdkTestEnv.RepoRoot, "scripts", "testnet.sh");
        var up = DpdkTestEnv.Run("bash", script, "up", "--suffix", suffix);
        Assert.True(up.Code == 0, up.Output);
        try
        {
            using DpdkDevice dev = DpdkDevice.Open(DpdkTestEnv.Eal, new DpdkPortConfig
            { Device = $"net_af_packet{suffix},iface=ut-srv0", NetworkNamespace = "ut-srv" + suffix, RxDescriptors = 256, TxDescriptors = 256 });
            int avail = dev.Port.PoolAvailable;
            var counters = new UserTcp.Stack.StackCounters();
            var iface = new UserTcp.Stack.Iface.Interface(dev, new UserTcp.Stack.Iface.InterfaceConfig
            { Address = new Ipv4Address(198, 18, 0, 2), PrefixLength = 24 }, counters);
            using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            var clock = Stopwatch.StartNew();
            var thread = new Thread(() =>
            {
                while (!stop.IsCancellationRequested)
                {
                    long nowUs = clock.ElapsedTicks * 1_000_000 / Stopwatch.Frequency;
                    int n = iface.PollReceive(nowUs);
                    if (iface.PollAt() <= nowUs) iface.PollTimers(nowUs);
                    if (n == 0) Thread.Sleep(1);
                }
            }) { IsBackground = true, Name = "dpdk-iface" };
            thread.Start();
            (int code, string output) ping;
            try
            {
                ping = DpdkTestEnv.Run("ip", "netns", "exec", "ut-cli" + suffix, "ping", "-c", "3", "-i", "0.2", "-W", "2", "198.18.0.2");
            }
            finally
            {
                stop.Cancel();
                thread.Join();
            }
            Assert.True(ping.code == 0, $"ping failed: {ping.output}; echo replies {counters.IcmpEchoReplies}, drops {counters.TotalDrops}");
            Assert.Contains("3 received", ping.output);
            Assert.Equal(3, counters.IcmpEchoReplies);
            iface.Dispose();
            Assert.Equal(avail, dev.Port.PoolAvailable);
        }
        finally
        {
            DpdkTestEnv.Run("bash", script, "down", "--suffix", suffix);
        }
    }

    [Fact]
    public void EalArguments_AreCompleteAndUniquePerProcess()
    {
        var cfg = new DpdkEalConfig { Hugepages = DpdkHugepages.Never, Cpus = "0-1", Vdevs = ["net_null0"], ExtraArgs = ["--huge-unlink"] };
        List<string> args = DpdkEal.BuildArguments(cfg, out bool noHuge);
        Assert.True(noHuge);
        Assert.Contains("--lcores=0@(0-1)", args);
        Assert.Contains("--no-huge", args);
        Assert.Contains("--no-shconf", args);
        Assert.Contains("--single-file-segments", args); // memif zero-copy shares the EAL's memfd only then
        Assert.DoesNotContain("--in-memory", args); // rejected by the EAL together with --no-huge
        Assert.Contains("--no-pci", args);
        Assert.Contains("--no-telemetry", args);
        Assert.Contains($"--file-prefix=usertcp{Environment.ProcessId}", args);
        Assert.Contains("--vdev=net_null0", args);
        Assert.Equal("--huge-unlink", args[^1]);

        args = DpdkEal.BuildArguments(cfg with { Hugepages = DpdkHugepages.Auto, PciDevices = ["0000:00:05.0"], Warn = _ => { } }, out noHuge);
        Assert.Equal(noHuge, args.Contains("--no-huge"));
        Assert.Equal(!noHuge, args.Contains("--in-memory"));
        Assert.DoesNotContain("--no-pci", args);
        Assert.Contains("0000:00:05.0", args);
    }

    // ---- helpers

    private static (DpdkPort, DpdkPort) OpenMemifPair(int queues = 1, int mtu = 0, string extraArgs = "", string clientExtra = "")
    {
        string extra = (mtu > 0 ? $",mtu={mtu}" : "") + extraArgs;
        // Abstract socket, unique per test: a memif socket name cannot be reused within a process in DPDK 22.11.
        string sock = "/" + DpdkTestEnv.Unique("usertcp-memif") + ".sock";
        string id = DpdkTestEnv.Unique("");
        DpdkPort server = DpdkPort.Open(DpdkTestEnv.Eal, new DpdkPortConfig
        { Device = $"net_memif{id}s,role=server,socket={sock},mac=02:00:c6:12:01:01{extra}", RxQueues = queues, TxQueues = queues });
        DpdkPort client;
        try
        {
            client = DpdkPort.Open(DpdkTestEnv.Eal, new DpdkPortConfig
            { Device = $"net_memif{id}c,role=client,socket={sock},mac=02:00:c6:12:01:02{extra}{clientExtra}", RxQueues = queues, TxQueues = queues });
        }
        catch
        {
            server.Dispose();
            throw;
        }
        var sw = Stopwatch.StartNew();
        while (!(server.LinkUp && client.LinkUp))
        {
            if (sw.Elapsed > TimeSpan.FromSeconds(10))
            {
                server.Dispose();
                client.Dispose();
                Assert.Fail("memif pair did not connect within 10 s");
            }
            Thread.Sleep(10);
        }
        return (server, client);
    }

    /// <summary>
    /// Closes a connected pair one end at a time. DPDK 22.11's memif is not safe against closing an interface while
    /// the EAL interrupt thread handles its peer's disconnect message (both free the shared regions; seen as a
    /// segfault in eal-intr-thread), so after closing the first end wait until the second has seen the link go down.
    /// </summary>
    private static void ClosePair(DpdkPort first, DpdkPort second)
    {
        first.Dispose();
        var sw = Stopwatch.StartNew();
        while (second.LinkUp && sw.Elapsed < TimeSpan.FromSeconds(2)) Thread.Sleep(5);
        Thread.Sleep(20); // margin: the link state may change before the handler has finished its teardown
        second.Dispose();
    }

    /// <summary>Sends <paramref name="count"/> frames of varied length and content from one device and checks the
    /// other receives exactly them, in order.</summary>
    private static void SendAndCheckBurst(DpdkDevice from, DpdkDevice to, int count, Random rng)
    {
        var sent = new List<byte[]>();
        Span<PacketBuf> tx = stackalloc PacketBuf[count];
        Assert.Equal(count, from.Allocate(tx));
        for (int i = 0; i < count; i++)
        {
            int len = 60 + rng.Next(1514 - 60 + 1);
            tx[i].SetLength(len);
            Span<byte> f = tx[i].Data;
            rng.NextBytes(f);
            to.Capabilities.MacAddress.Write(f);
            from.Capabilities.MacAddress.Write(f[6..]);
            BinaryPrimitives.WriteUInt16BigEndian(f[12..], TestEtherType);
            sent.Add(f.ToArray());
        }
        List<byte[]> got = TransmitAndReceive(from, tx, to, from.Capabilities.MacAddress);
        Assert.Equal(count, got.Count);
        for (int i = 0; i < count; i++) Assert.True(sent[i].AsSpan().SequenceEqual(got[i]), $"frame {i} differs");
    }

    /// <summary>Transmits every buffer of <paramref name="tx"/> on <paramref name="from"/> while receiving on
    /// <paramref name="to"/> (a memif sender needs the receiver to post buffers), until as many frames from
    /// <paramref name="source"/> (any IPv4 frame when null) arrived or 5 s passed. Other frames (the kernel's, our
    /// own transmissions seen by af_packet) are freed and ignored.</summary>
    private static List<byte[]> TransmitAndReceive(DpdkDevice from, Span<PacketBuf> tx, DpdkDevice to, MacAddress? source)
    {
        var got = new List<byte[]>();
        Span<PacketBuf> rx = stackalloc PacketBuf[32];
        int sent = 0;
        var sw = Stopwatch.StartNew();
        while ((sent < tx.Length || got.Count < tx.Length) && sw.Elapsed < TimeSpan.FromSeconds(5))
        {
            if (sent < tx.Length) sent += from.Transmit(tx[sent..]);
            int n = to.Receive(rx);
            for (int i = 0; i < n; i++)
            {
                Span<byte> f = rx[i].Data;
                if (f.Length < 14) continue;
                bool ours = source != null
                    ? MacAddress.Read(f[6..]) == source.Value && MacAddress.Read(f) == to.Capabilities.MacAddress
                    : BinaryPrimitives.ReadUInt16BigEndian(f[12..]) == 0x0800;
                if (ours) got.Add(f.ToArray());
            }
            to.FreeBurst(rx[..n]);
            if (n == 0) Thread.Yield();
        }
        Assert.True(sent == tx.Length, $"only {sent} of {tx.Length} frames were accepted for transmission");
        return got;
    }

    internal static ushort OnesSum(ReadOnlySpan<byte> data)
    {
        ulong sum = 0;
        int i = 0;
        for (; i + 1 < data.Length; i += 2) sum += BinaryPrimitives.ReadUInt16BigEndian(data[i..]);
        if (i < data.Length) sum += (ulong)data[i] << 8;
        while (sum >> 16 != 0) sum = (sum & 0xFFFF) + (sum >> 16);
        return (ushort)sum;
    }

    /// <summary>A deliberately tiny ARP + ICMP echo responder (the real one is stack/Iface): answers in the received
    /// mbuf, which also exercises transmitting a received buffer.</summary>
    private sealed class EchoResponder(DpdkDevice dev, Ipv4Address ip)
    {
        public int Arp, Echo;
        private readonly MacAddress _mac = dev.Capabilities.MacAddress;

        public void Run(CancellationToken stop)
        {
            Span<PacketBuf> rx = stackalloc PacketBuf[32];
            Span<PacketBuf> tx = stackalloc PacketBuf[32];
            while (!stop.IsCancellationRequested)
            {
                int n = dev.Receive(rx);
                int t = 0;
                for (int i = 0; i < n; i++)
                {
                    if (TryAnswer(rx[i].Data)) { tx[t++] = rx[i]; rx[i] = default; }
                }
                dev.FreeBurst(rx[..n]);
                int sent = t > 0 ? dev.Transmit(tx[..t]) : 0;
                dev.FreeBurst(tx[sent..t]);
                if (n == 0) Thread.Sleep(1);
            }
        }

        private bool TryAnswer(Span<byte> f)
        {
            if (f.Length < 42) return false;
            MacAddress peer = MacAddress.Read(f[6..]);
            ushort type = BinaryPrimitives.ReadUInt16BigEndian(f[12..]);
            if (type == 0x0806)
            {
                Span<byte> arp = f[14..];
                // Ethernet/IPv4 request for our address (RFC 826): reply with our MAC, targets swapped.
                if (BinaryPrimitives.ReadUInt16BigEndian(arp) != 1 || BinaryPrimitives.ReadUInt16BigEndian(arp[2..]) != 0x0800
                    || BinaryPrimitives.ReadUInt16BigEndian(arp[6..]) != 1 || Ipv4Address.Read(arp[24..]) != ip) return false;
                Span<byte> senderHw = stackalloc byte[10];
                arp.Slice(8, 10).CopyTo(senderHw);
                BinaryPrimitives.WriteUInt16BigEndian(arp[6..], 2);
                _mac.Write(arp[8..]);
                ip.Write(arp[14..]);
                senderHw.CopyTo(arp[18..]);
                peer.Write(f);
                _mac.Write(f[6..]);
                Arp++;
                return true;
            }
            if (type != 0x0800) return false;
            Span<byte> ipv4 = f[14..];
            int ihl = (ipv4[0] & 0xF) * 4;
            int total = BinaryPrimitives.ReadUInt16BigEndian(ipv4[2..]);
            if (ipv4[0] >> 4 != 4 || ihl < 20 || total > ipv4.Length || total < ihl + 8 || ipv4[9] != 1
                || Ipv4Address.Read(ipv4[16..]) != ip || ipv4[ihl] != 8) return false;
            // Echo reply (RFC 792): swap addresses (the IPv4 checksum is unchanged by a swap), type 0, new checksum.
            Span<byte> srcAddr = stackalloc byte[4];
            ipv4.Slice(12, 4).CopyTo(srcAddr);
            ipv4.Slice(16, 4).CopyTo(ipv4[12..]);
            srcAddr.CopyTo(ipv4[16..]);
            Span<byte> icmp = ipv4[ihl..total];
            icmp[0] = 0;
            icmp[2] = 0; icmp[3] = 0;
            BinaryPrimitives.WriteUInt16BigEndian(icmp[2..], (ushort)~OnesSum(icmp));
            peer.Write(f);
            _mac.Write(f[6..]);
            Echo++;
            return true;
        }
    }
}

/// <summary>Test access to the internal glue loader.</summary>
internal static class DpdkNativeAccess
{
    public static bool Load(string? path, out string error) => DpdkNative.TryLoad(path, out error);
}
