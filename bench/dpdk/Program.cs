// DPDK packet-rate benchmark, managed side: the `fwd` and `loop` roles of bench/dpdk/bench.c through DpdkDevice.
//   fwd   memif client against the C `peer`: rx burst -> swap the Ethernet addresses -> tx burst back.
//   loop  one net_ring port looped onto itself: allocate 32 -> write 64-byte frames -> tx -> rx -> swap -> free.
// Rates per wall-clock second and per CPU second of the polling thread. See docs/benchmarks.md.
//
// Run: dotnet run -c Release --project bench/dpdk -- fwd|loop [--socket /name.sock] [--seconds N] [--cpu N] [--no-huge]
//      [--glue build/libusertcp-dpdk.so]
using System;
using System.Diagnostics;
using System.Threading;
using UserTcp.Stack.Dpdk;
using UserTcp.Stack.Phy;

unsafe
{
    if (args.Length < 1 || args[0] is not ("fwd" or "loop"))
    {
        Console.Error.WriteLine("usage: DpdkBench fwd|loop [--socket /name.sock] [--seconds N] [--cpu N] [--no-huge] [--glue PATH]");
        return 2;
    }
    string sock = "/usertcp-bench.sock";
    int seconds = 10, cpu = 0;
    bool noHuge = false;
    string? glue = null;
    for (int i = 1; i < args.Length; i++)
    {
        switch (args[i])
        {
            case "--socket": sock = args[++i]; break;
            case "--seconds": seconds = int.Parse(args[++i]); break;
            case "--cpu": cpu = int.Parse(args[++i]); break;
            case "--no-huge": noHuge = true; break;
            case "--glue": glue = args[++i]; break;
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
    using DpdkDevice dev = DpdkDevice.Open(eal, new DpdkPortConfig
    {
        Device = args[0] == "loop" ? "net_ring0" : $"net_memif0,role=client,socket={sock}",
        PoolSize = 8191,
    });
    bool stop = false;
    Console.CancelKeyPress += (_, e) => { e.Cancel = true; Volatile.Write(ref stop, true); };
    while (!dev.Port.LinkUp && !Volatile.Read(ref stop)) Thread.Sleep(10);
    string role = args[0] + " (managed)";
    bool loop = args[0] == "loop";
    Console.Error.WriteLine($"{role}: link up, polling thread is lcore {DpdkEal.RegisterCurrentThread()}");
    PacketBuf* tx = stackalloc PacketBuf[32];
    var txBurst = new Span<PacketBuf>(tx, 32);
    byte* frame = stackalloc byte[64];
    new Span<byte>(frame, 64).Clear();
    new Span<byte>(frame, 6).Fill(0x02);
    new Span<byte>(frame + 6, 6).Fill(0x04);
    frame[12] = 0x88; frame[13] = 0xb5;

    PacketBuf* rx = stackalloc PacketBuf[32];
    var burst = new Span<PacketBuf>(rx, 32);
    if (Environment.GetEnvironmentVariable("RAW") == "1")
    {
        nint lib = System.Runtime.InteropServices.NativeLibrary.Load(glue ?? "libusertcp-dpdk.so");
        var rxb = (delegate* unmanaged[Cdecl, SuppressGCTransition]<ushort, ushort, nint*, ushort, ushort>)System.Runtime.InteropServices.NativeLibrary.GetExport(lib, "utd_rx_burst");
        var txb = (delegate* unmanaged[Cdecl, SuppressGCTransition]<ushort, ushort, nint*, ushort, ushort>)System.Runtime.InteropServices.NativeLibrary.GetExport(lib, "utd_tx_burst");
        var alc = (delegate* unmanaged[Cdecl, SuppressGCTransition]<nint, nint*, uint, uint>)System.Runtime.InteropServices.NativeLibrary.GetExport(lib, "utd_alloc");
        var frb = (delegate* unmanaged[Cdecl, SuppressGCTransition]<nint*, uint, void>)System.Runtime.InteropServices.NativeLibrary.GetExport(lib, "utd_free_bulk");
        nint pool = (nint)typeof(DpdkPort).GetProperty("Pool", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance)!.GetValue(dev.Port)!;
        ushort port = dev.Port.PortId;
        nint* m = stackalloc nint[32];
        long cnt = 0; double t0 = ThreadCpuSeconds();
        while (ThreadCpuSeconds() - t0 < 3)
        {
            for (int it = 0; it < 1000; it++)
            {
                uint n = alc(pool, m, 32);
                for (uint k = 0; k < n; k++)
                {
                    byte* mb = (byte*)m[k];
                    byte* d = *(byte**)mb + *(ushort*)(mb + 16);
                    Buffer.MemoryCopy(frame, d, 64, 64);
                    *(ushort*)(mb + 40) = 64; *(uint*)(mb + 36) = 64;
                }
                ushort s = txb(port, 0, m, (ushort)n);
                if (s < n) frb(m + s, n - s);
                ushort r = rxb(port, 0, m, 32);
                for (int k = 0; k < r; k++)
                {
                    byte* mb = (byte*)m[k];
                    byte* p = *(byte**)mb + *(ushort*)(mb + 16);
                    uint d0 = *(uint*)p; ushort d1 = *(ushort*)(p + 4);
                    *(uint*)p = *(uint*)(p + 6); *(ushort*)(p + 4) = *(ushort*)(p + 10);
                    *(uint*)(p + 6) = d0; *(ushort*)(p + 10) = d1;
                }
                cnt += r;
                frb(m, r);
            }
        }
        Console.WriteLine($"raw managed loop: {cnt / (ThreadCpuSeconds() - t0) / 1e6:F2} Mpps per CPU second");
        return 0;
    }
    long hz = Stopwatch.Frequency, start = Stopwatch.GetTimestamp(), last = start;
    long fwd = 0, fwdLast = 0;
    double sum = 0, cpuSum = 0, cpuLast = ThreadCpuSeconds();
    int intervals = 0;
    while (!Volatile.Read(ref stop))
    {
        if (loop)
        {
            int a = dev.Allocate(txBurst);
            for (int i = 0; i < a; i++)
            {
                Buffer.MemoryCopy(frame, tx[i].Buffer + tx[i].Offset, 64, 64);
                tx[i].Length = 64;
            }
            int sent = a > 0 ? dev.Transmit(txBurst[..a]) : 0;
            if (sent < a) dev.FreeBurst(txBurst[sent..a]);
        }
        int r = dev.Receive(burst);
        for (int i = 0; i < r; i++)
        {
            // Swap destination and source MAC (the same header touch as the C loop).
            byte* p = rx[i].Buffer + rx[i].Offset;
            uint d0 = *(uint*)p; ushort d1 = *(ushort*)(p + 4);
            *(uint*)p = *(uint*)(p + 6); *(ushort*)(p + 4) = *(ushort*)(p + 10);
            *(uint*)(p + 6) = d0; *(ushort*)(p + 10) = d1;
        }
        if (loop)
        {
            fwd += r;
            dev.FreeBurst(burst[..r]);
        }
        else
        {
            int s = r > 0 ? dev.Transmit(burst[..r]) : 0;
            fwd += s;
            if (s < r) dev.FreeBurst(burst[s..r]);
        }

        long now = Stopwatch.GetTimestamp();
        if (now - last >= hz)
        {
            double cpuNow = ThreadCpuSeconds();
            double mpps = (fwd - fwdLast) / ((double)(now - last) / hz) / 1e6;
            double cpuMpps = (fwd - fwdLast) / (cpuNow - cpuLast) / 1e6;
            Console.WriteLine($"{role}: {mpps:F2} Mpps, {cpuMpps:F2} Mpps per CPU second ({(loop ? "looped" : "forwarded")})");
            if (intervals++ > 0) { sum += mpps; cpuSum += cpuMpps; } // the first second includes JIT and warm-up
            cpuLast = cpuNow;
            fwdLast = fwd;
            last = now;
            if (now - start >= seconds * hz) break;
        }
    }
    if (intervals > 1)
        Console.WriteLine($"{role}: average {sum / (intervals - 1):F2} Mpps, {cpuSum / (intervals - 1):F2} Mpps per CPU second, over {intervals - 1} s");
    return 0;
}

static unsafe double ThreadCpuSeconds()
{
    long* ts = stackalloc long[2];
    Native.clock_gettime(3 /* CLOCK_THREAD_CPUTIME_ID */, ts);
    return ts[0] + ts[1] / 1e9;
}

static unsafe partial class Native
{
    [System.Runtime.InteropServices.LibraryImport("libc")]
    internal static partial int clock_gettime(int clock, long* ts);
}
