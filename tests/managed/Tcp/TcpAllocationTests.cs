using System;
using System.Runtime.CompilerServices;
using UserTcp.Stack;
using UserTcp.Stack.Phy;
using UserTcp.Stack.Tcp;
using UserTcp.Stack.Wire;
using Xunit;
using Xunit.Abstractions;

namespace UserTcp.Tests.Tcp;

/// <summary>
/// Steady-state cost checks. Allocation is measured with GC.GetAllocatedBytesForCurrentThread around a loop that
/// moves megabytes (thousands of segments, their ACKs and delayed-ACK timers) through the full stack; the loop
/// itself allocates nothing (pre-built delegates and buffers), so any byte counted is the stack's.
/// </summary>
public class TcpAllocationTests
{
    private readonly ITestOutputHelper _out;
    public TcpAllocationTests(ITestOutputHelper output) => _out = output;

    private sealed class Pump
    {
        public NetStack From = null!, To = null!;
        public int Fh, Th;
        public byte[] Data = new byte[16 * 1024];
        public byte[] Buf = new byte[64 * 1024];
        public long Target, Sent, Received;
        public bool Step()
        {
            while (Sent < Target)
            {
                int n = From.Send(Fh, Data, out _);
                if (n == 0) break;
                Sent += n;
            }
            while (true)
            {
                int n = To.Receive(Th, Buf, false, out _);
                if (n <= 0) break;
                Received += n;
            }
            return Received >= Target;
        }
    }

    [Fact]
    public void SteadyStateDataPathAllocatesNothing()
    {
        using var p = new StackPair(new FaultConfig { DelayUs = 100 });
        var (l, c, s) = NetStackTests.Connect(p);
        var pump = new Pump { From = p.A, To = p.B, Fh = c, Th = s };
        Func<bool> step = pump.Step;
        // Warm up: JIT, ring blocks, ARP, pools, slow start.
        pump.Target = 4 << 20;
        Assert.True(p.RunUntil(step, 1_000_000_000));
        // Measure both directions of a bulk transfer (data one way, ACKs the other).
        pump.Target += 16 << 20;
        long segBefore = p.A.Counters.TcpSegmentsOut + p.B.Counters.TcpSegmentsOut;
        long before = GC.GetAllocatedBytesForCurrentThread();
        long ticks = System.Diagnostics.Stopwatch.GetTimestamp();
        bool done = p.RunUntil(step, 1_000_000_000);
        double seconds = System.Diagnostics.Stopwatch.GetElapsedTime(ticks).TotalSeconds;
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        _out.WriteLine($"16 MiB through both stacks (one thread, both ends, link copies) in {seconds * 1000:F0} ms wall");
        long segments = p.A.Counters.TcpSegmentsOut + p.B.Counters.TcpSegmentsOut - segBefore;
        Assert.True(done);
        _out.WriteLine($"{segments} segments, {allocated} bytes allocated");
        Assert.True(segments > 10_000, $"only {segments} segments");
        Assert.Equal(0, allocated);
        NetStackTests.CloseAndCheckLeaks(p, (p.A, c), (p.B, s), (p.B, l));
    }

    [Fact]
    public void IdleConnectionIsSmall()
    {
        using var net = new TcpTestNet();
        var (c, s) = TcpLayerTransferTests.Connect(net);
        // Move some data so buffers are taken and given back.
        var data = new byte[100_000];
        TcpLayerTransferTests.Transfer(net, c, s, data, 10_000_000, closeAfter: false);
        net.RunFor(1_000_000); // the last (delayed) ACK reaches the sender, which then frees its send block
        Assert.False(c.HoldsBuffers);
        Assert.False(s.HoldsBuffers);

        // Method 1 (honest measure of what a connection costs): allocate N complete passive connections through the
        // handshake and divide the bytes this thread allocated by N. This includes the TcpConnection (its rings,
        // congestion state and RTT estimator are inline) and the amortised growth of the 4-tuple table and timer heap; it excludes pooled ring blocks
        // (none are held while idle).
        var cfg = new TcpConfig { Seed = 9, ExpectedConnections = 4096 };
        using var net2 = new TcpTestNet(3, cfg, cfg, packets: 8192);
        TcpListener l = net2.B.Layer.Listen(80, 4096, out _)!;
        const int n = 1000;
        var conns = new TcpConnection[2 * n];
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < n; i++) conns[i] = net2.A.Layer.Connect(0, net2.B.Address, 80, net2.NowUs, out _)!;
        net2.RunUntil(() => l.PendingAccepts == n, 10_000_000);
        long total = GC.GetAllocatedBytesForCurrentThread() - before;
        for (int i = 0; i < n; i++) conns[n + i] = l.Accept()!;
        Assert.All(conns, x => Assert.Equal(TcpState.Established, x.State));
        Assert.All(conns, x => Assert.False(x.HoldsBuffers));
        double perConnection = (double)total / (2 * n);
        _out.WriteLine($"allocated per established connection (both ends counted): {perConnection:F0} bytes");
        // Method 2: the object sizes alone (managed heap footprint, no table amortisation).
        long objects = ObjectSize(typeof(TcpConnection));
        _out.WriteLine($"object size: TcpConnection = {objects} bytes");
        // Issue 6 target: <= 512 B per idle established connection for the whole process; the connection's share is
        // 288 B (session 4 packed the socket booleans, the MSS pair and the last readiness: 424 B; session 5 moved loss
        // recovery, reassembly, keepalive, closing and accept-queue state into TcpConnection.RareState, held only
        // while used: 352 B; session 6 dropped the rings' pool reference, moved CUBIC's epoch state into a side
        // object taken at the first congestion event and packed the RTT estimator and the timer slot), and a field
        // that pushes it past that size fails here.
        Assert.True(objects <= 288, $"objects {objects}");
        Assert.True(perConnection < 1024, $"per connection {perConnection}");
    }

    /// <summary>Managed size of one instance: object header and method table pointer plus the field block as the
    /// runtime laid it out (RuntimeHelpers.GetRawData span from the first field to the end).</summary>
    private static long ObjectSize(Type t)
    {
        // Base instance size is available through the method table: header (8) + MT (8) + fields, rounded to 8.
        int raw = Marshal_SizeOfFields(t);
        return 16 + ((raw + 7) & ~7);
    }

    private static int Marshal_SizeOfFields(Type t)
    {
        // The runtime exposes the managed field block size through the type handle's base size.
        unsafe
        {
            IntPtr mt = t.TypeHandle.Value;
            // MethodTable layout: uint flags (4), uint BaseSize (4) — BaseSize includes header and MT pointer.
            int baseSize = *(int*)(mt + 4);
            return baseSize - 16;
        }
    }
}
