using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
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
        AddJob(Job.ShortRun.WithIterationCount(10).WithId("Short10"));
        AddColumn(StatisticColumn.Median, StatisticColumn.OperationsPerSecond);
        AddDiagnoser(MemoryDiagnoser.Default);
    }
}
