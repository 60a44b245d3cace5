using System;
using System.IO;
using System.Runtime.InteropServices;
using System.Threading;
using UserTcp.Stack.Wire;

namespace UserTcp.Stack.Dpdk;

/// <summary>One DPDK ethernet port to open.</summary>
public sealed record DpdkPortConfig
{
    /// <summary>DPDK device arguments: a virtual device ("net_af_packet0,iface=ut-srv0,qpairs=1",
    /// "net_memif0,role=client,socket=/ut.sock") or a PCI address ("0000:00:05.0", which must also be listed in
    /// <see cref="DpdkEalConfig.PciDevices"/>). Virtual devices are probed on demand.</summary>
    public required string Device { get; init; }
    /// <summary>Network namespace to open the device in: a name under /run/netns or an absolute path. Matters for
    /// af_packet/af_xdp, which bind to an interface of the namespace they are opened in. Null: the caller's.</summary>
    public string? NetworkNamespace { get; init; }
    public int RxQueues { get; init; } = 1;
    public int TxQueues { get; init; } = 1;
    public int RxDescriptors { get; init; } = 1024;
    public int TxDescriptors { get; init; } = 1024;
    /// <summary>IP MTU to set; 0 keeps the device's.</summary>
    public int Mtu { get; init; }
    public bool Promiscuous { get; init; }
    /// <summary>Most packets per receive/transmit call (the stack's burst).</summary>
    public int MaxBurst { get; init; } = 32;
    /// <summary>Mbufs in the port's pool; 0 sizes it from the queues: 2 x (all descriptors) + 1024.</summary>
    public int PoolSize { get; init; }
    /// <summary>Per-lcore mempool cache (only threads with an lcore id use it, see
    /// <see cref="DpdkEal.RegisterCurrentThread"/>).</summary>
    public int PoolCacheSize { get; init; } = 256;
    /// <summary>Use checksum offloads when the device has them.</summary>
    public bool ChecksumOffload { get; init; } = true;
}

/// <summary>Traffic counters of a port as the driver reports them.</summary>
public readonly record struct DpdkPortStats(ulong RxPackets, ulong TxPackets, ulong RxBytes, ulong TxBytes,
    ulong RxMissed, ulong RxErrors, ulong TxErrors, ulong RxNoMbuf);

/// <summary>
/// An opened, started DPDK port with its mbuf pool and one <see cref="DpdkDevice"/> per queue pair. Dispose stops and
/// closes the port, detaches a virtual device and frees the pool: every mbuf handed out must have been freed or
/// transmitted by then (the devices must no longer be polled).
/// </summary>
public sealed unsafe class DpdkPort : IDisposable
{
    private static int s_poolCounter;
    // Probing, configuring and closing ports touch DPDK's device lists, which are not meant for concurrent
    // control-path calls; ports are opened and closed rarely, so one lock serialises all of it.
    private static readonly object s_controlLock = new();
    private readonly DpdkDevice[] _devices;
    private nint _pool;
    private bool _disposed;

    public ushort PortId { get; }
    public string DeviceArgs { get; }
    public string? NetworkNamespace { get; }
    public string Driver { get; }
    public MacAddress MacAddress { get; }
    /// <summary>IP MTU of the port.</summary>
    public int Mtu { get; }
    public bool Rss { get; }
    /// <summary>memif <c>trusted=1</c>: checksums neither computed nor verified on this link (see ParseMemif).</summary>
    public bool TrustedLink { get; }
    /// <summary>memif <c>rxwake=N</c>: the shortest sleep (µs) that arms the receive interrupt; -1: not given.</summary>
    public int RxWakeUs { get; }
    public int PoolSize { get; }
    public int RxDescriptors { get; }
    public int TxDescriptors { get; }
    internal byte Offloads { get; }
    internal nint Pool => _pool;

    /// <summary>The devices, one per queue pair (index = queue id).</summary>
    public ReadOnlySpan<DpdkDevice> Devices => _devices;

    private DpdkPort(ushort portId, DpdkPortConfig cfg, nint pool, int poolSize, in DpdkNative.PortInfo info, int mtu,
        bool trusted, int rxWakeUs)
    {
        TrustedLink = trusted;
        RxWakeUs = rxWakeUs;
        PortId = portId;
        DeviceArgs = cfg.Device;
        NetworkNamespace = cfg.NetworkNamespace;
        _pool = pool;
        PoolSize = poolSize;
        fixed (byte* mac = info.Mac) MacAddress = MacAddress.Read(new ReadOnlySpan<byte>(mac, 6));
        fixed (byte* drv = info.Driver) Driver = Marshal.PtrToStringUTF8((nint)drv) ?? "";
        Mtu = mtu > 0 ? mtu : info.Mtu;
        Rss = info.Rss != 0;
        Offloads = info.Offloads;
        RxDescriptors = info.RxDescriptors;
        TxDescriptors = info.TxDescriptors;
        int pairs = Math.Max(cfg.RxQueues, cfg.TxQueues);
        _devices = new DpdkDevice[pairs];
        for (int q = 0; q < pairs; q++)
            _devices[q] = new DpdkDevice(this, (ushort)q, q < cfg.RxQueues, q < cfg.TxQueues, cfg.MaxBurst);
    }

    /// <summary>Initialises the EAL if needed, then opens, configures and starts the port. Throws
    /// <see cref="DpdkException"/> with the reason on any failure, leaving nothing behind.</summary>
    public static DpdkPort Open(DpdkEalConfig eal, DpdkPortConfig cfg)
    {
        Validate(cfg);
        DpdkEal.Initialize(eal);

        int netnsFd = -1;
        if (cfg.NetworkNamespace != null)
        {
            string path = cfg.NetworkNamespace.StartsWith('/') ? cfg.NetworkNamespace : "/run/netns/" + cfg.NetworkNamespace;
            byte* p = DpdkNative.Utf8(path);
            netnsFd = DpdkNative.NetnsEnter(p);
            NativeMemory.Free(p);
            if (netnsFd < 0)
                throw new DpdkException($"cannot enter network namespace {path}: {DpdkNative.Describe(netnsFd)}", -netnsFd);
        }
        try
        {
            lock (s_controlLock) return OpenInCurrentNamespace(cfg);
        }
        finally
        {
            if (netnsFd >= 0) DpdkNative.NetnsLeave(netnsFd);
        }
    }

    private static void Validate(DpdkPortConfig cfg)
    {
        static void Check(bool ok, string what) { if (!ok) throw new ArgumentException(what); }
        Check(!string.IsNullOrWhiteSpace(cfg.Device), "DpdkPortConfig.Device is empty");
        Check(cfg.RxQueues is >= 1 and <= 64 && cfg.TxQueues is >= 1 and <= 64, "queue counts must be 1..64");
        Check(cfg.RxDescriptors is >= 32 and <= 16384 && cfg.TxDescriptors is >= 32 and <= 16384, "descriptor counts must be 32..16384");
        Check(cfg.Mtu == 0 || cfg.Mtu is >= 576 and <= 9000, "MTU must be 0 (keep) or 576..9000");
        Check(cfg.MaxBurst is >= 1 and <= 512, "MaxBurst must be 1..512");
        Check(cfg.PoolSize >= 0 && cfg.PoolCacheSize is >= 0 and <= 512, "bad pool size or cache size");
        ParseMemif(cfg.Device); // memif's arguments (ours and the PMD's) are checked before the EAL starts
    }

    /// <summary>Largest <c>mtu=</c> for memif: the frame (MTU + 14) plus the mbuf headroom must fit an mbuf's 16-bit
    /// buffer length, and memif's <c>bsize</c> is 16-bit too.</summary>
    public const int MaxMemifMtu = 65000;

    /// <summary>
    /// memif has no MTU of its own (the PMD has no mtu_set and reports 1500): its frames are bounded by its buffers
    /// (<c>bsize</c>, 2048 by default; a longer frame spans several descriptors and arrives as a multi-segment mbuf,
    /// which the device drops). <c>mtu=N</c> in the device arguments is ours, not the PMD's: it is taken out, the
    /// port reports MTU N (the stack's MSS follows: N − 40), <c>bsize</c> becomes <see cref="MemifBufferSize"/>
    /// unless given, and the pool's buffers hold a whole frame. Both ends of a link must use the same value (the
    /// client's <c>bsize</c> sizes the shared buffers; a receiver whose mbufs are smaller than the sender's frames
    /// would split them).
    /// <c>trusted=1</c> (also ours): both ends are usertcp processes on this host, and memory does not corrupt
    /// frames, so checksums are neither computed nor verified, as on Linux's loopback (CHECKSUM_UNNECESSARY): the
    /// device reports all four checksum offloads, sends what the stack leaves in the checksum fields (the
    /// pseudo-header sum), and marks every received frame's checksums good. Both ends must set it: a peer that
    /// verifies drops every segment (TcpBadChecksum).
    /// What <see cref="DpdkPort"/> reads from memif device arguments: <c>mtu=</c> and <c>trusted=</c> (ours,
    /// taken out), and of the PMD's own <c>role=</c>, <c>rsize=</c> (log2 of the ring's slots, 10 by default) and
    /// <c>zero-copy=</c>, which are checked here (the PMD reports a bad value only in its log) and passed on.
    /// Zero-copy (client role only: the PMD ignores it on a server) puts the client's own mbufs in the rings, so the
    /// peer copies straight into and out of them: one copy per frame instead of two. Its receive ring then holds one
    /// mbuf per slot and its transmitted mbufs stay referenced until the peer took them, so the pool grows by two
    /// rings' worth (<see cref="OpenInCurrentNamespace"/>).
    /// <c>rxwake=N</c> (also ours, taken out): a waiting process asks the peer to signal new frames (memif's receive
    /// interrupt, <see cref="DpdkDevice.ArmRxInterrupt"/>) only for sleeps of at least N µs; shorter sleeps end on
    /// their timer. -1 (not given): the engine's default.</summary>
    internal readonly record struct MemifOptions(string DeviceArgs, int Mtu, bool Trusted, bool ZeroCopyClient, int RingSlots,
        int RxWakeUs = -1);

    /// <summary>Reads memif device arguments (see <see cref="MemifOptions"/>); anything else is returned unchanged.
    /// Throws <see cref="ArgumentException"/> naming the bad argument.</summary>
    internal static MemifOptions ParseMemif(string device)
    {
        if (!device.StartsWith("net_memif", StringComparison.Ordinal)) return new MemifOptions(device, 0, false, false, 0);
        string[] parts = device.Split(',');
        int mtu = 0, log2Ring = 10, rxWake = -1;
        bool bsize = false, trusted = false, zeroCopy = false, client = false;
        var kept = new System.Collections.Generic.List<string>(parts.Length + 1);
        foreach (string part in parts)
        {
            if (part.StartsWith("mtu=", StringComparison.Ordinal))
            {
                if (!int.TryParse(part.AsSpan(4), System.Globalization.NumberStyles.None,
                        System.Globalization.CultureInfo.InvariantCulture, out mtu) || mtu < 576 || mtu > MaxMemifMtu)
                    throw new ArgumentException($"memif mtu= must be 576..{MaxMemifMtu}: '{part}'");
                continue;
            }
            if (part.StartsWith("rxwake=", StringComparison.Ordinal))
            {
                if (!int.TryParse(part.AsSpan(7), System.Globalization.NumberStyles.None,
                        System.Globalization.CultureInfo.InvariantCulture, out rxWake) || rxWake > 1_000_000)
                    throw new ArgumentException($"memif rxwake= (µs) must be 0..1000000: '{part}'");
                continue;
            }
            if (part.StartsWith("trusted=", StringComparison.Ordinal))
            {
                if (part != "trusted=0" && part != "trusted=1")
                    throw new ArgumentException($"memif trusted= must be 0 or 1: '{part}'");
                trusted = part == "trusted=1";
                continue;
            }
            if (part.StartsWith("zero-copy=", StringComparison.Ordinal))
            {
                if (part != "zero-copy=yes" && part != "zero-copy=no")
                    throw new ArgumentException($"memif zero-copy= must be yes or no: '{part}'");
                zeroCopy = part == "zero-copy=yes";
            }
            else if (part.StartsWith("rsize=", StringComparison.Ordinal))
            {
                if (!int.TryParse(part.AsSpan(6), System.Globalization.NumberStyles.None,
                        System.Globalization.CultureInfo.InvariantCulture, out log2Ring) || log2Ring < 1 || log2Ring > 14)
                    throw new ArgumentException($"memif rsize= (log2 of the ring's slots) must be 1..14: '{part}'");
            }
            else if (part.StartsWith("role=", StringComparison.Ordinal))
            {
                if (part != "role=client" && part != "role=server")
                    throw new ArgumentException($"memif role= must be client or server: '{part}'");
                client = part == "role=client";
            }
            bsize |= part.StartsWith("bsize=", StringComparison.Ordinal);
            kept.Add(part);
        }
        if (mtu != 0 && !bsize) kept.Add($"bsize={MemifBufferSize(mtu)}");
        return new MemifOptions(string.Join(',', kept), mtu, trusted, zeroCopy && client, 1 << log2Ring, rxWake);
    }

    /// <summary>memif buffer for <c>mtu=</c>: the frame with the same room as an mbuf's (VLAN tag, FCS), rounded up to
    /// 64, at least the PMD's default. Equal to the mbufs' data room, which keeps both of the PMD's copy loops on
    /// their one-descriptor-per-mbuf path.</summary>
    internal static int MemifBufferSize(int mtu) => Math.Max(2048, (mtu + 14 + 4 + 4 + 63) / 64 * 64);

    /// <summary>Mbufs in the port's pool, rounded to 2^n − 1 (what a mempool ring holds best). It holds every receive
    /// descriptor's mbuf plus those in flight on transmit and in the stack's hands. memif with a large <c>mtu=</c>:
    /// its receive descriptors hold no mbufs (the PMD copies out of the shared buffers) and its transmit frees each
    /// mbuf once copied, so the pool only covers what the stack holds; at 64 KiB a buffer the default count would need
    /// half a gigabyte. A memif zero-copy client: each receive ring slot holds one of our mbufs, and transmitted ones
    /// stay referenced until the peer has copied them out (at most a ring's worth).</summary>
    internal static int PoolSizeFor(DpdkPortConfig cfg, MemifOptions memif)
    {
        int poolSize = cfg.PoolSize > 0 ? cfg.PoolSize
            : memif.Mtu > 1500 ? 1024 * cfg.RxQueues
            : 2 * (cfg.RxQueues * cfg.RxDescriptors + cfg.TxQueues * cfg.TxDescriptors) + 1024;
        if (memif.ZeroCopyClient && cfg.PoolSize == 0) poolSize += 2 * memif.RingSlots * Math.Max(cfg.RxQueues, cfg.TxQueues);
        return (int)(System.Numerics.BitOperations.RoundUpToPowerOf2((uint)poolSize + 1) - 1);
    }

    /// <summary>The per-lcore cache for a pool of <paramref name="poolSize"/> mbufs: every thread that polls or allocates
    /// gets one (glue.c, "lcore ids for every thread": the application's threads, the progress thread), and each can
    /// park up to 1.5x its size where no other thread reaches, so the caches together stay within a few percent of a
    /// small pool (a 2,047-mbuf pool of 16 KB buffers for memif's large MTU: 63, not 256).</summary>
    internal static int PoolCacheFor(DpdkPortConfig cfg, int poolSize) => Math.Min(cfg.PoolCacheSize, poolSize / 32);

    private static DpdkPort OpenInCurrentNamespace(DpdkPortConfig cfg)
    {
        ushort port;
        MemifOptions memif = ParseMemif(cfg.Device);
        (string pmdArgs, int memifMtu, bool trusted) = (memif.DeviceArgs, memif.Mtu, memif.Trusted);
        byte* devargs = DpdkNative.Utf8(pmdArgs);
        int rc = DpdkNative.PortOpen(devargs, &port);
        NativeMemory.Free(devargs);
        if (rc < 0)
        {
            string hint = -rc == 19 /* ENODEV */ && cfg.Device.Contains("iface=", StringComparison.Ordinal)
                ? " (the interface does not exist" + (cfg.NetworkNamespace != null ? $" in namespace {cfg.NetworkNamespace})" : ")")
                : "";
            throw new DpdkException($"cannot open DPDK device '{cfg.Device}': {DpdkNative.Describe(rc)}{hint}", -rc);
        }

        int poolSize = PoolSizeFor(cfg, memif);
        int frame = Math.Max(cfg.Mtu, 1500) + 14 + 4 + 4; // Ethernet header, VLAN tag, FCS room
        // memif copies a received frame into one mbuf only while the mbuf's room is at least its bsize.
        if (memifMtu > 0) frame = MemifBufferSize(memifMtu);
        ushort dataRoom = (ushort)Math.Min(65535, RteMbuf.Headroom + Math.Max(2048, frame));
        string poolName = $"ut{Environment.ProcessId}_{Interlocked.Increment(ref s_poolCounter)}";
        byte* name = DpdkNative.Utf8(poolName);
        nint pool = DpdkNative.PoolCreate(name, (uint)poolSize, (uint)PoolCacheFor(cfg, poolSize), dataRoom, -1);
        NativeMemory.Free(name);
        if (pool == 0)
        {
            int e = DpdkNative.Errno();
            DpdkNative.PortClose(port);
            throw new DpdkException($"cannot create mbuf pool of {poolSize} x {dataRoom} B for '{cfg.Device}': " +
                                    $"{DpdkNative.Describe(e)} (raise DpdkEalConfig.MemoryMb / USERTCP_DPDK_MEMORY_MB)", e);
        }

        var conf = new DpdkNative.PortConf
        {
            RxQueues = (ushort)cfg.RxQueues,
            TxQueues = (ushort)cfg.TxQueues,
            RxDescriptors = (ushort)cfg.RxDescriptors,
            TxDescriptors = (ushort)cfg.TxDescriptors,
            Mtu = memifMtu > 0 ? (ushort)0 : (ushort)cfg.Mtu,
            Promiscuous = cfg.Promiscuous ? (byte)1 : (byte)0,
            Offloads = cfg.ChecksumOffload
                ? (byte)(DpdkNative.OffRxIpv4 | DpdkNative.OffRxTcp | DpdkNative.OffTxIpv4 | DpdkNative.OffTxTcp)
                : (byte)0,
        };
        DpdkNative.PortInfo info;
        nint* pools = stackalloc nint[cfg.RxQueues];
        for (int q = 0; q < cfg.RxQueues; q++) pools[q] = pool;
        rc = DpdkNative.PortSetup(port, &conf, pools, &info);
        if (rc < 0)
        {
            DpdkNative.PortClose(port);
            DpdkNative.PoolFree(pool);
            throw new DpdkException($"cannot configure DPDK port {port} ('{cfg.Device}'): {DpdkNative.Describe(rc)}", -rc);
        }
        return new DpdkPort(port, cfg, pool, poolSize, info, memifMtu, trusted, memif.RxWakeUs);
    }

    /// <summary>Free mbufs in the pool (a leak check: equals <see cref="PoolSize"/> when the port is idle and
    /// nothing is held, minus the mbufs posted to receive descriptors).</summary>
    public int PoolAvailable => _disposed ? 0 : (int)DpdkNative.PoolAvail(_pool);

    /// <summary>Free mbufs in the pool's shared ring, without those parked in per-lcore caches.</summary>
    public int PoolSharedAvailable => _disposed ? 0 : (int)DpdkNative.PoolSharedAvail(_pool);

    /// <summary>Mbufs taken from the pool (held by receive descriptors, queued for transmit, or by the stack).</summary>
    public int PoolInUse => _disposed ? 0 : (int)DpdkNative.PoolInUse(_pool);

    public DpdkPortStats GetStats()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        DpdkNative.PortStats s;
        int rc = DpdkNative.PortStatsFn(PortId, &s);
        if (rc < 0) throw new DpdkException($"rte_eth_stats_get({PortId}) failed: {DpdkNative.Describe(rc)}", -rc);
        return new DpdkPortStats(s.IPackets, s.OPackets, s.IBytes, s.OBytes, s.IMissed, s.IErrors, s.OErrors, s.RxNoMbuf);
    }

    /// <summary>Whether the link is up (memif: connected to its peer).</summary>
    public bool LinkUp
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            uint speed;
            return DpdkNative.PortLink(PortId, &speed) == 1;
        }
    }

    /// <summary>Stops and closes the port and frees its pool. Throws nothing; the first error, if any, is kept in
    /// <see cref="CloseError"/>.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (DpdkDevice d in _devices) d.Detach();

        int netnsFd = -1;
        if (NetworkNamespace != null)
        {
            string path = NetworkNamespace.StartsWith('/') ? NetworkNamespace : "/run/netns/" + NetworkNamespace;
            byte* p = DpdkNative.Utf8(path);
            netnsFd = DpdkNative.NetnsEnter(p);
            NativeMemory.Free(p);
        }
        int rc;
        lock (s_controlLock)
        {
            rc = DpdkNative.PortClose(PortId);
            DpdkNative.PoolFree(_pool);
            _pool = 0;
        }
        if (netnsFd >= 0) DpdkNative.NetnsLeave(netnsFd);
        if (rc < 0) CloseError = $"closing port {PortId} ('{DeviceArgs}'): {DpdkNative.Describe(rc)}";
    }

    public string? CloseError { get; private set; }
}
