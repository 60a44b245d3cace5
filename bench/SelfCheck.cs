using System;
using System.Diagnostics;
using UserTcp.Bench.Benchmarks;

namespace UserTcp.Bench;

/// <summary>
/// <c>selfcheck</c>: runs each benchmark's setup (which validates that the intended path is exercised) and its body
/// for a fixed amount of work, reporting a rough time per operation and the bytes allocated on this thread. Fails
/// (exit 1) if a steady-state data-path benchmark allocates. A smoke test for the benchmarks, not a measurement.
/// </summary>
internal static class SelfCheck
{
    public static int Run()
    {
        int failures = 0;
        foreach (bool offload in new[] { false, true })
        {
            var b = new TcpReceiveBenchmarks { ChecksumOffload = offload };
            b.Setup();
            failures += Measure($"receive (offload={offload})", 20_000 / TcpReceiveBenchmarks.Batch, TcpReceiveBenchmarks.Batch, () => b.ReceiveInOrder(), mustNotAllocate: true);
            b.Cleanup();
        }
        foreach (int w in new[] { 1448, 32 * 1448 })
        {
            var b = new TcpSendBenchmarks { WriteSize = w };
            b.Setup();
            failures += Measure($"send (write={w})", 20_000 / TcpSendBenchmarks.Batch, TcpSendBenchmarks.Batch, () => b.SendAndAck(), mustNotAllocate: true);
            b.Cleanup();
        }
        {
            var b = new TcpAckBenchmarks();
            b.Setup();
            for (int round = 0; round < 3; round++)
            {
                b.QueueData();
                failures += Measure($"ack (round {round})", TcpAckBenchmarks.AcksPerIteration, 1, b.ProcessAck, mustNotAllocate: round > 0, warm: false);
                b.Check();
            }
            b.Cleanup();
        }
        foreach (TcpConnectBenchmarks.TimeWaitMode m in Enum.GetValues<TcpConnectBenchmarks.TimeWaitMode>())
        {
            var b = new TcpConnectBenchmarks { TimeWait = m };
            b.Setup();
            failures += Measure($"open+close ({m})", 2_000, 1, b.OpenClose, mustNotAllocate: false);
            b.Cleanup();
        }
        {
            var b = new NetStackConnectBenchmarks();
            b.Setup();
            failures += Measure("netstack open+close", 2_000, 1, b.OpenClose, mustNotAllocate: false);
            b.Cleanup();
        }
        Console.WriteLine(failures == 0 ? "selfcheck: ok" : $"selfcheck: {failures} failure(s)");
        return failures == 0 ? 0 : 1;
    }

    private static int Measure(string name, int calls, int opsPerCall, Action body, bool mustNotAllocate, bool warm = true)
    {
        if (warm) for (int i = 0; i < calls; i++) body(); // JIT tiering and steady state
        var sw = new Stopwatch(); // allocated before the allocation counter is read
        long alloc0 = GC.GetAllocatedBytesForCurrentThread();
        sw.Start();
        for (int i = 0; i < calls; i++) body();
        sw.Stop();
        long alloc = GC.GetAllocatedBytesForCurrentThread() - alloc0;
        long ops = (long)calls * opsPerCall;
        bool bad = mustNotAllocate && alloc != 0;
        Console.WriteLine($"{name,-28} {sw.Elapsed.TotalMilliseconds * 1e6 / ops,8:F0} ns/op (rough, wall clock)  {(double)alloc / ops,8:F1} B/op ({alloc} B in total){(bad ? "  <-- allocates" : "")}");
        return bad ? 1 : 0;
    }
}
