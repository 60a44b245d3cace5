using System;
using System.Collections.Generic;
using System.Globalization;

namespace UserTcp.Stack.Dpdk;

/// <summary>
/// Reads the DPDK configuration from USERTCP_DEV and USERTCP_DPDK_* variables (docs/dpdk.md lists them). The caller
/// passes the lookup (<c>Environment.GetEnvironmentVariable</c> in production, a dictionary in tests), so this stays
/// free of I/O. Unknown values are errors, not silently ignored.
/// </summary>
public static class DpdkSettings
{
    /// <summary>All variable names read, for documentation and diagnostics.</summary>
    public static readonly string[] Names =
    [
        "USERTCP_DEV", "USERTCP_DPDK_NETNS", "USERTCP_DPDK_QUEUES", "USERTCP_DPDK_RX_DESC",
        "USERTCP_DPDK_TX_DESC", "USERTCP_DPDK_MTU", "USERTCP_DPDK_PROMISC", "USERTCP_DPDK_BURST", "USERTCP_DPDK_POOL",
        "USERTCP_DPDK_OFFLOAD", "USERTCP_DPDK_CPUS", "USERTCP_DPDK_MEMORY_MB", "USERTCP_DPDK_HUGEPAGES",
        "USERTCP_DPDK_PCI", "USERTCP_DPDK_LOG_LEVEL", "USERTCP_DPDK_FILE_PREFIX", "USERTCP_DPDK_ARGS", "USERTCP_DPDK_GLUE",
    ];

    /// <summary>
    /// Builds the EAL and port configuration. Returns false with <paramref name="error"/> naming the variable when
    /// a value is malformed or no device is configured (USERTCP_DEV).
    /// </summary>
    public static bool TryRead(Func<string, string?> get, out DpdkEalConfig eal, out DpdkPortConfig port, out string error)
    {
        eal = new DpdkEalConfig();
        port = null!;
        error = "";
        string? S(string name) => get(name) is { Length: > 0 } v ? v.Trim() : null;

        string? device = S("USERTCP_DEV");
        if (device == null)
        {
            error = "no DPDK device configured: set USERTCP_DEV, e.g. net_af_packet0,iface=eth1";
            return false;
        }

        string problem = "";
        int queues = 1, rxd = 1024, txd = 1024, mtu = 0, burst = 32, pool = 0, memory = 128;
        bool promisc = false, offload = true;
        if (!Int("USERTCP_DPDK_QUEUES", ref queues, 1, 64) || !Int("USERTCP_DPDK_RX_DESC", ref rxd, 32, 16384)
            || !Int("USERTCP_DPDK_TX_DESC", ref txd, 32, 16384) || !Int("USERTCP_DPDK_MTU", ref mtu, 0, 9000)
            || !Int("USERTCP_DPDK_BURST", ref burst, 1, 512) || !Int("USERTCP_DPDK_POOL", ref pool, 0, 1 << 24)
            || !Int("USERTCP_DPDK_MEMORY_MB", ref memory, 16, 1 << 20)
            || !Bool("USERTCP_DPDK_PROMISC", ref promisc) || !Bool("USERTCP_DPDK_OFFLOAD", ref offload))
        {
            error = problem;
            return false;
        }

        DpdkHugepages huge = DpdkHugepages.Auto;
        switch (S("USERTCP_DPDK_HUGEPAGES")?.ToLowerInvariant())
        {
            case null or "auto": break;
            case "required" or "yes" or "1": huge = DpdkHugepages.Required; break;
            case "never" or "no" or "0": huge = DpdkHugepages.Never; break;
            case string other: error = $"USERTCP_DPDK_HUGEPAGES='{other}': expected auto, required or never"; return false;
        }

        eal = new DpdkEalConfig
        {
            Cpus = S("USERTCP_DPDK_CPUS"),
            MemoryMb = memory,
            Hugepages = huge,
            PciDevices = List(S("USERTCP_DPDK_PCI"), ','),
            LogLevel = S("USERTCP_DPDK_LOG_LEVEL") ?? "*:warning",
            FilePrefix = S("USERTCP_DPDK_FILE_PREFIX"),
            ExtraArgs = List(S("USERTCP_DPDK_ARGS"), ' '),
            GluePath = S("USERTCP_DPDK_GLUE"),
        };
        port = new DpdkPortConfig
        {
            Device = device,
            NetworkNamespace = S("USERTCP_DPDK_NETNS"),
            RxQueues = queues,
            TxQueues = queues,
            RxDescriptors = rxd,
            TxDescriptors = txd,
            Mtu = mtu,
            Promiscuous = promisc,
            MaxBurst = burst,
            PoolSize = pool,
            ChecksumOffload = offload,
        };
        return true;

        bool Int(string name, ref int value, int min, int max)
        {
            string? v = S(name);
            if (v == null) return true;
            if (!int.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out int parsed) || parsed < min || parsed > max)
            {
                problem = $"{name}='{v}': expected an integer in {min}..{max}";
                return false;
            }
            value = parsed;
            return true;
        }

        bool Bool(string name, ref bool value)
        {
            switch (S(name)?.ToLowerInvariant())
            {
                case null: return true;
                case "1" or "yes" or "true" or "on": value = true; return true;
                case "0" or "no" or "false" or "off": value = false; return true;
                case string other: problem = $"{name}='{other}': expected 0 or 1"; return false;
            }
        }
    }

    private static IReadOnlyList<string> List(string? value, char separator) =>
        value == null ? [] : value.Split(separator, StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
}
