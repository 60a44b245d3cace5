using System;
using System.Diagnostics;
using System.IO;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Threading;
using UserTcp.Stack;
using UserTcp.Stack.Iface;
using UserTcp.Stack.PacketSocket;
using UserTcp.Stack.Phy;
using UserTcp.Stack.Tcp;
using UserTcp.Stack.Wire;
using Xunit;

namespace UserTcp.Tests.Phy;

/// <summary>Runs only as root with iproute2 (a network namespace and a veth pair of the test's own).</summary>
public sealed class PacketSocketFactAttribute : FactAttribute
{
    public PacketSocketFactAttribute()
    {
        if (Environment.UserName != "root" || !File.Exists("/usr/sbin/ip") && !File.Exists("/sbin/ip"))
            Skip = "needs root and iproute2 (a namespace with a veth pair)";
    }
}

/// <summary>
/// <see cref="PacketSocketDevice"/> on a real veth pair in a namespace of the test's own (no kernel addresses; the
/// stacks use 198.18.1.0/24): two user-level stacks, one on each end, exchange data through the kernel's packet
/// sockets, GSO and veth.
/// </summary>
public sealed unsafe class PacketSocketDeviceTests
{
    private static int s_counter;

    private static string Sh(string command)
    {
        var psi = new ProcessStartInfo("bash", ["-c", command]) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var p = Process.Start(psi)!;
        string output = p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"`{command}` failed: {output}");
        return output;
    }

    [DllImport("libc.so.6", SetLastError = true)]
    private static extern int setns(int fd, int nstype);

    /// <summary>A namespace with veth pa &lt;-&gt; pb (offloads as asked), both devices opened inside it from a thread
    /// that entered it (a socket keeps its namespace), the namespace deleted by Dispose.</summary>
    private sealed class Veth : IDisposable
    {
        public readonly string Ns;
        public PacketSocketDevice A = null!, B = null!;

        public Veth(bool ifaceTso, string optsA = "", string optsB = "")
        {
            Ns = $"ut-tsox{Environment.ProcessId % 100000}x{Interlocked.Increment(ref s_counter)}";
            string off = ifaceTso ? "tx on tso on gso on" : "tx off tso off gso off";
            Sh($"ip netns add {Ns} && ip netns exec {Ns} sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 "
               + $"&& ip -n {Ns} link add pa type veth peer name pb && ip -n {Ns} link set pa address 02:00:c6:12:01:02 "
               + $"&& ip -n {Ns} link set pb address 02:00:c6:12:01:03 "
               + $"&& ip netns exec {Ns} ethtool -K pa {off} gro off >/dev/null && ip netns exec {Ns} ethtool -K pb {off} gro off >/dev/null "
               + $"&& ip -n {Ns} link set pa up && ip -n {Ns} link set pb up");
            Exception? error = null;
            var t = new Thread(() =>
            {
                try
                {
                    using var h = File.OpenHandle($"/run/netns/{Ns}");
                    if (setns((int)h.DangerousGetHandle(), 0x40000000 /* CLONE_NEWNET */) != 0)
                        throw new InvalidOperationException($"setns: errno {Marshal.GetLastPInvokeError()}");
                    A = PacketSocketDevice.Open(PacketSocketConfig.Parse("pa" + optsA));
                    B = PacketSocketDevice.Open(PacketSocketConfig.Parse("pb" + optsB));
                }
                catch (Exception e) { error = e; }
            });
            t.Start();
            t.Join();
            if (error != null)
            {
                Dispose();
                throw new InvalidOperationException("opening the packet sockets failed", error);
            }
        }

        public void Dispose()
        {
            A?.Dispose();
            B?.Dispose();
            try { Sh($"ip netns del {Ns}"); } catch (InvalidOperationException) { }
        }
    }

    private static long NowUs() => UsFromTicks(Stopwatch.GetTimestamp(), Stopwatch.Frequency);

    /// <summary>The overflow-free conversion the Interop tests' clock uses (see its comment).</summary>
    internal static long UsFromTicks(long ticks, long frequency) => Interop.StackDriver.UsFromTicks(ticks, frequency);

    private static byte[] Transfer(NetStack from, int fh, NetStack to, int th, byte[] data)
    {
        var got = new byte[data.Length];
        int sent = 0, recvd = 0;
        var buf = new byte[256 * 1024];
        long deadline = NowUs() + 30_000_000;
        while (recvd < data.Length)
        {
            Assert.True(NowUs() < deadline, $"stalled: sent {sent} received {recvd} of {data.Length}");
            long now = NowUs();
            from.Poll(now);
            to.Poll(now);
            if (sent < data.Length)
            {
                int n = from.Send(fh, data.AsSpan(sent, Math.Min(256 * 1024, data.Length - sent)), out _);
                sent += Math.Max(0, n);
                from.Flush();
            }
            while (true)
            {
                int n = to.Receive(th, buf, false, out _);
                if (n <= 0) break;
                buf.AsSpan(0, n).CopyTo(got.AsSpan(recvd));
                recvd += n;
            }
        }
        return got;
    }

    private static string DropList(NetStack n)
    {
        var parts = new System.Collections.Generic.List<string>();
        for (int r = 0; r < (int)DropReason.Count; r++)
            if (n.Counters.Drops((DropReason)r) != 0) parts.Add($"{(DropReason)r} {n.Counters.Drops((DropReason)r)}");
        return string.Join(", ", parts);
    }

    private static (NetStack a, NetStack b, int c, int s, int l) Connect(Veth v)
    {
        var a = new NetStack(v.A, new StackConfig { Interface = new InterfaceConfig { Address = new Ipv4Address(198, 18, 1, 2), PrefixLength = 24 }, Tcp = new TcpConfig { Seed = 1 } });
        var b = new NetStack(v.B, new StackConfig { Interface = new InterfaceConfig { Address = new Ipv4Address(198, 18, 1, 3), PrefixLength = 24 }, Tcp = new TcpConfig { Seed = 2 } });
        // The stacks' clocks start at the real time before the first call, as Engine polls before it calls in
        // (ConnectBeforeFirstPoll_ClockJumpsFromZeroToUptime covers a connect at 0).
        long start = NowUs();
        a.Poll(start);
        b.Poll(start);
        Assert.Equal(SocketError.Success, b.Open(out int l));
        Assert.Equal(SocketError.Success, b.Bind(l, Ipv4Address.Any, 5201));
        Assert.Equal(SocketError.Success, b.Listen(l, 4));
        Assert.Equal(SocketError.Success, a.Open(out int c));
        Assert.Equal(SocketError.InProgress, a.Connect(c, new Ipv4Address(198, 18, 1, 3), 5201));
        int s = -1;
        long deadline = NowUs() + 10_000_000;
        while (s < 0 || (a.GetReadiness(c) & Readiness.Out) == 0)
        {
            Assert.True(NowUs() < deadline, $"no connection: a rx {a.Counters.RxPackets} tx {a.Counters.TxPackets} tcp in {a.Counters.TcpSegmentsIn} out {a.Counters.TcpSegmentsOut}; b rx {b.Counters.RxPackets} tx {b.Counters.TxPackets} tcp in {b.Counters.TcpSegmentsIn} out {b.Counters.TcpSegmentsOut}; drops a {DropList(a)} b {DropList(b)}; {v.A.Summary()} | {v.B.Summary()}");
            long now = NowUs();
            a.Poll(now);
            b.Poll(now);
            if (s < 0) b.Accept(l, out s, out _, out _);
        }
        return (a, b, c, s, l);
    }

    [PacketSocketFact]
    public void TwoStacksOverVeth_InterfaceTso_GsoPacketsPassWhole_BothWays()
    {
        using var v = new Veth(ifaceTso: true);
        Assert.True(v.A.InterfaceTso && v.A.QdiscBypass);
        Assert.Equal(PacketSocketDevice.MaxSegmentBytes, v.A.Capabilities.TsoMaxBytes);
        Assert.Equal(new MacAddress(0x02_00_c6_12_01_02), v.A.Capabilities.MacAddress);
        Assert.Equal(1500, v.A.Capabilities.Mtu);
        var (a, b, c, s, l) = Connect(v);
        var data = new byte[8 << 20];
        new Random(3).NextBytes(data);
        Assert.Equal(SHA256.HashData(data), SHA256.HashData(Transfer(a, c, b, s, data)));
        Assert.True(v.A.TxLarge > 0, v.A.Summary());
        // veth passes GSO packets whole: B's stack took segments larger than its MSS (checksum left as NEEDS_CSUM).
        Assert.True(v.B.RxLarge > 0, v.B.Summary());
        Assert.Equal(0, b.Counters.Drops(DropReason.TcpBadChecksum));
        Assert.Equal(SHA256.HashData(data), SHA256.HashData(Transfer(b, s, a, c, data)));
        Assert.True(v.B.TxLarge > 0 && v.A.RxLarge > 0);
        a.Dispose();
        b.Dispose();
    }

    [PacketSocketFact]
    public void TwoStacksOverVeth_NoInterfaceTso_KernelSegments_AndTsoOffFallsBack()
    {
        using var v = new Veth(ifaceTso: false, optsB: ",tso=0");
        Assert.False(v.A.InterfaceTso);
        Assert.False(v.A.QdiscBypass); // the qdisc path, where the kernel segments GSO packets in software
        Assert.True(v.B.QdiscBypass);  // no TSO offered: nothing for the kernel to segment
        Assert.Equal(0, v.B.Capabilities.TsoMaxBytes);
        var (a, b, c, s, l) = Connect(v);
        var data = new byte[4 << 20];
        new Random(4).NextBytes(data);
        Assert.Equal(SHA256.HashData(data), SHA256.HashData(Transfer(a, c, b, s, data)));
        Assert.True(v.A.TxLarge > 0, v.A.Summary());
        Assert.Equal(0, v.B.RxLarge); // cut by the kernel before the veth
        Assert.Equal(0, b.Counters.Drops(DropReason.TcpBadChecksum));
        Assert.Equal(SHA256.HashData(data), SHA256.HashData(Transfer(b, s, a, c, data)));
        Assert.Equal(0, v.B.TxLarge); // tso=0: MSS-sized segments only
        a.Dispose();
        b.Dispose();
    }

    [PacketSocketFact]
    public void MalformedAndOversizedFrames_AreCountedDrops()
    {
        using var v = new Veth(ifaceTso: true);
        Span<PacketBuf> bufs = stackalloc PacketBuf[4];
        Assert.Equal(4, v.A.Allocate(bufs));
        // 0: a frame longer than the MTU without a segment size: the kernel refuses it (EMSGSIZE), counted, dropped.
        bufs[0].SetLength(3000);
        bufs[0].Data.Fill(0x11);
        // 1: marked for segmentation but not TCP/IPv4: no GSO header is written; as a 3,000-byte frame it is refused.
        bufs[1].SetLength(3000);
        bufs[1].Data.Fill(0x22);
        bufs[1].SegmentSize = 1448;
        // 2: a short, harmless frame that goes out.
        bufs[2].SetLength(60);
        bufs[2].Data.Clear();
        bufs[2].Data[12] = 0x88; bufs[2].Data[13] = 0xB5; // local experimental EtherType
        // 3: no headroom left for the virtio header: refused by the kernel as an empty message, counted, dropped.
        bufs[3].Offset = 4;
        bufs[3].SetLength(60);
        Assert.Equal(4, v.A.Transmit(bufs));
        Assert.Equal(3, v.A.TxDropped);
        Assert.Equal(1, v.A.TxFrames);
        // B sees the one good frame.
        Span<PacketBuf> rx = stackalloc PacketBuf[8];
        int n = 0;
        long deadline = NowUs() + 2_000_000;
        while (n == 0 && NowUs() < deadline) n = v.B.Receive(rx);
        Assert.Equal(1, n);
        Assert.Equal(60, rx[0].Length);
        v.B.Free(ref rx[0]);
    }

    /// <summary>Fills <paramref name="p"/> with an Ethernet frame pa -&gt; pb: a TCP/IPv4 segment of
    /// <paramref name="payload"/> bytes cut by GSO at 1,448 (<paramref name="gso"/>), or a frame of our experimental
    /// EtherType; the payload is a pattern of <paramref name="seed"/>.</summary>
    private static void BuildFrame(ref PacketBuf p, int seed, bool gso, int payload)
    {
        Span<byte> d = new(p.Buffer + p.Offset, 14 + 40 + payload);
        d.Clear();
        byte[] dst = [2, 0, 0xc6, 0x12, 1, 3], src = [2, 0, 0xc6, 0x12, 1, 2];
        dst.CopyTo(d);
        src.CopyTo(d[6..]);
        int start = 14;
        if (gso)
        {
            d[12] = 8; d[13] = 0;
            d[14] = 0x45; d[16] = (byte)((40 + payload) >> 8); d[17] = (byte)(40 + payload); d[22] = 64; d[23] = 6;
            d[26] = 198; d[27] = 18; d[28] = 1; d[29] = 2; d[30] = 198; d[31] = 18; d[32] = 1; d[33] = 3;
            d[34] = 0x13; d[35] = 0x88; d[36] = 0x13; d[37] = 0x89; d[46] = 0x50; d[47] = 0x18; d[48] = 0xff;
            start = 54;
            p.Offloads = PacketOffloads.TxTcpChecksum;
            p.SegmentSize = 1448;
        }
        else
        {
            d[12] = 0x88; d[13] = 0xB5;
        }
        for (int i = start; i < d.Length; i++) d[i] = (byte)(seed * 31 + i);
        p.SetLength(d.Length);
    }

    [PacketSocketFact]
    public void Ring_SmallAndLargeGsoFramesMixed_ArriveWholeInOrder_SystemCallsOnlyForLargeOnes()
    {
        using var v = new Veth(ifaceTso: true);
        Assert.Equal(PacketSocketConfig.DefaultRingFrames, v.B.RingFrames);
        Span<PacketBuf> tx = stackalloc PacketBuf[16];
        Span<PacketBuf> rx = stackalloc PacketBuf[32];
        var sizes = new System.Collections.Generic.List<int>();
        int seed = 0, checkedFrames = 0, large = 0;
        for (int round = 0; round < 20; round++)
        {
            // 16 frames a round: every fourth a GSO packet of 20-60 KB, the rest small (60 B .. 1,460 B).
            Assert.Equal(16, v.A.Allocate(tx));
            for (int i = 0; i < 16; i++)
            {
                bool gso = (seed & 3) == 0;
                int payload = gso ? 20_000 + seed * 997 % 40_000 : seed * 89 % 1400 + 6;
                BuildFrame(ref tx[i], seed, gso, payload);
                sizes.Add(14 + 40 + payload);
                seed++;
            }
            int sent = 0;
            while (sent < 16) sent += v.A.Transmit(tx[sent..]);
            long deadline = NowUs() + 2_000_000;
            while (checkedFrames < seed)
            {
                Assert.True(NowUs() < deadline, $"only {checkedFrames} of {seed} frames: {v.B.Summary()}");
                int n = v.B.Receive(rx);
                for (int k = 0; k < n; k++)
                {
                    Span<byte> d = rx[k].Data;
                    Assert.Equal(sizes[checkedFrames], d.Length);
                    int start = d[12] == 8 ? 54 : 14;
                    if (start == 54)
                    {
                        large++;
                        Assert.Equal(PacketOffloads.RxTcpChecksumGood, rx[k].Offloads); // NEEDS_CSUM from the veth
                    }
                    for (int i = start; i < d.Length; i += 97) Assert.Equal((byte)(checkedFrames * 31 + i), d[i]);
                    Assert.Equal((byte)(checkedFrames * 31 + d.Length - 1), d[^1]);
                    checkedFrames++;
                    v.B.Free(ref rx[k]);
                }
            }
        }
        Assert.Equal(80, large);
        Assert.Equal(80, v.B.RxLarge); // passed whole through the veth (tso on) and the ring
        Assert.Equal(80, v.B.RxCalls); // a receive system call only for the GSO packets (too big for a ring slot)
        Assert.Equal(0, v.B.RxDropped);
        Assert.Equal(0, v.B.KernelRxDrops);
    }

    [PacketSocketFact]
    public void Ring_Full_KernelDropsCounted_ThenFramesFlowAgain()
    {
        using var v = new Veth(ifaceTso: true, optsB: ",ring=20");
        Assert.Equal(1616, v.B.RingSlotBytes); // an MTU of 1,500
        Assert.Equal(40, v.B.RingFrames); // one block of 40
        Span<PacketBuf> tx = stackalloc PacketBuf[10];
        Span<PacketBuf> rx = stackalloc PacketBuf[32];
        int seed = 0;
        // 100 frames while B reads nothing: 40 fill the ring (the GSO packets among them also wait whole in the
        // socket's queue), the kernel drops the other 60 and counts them.
        for (int round = 0; round < 10; round++)
        {
            Assert.Equal(10, v.A.Allocate(tx));
            for (int i = 0; i < 10; i++) BuildFrame(ref tx[i], seed++, gso: i == 5, payload: i == 5 ? 30_000 : 100);
            int sent = 0;
            while (sent < 10) sent += v.A.Transmit(tx[sent..]);
        }
        long deadline = NowUs() + 2_000_000;
        while (v.B.KernelRxDrops < 60 && NowUs() < deadline) Thread.Sleep(1);
        int got = 0;
        while (true)
        {
            int n = v.B.Receive(rx);
            if (n == 0) break;
            for (int k = 0; k < n; k++)
            {
                Assert.Equal((byte)(got * 31 + 60), rx[k].Data[60]); // the first 40, in order
                Assert.Equal(got % 10 == 5 ? 14 + 40 + 30_000 : 14 + 40 + 100, rx[k].Length);
                got++;
                v.B.Free(ref rx[k]);
            }
        }
        Assert.Equal(40, got);
        Assert.Equal(60, v.B.KernelRxDrops);
        Assert.Equal(4, v.B.RxLarge);
        Assert.Equal(4, v.B.RxCalls);
        // The ring is free again: new frames arrive (the head moved on with the kernel's).
        Assert.Equal(10, v.A.Allocate(tx));
        for (int i = 0; i < 10; i++) BuildFrame(ref tx[i], 200 + i, gso: false, payload: 100);
        int s2 = 0;
        while (s2 < 10) s2 += v.A.Transmit(tx[s2..]);
        got = 0;
        deadline = NowUs() + 2_000_000;
        while (got < 10)
        {
            Assert.True(NowUs() < deadline, v.B.Summary());
            int n = v.B.Receive(rx);
            for (int k = 0; k < n; k++)
            {
                Assert.Equal((byte)((200 + got) * 31 + 60), rx[k].Data[60]);
                got++;
                v.B.Free(ref rx[k]);
            }
        }
        Assert.Equal(4, v.B.RxCalls);
        Assert.Equal(0, v.B.RxDropped);
    }

    [PacketSocketFact]
    public void Ring_TwoBlocks_FramesCrossBlocksAndWrapAround_InOrder()
    {
        // Slots of 1,616 bytes: 40 to a 64 KiB block, the block's last 896 bytes unused; the head moves from the last
        // slot of a block to the first of the next, and from the ring's last slot back to its first.
        using var v = new Veth(ifaceTso: true, optsB: ",ring=50");
        Assert.Equal(80, v.B.RingFrames);
        Span<PacketBuf> tx = stackalloc PacketBuf[10];
        Span<PacketBuf> rx = stackalloc PacketBuf[32];
        int sentTotal = 0, got = 0;
        long deadline = NowUs() + 5_000_000;
        while (got < 250)
        {
            Assert.True(NowUs() < deadline, $"only {got} of 250 frames: {v.B.Summary()}");
            if (sentTotal < 250 && sentTotal - got <= 30) // never more than the ring holds in flight
            {
                Assert.Equal(10, v.A.Allocate(tx));
                for (int i = 0; i < 10; i++) BuildFrame(ref tx[i], sentTotal + i, gso: false, payload: 100 + (sentTotal + i) * 5);
                int sent = 0;
                while (sent < 10) sent += v.A.Transmit(tx[sent..]);
                sentTotal += 10;
            }
            int n = v.B.Receive(rx);
            for (int k = 0; k < n; k++)
            {
                Assert.Equal(14 + 40 + 100 + got * 5, rx[k].Length);
                Assert.Equal((byte)(got * 31 + 60), rx[k].Data[60]);
                Assert.Equal((byte)(got * 31 + rx[k].Length - 1), rx[k].Data[^1]);
                got++;
                v.B.Free(ref rx[k]);
            }
        }
        Assert.Equal(0, v.B.KernelRxDrops);
        Assert.Equal(0, v.B.RxDropped);
        Assert.Equal(0, v.B.RxCalls);
    }

    [PacketSocketFact]
    public void NoRing_Recvmmsg_StillWorks()
    {
        using var v = new Veth(ifaceTso: true, optsA: ",ring=0", optsB: ",ring=0");
        Assert.Equal(0, v.B.RingFrames);
        var (a, b, c, s, l) = Connect(v);
        var data = new byte[2 << 20];
        new Random(5).NextBytes(data);
        Assert.Equal(SHA256.HashData(data), SHA256.HashData(Transfer(a, c, b, s, data)));
        Assert.True(v.B.RxCalls > 0 && v.B.RxLarge > 0, v.B.Summary());
        a.Dispose();
        b.Dispose();
    }


    [Fact]
    public void UsFromTicks_NanosecondTicksOfALongUptime_DoNotOverflow()
    {
        // 47,862.04 s of uptime in nanosecond ticks: ticks * 1,000,000 overflows a long (the old conversion gave
        // -7,478,232,221 us); the conversion must give the uptime.
        Assert.Equal(47_862_040_000L, UsFromTicks(47_862_040_000_000L, 1_000_000_000));
        Assert.Equal(long.MaxValue / 1_000, UsFromTicks(long.MaxValue, 1_000_000_000));
        Assert.Equal(123_456_789L, UsFromTicks(1_234_567_890, 10_000_000)); // 100 ns ticks
        Assert.Equal(1L, UsFromTicks(1_999, 1_000_000_000));
        long now = NowUs();
        Assert.True(now > 0 && now >= UsFromTicks(Stopwatch.GetTimestamp() - Stopwatch.Frequency, Stopwatch.Frequency));
    }

    /// <summary>A connect before the stacks' first poll: the SYN is built at clock 0 and waits in the ARP queue;
    /// the stacks are then polled at the machine's uptime (a forward jump of hours; the SYN's retransmission timer
    /// has expired by then). The SYN leaves with a TSval of time 0 or of the uptime, the handshake's ACK with one of
    /// the uptime: not older, so PAWS at the listener passes. (It failed
    /// with the test's old overflowing clock, which ran backwards from 0 over some uptimes.)</summary>
    [PacketSocketFact]
    public void ConnectBeforeFirstPoll_ClockJumpsFromZeroToUptime_HandshakeCompletes()
    {
        using var v = new Veth(ifaceTso: true);
        var a = new NetStack(v.A, new StackConfig { Interface = new InterfaceConfig { Address = new Ipv4Address(198, 18, 1, 2), PrefixLength = 24 }, Tcp = new TcpConfig { Seed = 1 } });
        var b = new NetStack(v.B, new StackConfig { Interface = new InterfaceConfig { Address = new Ipv4Address(198, 18, 1, 3), PrefixLength = 24 }, Tcp = new TcpConfig { Seed = 2 } });
        Assert.Equal(SocketError.Success, b.Open(out int l));
        Assert.Equal(SocketError.Success, b.Bind(l, Ipv4Address.Any, 5201));
        Assert.Equal(SocketError.Success, b.Listen(l, 4));
        Assert.Equal(SocketError.Success, a.Open(out int c));
        Assert.Equal(SocketError.InProgress, a.Connect(c, new Ipv4Address(198, 18, 1, 3), 5201));
        int s = -1;
        long deadline = NowUs() + 10_000_000;
        while (s < 0 || (a.GetReadiness(c) & Readiness.Out) == 0)
        {
            Assert.True(NowUs() < deadline, $"no connection: drops a {DropList(a)} b {DropList(b)}");
            long now = NowUs();
            a.Poll(now);
            b.Poll(now);
            if (s < 0) b.Accept(l, out s, out _, out _);
        }
        Assert.Equal(0, b.Counters.Drops(DropReason.TcpPaws));
        var data = new byte[64 << 10];
        new Random(6).NextBytes(data);
        Assert.Equal(data, Transfer(a, c, b, s, data));
        a.Dispose();
        b.Dispose();
    }

    [Fact]
    public void ConfigParse_AcceptsOptionsAndRejectsBadOnes()
    {
        PacketSocketConfig c = PacketSocketConfig.Parse("eth0,tso=0,burst=16,buffers=128,bypass=1,ring=0");
        Assert.Equal(0, c.RingFrames);
        Assert.Equal(64, PacketSocketConfig.Parse("eth0,ring=64").RingFrames);
        Assert.Equal(10240, PacketSocketConfig.Parse("eth0").RingFrames);
        Assert.Equal("eth0", c.Interface);
        Assert.False(c.Tso);
        Assert.Equal(16, c.Burst);
        Assert.Equal(128, c.Buffers);
        Assert.True(c.QdiscBypass);
        Assert.True(PacketSocketConfig.Parse("ut-srv0").Tso);
        Assert.Null(PacketSocketConfig.Parse("ut-srv0").QdiscBypass);
        foreach (string bad in new[] { "", ",tso=1", "eth0,tso=2", "eth0,burst=0", "eth0,burst=65", "eth0,foo=1", "eth0,tso", "eth0,ring=4", "eth0,ring=-1",
                     "averyveryverylongname0", "a/b" })
            Assert.Throws<ArgumentException>(() => PacketSocketConfig.Parse(bad));
        // No such interface: the reason is in the message.
        var e = Assert.Throws<InvalidOperationException>(() => PacketSocketDevice.Open(PacketSocketConfig.Parse("nosuchif-tso")));
        Assert.Contains("nosuchif-tso", e.Message);
    }
}
