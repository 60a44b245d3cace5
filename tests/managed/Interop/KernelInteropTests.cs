using System;
using System.Buffers.Binary;
using UserTcp.Stack;
using UserTcp.Stack.Phy;
using UserTcp.Stack.Tcp;
using UserTcp.Tests.Dpdk;
using Xunit;
using Xunit.Abstractions;

namespace UserTcp.Tests.Interop;

/// <summary>
/// The Linux kernel as the peer of our stack: a NetStack on net_af_packet (veth end in a private namespace), the
/// kernel's TCP/IP in the other namespace driven by ping and tests/managed/Interop/kpeer.py. Every test builds and
/// tears down its own namespace pair (unique names, 198.18.0.0/15 only) and bounds every wait.
/// </summary>
[Collection("Dpdk")]
public sealed class KernelInteropTests
{
    private static readonly TimeSpan Short = TimeSpan.FromSeconds(30);
    private readonly ITestOutputHelper _out;

    public KernelInteropTests(ITestOutputHelper output) => _out = output;

    private static string Root => DpdkTestEnv.RepoRoot;

    [DpdkFact]
    public void Arp_ResolvesBothWays_AndKernelPingsTheStack()
    {
        using InteropNet net = InteropNet.Up(Root);
        ArpWatchDevice? watch = null;
        using StackDriver stack = net.StartStack(DpdkTestEnv.Eal, wrap: d => watch = new ArpWatchDevice(d));

        // The stack resolves the kernel: its first packet to 198.18.0.1 (a SYN) waits for an ARP request/reply.
        using (KernelPeer peer = net.StartPeer(Root, "listen", "7001", "--send", "64"))
        {
            peer.WaitListening(Short);
            Transfer t = stack.Start(Transfer.Connect(InteropNet.KernelIp, 7001, 64));
            stack.Wait(t, Short);
            PeerResult k = peer.Result(Short);
            Assert.Equal(SocketError.Success, t.Error);
            Assert.Null(k.Error);
            Assert.Equal(t.SentSha, k.RecvSha);
            Assert.Equal(k.SentSha, t.ReceivedSha);
        }
        Assert.True(watch!.RequestsSent >= 1, $"the stack sent no ARP request ({watch})");
        Assert.True(watch.RepliesReceived >= 1, $"the kernel's ARP reply never reached the stack ({watch})");

        // The kernel resolves the stack: forget what it learned, then ping.
        Assert.Equal(0, net.InCli(Short, "ip", "neigh", "flush", "all").Code);
        int requestsBefore = watch.RequestsReceived;
        var ping = net.InCli(Short, "ping", "-c", "3", "-i", "0.2", "-W", "2", InteropNet.StackIp.ToString());
        Assert.True(ping.Code == 0, ping.Output);
        Assert.Contains("3 received", ping.Output);
        Assert.True(watch.RequestsReceived > requestsBefore, $"the kernel never asked for 198.18.0.2 ({watch})");
        Assert.True(watch.RepliesSent >= 1, $"the stack never answered an ARP request ({watch})");
        var neigh = net.InCli(Short, "ip", "neigh", "show", InteropNet.StackIp.ToString());
        Assert.Contains(InteropNet.StackMac, neigh.Output);
        Assert.True(stack.Invoke(s => s.Counters.IcmpEchoReplies) >= 3);
    }

    [DpdkTheory]
    [InlineData(64)]
    [InlineData(1 << 20)]
    public void StackServer_KernelClient_BothWays_Intact(int bytes)
    {
        using InteropNet net = InteropNet.Up(Root);
        using StackDriver stack = net.StartStack(DpdkTestEnv.Eal);
        var (t, k) = StackServer(net, stack, 7002, bytes, TransferOrder.Concurrent, "concurrent", Short);
        AssertIntact(t, k, bytes, bytes);
        Log("stack server", t, k);
        // Once the connection has finished closing it holds no ring; once the stack is gone every mbuf is back.
        Assert.True(WaitUntil(() => stack.Invoke(s => s.Buffers.OutstandingBlocks) == 0, Short),
            $"ring blocks still held: {stack.Invoke(s => s.Buffers.OutstandingBlocks)}");
        stack.Dispose();
        Assert.Equal(0, stack.MbufsInUseAfterStop);
    }

    [DpdkTheory]
    [InlineData(64)]
    [InlineData(1 << 20)]
    public void StackClient_KernelServer_BothWays_Intact(int bytes)
    {
        using InteropNet net = InteropNet.Up(Root);
        using StackDriver stack = net.StartStack(DpdkTestEnv.Eal);
        var (t, k) = StackClient(net, stack, 7003, bytes, TransferOrder.Concurrent, "concurrent", Short);
        AssertIntact(t, k, bytes, bytes);
        Log("stack client", t, k);
    }

    [DpdkFact]
    public void HalfClose_StackShutsDownFirst_KernelStillSends()
    {
        using InteropNet net = InteropNet.Up(Root);
        using StackDriver stack = net.StartStack(DpdkTestEnv.Eal);
        // The stack sends 100 KB and its FIN; the kernel reads to end of stream, only then sends 1 MB back, which the
        // stack must still receive in FIN-WAIT-2.
        var (t, k) = StackServer(net, stack, 7004, 100_000, TransferOrder.SendFirst, "recv-first", Short, kernelSends: 1 << 20);
        AssertIntact(t, k, 100_000, 1 << 20);
        // And the other way round, stack as client.
        (t, k) = StackClient(net, stack, 7005, 100_000, TransferOrder.SendFirst, "recv-first", Short, kernelSends: 1 << 20);
        AssertIntact(t, k, 100_000, 1 << 20);
    }

    [DpdkFact]
    public void HalfClose_KernelShutsDownFirst_StackStillSends()
    {
        using InteropNet net = InteropNet.Up(Root);
        using StackDriver stack = net.StartStack(DpdkTestEnv.Eal);
        // The kernel sends 100 KB and shuts down its write side; the stack reads to end of stream (CLOSE-WAIT), then
        // sends 1 MB.
        var (t, k) = StackServer(net, stack, 7006, 1 << 20, TransferOrder.ReceiveFirst, "send-first", Short, kernelSends: 100_000);
        AssertIntact(t, k, 1 << 20, 100_000);
        (t, k) = StackClient(net, stack, 7007, 1 << 20, TransferOrder.ReceiveFirst, "send-first", Short, kernelSends: 100_000);
        AssertIntact(t, k, 1 << 20, 100_000);
    }

    [DpdkFact]
    public void ClosedPorts_AnswerWithRst_BothWays()
    {
        using InteropNet net = InteropNet.Up(Root);
        using StackDriver stack = net.StartStack(DpdkTestEnv.Eal);
        // The kernel connects to a port nobody listens on at the stack: the stack's RST makes connect fail.
        using (KernelPeer peer = net.StartPeer(Root, "connect", InteropNet.StackIp.ToString(), "7008", "--timeout", "10"))
        {
            PeerResult k = peer.Result(Short);
            Assert.Equal("ECONNREFUSED", k.Error);
        }
        Assert.True(stack.Invoke(s => s.Counters.TcpRstSent) >= 1);
        // The stack connects to a closed kernel port: the kernel's RST gives ConnectionRefused.
        Transfer t = stack.Start(Transfer.Connect(InteropNet.KernelIp, 7009, 64));
        stack.Wait(t, Short);
        Assert.Equal(SocketError.ConnectionRefused, t.Error);
        Assert.True(t.EndUs - t.StartUs < 1_000_000, "refusal took more than a second (retransmitted SYN?)");
        Assert.True(stack.Invoke(s => s.Counters.TcpRstReceived) >= 1);
    }

    [DpdkFact]
    public void Options_WindowScaleTimestampsSack_NegotiatedWithKernel_BothRoles()
    {
        using InteropNet net = InteropNet.Up(Root);
        // Through the qdisc (qdisc_bypass=0), as the netem variant of the loss tests runs: checks that path works
        // on kernels without netem too.
        using StackDriver stack = net.StartStack(DpdkTestEnv.Eal, qdiscBypass: false);
        var (t, k) = StackServer(net, stack, 7010, 64, TransferOrder.Concurrent, "concurrent", Short);
        AssertIntact(t, k, 64, 64);
        AssertNegotiated(t, k);
        (t, k) = StackClient(net, stack, 7011, 64, TransferOrder.Concurrent, "concurrent", Short);
        AssertIntact(t, k, 64, 64);
        AssertNegotiated(t, k);
    }

    private void AssertNegotiated(Transfer t, PeerResult k)
    {
        _out.WriteLine($"stack: mss {t.Mss} ts {t.Timestamps} sack {t.Sack} wscale snd {t.SendWindowScale} rcv {t.ReceiveWindowScale}; " +
                       $"kernel tcp_info: ts {k.Timestamps} sack {k.Sack} wscale {k.WindowScaling} snd {k.SndWscale} rcv {k.RcvWscale} mss {k.SndMss}");
        // Both ends agree that each option is on (each end only turns one on when both SYNs carried it).
        Assert.True(t.Timestamps && k.Timestamps, "timestamps not negotiated");
        Assert.True(t.Sack && k.Sack, "SACK not negotiated");
        Assert.True(k.WindowScaling, "the kernel did not turn window scaling on");
        // The shifts cross over: what one end announced is what the other applies to the windows it receives.
        Assert.Equal(k.RcvWscale, t.SendWindowScale);
        Assert.Equal(k.SndWscale, t.ReceiveWindowScale);
        Assert.True(t.ReceiveWindowScale > 0, "a 1 MB receive buffer needs a shift > 0");
        // 1500-byte MTU: MSS 1460 announced both ways, 1448 bytes of data per segment once 12 bytes of timestamps
        // ride on each (the stack's SendMss and the kernel's snd_mss both count data only).
        Assert.Equal(1448, t.Mss);
        Assert.Equal(1448, k.SndMss);
    }

    [DpdkTheory]
    [InlineData(1, false)]
    [InlineData(5, true)]
    public void UnderLossAndReordering_TransfersComplete_Intact(int lossPercent, bool reorder)
    {
        using Lossy l = Lossy.Up(lossPercent, reorder ? 25 : 0, seed: lossPercent);
        TimeSpan limit = TimeSpan.FromSeconds(90);
        var (t, k) = StackServer(l.Net, l.Stack, 7012, 1 << 20, TransferOrder.Concurrent, "concurrent", limit);
        AssertIntact(t, k, 1 << 20, 1 << 20);
        Log($"{l}, stack server", t, k);
        (t, k) = StackClient(l.Net, l.Stack, 7013, 1 << 20, TransferOrder.Concurrent, "concurrent", limit);
        AssertIntact(t, k, 1 << 20, 1 << 20);
        Log($"{l}, stack client", t, k);
        long retransmits = l.Stack.Invoke(s => s.Counters.TcpRetransmits);
        Assert.True(retransmits > 0, $"no retransmission under loss: the faults did not act on the stack's frames ({l})");
    }

    /// <summary>
    /// A lossy, reordering link between the kernel and the stack: netem through scripts/testnet.sh (--loss, --delay 1
    /// --reorder, on both veth ends; the PMD's qdisc bypass is turned off so the stack's frames meet netem too) when the
    /// kernel has sch_netem; otherwise the same faults injected by a <see cref="FaultInjectingDevice"/> under the stack, in both
    /// directions (this VM's kernel is built without netem).
    /// </summary>
    private sealed class Lossy : IDisposable
    {
        public InteropNet Net = null!;
        public StackDriver Stack = null!;
        public FaultInjectingDevice? Device;
        private string _what = "";

        public static Lossy Up(int lossPercent, int reorderPercent, int seed)
        {
            var l = new Lossy();
            string[] netem = reorderPercent > 0
                ? ["--loss", lossPercent.ToString(), "--delay", "1", "--reorder", reorderPercent.ToString()]
                : ["--loss", lossPercent.ToString()];
            try
            {
                l.Net = InteropNet.Up(Root, netem);
                l._what = "netem " + l.Net.Netem;
            }
            catch (InvalidOperationException e) when (e.Message.Contains("sch_netem", StringComparison.Ordinal))
            {
                l.Net = InteropNet.Up(Root);
                l._what = $"no sch_netem; FaultInjectingDevice loss {lossPercent}% reorder {reorderPercent}% both directions";
            }
            try
            {
                bool injected = !l._what.StartsWith("netem", StringComparison.Ordinal);
                l.Stack = l.Net.StartStack(DpdkTestEnv.Eal, qdiscBypass: injected,
                    wrap: injected
                        ? d => l.Device = new FaultInjectingDevice(d, new FaultConfig
                        {
                            LossPercent = lossPercent, ReorderPercent = reorderPercent, ReorderDepth = 3,
                            ReorderTimeoutUs = 2_000, Transmit = true, Ipv4Only = true,
                        }, seed) { Clock = () => StackDriver.NowUs }
                        : null);
            }
            catch
            {
                l.Net.Dispose();
                throw;
            }
            return l;
        }

        public override string ToString() => Device != null ? $"{_what} ({Device})" : _what;

        public void Dispose()
        {
            try { Stack?.Dispose(); }
            finally { Net.Dispose(); }
        }
    }

    [LongDpdkFact]
    public void Long_HundredMegabytesBothWays_StackServerAndClient()
    {
        using InteropNet net = InteropNet.Up(Root);
        using StackDriver stack = net.StartStack(DpdkTestEnv.Eal);
        TimeSpan limit = TimeSpan.FromMinutes(5);
        var (t, k) = StackServer(net, stack, 7014, 100 << 20, TransferOrder.Concurrent, "concurrent", limit);
        AssertIntact(t, k, 100 << 20, 100 << 20);
        Log("100 MB, stack server", t, k);
        (t, k) = StackClient(net, stack, 7015, 100 << 20, TransferOrder.Concurrent, "concurrent", limit);
        AssertIntact(t, k, 100 << 20, 100 << 20);
        Log("100 MB, stack client", t, k);
    }

    [LongDpdkFact]
    public void Long_UnderLoss5AndReordering_TenMegabytesBothWays()
    {
        using Lossy l = Lossy.Up(5, 25, seed: 55);
        TimeSpan limit = TimeSpan.FromMinutes(5);
        var (t, k) = StackServer(l.Net, l.Stack, 7016, 10 << 20, TransferOrder.Concurrent, "concurrent", limit);
        AssertIntact(t, k, 10 << 20, 10 << 20);
        Log($"10 MB {l}, stack server", t, k);
        (t, k) = StackClient(l.Net, l.Stack, 7017, 10 << 20, TransferOrder.Concurrent, "concurrent", limit);
        AssertIntact(t, k, 10 << 20, 10 << 20);
        Log($"10 MB {l}, stack client", t, k);
    }

    // ---- helpers

    internal static bool WaitUntil(Func<bool> condition, TimeSpan limit)
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        while (!condition())
        {
            if (sw.Elapsed > limit) return false;
            System.Threading.Thread.Sleep(20);
        }
        return true;
    }

    /// <summary>The stack listens on <paramref name="port"/>; kpeer connects and transfers.</summary>
    internal static (Transfer, PeerResult) StackServer(InteropNet net, StackDriver stack, ushort port, long stackSends,
        TransferOrder order, string kernelOrder, TimeSpan limit, long kernelSends = -1)
    {
        int listener = stack.Invoke(s =>
        {
            Assert.Equal(SocketError.Success, s.Open(out int h));
            Assert.Equal(SocketError.Success, s.Bind(h, InteropNet.StackIp, port));
            Assert.Equal(SocketError.Success, s.Listen(h, 4));
            return h;
        });
        try
        {
            Transfer t = stack.Start(Transfer.Accept(listener, stackSends, order, seed: port));
            using KernelPeer peer = net.StartPeer(Root, "connect", InteropNet.StackIp.ToString(), port.ToString(),
                "--send", (kernelSends < 0 ? stackSends : kernelSends).ToString(), "--order", kernelOrder, "--timeout", limit.TotalSeconds.ToString());
            stack.Wait(t, limit);
            return (t, peer.Result(limit));
        }
        finally
        {
            stack.Invoke(s => s.Close(listener));
        }
    }

    /// <summary>kpeer listens on <paramref name="port"/>; the stack connects and transfers.</summary>
    internal static (Transfer, PeerResult) StackClient(InteropNet net, StackDriver stack, ushort port, long stackSends,
        TransferOrder order, string kernelOrder, TimeSpan limit, long kernelSends = -1)
    {
        using KernelPeer peer = net.StartPeer(Root, "listen", port.ToString(),
            "--send", (kernelSends < 0 ? stackSends : kernelSends).ToString(), "--order", kernelOrder, "--timeout", limit.TotalSeconds.ToString());
        peer.WaitListening(Short);
        Transfer t = stack.Start(Transfer.Connect(InteropNet.KernelIp, port, stackSends, order, seed: port));
        stack.Wait(t, limit);
        return (t, peer.Result(limit));
    }

    internal static void AssertIntact(Transfer t, PeerResult k, long stackSent, long kernelSent)
    {
        string all = $"stack: error {t.Error}, sent {t.Sent}/{stackSent}, received {t.Received}/{kernelSent} ({t.EofNote}); kernel: {k.Raw}";
        Assert.True(t.AbortReason == null, t.AbortReason);
        Assert.True(t.Error == SocketError.Success, all);
        Assert.True(k.Error == null, all);
        Assert.True(t.Sent == stackSent && k.Received == stackSent, all);
        Assert.True(k.Sent == kernelSent && t.Received == kernelSent, all);
        Assert.True(t.SentSha == k.RecvSha, "stack->kernel bytes differ: " + all);
        Assert.True(k.SentSha == t.ReceivedSha, "kernel->stack bytes differ: " + all);
    }

    private void Log(string what, Transfer t, PeerResult k) =>
        _out.WriteLine($"{what}: {t.Sent} B out, {t.Received} B in, {(t.EndUs - t.EstablishedUs) / 1000.0:0.0} ms, {t.Mbps:0} Mbit/s; " +
                       $"kernel retransmits {k.TotalRetrans}; stack so far: {t.CountersNote}");
}

/// <summary>Counts the ARP frames through a device (tests look at who asked and who answered).</summary>
internal sealed class ArpWatchDevice(IDevice inner) : IDevice
{
    public volatile int RequestsSent, RepliesSent, RequestsReceived, RepliesReceived;

    public DeviceCapabilities Capabilities => inner.Capabilities;

    public int Receive(Span<PacketBuf> burst)
    {
        int n = inner.Receive(burst);
        for (int i = 0; i < n; i++)
        {
            switch (Op(burst[i].Data))
            {
                case 1: RequestsReceived++; break;
                case 2: RepliesReceived++; break;
            }
        }
        return n;
    }

    public int Allocate(Span<PacketBuf> burst) => inner.Allocate(burst);

    public int Transmit(ReadOnlySpan<PacketBuf> burst)
    {
        // Look before handing over: once the device took a buffer it may already be reused.
        Span<int> ops = stackalloc int[burst.Length];
        for (int i = 0; i < burst.Length; i++) ops[i] = Op(burst[i].Data);
        int n = inner.Transmit(burst);
        for (int i = 0; i < n; i++)
        {
            switch (ops[i])
            {
                case 1: RequestsSent++; break;
                case 2: RepliesSent++; break;
            }
        }
        return n;
    }

    public void Free(ref PacketBuf packet) => inner.Free(ref packet);

    private static int Op(Span<byte> f) =>
        f.Length >= 14 + 28 && BinaryPrimitives.ReadUInt16BigEndian(f[12..]) == 0x0806 ? BinaryPrimitives.ReadUInt16BigEndian(f[20..]) : 0;

    public override string ToString() =>
        $"ARP requests sent {RequestsSent}, replies sent {RepliesSent}, requests received {RequestsReceived}, replies received {RepliesReceived}";
}

/// <summary>A theory skipped, with the reason, when DPDK is not installed or the process is not root.</summary>
public sealed class DpdkTheoryAttribute : TheoryAttribute
{
    public DpdkTheoryAttribute()
    {
        if (DpdkTestEnv.SkipReason is string reason) Skip = reason;
    }
}

/// <summary>The long profile (USERTCP_LONG_TESTS=1) of the interop tests.</summary>
public sealed class LongDpdkFactAttribute : FactAttribute
{
    public LongDpdkFactAttribute()
    {
        if (Environment.GetEnvironmentVariable("USERTCP_LONG_TESTS") != "1") Skip = "long profile: set USERTCP_LONG_TESTS=1";
        else if (DpdkTestEnv.SkipReason is string reason) Skip = reason;
    }
}
