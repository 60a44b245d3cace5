using System;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Engines;
using BenchmarkDotNet.Jobs;

namespace UserTcp.Bench.Harness;

/// <summary>
/// The job for the per-operation benchmarks: BenchmarkDotNet's ShortRun (one launch, 3 warm-up iterations) with 10
/// measured iterations instead of 3, because the 2-vCPU machine these run on is shared and a 3-sample error bar is
/// mostly noise. Adds the median and an operations-per-second column, and the memory diagnoser (target: 0 B/op on
/// the data path).
/// </summary>
public sealed class BenchConfig : ManualConfig
{
    public BenchConfig()
    {
        AddJob(WithClock(Job.ShortRun.WithIterationCount(10), "Short10"));
        AddColumn(StatisticColumn.Median, StatisticColumn.OperationsPerSecond);
        AddDiagnoser(MemoryDiagnoser.Default);
    }

    /// <summary>Thread CPU time unless the environment variable BENCH_WALLCLOCK is set (see
    /// <see cref="ThreadCpuClock"/> for why).</summary>
    internal static Job WithClock(Job job, string id) => Environment.GetEnvironmentVariable("BENCH_WALLCLOCK") is null
        ? job.WithClock(ThreadCpuClock.Instance).WithId(id + "-cpu")
        : job.WithId(id + "-wall");
}

/// <summary>The pure-ACK job: a fixed number of invocations per iteration (each iteration's setup queues exactly
/// that many ACKs' worth of data), no pilot stage, 30 iterations.</summary>
public sealed class AckBenchConfig : ManualConfig
{
    public AckBenchConfig()
    {
        AddJob(BenchConfig.WithClock(Job.Default.WithStrategy(RunStrategy.Monitoring).WithLaunchCount(1).WithWarmupCount(3)
            .WithIterationCount(30).WithInvocationCount(UserTcp.Bench.Benchmarks.TcpAckBenchmarks.AcksPerIteration), "Ack30"));
        AddColumn(StatisticColumn.Median, StatisticColumn.OperationsPerSecond);
        AddDiagnoser(MemoryDiagnoser.Default);
    }
}
