// DPDK packet-rate benchmark, managed side: the `fwd` and `loop` roles of bench/dpdk/bench.c through DpdkDevice.
//   fwd      memif client against the C `peer`: rx burst -> swap the Ethernet addresses -> tx burst back.
//   loop     one net_ring port looped onto itself: allocate 32 -> write 64-byte frames -> tx -> rx -> swap -> free.
//   rawloop  the same loop calling the glue's functions directly instead of DpdkDevice.
// Rates per wall-clock second and per CPU second of the polling thread. See docs/benchmarks.md.
//
// Run: dotnet run -c Release --project bench/dpdk -- fwd|loop|rawloop [--socket /name.sock] [--seconds N] [--cpu N]
//      [--no-huge] [--glue build/libusertcp-dpdk.so] [--dev DEVARGS]
using System;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Threading;
using UserTcp.Stack.Dpdk;
using UserTcp.Stack.Phy;

if (args.Length < 1 || args[0] is not ("fwd" or "loop" or "rawloop" or "pair" or "rawpair"))
{
    Console.Error.WriteLine("usage: DpdkBench fwd|loop|rawloop|pair|rawpair [--socket /name.sock] [--seconds N] [--cpu N] [--no-huge] [--glue PATH] [--dev DEVARGS]");
    return 2;
}
string mode = args[0];
string sock = "/usertcp-bench.sock";
int seconds = 10, cpu = 0;
bool noHuge = false;
string? glue = null, devArgs = null;
for (int i = 1; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--socket": sock = args[++i]; break;
        case "--seconds": seconds = int.Parse(args[++i]); break;
        case "--cpu": cpu = int.Parse(args[++i]); break;
        case "--no-huge": noHuge = true; break;
        case "--glue": glue = args[++i]; break;
        case "--dev": devArgs = args[++i]; break;
        default: Console.Error.WriteLine($"unknown option {args[i]}"); return 2;
    }
}

var eal = new DpdkEalConfig
{
    Cpus = cpu.ToString(),
    MemoryMb = 256,
    Hugepages = noHuge ? DpdkHugepages.Never : DpdkHugepages.Required,
    GluePath = glue,
};
// pair: the peer (memif server) in this process too, driven by the same thread (see bench.c, run_pair).
bool pairMode = mode is "pair" or "rawpair";
DpdkPort? peerPort = pairMode
    ? DpdkPort.Open(eal, new DpdkPortConfig { Device = $"net_memif0,role=server,socket={sock},mac=02:00:c6:12:01:01", PoolSize = 8191 })
    : null;
DpdkDevice dev = DpdkDevice.Open(eal, new DpdkPortConfig
{
    Device = pairMode ? $"net_memif1,role=client,socket={sock},mac=02:00:c6:12:01:02"
        : devArgs ?? (mode == "fwd" ? $"net_memif0,role=client,socket={sock}" : "net_ring0"),
    PoolSize = 8191,
});
bool stop = false;
Console.CancelKeyPress += (_, e) => { e.Cancel = true; Volatile.Write(ref stop, true); };
while (!(dev.Port.LinkUp && (peerPort?.LinkUp ?? true)) && !Volatile.Read(ref stop)) Thread.Sleep(10);
// The C benchmark's thread stays pinned to --cpu by the EAL; DpdkEal restores the thread's affinity after init
// (docs/dpdk.md), so pin here for the same conditions.
Loops.PinToCpu(cpu);
string role = mode + " (managed)";
Console.Error.WriteLine($"{role}: link up, polling thread is lcore {DpdkEal.RegisterCurrentThread()}");

var loops = new Loops(dev, glue, peerPort?.Devices[0]);
long hz = Stopwatch.Frequency, start = Stopwatch.GetTimestamp(), last = start;
long count = 0, countLast = 0;
double sum = 0, cpuSum = 0, cpuLast = Loops.ThreadCpuSeconds();
int intervals = 0;
while (!Volatile.Read(ref stop))
{
    if (mode == "fwd" && !dev.Port.LinkUp) break; // the peer is gone (see bench.c)
    count += mode switch
    {
        "loop" => loops.DeviceLoop(1000),
        "rawloop" => loops.RawLoop(1000),
        "pair" => loops.Pair(1000, raw: false),
        "rawpair" => loops.Pair(1000, raw: true),
        _ => loops.Forward(1000),
    };
    long now = Stopwatch.GetTimestamp();
    if (now - last >= hz)
    {
        double cpuNow = Loops.ThreadCpuSeconds();
        double mpps = (count - countLast) / ((double)(now - last) / hz) / 1e6;
        double cpuMpps = (count - countLast) / (cpuNow - cpuLast) / 1e6;
        Console.WriteLine($"{role}: {mpps:F2} Mpps, {cpuMpps:F2} Mpps per CPU second ({(mode == "fwd" ? "forwarded" : "looped")})");
        if (intervals++ > 0) { sum += mpps; cpuSum += cpuMpps; } // the first second includes JIT and warm-up
        cpuLast = cpuNow;
        countLast = count;
        last = now;
        if (now - start >= seconds * hz) break;
    }
}
if (intervals > 1)
    Console.WriteLine($"{role}: average {sum / (intervals - 1):F2} Mpps, {cpuSum / (intervals - 1):F2} Mpps per CPU second, over {intervals - 1} s");
if (pairMode)
    Console.WriteLine(FormattableString.Invariant($"{role}: timer overhead {loops.TimerOverheadNs:F1} ns, {count} packets forwarded"));
loops.PrintBlocks(role);
// Client first, then the server once it saw the link go down (memif close race, docs/dpdk.md).
dev.Dispose();
if (peerPort != null)
{
    for (int i = 0; i < 200 && peerPort.LinkUp; i++) Thread.Sleep(10);
    Thread.Sleep(20);
    peerPort.Dispose();
}
return 0;

/// <summary>The measured loops, each in its own small method so the JIT keeps its state in registers (one large
/// Main spills everything to the stack).</summary>
unsafe sealed class Loops
{
    private readonly DpdkDevice _dev;
    private readonly PacketBuf* _tx = (PacketBuf*)NativeMemory.AllocZeroed(32, (nuint)sizeof(PacketBuf));
    private readonly PacketBuf* _rx = (PacketBuf*)NativeMemory.AllocZeroed(32, (nuint)sizeof(PacketBuf));
    private readonly nint* _m = (nint*)NativeMemory.AllocZeroed(32, (nuint)sizeof(nint));
    private readonly byte* _frame = (byte*)NativeMemory.AllocZeroed(64);
    private readonly ushort _port;
    private readonly nint _pool;
    private readonly delegate* unmanaged[Cdecl, SuppressGCTransition]<ushort, ushort, nint*, ushort, ushort> _rxBurst, _txBurst;
    private readonly delegate* unmanaged[Cdecl, SuppressGCTransition]<nint, nint*, uint, uint> _alloc;
    private readonly delegate* unmanaged[Cdecl, SuppressGCTransition]<nint*, uint, void> _freeBulk;

    // Block timing, as in bench.c: blocks of Block iterations; a block in which every iteration moved a full burst
    // both ways is timed (Stopwatch: CLOCK_MONOTONIC, ns) and its ns per packet kept. The low percentiles of many
    // short blocks measure the code rather than the scheduler.
    private const int Block = 8, Burst = 32, MaxSamples = 1 << 20;
    private readonly float[] _samples = new float[MaxSamples];
    private int _nsamples, _blockIter;
    private bool _blockFull = true;
    private long _blockStart = Stopwatch.GetTimestamp();
    private readonly double _nsPerTick = 1e9 / Stopwatch.Frequency;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void EndIteration(bool full)
    {
        _blockFull &= full;
        if (++_blockIter < Block) return;
        long t = Stopwatch.GetTimestamp();
        if (_blockFull && _nsamples < MaxSamples)
            _samples[_nsamples++] = (float)((t - _blockStart) * _nsPerTick / (Block * Burst));
        _blockStart = t;
        _blockIter = 0;
        _blockFull = true;
    }

    public void PrintBlocks(string role)
    {
        if (_nsamples == 0) { Console.WriteLine($"{role}: blocks 0"); return; }
        Array.Sort(_samples, 0, _nsamples);
        Console.WriteLine(FormattableString.Invariant(
            $"{role}: blocks {_nsamples}, ns per packet min {_samples[0]:F3} p10 {_samples[_nsamples / 10]:F3} p50 {_samples[_nsamples / 2]:F3}"));
    }

    private readonly DpdkDevice? _peer;
    private readonly PacketBuf* _gen = (PacketBuf*)NativeMemory.AllocZeroed(32, (nuint)sizeof(PacketBuf));
    public readonly double TimerOverheadNs;
    private double _pairNs;

    public Loops(DpdkDevice dev, string? glue, DpdkDevice? peer)
    {
        _dev = dev;
        _peer = peer;
        TimerOverheadNs = MeasureTimerOverhead();
        new Span<byte>(_frame, 6).Fill(0x02);
        new Span<byte>(_frame + 6, 6).Fill(0x04);
        _frame[12] = 0x88; _frame[13] = 0xb5;
        // rawloop: the glue's own exports (the library is already loaded by the device) and the port's pool, which
        // is internal to the stack; a benchmark may reach for it.
        nint lib = NativeLibrary.Load(glue ?? System.IO.Path.Combine(AppContext.BaseDirectory, "libusertcp-dpdk.so"));
        _rxBurst = (delegate* unmanaged[Cdecl, SuppressGCTransition]<ushort, ushort, nint*, ushort, ushort>)NativeLibrary.GetExport(lib, "utd_rx_burst");
        _txBurst = (delegate* unmanaged[Cdecl, SuppressGCTransition]<ushort, ushort, nint*, ushort, ushort>)NativeLibrary.GetExport(lib, "utd_tx_burst");
        _alloc = (delegate* unmanaged[Cdecl, SuppressGCTransition]<nint, nint*, uint, uint>)NativeLibrary.GetExport(lib, "utd_alloc");
        _freeBulk = (delegate* unmanaged[Cdecl, SuppressGCTransition]<nint*, uint, void>)NativeLibrary.GetExport(lib, "utd_free_bulk");
        // (Reflection: under NativeAOT the property may be trimmed away; rawloop then refuses to run.)
        try { _pool = (nint)typeof(DpdkPort).GetProperty("Pool", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance)!.GetValue(dev.Port)!; }
        catch (Exception) { _pool = 0; }
        _port = dev.Port.PortId;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void SwapMacs(byte* p)
    {
        uint d0 = *(uint*)p; ushort d1 = *(ushort*)(p + 4);
        *(uint*)p = *(uint*)(p + 6); *(ushort*)(p + 4) = *(ushort*)(p + 10);
        *(uint*)(p + 6) = d0; *(ushort*)(p + 10) = d1;
    }

    /// <summary>loop through DpdkDevice: Allocate, write, Transmit, Receive, swap, FreeBurst.</summary>
    public long DeviceLoop(int iterations)
    {
        DpdkDevice dev = _dev;
        var tx = new Span<PacketBuf>(_tx, 32);
        var rx = new Span<PacketBuf>(_rx, 32);
        byte* frame = _frame;
        long count = 0;
        for (int it = 0; it < iterations; it++)
        {
            int a = dev.Allocate(tx);
            for (int i = 0; i < a; i++)
            {
                ref PacketBuf b = ref tx[i];
                Unsafe.CopyBlockUnaligned(b.Buffer + b.Offset, frame, 64);
                b.Length = 64;
            }
            int sent = dev.Transmit(tx[..a]);
            if (sent < a) dev.FreeBurst(tx[sent..a]);
            int r = dev.Receive(rx);
            for (int i = 0; i < r; i++) SwapMacs(rx[i].Buffer + rx[i].Offset);
            count += r;
            dev.FreeBurst(rx[..r]);
            EndIteration(a == Burst && sent == Burst && r == Burst);
        }
        return count;
    }

    /// <summary>fwd through DpdkDevice: Receive, swap, Transmit back.</summary>
    public long Forward(int iterations)
    {
        DpdkDevice dev = _dev;
        var rx = new Span<PacketBuf>(_rx, 32);
        long count = 0;
        for (int it = 0; it < iterations; it++)
        {
            int r = dev.Receive(rx);
            int s = 0;
            if (r > 0)
            {
                for (int i = 0; i < r; i++) SwapMacs(rx[i].Buffer + rx[i].Offset);
                s = dev.Transmit(rx[..r]);
                count += s;
                if (s < r) dev.FreeBurst(rx[s..r]);
            }
            EndIteration(r == Burst && s == Burst);
        }
        return count;
    }

    /// <summary>Median cost of one Stopwatch.GetTimestamp (subtracted from each timed step in pair mode).</summary>
    private double MeasureTimerOverhead()
    {
        var d = new double[10001];
        for (int i = 0; i < d.Length; i++)
        {
            long a = Stopwatch.GetTimestamp(), b = Stopwatch.GetTimestamp();
            d[i] = (b - a) * _nsPerTick;
        }
        Array.Sort(d);
        return d[d.Length / 2];
    }

    /// <summary>pair: the peer (untimed) transmits 32 frames, the device under test receives, swaps and transmits
    /// them back (timed), the peer receives and frees them. Same steps as run_pair in bench.c.</summary>
    public long Pair(int iterations, bool raw)
    {
        DpdkDevice dev = _dev, peer = _peer!;
        var gen = new Span<PacketBuf>(_gen, 32);
        var rx = new Span<PacketBuf>(_rx, 32);
        byte* frame = _frame;
        long count = 0;
        double fwdNs = _pairNs; // a block may span two calls
        for (int it = 0; it < iterations; it++)
        {
            int a = peer.Allocate(gen);
            for (int i = 0; i < a; i++)
            {
                ref PacketBuf b = ref gen[i];
                Unsafe.CopyBlockUnaligned(b.Buffer + b.Offset, frame, 64);
                b.Length = 64;
            }
            int g = peer.Transmit(gen[..a]);
            if (g < a) peer.FreeBurst(gen[g..a]);

            long t0 = Stopwatch.GetTimestamp();
            int r;
            int s = raw ? ForwardStepRaw(out r) : ForwardStep(dev, rx, out r);
            long t1 = Stopwatch.GetTimestamp();
            count += s;
            fwdNs += (t1 - t0) * _nsPerTick;
            _blockFull &= r == Burst && s == Burst;

            int back = peer.Receive(gen);
            peer.FreeBurst(gen[..back]);

            if (++_blockIter == Block)
            {
                if (_blockFull && _nsamples < MaxSamples)
                    _samples[_nsamples++] = (float)((fwdNs - Block * TimerOverheadNs) / (Block * Burst));
                fwdNs = 0;
                _blockIter = 0;
                _blockFull = true;
            }
        }
        _pairNs = fwdNs;
        return count;
    }

    /// <summary>The forwarder's step of <see cref="Pair"/>, a method of its own so callgrind can count its
    /// instructions (--toggle-collect=DpdkBench_Loops__ForwardStep in the NativeAOT build; bench.c: forward_step).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static int ForwardStep(DpdkDevice dev, Span<PacketBuf> rx, out int r)
    {
        r = dev.Receive(rx);
        int s = 0;
        if (r > 0)
        {
            for (int i = 0; i < r; i++) SwapMacs(rx[i].Buffer + rx[i].Offset);
            s = dev.Transmit(rx[..r]);
            if (s < r) dev.FreeBurst(rx[s..r]);
        }
        return s;
    }

    /// <summary>rawpair: <see cref="ForwardStep"/> calling the glue directly (no DpdkDevice, no PacketBuf), to
    /// tell the device layer's cost from the rest.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private int ForwardStepRaw(out int r)
    {
        nint* m = _m;
        ushort port = _port;
        ushort n = _rxBurst(port, 0, m, 32);
        for (int k = 0; k < n; k++)
        {
            byte* mb = (byte*)m[k];
            SwapMacs(*(byte**)mb + *(ushort*)(mb + 16));
        }
        ushort s = n > 0 ? _txBurst(port, 0, m, n) : (ushort)0;
        if (s < n) _freeBulk(m + s, (uint)(n - s));
        r = n;
        return s;
    }

    /// <summary>loop calling the glue directly (no DpdkDevice, no PacketBuf), with the mbuf fields read and written
    /// at their offsets like the C loop does.</summary>
    public long RawLoop(int iterations)
    {
        if (_pool == 0) throw new InvalidOperationException("rawloop: the port's pool is not reachable in this build");
        nint* m = _m;
        byte* frame = _frame;
        ushort port = _port;
        long count = 0;
        for (int it = 0; it < iterations; it++)
        {
            uint n = _alloc(_pool, m, 32);
            for (uint k = 0; k < n; k++)
            {
                byte* mb = (byte*)m[k];
                Unsafe.CopyBlockUnaligned(*(byte**)mb + *(ushort*)(mb + 16), frame, 64);
                *(ushort*)(mb + 40) = 64;
                *(uint*)(mb + 36) = 64;
            }
            ushort s = _txBurst(port, 0, m, (ushort)n);
            if (s < n) _freeBulk(m + s, n - s);
            ushort r = _rxBurst(port, 0, m, 32);
            for (int k = 0; k < r; k++)
            {
                byte* mb = (byte*)m[k];
                SwapMacs(*(byte**)mb + *(ushort*)(mb + 16));
            }
            count += r;
            _freeBulk(m, r);
            EndIteration(n == Burst && s == Burst && r == Burst);
        }
        return count;
    }

    public static double ThreadCpuSeconds()
    {
        long* ts = stackalloc long[2];
        clock_gettime(3 /* CLOCK_THREAD_CPUTIME_ID */, ts);
        return ts[0] + ts[1] / 1e9;
    }

    [DllImport("libc")]
    private static extern int clock_gettime(int clock, long* ts);

    [DllImport("libc", SetLastError = true)]
    private static extern int sched_setaffinity(int pid, nuint size, ulong* mask);

    public static void PinToCpu(int cpu)
    {
        ulong* mask = stackalloc ulong[16];
        new Span<ulong>(mask, 16).Clear();
        mask[cpu / 64] = 1UL << (cpu % 64);
        if (sched_setaffinity(0, 16 * sizeof(ulong), mask) != 0)
            throw new InvalidOperationException($"sched_setaffinity({cpu}) failed: errno {Marshal.GetLastPInvokeError()}");
    }
}
