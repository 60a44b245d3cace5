using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Runtime.InteropServices;

namespace UserTcp.Stack.Dpdk;

/// <summary>A DPDK failure with the errno DPDK reported (0 when there is none, e.g. a missing library).</summary>
public sealed class DpdkException(string message, int errno = 0) : Exception(message)
{
    public int Errno { get; } = errno;
}

/// <summary>How the EAL gets its memory.</summary>
public enum DpdkHugepages
{
    /// <summary>Use hugepages when enough are free, otherwise fall back to <c>--no-huge</c> with a warning.</summary>
    Auto,
    /// <summary>Use hugepages; initialisation fails if there are not enough.</summary>
    Required,
    /// <summary>Always <c>--no-huge</c> (ordinary 4 KiB pages: packet rates about 3x lower).</summary>
    Never,
}

/// <summary>Process-wide EAL settings. See docs/dpdk.md for the environment variables that fill it.</summary>
public sealed record DpdkEalConfig
{
    /// <summary>Devices created at EAL start (<c>--vdev</c>). Usually empty: <see cref="DpdkPort.Open"/> hot-plugs
    /// the device it is asked for.</summary>
    public IReadOnlyList<string> Vdevs { get; init; } = [];
    /// <summary>PCI addresses to probe (<c>-a</c>). Empty means <c>--no-pci</c>.</summary>
    public IReadOnlyList<string> PciDevices { get; init; } = [];
    /// <summary>CPU list for the EAL main lcore, e.g. "0-3" or "2". Null: every CPU the process may run on, so the
    /// EAL's pinning does not narrow anything.</summary>
    public string? Cpus { get; init; }
    /// <summary>Memory the EAL reserves (<c>-m</c>), in MiB.</summary>
    public int MemoryMb { get; init; } = 128;
    public DpdkHugepages Hugepages { get; init; } = DpdkHugepages.Auto;
    /// <summary>Null: "usertcp&lt;pid&gt;", unique per process so independent processes never share EAL state.</summary>
    public string? FilePrefix { get; init; }
    /// <summary>EAL log level (<c>--log-level</c>), e.g. "*:warning", "pmd.net.memif:debug".</summary>
    public string LogLevel { get; init; } = "*:warning";
    /// <summary>Appended verbatim after everything else (e.g. from USERTCP_DPDK_ARGS).</summary>
    public IReadOnlyList<string> ExtraArgs { get; init; } = [];
    /// <summary>Path of libusertcp-dpdk.so; null searches next to this library, then the linker path.</summary>
    public string? GluePath { get; init; }
    /// <summary>Where warnings go (the hugepage fallback). Null writes them to stderr.</summary>
    public Action<string>? Warn { get; init; }
}

/// <summary>
/// The DPDK Environment Abstraction Layer, initialised at most once per process (a DPDK rule: rte_eal_init cannot run
/// twice, not even after rte_eal_cleanup). The first successful configuration wins; a failed initialisation is
/// remembered and reported again to later callers.
/// </summary>
public static unsafe class DpdkEal
{
    private static readonly object s_lock = new();
    private static bool s_initialized;
    private static string? s_error;
    private static int s_errno;

    public static bool IsInitialized => s_initialized;
    /// <summary>The arguments rte_eal_init received (for diagnostics).</summary>
    public static IReadOnlyList<string> Arguments { get; private set; } = [];
    /// <summary>True when the EAL runs on ordinary pages (<c>--no-huge</c>).</summary>
    public static bool NoHuge { get; private set; }

    /// <summary>Initialises the EAL if it is not yet; throws <see cref="DpdkException"/> with the reason if it cannot.</summary>
    public static void Initialize(DpdkEalConfig config)
    {
        if (!TryInitialize(config, out string error, out int errno)) throw new DpdkException(error, errno);
    }

    public static bool TryInitialize(DpdkEalConfig config, out string error) => TryInitialize(config, out error, out _);

    private static bool TryInitialize(DpdkEalConfig config, out string error, out int errno)
    {
        lock (s_lock)
        {
            if (s_initialized) { error = ""; errno = 0; return true; }
            if (s_error != null) { error = s_error; errno = s_errno; return false; }
            if (!DpdkNative.TryLoad(config.GluePath, out error))
            {
                // Not remembered: a later call may name another glue path.
                errno = 0;
                return false;
            }

            List<string> args;
            try
            {
                args = BuildArguments(config, out bool noHuge);
                NoHuge = noHuge;
            }
            catch (DpdkException e)
            {
                error = e.Message; errno = 0;
                return false;
            }

            int rc = CallEalInit(args);
            Arguments = args;
            if (rc < 0)
            {
                s_errno = -rc;
                s_error = $"rte_eal_init failed: {DpdkNative.Describe(rc)}; arguments: {string.Join(' ', args)}. " +
                          "DPDK allows one initialisation per process, so DPDK is unavailable in this process.";
                error = s_error; errno = s_errno;
                return false;
            }
            s_initialized = true;
            error = ""; errno = 0;
            return true;
        }
    }

    private static int CallEalInit(List<string> args)
    {
        // rte_eal_init keeps pointers into argv (e.g. for --file-prefix), so the strings are never freed.
        byte** argv = (byte**)NativeMemory.AllocZeroed((nuint)(args.Count + 1), (nuint)sizeof(byte*));
        for (int i = 0; i < args.Count; i++) argv[i] = DpdkNative.Utf8(args[i]);
        return DpdkNative.EalInit(args.Count, argv);
    }

    /// <summary>The rte_eal_init argument list for a configuration (public for tests and diagnostics).</summary>
    public static List<string> BuildArguments(DpdkEalConfig config, out bool noHuge)
    {
        var args = new List<string> { "usertcp" };
        string cpus = config.Cpus ?? AllowedCpus();
        // lcore 0 may run on any of these CPUs: the EAL's affinity setting then changes nothing for the threads of
        // an application that initialised DPDK from one of its own threads (glue.c also restores it).
        args.Add($"--lcores=0@({cpus})");
        args.Add("--no-telemetry");
        args.Add($"--file-prefix={config.FilePrefix ?? "usertcp" + Environment.ProcessId.ToString(CultureInfo.InvariantCulture)}");
        args.Add("-m");
        args.Add(config.MemoryMb.ToString(CultureInfo.InvariantCulture));
        args.Add($"--log-level={config.LogLevel}");

        noHuge = config.Hugepages switch
        {
            DpdkHugepages.Never => true,
            DpdkHugepages.Required => false,
            _ => !HugepagesAvailable(config.MemoryMb, out _),
        };
        if (config.Hugepages == DpdkHugepages.Required && !HugepagesAvailable(config.MemoryMb, out string why))
            throw new DpdkException($"hugepages required but {why} (reserve some: scripts/testnet.sh up --hugepages N)");
        if (noHuge && config.Hugepages == DpdkHugepages.Auto)
        {
            HugepagesAvailable(config.MemoryMb, out string why2);
            (config.Warn ?? (m => Console.Error.WriteLine("usertcp-dpdk: warning: " + m)))(
                $"{why2}; running DPDK with --no-huge (packet rates about 3x lower)");
        }
        if (noHuge)
        {
            // --no-huge implies legacy memory, which --in-memory rejects; --no-shconf keeps it free of /run/dpdk files.
            // The EAL backs that memory with one memfd; --single-file-segments makes it the segment list's file, which
            // memif's zero-copy mode shares with its peer (without it the PMD refuses zero-copy=yes).
            args.Add("--no-huge");
            args.Add("--no-shconf");
            args.Add("--single-file-segments");
        }
        else
        {
            // --in-memory: no /run/dpdk lock files, no multi-process channel, nothing left behind after a crash.
            args.Add("--in-memory");
            args.Add("--single-file-segments");
        }

        if (config.PciDevices.Count == 0) args.Add("--no-pci");
        foreach (string pci in config.PciDevices) { args.Add("-a"); args.Add(pci); }
        foreach (string vdev in config.Vdevs) args.Add($"--vdev={vdev}");
        args.AddRange(config.ExtraArgs);
        return args;
    }

    /// <summary>Whether free hugepages cover <paramref name="memoryMb"/>; <paramref name="why"/> says what is short.</summary>
    public static bool HugepagesAvailable(int memoryMb, out string why)
    {
        long free = 0, sizeKb = 0;
        try
        {
            foreach (string line in File.ReadLines("/proc/meminfo"))
            {
                if (line.StartsWith("HugePages_Free:", StringComparison.Ordinal)) free = ParseLong(line);
                else if (line.StartsWith("Hugepagesize:", StringComparison.Ordinal)) sizeKb = ParseLong(line);
            }
        }
        catch (IOException e)
        {
            why = $"cannot read /proc/meminfo ({e.Message})";
            return false;
        }
        long freeMb = free * sizeKb / 1024;
        if (freeMb < memoryMb)
        {
            why = $"only {freeMb} MiB of hugepages are free ({free} x {sizeKb} kB), {memoryMb} MiB wanted";
            return false;
        }
        why = "";
        return true;
    }

    private static long ParseLong(string line)
    {
        foreach (string part in line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            if (long.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out long v)) return v;
        return 0;
    }

    /// <summary>The CPUs this process may run on, as the kernel prints them ("0-3,6"), which is also the EAL's
    /// cpu-list syntax.</summary>
    private static string AllowedCpus()
    {
        try
        {
            foreach (string line in File.ReadLines("/proc/self/status"))
                if (line.StartsWith("Cpus_allowed_list:", StringComparison.Ordinal))
                    return line["Cpus_allowed_list:".Length..].Trim();
        }
        catch (IOException) { }
        return Environment.ProcessorCount > 1 ? $"0-{Environment.ProcessorCount - 1}" : "0";
    }

    /// <summary>Gives the calling thread a DPDK lcore id so mempool per-lcore caches serve it (faster alloc/free).
    /// Call on the thread that polls a device; returns the lcore id.</summary>
    public static int RegisterCurrentThread()
    {
        if (!s_initialized) throw new InvalidOperationException("DPDK EAL is not initialised");
        int rc = DpdkNative.ThreadRegister();
        if (rc < 0) throw new DpdkException($"rte_thread_register failed: {DpdkNative.Describe(rc)}", -rc);
        return rc;
    }

    public static void UnregisterCurrentThread()
    {
        if (s_initialized) DpdkNative.ThreadUnregister();
    }
}
