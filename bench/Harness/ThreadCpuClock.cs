using System;
using System.Runtime.InteropServices;
using Perfolizer.Horology;

namespace UserTcp.Bench.Harness;

/// <summary>
/// A BenchmarkDotNet clock that reads the calling thread's CPU time (Linux <c>clock_gettime(CLOCK_THREAD_CPUTIME_ID)</c>,
/// nanoseconds). The project's VM is oversubscribed (two vCPUs, a dozen runnable processes from other sessions), so a
/// wall-clock iteration mostly measures how long the benchmark waited for a CPU; thread CPU time leaves the waiting
/// out. What it cannot remove is the cache and TLB damage other processes do between time slices, so these numbers
/// are still upper bounds of what an idle machine gives. BenchmarkDotNet runs the workload on one thread, which is
/// the thread this clock measures.
/// </summary>
public sealed class ThreadCpuClock : IClock
{
    public static readonly ThreadCpuClock Instance = new();
    private const int ClockThreadCpuTimeId = 3;

    [StructLayout(LayoutKind.Sequential)]
    private struct Timespec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    [DllImport("libc", EntryPoint = "clock_gettime")]
    private static extern int ClockGetTime(int clockId, out Timespec ts);

    public string Title => "ThreadCpu";
    public bool IsAvailable => OperatingSystem.IsLinux() && ClockGetTime(ClockThreadCpuTimeId, out _) == 0;
    public Frequency Frequency => Frequency.GHz;

    public long GetTimestamp()
    {
        ClockGetTime(ClockThreadCpuTimeId, out Timespec ts);
        return ts.Seconds * 1_000_000_000L + ts.Nanoseconds;
    }
}
