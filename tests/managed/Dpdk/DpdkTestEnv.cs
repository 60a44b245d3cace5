using System;
using System.Diagnostics;
using System.IO;
using System.Runtime.InteropServices;
using System.Threading;
using UserTcp.Stack.Dpdk;
using Xunit;

namespace UserTcp.Tests.Dpdk;

/// <summary>
/// What the DPDK tests need: DPDK 22.11 installed, the glue built (built here from stack/Dpdk/glue.c if missing),
/// root (namespaces, af_packet). A test is skipped, with the reason, only when DPDK itself is not installed; any other
/// problem fails it.
/// </summary>
internal static class DpdkTestEnv
{
    private static readonly Lazy<string?> s_skipReason = new(ComputeSkipReason);
    private static readonly Lazy<string> s_gluePath = new(BuildGlue);

    public static string? SkipReason => s_skipReason.Value;

    public static string RepoRoot
    {
        get
        {
            string? dir = AppContext.BaseDirectory;
            while (dir != null && !File.Exists(Path.Combine(dir, "Interpose.sln"))) dir = Path.GetDirectoryName(dir);
            return dir ?? throw new InvalidOperationException("repository root (Interpose.sln) not found above " + AppContext.BaseDirectory);
        }
    }

    /// <summary>The EAL configuration every DPDK test in this process shares (the EAL starts once per process).</summary>
    public static DpdkEalConfig Eal => new()
    {
        GluePath = s_gluePath.Value,
        MemoryMb = 256,
        Hugepages = DpdkHugepages.Auto,
        Warn = _ => { }, // the no-huge fallback is expected on CI machines
    };

    private static string? ComputeSkipReason()
    {
        // Kept loaded (not dlclose'd): DPDK libraries register themselves in constructors and are not meant to be
        // unloaded and loaded again; the glue loads the same library anyway.
        if (!NativeLibrary.TryLoad("librte_eal.so.23", out _))
            return "DPDK 22.11 is not installed (librte_eal.so.23 not found): apt-get install dpdk libdpdk-dev";
        // Not root is not a reason to skip: the tests then fail, saying what was refused (CI runs them as root).
        return null;
    }

    private static string BuildGlue()
    {
        string root = RepoRoot;
        string glue = Path.Combine(root, "build", "libusertcp-dpdk.so");
        // Always run make: it rebuilds only when glue.c changed, and a stale glue would fail the ABI check.
        var psi = new ProcessStartInfo("make", ["-s", "-f", "stack/Dpdk/dpdk.mk", "BUILD=build"])
        {
            WorkingDirectory = root,
            RedirectStandardError = true,
            RedirectStandardOutput = true,
        };
        using Process p = Process.Start(psi)!;
        string err = p.StandardError.ReadToEnd() + p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0 && !File.Exists(glue))
            throw new InvalidOperationException($"building the DPDK glue failed (needs libdpdk-dev, pkg-config, gcc): {err}");
        return glue;
    }

    private static int s_unique;
    public static string Unique(string stem) => $"{stem}{Environment.ProcessId % 100000}x{Interlocked.Increment(ref s_unique)}";

    /// <summary>Runs a command, returns (exit code, stdout+stderr).</summary>
    public static (int Code, string Output) Run(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file, args) { RedirectStandardError = true, RedirectStandardOutput = true };
        using Process p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        string output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, output + stderr.Result);
    }
}

/// <summary>A fact that is skipped, with the reason, when DPDK is not installed.</summary>
public sealed class DpdkFactAttribute : FactAttribute
{
    public DpdkFactAttribute()
    {
        if (DpdkTestEnv.SkipReason is string reason) Skip = reason;
    }
}

/// <summary>DPDK tests share one EAL per process and its memory; they must not run concurrently.</summary>
[CollectionDefinition("Dpdk", DisableParallelization = true)]
public sealed class DpdkCollection { }
