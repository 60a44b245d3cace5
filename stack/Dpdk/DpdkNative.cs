using System;
using System.Collections.Generic;
using System.IO;
using System.Runtime.InteropServices;
using UserTcp.Stack.Phy;

namespace UserTcp.Stack.Dpdk;

/// <summary>
/// The glue library (libusertcp-dpdk.so, built from glue.c) loaded at run time, and the function pointers into it.
/// Nothing links DPDK statically: a process that never creates a DPDK device never loads DPDK. Setup functions are
/// plain unmanaged calls; the per-burst ones (rx, tx, alloc, free) are <c>SuppressGCTransition</c> calls, which is
/// safe because they never block and never call back into managed code.
/// </summary>
#pragma warning disable IL3000 // Assembly.Location is empty under NativeAOT; both uses handle that.
internal static unsafe class DpdkNative
{
    public const string GlueFileName = "libusertcp-dpdk.so";
    // Must equal UTD_ABI_VERSION in glue.c.
    public const int AbiVersion = 5;

    // Offload bits shared with glue.c (UTD_OFF_*).
    public const byte OffRxIpv4 = 1, OffRxTcp = 2, OffTxIpv4 = 4, OffTxTcp = 8;

    private static readonly object s_lock = new();
    private static bool s_loaded;
    private static string? s_loadError;

    public static delegate* unmanaged[Cdecl]<int> AbiVersionFn;
    public static delegate* unmanaged[Cdecl]<long*, int, int> MbufLayout;
    public static delegate* unmanaged[Cdecl]<long*, int, int> PacketLayout;
    public static delegate* unmanaged[Cdecl]<int> Errno;
    public static delegate* unmanaged[Cdecl]<int, byte*> StrError;
    public static delegate* unmanaged[Cdecl]<int, byte**, int> EalInit;
    public static delegate* unmanaged[Cdecl]<int> EalCleanup;
    public static delegate* unmanaged[Cdecl]<int> ThreadRegister;
    public static delegate* unmanaged[Cdecl]<void> ThreadUnregister;
    /// <summary>utd_lcore_stats: threads the glue gave an lcore id on their first receive/allocation, threads that
    /// found none left, and ids given back (at a thread's exit, after its caches were flushed).</summary>
    public static delegate* unmanaged[Cdecl]<uint*, uint*, uint*, void> LcoreStats;
    public static delegate* unmanaged[Cdecl]<byte*, int> NetnsEnter;
    public static delegate* unmanaged[Cdecl]<int, int> NetnsLeave;
    public static delegate* unmanaged[Cdecl]<byte*, ushort*, int> PortOpen;
    public static delegate* unmanaged[Cdecl]<ushort, PortConf*, nint*, PortInfo*, int> PortSetup;
    public static delegate* unmanaged[Cdecl]<ushort, int> PortClose;
    public static delegate* unmanaged[Cdecl]<ushort, PortStats*, int> PortStatsFn;
    public static delegate* unmanaged[Cdecl]<ushort, uint*, int> PortLink;
    public static delegate* unmanaged[Cdecl]<byte*, uint, uint, ushort, int, nint> PoolCreate;
    public static delegate* unmanaged[Cdecl]<nint, void> PoolFree;
    public static delegate* unmanaged[Cdecl]<nint, uint> PoolAvail;
    public static delegate* unmanaged[Cdecl]<nint, uint> PoolInUse;
    public static delegate* unmanaged[Cdecl]<nint, uint> PoolSharedAvail;
    // Hot path.
    public static delegate* unmanaged[Cdecl, SuppressGCTransition]<ushort, ushort, nint*, ushort, ushort> RxBurst;
    public static delegate* unmanaged[Cdecl, SuppressGCTransition]<ushort, ushort, nint*, ushort, ushort> TxBurst;
    public static delegate* unmanaged[Cdecl, SuppressGCTransition]<nint, nint*, uint, uint> Alloc;
    public static delegate* unmanaged[Cdecl, SuppressGCTransition]<nint*, uint, void> FreeBulk;
    public static delegate* unmanaged[Cdecl, SuppressGCTransition]<nint, void> Free;
    // Hot path, converting between mbufs and PacketBufs in the same C loop (glue.c, "The packet functions").
    public static delegate* unmanaged[Cdecl, SuppressGCTransition]<ushort, ushort, PacketBuf*, ushort, nint*, uint*, ushort> RxPackets;
    public static delegate* unmanaged[Cdecl, SuppressGCTransition]<nint, PacketBuf*, uint, nint*, uint> AllocPackets;
    public static delegate* unmanaged[Cdecl, SuppressGCTransition]<ushort, ushort, PacketBuf*, ushort, nint*, int, int> TxPackets;
    public static delegate* unmanaged[Cdecl, SuppressGCTransition]<PacketBuf*, uint, nint*, void> FreePackets;
    /// <summary>utd_memif_rx_arm / utd_memif_rx_disarm: memif receive interrupts (DpdkDevice.ArmRxInterrupt). Once
    /// per sleep; they may read or write the queue's eventfd (non-blocking), so they keep the GC transition.</summary>
    public static delegate* unmanaged[Cdecl]<ushort, ushort, int> MemifRxArm;
    public static delegate* unmanaged[Cdecl]<ushort, ushort, int, int> MemifRxDisarm;
    /// <summary>utd_tx_packets: a packet needs its transmit checksum flags set or cleared first.</summary>
    public const int TxNeedsOffload = -1000000;

    /// <summary>Mirror of struct utd_port_conf.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct PortConf
    {
        public ushort RxQueues, TxQueues, RxDescriptors, TxDescriptors, Mtu;
        public byte Promiscuous, Offloads;
    }

    /// <summary>Mirror of struct utd_port_info.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct PortInfo
    {
        public fixed byte Mac[6];
        public ushort Mtu;
        public byte Offloads, Rss;
        public ushort MaxRxQueues, MaxTxQueues, RxDescriptors, TxDescriptors;
        public int Socket;
        public fixed byte Driver[32];
    }

    /// <summary>Mirror of struct utd_port_stats.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct PortStats
    {
        public ulong IPackets, OPackets, IBytes, OBytes, IMissed, IErrors, OErrors, RxNoMbuf;
    }

    /// <summary>Loads the glue once per process. Returns false with a message saying what is missing.</summary>
    public static bool TryLoad(string? configuredPath, out string error)
    {
        lock (s_lock)
        {
            if (s_loaded) { error = ""; return true; }
            if (s_loadError != null) { error = s_loadError; return false; }

            var tried = new List<string>();
            nint handle = 0;
            foreach (string candidate in Candidates(configuredPath))
            {
                try
                {
                    handle = NativeLibrary.Load(candidate);
                    break;
                }
                catch (Exception e) when (e is DllNotFoundException or BadImageFormatException)
                {
                    // The message carries dlerror(): "librte_eal.so.23: cannot open shared object file" when DPDK
                    // itself is missing, "No such file" when the glue is.
                    tried.Add($"{candidate}: {e.Message}");
                }
            }
            if (handle == 0)
            {
                s_loadError = $"cannot load the DPDK glue {GlueFileName} (is DPDK 22.11 installed — apt-get install dpdk — " +
                              $"and was the glue built with 'make -f stack/Dpdk/dpdk.mk'?). Tried: {string.Join("; ", tried)}";
                error = s_loadError;
                return false;
            }
            try
            {
                Bind(handle);
            }
            catch (EntryPointNotFoundException e)
            {
                s_loadError = $"{GlueFileName} is missing an export ({e.Message}); rebuild it from this source tree";
                error = s_loadError;
                return false;
            }
            int abi = AbiVersionFn();
            if (abi != AbiVersion)
            {
                s_loadError = $"{GlueFileName} has ABI version {abi}, this build expects {AbiVersion}; rebuild the glue";
                error = s_loadError;
                return false;
            }
            s_loaded = true;
            error = "";
            return true;
        }
    }

    private static IEnumerable<string> Candidates(string? configuredPath)
    {
        if (!string.IsNullOrEmpty(configuredPath)) { yield return configuredPath; yield break; }
        string? env = Environment.GetEnvironmentVariable("USERTCP_DPDK_GLUE");
        if (!string.IsNullOrEmpty(env)) { yield return env; yield break; }
        // Next to the code that uses it: the managed assembly under JIT, libusertcp.so's directory under NativeAOT
        // (AppContext.BaseDirectory is the executable's directory there, so try the preloaded library's too).
        string asmDir = Path.GetDirectoryName(typeof(DpdkNative).Assembly.Location) ?? "";
        if (asmDir.Length > 0) yield return Path.Combine(asmDir, GlueFileName);
        string? self = SharedObjectDirectory();
        if (self != null) yield return Path.Combine(self, GlueFileName);
        yield return Path.Combine(AppContext.BaseDirectory, GlueFileName);
        yield return GlueFileName; // the dynamic linker's search path (LD_LIBRARY_PATH, ld.so.cache)
    }

    /// <summary>Directory of the shared object holding this code when it is NativeAOT-compiled into one
    /// (libusertcp.so), found through /proc/self/maps; null under JIT.</summary>
    private static string? SharedObjectDirectory()
    {
        if (!string.IsNullOrEmpty(typeof(DpdkNative).Assembly.Location)) return null;
        try
        {
            foreach (string line in File.ReadLines("/proc/self/maps"))
            {
                int slash = line.IndexOf('/');
                if (slash < 0) continue;
                string path = line[slash..];
                if (path.EndsWith("/libusertcp.so", StringComparison.Ordinal)) return Path.GetDirectoryName(path);
            }
        }
        catch (IOException) { }
        return null;
    }

    private static void Bind(nint h)
    {
        nint E(string name) => NativeLibrary.GetExport(h, name);
        AbiVersionFn = (delegate* unmanaged[Cdecl]<int>)E("utd_abi_version");
        MbufLayout = (delegate* unmanaged[Cdecl]<long*, int, int>)E("utd_mbuf_layout");
        PacketLayout = (delegate* unmanaged[Cdecl]<long*, int, int>)E("utd_packet_layout");
        Errno = (delegate* unmanaged[Cdecl]<int>)E("utd_errno");
        StrError = (delegate* unmanaged[Cdecl]<int, byte*>)E("utd_strerror");
        EalInit = (delegate* unmanaged[Cdecl]<int, byte**, int>)E("utd_eal_init");
        EalCleanup = (delegate* unmanaged[Cdecl]<int>)E("utd_eal_cleanup");
        ThreadRegister = (delegate* unmanaged[Cdecl]<int>)E("utd_thread_register");
        ThreadUnregister = (delegate* unmanaged[Cdecl]<void>)E("utd_thread_unregister");
        LcoreStats = (delegate* unmanaged[Cdecl]<uint*, uint*, uint*, void>)E("utd_lcore_stats");
        NetnsEnter = (delegate* unmanaged[Cdecl]<byte*, int>)E("utd_netns_enter");
        NetnsLeave = (delegate* unmanaged[Cdecl]<int, int>)E("utd_netns_leave");
        PortOpen = (delegate* unmanaged[Cdecl]<byte*, ushort*, int>)E("utd_port_open");
        PortSetup = (delegate* unmanaged[Cdecl]<ushort, PortConf*, nint*, PortInfo*, int>)E("utd_port_setup");
        PortClose = (delegate* unmanaged[Cdecl]<ushort, int>)E("utd_port_close");
        PortStatsFn = (delegate* unmanaged[Cdecl]<ushort, PortStats*, int>)E("utd_port_stats");
        PortLink = (delegate* unmanaged[Cdecl]<ushort, uint*, int>)E("utd_port_link");
        PoolCreate = (delegate* unmanaged[Cdecl]<byte*, uint, uint, ushort, int, nint>)E("utd_pool_create");
        PoolFree = (delegate* unmanaged[Cdecl]<nint, void>)E("utd_pool_free");
        PoolAvail = (delegate* unmanaged[Cdecl]<nint, uint>)E("utd_pool_avail");
        PoolInUse = (delegate* unmanaged[Cdecl]<nint, uint>)E("utd_pool_in_use");
        PoolSharedAvail = (delegate* unmanaged[Cdecl]<nint, uint>)E("utd_pool_shared_avail");
        RxBurst = (delegate* unmanaged[Cdecl, SuppressGCTransition]<ushort, ushort, nint*, ushort, ushort>)E("utd_rx_burst");
        TxBurst = (delegate* unmanaged[Cdecl, SuppressGCTransition]<ushort, ushort, nint*, ushort, ushort>)E("utd_tx_burst");
        Alloc = (delegate* unmanaged[Cdecl, SuppressGCTransition]<nint, nint*, uint, uint>)E("utd_alloc");
        FreeBulk = (delegate* unmanaged[Cdecl, SuppressGCTransition]<nint*, uint, void>)E("utd_free_bulk");
        Free = (delegate* unmanaged[Cdecl, SuppressGCTransition]<nint, void>)E("utd_free");
        RxPackets = (delegate* unmanaged[Cdecl, SuppressGCTransition]<ushort, ushort, PacketBuf*, ushort, nint*, uint*, ushort>)E("utd_rx_packets");
        AllocPackets = (delegate* unmanaged[Cdecl, SuppressGCTransition]<nint, PacketBuf*, uint, nint*, uint>)E("utd_alloc_packets");
        TxPackets = (delegate* unmanaged[Cdecl, SuppressGCTransition]<ushort, ushort, PacketBuf*, ushort, nint*, int, int>)E("utd_tx_packets");
        FreePackets = (delegate* unmanaged[Cdecl, SuppressGCTransition]<PacketBuf*, uint, nint*, void>)E("utd_free_packets");
        MemifRxArm = (delegate* unmanaged[Cdecl]<ushort, ushort, int>)E("utd_memif_rx_arm");
        MemifRxDisarm = (delegate* unmanaged[Cdecl]<ushort, ushort, int, int>)E("utd_memif_rx_disarm");
    }

    /// <summary>Text for a negative errno / rte_errno value.</summary>
    public static string Describe(int rc)
    {
        int e = rc < 0 ? -rc : rc;
        string text = StrError != null ? Marshal.PtrToStringUTF8((nint)StrError(e)) ?? "" : "";
        return text.Length > 0 ? $"{text} (errno {e})" : $"errno {e}";
    }

    /// <summary>A NUL-terminated UTF-8 copy of <paramref name="s"/> in unmanaged memory (free with NativeMemory.Free).</summary>
    public static byte* Utf8(string s)
    {
        int n = System.Text.Encoding.UTF8.GetByteCount(s);
        byte* p = (byte*)NativeMemory.Alloc((nuint)n + 1);
        System.Text.Encoding.UTF8.GetBytes(s, new Span<byte>(p, n));
        p[n] = 0;
        return p;
    }
}
