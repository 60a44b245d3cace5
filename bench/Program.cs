using BenchmarkDotNet.Running;

/// <summary>
/// Stack microbenchmarks (BenchmarkDotNet) and the idle-connection memory measurement. See docs/benchmarks.md.
///   dotnet run -c Release --project bench -- --filter '*'            all BenchmarkDotNet benchmarks
///   dotnet run -c Release --project bench -- idle-memory 100000      bytes per idle connection
///   dotnet run -c Release --project bench -- selfcheck               runs every benchmark body once, quickly
/// </summary>
public static class Program
{
    public static int Main(string[] args)
    {
        if (args.Length > 0 && args[0] == "idle-memory") return UserTcp.Bench.IdleMemory.Run(args[1..]);
        if (args.Length > 0 && args[0] == "selfcheck") return UserTcp.Bench.SelfCheck.Run();
        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
        return 0;
    }
}
