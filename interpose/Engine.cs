using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Threading;
using UserTcp.Interpose.Native;
using UserTcp.Stack;
using UserTcp.Stack.Dpdk;
using UserTcp.Stack.PacketSocket;
using UserTcp.Stack.Phy;
using UserTcp.Stack.Wire;

namespace UserTcp.Interpose;

/// <summary>
/// This process's user-level stack and what drives it.
///
/// One <see cref="NetStack"/> per process over one device (DPDK from USERTCP_DEV, or a <see cref="DiscardDevice"/>
/// when none is configured). The stack is single-threaded; <see cref="Gate"/> serialises every call into it.
///
/// Progress: the application's own calls drive the stack (each call polls it first), so a busy server makes no
/// extra system calls. Blocking calls and epoll/poll waits keep polling while they wait, sleeping in steps that grow
/// from nothing (right after traffic) to <see cref="IdlePollUs"/> (idle); on a device with pollable fds (af_packet's
/// sockets, memif's receive-ring eventfd) the sleeps also end when a frame arrives (<see cref="DeviceWaitFor"/>). A background thread does the same for the
/// times no application thread is in a call, so ACKs, retransmissions and timers happen on time; it steps back while
/// application threads are waiting.
/// </summary>
internal static unsafe class Engine
{
    /// <summary>The stack's lock: a <see cref="StackLock"/> (no sync-block lookup like Monitor, no thread-static read
    /// like <see cref="Lock"/>). Held with <c>using (Gate.EnterScope())</c>.</summary>
    internal static readonly StackLock Gate = StackLock.Create();
    internal static NetStack Stack = null!;
    private static IDevice? s_device;
    private static Thread? s_progress;
    private static int s_waiters;
    private static long s_lastActivityUs;
    private static long s_lastRx, s_lastTx, s_lastOurs;
    private static volatile bool s_stopping;
    private static bool s_stats;
    private static long s_startUs;

    /// <summary>How the waits went (USERTCP_STATS): polls of the stack, sleeps and the time slept, per process.</summary>
    internal static long PollCount, SleepCount, SleptUs, ProgressPolls;

    /// <summary>Longest sleep between polls while there was traffic in the last <see cref="DeepIdleAfterUs"/> (µs).
    /// Short, because a new connection's SYN waits for the next poll: with 1 ms here a connect took ~3 ms; with 100 µs
    /// it takes ~35 µs (python3 client over the test network).</summary>
    internal static long IdlePollUs = 100;
    /// <summary>After this long without a packet (µs), the longest sleep grows to <see cref="DeepIdlePollUs"/>.</summary>
    internal static long DeepIdleAfterUs = 200_000;
    internal static long DeepIdlePollUs = 5_000;
    /// <summary>The deep-idle step when the device has a pollable fd (af_packet): a frame ends the sleep at once, so
    /// the step only bounds how late a waiter notices what no packet announces (another thread's action on a shared
    /// socket): 50 ms, ten times fewer wake-ups than <see cref="DeepIdlePollUs"/>.</summary>
    internal static long DeepIdleDevicePollUs = 50_000;
    /// <summary>Sleeps at least this long (µs) wait on the device's fds; shorter ones are plain sleeps (a packet
    /// is about due anyway, and the extra pollfds cost more than they save).</summary>
    internal static long DeviceWaitMinUs = 20;

    /// <summary>The device has pollable fds (af_packet's PACKET_RX_RING sockets, memif's receive-ring eventfd once
    /// armed): waits end when a frame arrives.</summary>
    internal static bool DeviceFds { get; private set; }
    /// <summary>Device wake-ups since the stack last received a packet. A ring the driver cannot drain (no mbufs)
    /// would stay readable and turn every wait into a spin: past <see cref="MaxWakeupsWithoutRx"/> the waits fall back
    /// to the plain schedule until a packet gets through.</summary>
    private static int s_wakeupsWithoutRx;
    private const int MaxWakeupsWithoutRx = 64;
    /// <summary>USERTCP_STATS: waits ended early by a frame on the device.</summary>
    internal static long DeviceWakeups;
    /// <summary>After traffic, poll without sleeping for this long (µs): the next packet usually follows soon.</summary>
    internal static long SpinUs = 50;

    internal static bool HasDevice { get; private set; }
    internal static string DeviceDescription { get; private set; } = "none";

    private static readonly long s_ticksPerUs = Stopwatch.Frequency / 1_000_000;
    internal static long NowUs => Stopwatch.GetTimestamp() / s_ticksPerUs;

    /// <summary>This process's share of a device it runs on together with forked relatives (null: no sharing).</summary>
    internal static FlowGroup? Group;

    internal static long Start(ShimConfig* cfg, byte* groupArea)
    {
        s_stats = cfg->Stats != 0 || cfg->LogLevel >= 2; // USERTCP_STATS=1, or USERTCP_LOG=info and above
        s_startUs = NowUs;
        var ip = new Ipv4Address(cfg->Ip);
        MacAddress mac = MacAddress.Zero;
        string macText = Utf8(cfg->Mac, 32);
        if (macText.Length > 0 && !MacAddress.TryParse(macText, out mac))
        {
            Kernel.Log(0, $"USERTCP_MAC='{macText}' is not a MAC address");
            return -Errno.EINVAL;
        }
        string dev = Utf8(cfg->Dev, 512);
        string dpdkArgs = Utf8(cfg->DpdkArgs, 1024);
        if (dev.Length == 0)
        {
            // A locally administered address derived from ours: unique enough on a wire nobody listens to.
            if (macText.Length == 0) mac = new MacAddress(0x02_00_00_00_00_00UL | cfg->Ip);
            s_device = new DiscardDevice(mac);
            DeviceDescription = "none (USERTCP_DEV is not set: packets are discarded)";
            Kernel.Log(2, "no USERTCP_DEV configured: user-stack sockets work locally but no packet leaves this process");
        }
        else
        {
            // A memif link delivers its frames to the one process at its end: there are no flows to share out with
            // forked relatives (each would need a link of its own), so no claims (the claim table also holds at
            // most 64k flows, far below what one process holds on memif: W5, 1M connections).
            bool pointToPoint = dev.StartsWith("net_memif", StringComparison.Ordinal);
            Group = pointToPoint ? null : FlowGroup.Join(groupArea);
            long locked = LockDevice(dev);
            if (locked < 0)
            {
                Group?.Leave();
                Group = null;
                return locked;
            }
            try
            {
                if (dev.StartsWith(PacketDevicePrefix, StringComparison.Ordinal))
                {
                    // packet:IFACE — the kernel packet socket device (stack/PacketSocket), no DPDK: its socket is
                    // what idle waits poll.
                    var ps = PacketSocketDevice.Open(PacketSocketConfig.Parse(dev[PacketDevicePrefix.Length..]));
                    s_device = ps;
                    int psFd = ps.Fd;
                    Kernel.DeviceFdsSet(&psFd, 1);
                    DeviceFds = true;
                    HasDevice = true;
                    DeviceDescription = dev;
                    Kernel.Log(2, $"device waits: the packet socket (fd {psFd}); {ps.Summary()}");
                    goto opened;
                }
                string[] extra = dpdkArgs.Length == 0 ? [] : dpdkArgs.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                // --no-huge in USERTCP_DPDK_ARGS: ordinary pages, with the EAL options that go with them (valgrind
                // cannot map hugepages).
                bool noHuge = Array.IndexOf(extra, "--no-huge") >= 0;
                var eal = new DpdkEalConfig
                {
                    ExtraArgs = noHuge ? Array.FindAll(extra, a => a != "--no-huge") : extra,
                    Hugepages = noHuge ? DpdkHugepages.Never : DpdkHugepages.Auto,
                    Warn = msg => Kernel.Log(1, msg),
                };
                int* before = stackalloc int[64];
                int nBefore = (int)Kernel.PacketFds(before, 64);
                s_device = DpdkDevice.Open(eal, new DpdkPortConfig { Device = WithDeviceDefaults(dev) });
                FindDeviceFds(before, nBefore);
                if (!DeviceFds && s_device is DpdkDevice rxi && rxi.HasRxInterrupt)
                {
                    // memif: no socket, but the ring's eventfd, which the peer writes when asked (ArmRxInterrupt).
                    s_rxInterrupt = rxi;
                    DeviceFds = true;
                    if (rxi.Port.RxWakeUs >= 0) RxInterruptMinUs = rxi.Port.RxWakeUs; // memif rxwake=N
                    Kernel.Log(2, "device waits: memif receive interrupts (the ring's eventfd, armed before each sleep)");
                }
                else if (s_device is DpdkDevice { Port.RxWakeUs: >= 0 })
                    Kernel.Log(1, $"USERTCP_DEV='{dev}': rxwake= has no effect (the port has no receive interrupt)");
                HasDevice = true;
                DeviceDescription = dev;
            }
            catch (Exception e) when (e is DpdkException or DllNotFoundException or InvalidOperationException or ArgumentException)
            {
                Kernel.Log(0, $"cannot open USERTCP_DEV='{dev}': {e.Message}");
                Group?.Leave();
                Group = null;
                return -Errno.ENODEV;
            }
        }
        opened:
        if (macText.Length > 0 && s_device.Capabilities.MacAddress != mac)
            Kernel.Log(1, $"USERTCP_MAC={mac} differs from the device's {s_device.Capabilities.MacAddress}; using the device's");
        return StartStack(ip, cfg->PrefixLength, new Ipv4Address(cfg->Gateway), cfg->MaxFds);
    }

    /// <summary>USERTCP_DEV prefix of the packet socket device (<c>packet:IFACE[,options]</c>); anything else is a
    /// DPDK device string (<c>net_af_packet0,iface=...</c>, <c>net_memif...</c>).</summary>
    internal const string PacketDevicePrefix = "packet:";

    /// <summary>
    /// DPDK's af_packet driver reads one PACKET_RX_RING socket per queue; the kernel's poll() on it reports POLLIN
    /// while a frame waits in the ring for user space. The sockets are the AF_PACKET ones the port's start opened
    /// (compared with <paramref name="before"/>). memif has none (its eventfd is armed per sleep, see
    /// <see cref="ArmRxInterrupt"/>); ring has nothing: its waits keep the schedule.
    /// </summary>
    private static void FindDeviceFds(int* before, int nBefore)
    {
        int* after = stackalloc int[64];
        int* mine = stackalloc int[8];
        int nAfter = (int)Kernel.PacketFds(after, 64), n = 0;
        for (int i = 0; i < nAfter && n < 8; i++)
        {
            bool old = false;
            for (int j = 0; j < nBefore; j++) old |= before[j] == after[i];
            if (!old) mine[n++] = after[i];
        }
        if (n == 0) return;
        Kernel.DeviceFdsSet(mine, n);
        DeviceFds = true;
        Kernel.Log(2, $"device waits: {n} af_packet socket(s) polled for frames (first fd {mine[0]})");
    }

    /// <summary>Whether a sleep of <paramref name="sleepUs"/> should also end on a frame (the device flag of the
    /// k_*_dev waits). On memif this arms the receive interrupt (<see cref="ArmRxInterrupt"/>).</summary>
    internal static int DeviceWaitFor(long sleepUs) =>
        DeviceFds && Volatile.Read(ref s_wakeupsWithoutRx) < MaxWakeupsWithoutRx
        && (s_rxInterrupt is null ? sleepUs >= DeviceWaitMinUs : sleepUs >= RxInterruptMinUs && ArmRxInterrupt()) ? 1 : 0;

    /// <summary>memif: only sleeps at least this long (µs) arm the receive interrupt. An armed ring costs the peer a
    /// write to the eventfd per transmit burst and this process a read per wake-up; the short sleeps between bursts
    /// of a busy link (up to <see cref="IdlePollUs"/>) stay plain, as before, so the busy path is unchanged, while the
    /// long ones of a quiet link (from ~200 ms after the last packet, when the cap grows) end on the first frame.</summary>
    internal static long RxInterruptMinUs = 1_000;

    /// <summary>Sleeps may be long (the 50 ms deep-idle step): a frame will end them.</summary>
    private static bool DeviceCanWait =>
        DeviceFds && !s_rxLinkDown && Volatile.Read(ref s_wakeupsWithoutRx) < MaxWakeupsWithoutRx;

    /// <summary>A wait ended because a frame waits on the device.</summary>
    internal static void DeviceWoke()
    {
        Interlocked.Increment(ref s_wakeupsWithoutRx);
        Interlocked.Increment(ref DeviceWakeups);
        if (s_rxInterrupt is not null) DisarmRxInterrupt();
    }

    /// <summary>memif: the device whose receive ring can signal a sleeper (null: none, or af_packet's sockets).</summary>
    private static DpdkDevice? s_rxInterrupt;
    private static int s_rxInterruptFd = -1;
    /// <summary>The peer was asked to signal frames: set by a waiter before it sleeps, cleared by the first wake-up or
    /// received frame after it, so a busy link costs no system call per burst on either end.</summary>
    private static volatile bool s_rxArmed;
    /// <summary>memif's link was down at the last arm: no eventfd to sleep on, so the sleeps keep the plain schedule
    /// (5 ms deep-idle step) until an arm succeeds: the peer's first frames after it connects are not left waiting
    /// for a 50 ms step.</summary>
    private static volatile bool s_rxLinkDown;

    /// <summary>Asks the memif peer to signal the next frame; the sleep then also waits on the ring's eventfd. False
    /// while the link is down (the plain schedule; the link coming up is noticed at the next poll).</summary>
    private static bool ArmRxInterrupt()
    {
        int fd = s_rxInterrupt!.ArmRxInterrupt();
        s_rxLinkDown = fd == -Errno.ENOTCONN;
        if (fd < 0)
        {
            if (fd != -Errno.ENOTCONN)
            {
                // Not the memif PMD layout the glue knows (or closed): poll on the schedule from now on.
                DeviceFds = false;
                Kernel.Log(1, $"memif receive interrupts unavailable (errno {-fd}): idle waits poll on a schedule");
            }
            return false;
        }
        if (fd != s_rxInterruptFd)
        {
            Kernel.DeviceFdsSet(&fd, 1); // a new eventfd after the link came (back) up
            s_rxInterruptFd = fd;
        }
        s_rxArmed = true;
        return true;
    }

    private static void DisarmRxInterrupt()
    {
        s_rxArmed = false;
        s_rxInterrupt!.DisarmRxInterrupt(drain: true);
    }

    /// <summary>
    /// af_packet's rings default to 512 frames: 1,000 connections that each send a request while this process is
    /// off the CPU overflow the receive ring, the kernel drops the rest silently, and each loss costs a 200 ms
    /// retransmission timeout (W3 RPC echo, 1,000 connections: p99 225 ms; with 4,096 frames 25 ms). A framecnt
    /// given in USERTCP_DEV wins. Costs 8 MiB per ring (2 KiB frames).
    /// </summary>
    internal static string WithDeviceDefaults(string dev)
    {
        if (dev.StartsWith("net_af_packet", StringComparison.Ordinal) && !dev.Contains("framecnt=", StringComparison.Ordinal))
            return dev + ",framecnt=4096";
        return dev;
    }

    /// <summary>
    /// Starts the engine on a device the caller built (the packetdrill entry point, <see cref="PacketdrillDevice"/>),
    /// instead of one from the configuration. Same stack, same progress thread; no device lock and no flow group.
    /// </summary>
    internal static long StartWithDevice(IDevice device, string description, Ipv4Address ip, int prefixLength,
        Ipv4Address gateway)
    {
        if (Stack is not null) return -16; // EBUSY: one stack per process
        s_device = device;
        HasDevice = true;
        DeviceDescription = description;
        return StartStack(ip, prefixLength, gateway, 65536);
    }

    /// <param name="maxSockets">USERTCP_MAX_SOCKETS: the stack's socket table holds as many as the fd space.</param>
    private static long StartStack(Ipv4Address ip, int prefixLength, Ipv4Address gateway, int maxSockets)
    {
        IDevice device = s_device!;
        Span<byte> seed = stackalloc byte[8];
        RandomNumberGenerator.Fill(seed);
        var config = new StackConfig
        {
            MaxSockets = Math.Max(maxSockets, 1),
            Interface = new Stack.Iface.InterfaceConfig
            {
                Address = ip,
                PrefixLength = prefixLength,
                Gateway = gateway,
            },
            // SYN cookies complete a handshake without state, past the flow claims of a shared device: off there.
            Tcp = new Stack.Tcp.TcpConfig { Seed = BitConverter.ToUInt64(seed), SynCookies = Group is null },
        };
        Edges.Instance.Reserve(config.MaxSockets);
        Stack = new NetStack(device, config) { ReadinessListener = Edges.Instance };
        if (Group is not null)
        {
            Stack.Tcp.Flows = Group;
            Stack.Interface.AnswerEcho = Group.IsLeader;
        }
        using (Gate.EnterScope()) Stack.Poll(NowUs);
        s_progress = new Thread(ProgressLoop) { IsBackground = true, Name = "usertcp-progress" };
        s_progress.Start();
        Kernel.Log(2, $"user-level stack up: {ip}/{prefixLength}, device {DeviceDescription}");
        return 0;
    }

    private static System.IO.FileStream? s_deviceLock;

    /// <summary>
    /// One process per device. With af_packet every process on an interface receives a copy of every frame, so two
    /// stacks on one device would both answer the same SYN. Until flows are shared out between processes, a second
    /// process is refused with a message instead of corrupting connections. (nginx: worker_processes 1.)
    /// </summary>
    private static long LockDevice(string dev)
    {
        // The same interface name can exist in several network namespaces: the namespace is part of the key.
        string netns = "";
        try { netns = System.IO.File.ResolveLinkTarget("/proc/self/ns/net", false)?.ToString() ?? ""; } catch (Exception) { }
        var key = new StringBuilder();
        foreach (char ch in netns + "-" + dev) key.Append(char.IsAsciiLetterOrDigit(ch) ? ch : '_');
        string dir = System.IO.Directory.Exists("/run") ? "/run/usertcp" : "/tmp/usertcp";
        string path = $"{dir}/{key}.lock", ownerPath = $"{dir}/{key}.owner";
        try
        {
            System.IO.Directory.CreateDirectory(dir);
            s_deviceLock = new System.IO.FileStream(path, System.IO.FileMode.OpenOrCreate, System.IO.FileAccess.ReadWrite,
                System.IO.FileShare.None);
            // Who holds it, and the family token its relatives may share it with (read without the lock).
            System.IO.File.WriteAllText(ownerPath, $"{Environment.ProcessId}\n{Group?.Token.ToString("x") ?? "-"}\n");
            return 0;
        }
        catch (System.IO.IOException)
        {
            string owner = "another process";
            // Held by a relative (same family token, e.g. another nginx worker started at the same moment): share the
            // device. The holder writes the owner file just after locking, so give it a moment.
            for (int attempt = 0; attempt < 50; attempt++)
            {
                try
                {
                    string[] text = System.IO.File.ReadAllText(ownerPath).Split('\n', StringSplitOptions.RemoveEmptyEntries);
                    if (Group is not null && text.Length >= 2 && text[1] == Group.Token.ToString("x")) return 0;
                    if (text.Length >= 2 && int.TryParse(text[0], out int holder) && Kernel.PidAlive(holder) != 0)
                    {
                        owner = "pid " + text[0];
                        break;
                    }
                }
                catch (Exception) { }
                Thread.Sleep(20);
            }
            Kernel.Log(0, $"USERTCP_DEV='{dev}' is already used by {owner}; a device is shared only by " +
                          "processes forked from one parent (like nginx's workers). This process's user-stack sockets will fail with EBUSY.");
            return -16; // EBUSY
        }
        catch (Exception e) when (e is UnauthorizedAccessException)
        {
            Kernel.Log(0, $"cannot create the device lock {path}: {e.Message}");
            return -Errno.EPERM;
        }
    }

    private static string Utf8(byte* text, int max)
    {
        int n = 0;
        while (n < max && text[n] != 0) n++;
        return Encoding.UTF8.GetString(text, n);
    }

    /// <summary>
    /// Counts readiness changes per stack handle, for edge-triggered epoll: a registration reports again when the
    /// count moved since it last reported (new data after a drain, a new connection, the peer's FIN, ...).
    /// </summary>
    internal sealed class Edges : IReadinessListener
    {
        internal static readonly Edges Instance = new();

        /// <summary>Per handle: the count of readiness changes, and the readiness the stack last reported with
        /// <see cref="Known"/> set once a report came after the handle was (re)assigned (<see cref="Forget"/>) and
        /// <see cref="Dirty"/> while the handle waits in the dirty list. A connection reports every change (input,
        /// timers, its own Send/Receive/Close), so for a connected socket this is what GetReadiness would compute.
        /// One array of pairs: a report touches one slot (one bounds check), 8 bytes per handle.</summary>
        private struct Slot
        {
            public int Count;
            public uint Readiness;
        }

        // Both tables live in anonymous memory mapped once for the stack's whole handle space (Reserve, from
        // StartStack: USERTCP_MAX_SOCKETS handles; handles never exceed the sockets open at once): a page becomes
        // resident when a handle on it is first used, so a process pays 8 + 4 bytes per handle it uses, with no
        // slack and no earlier arrays left behind by doubling (1 + 1 MB of the managed heap at 100 000 handles).
        // The dirty list holds each handle at most once (its Dirty mark), so it never needs more than one entry per
        // handle and never grows either.
        private Slot* _slots;
        private int* _dirtyHandles;
        private int _capacity;
        internal const uint Known = 0x8000_0000, Dirty = 0x4000_0000, Flags = Known | Dirty;
        private int _dirtyCount;

        internal Edges(int capacity = 1024) => Reserve(capacity);

        /// <summary>Room for handles 0 .. <paramref name="handles"/> - 1 (address space only). Caller holds
        /// Engine.Gate (or nothing else can reach the instance yet).</summary>
        internal void Reserve(int handles)
        {
            if (handles <= _capacity) return;
            var slots = (Slot*)MapZeroed((long)handles * sizeof(Slot));
            var dirty = (int*)MapZeroed((long)handles * sizeof(int));
            if (_capacity > 0)
            {
                Buffer.MemoryCopy(_slots, slots, (long)handles * sizeof(Slot), (long)_capacity * sizeof(Slot));
                Buffer.MemoryCopy(_dirtyHandles, dirty, (long)handles * sizeof(int), (long)_dirtyCount * sizeof(int));
                Unmap(_slots, (long)_capacity * sizeof(Slot));
                Unmap(_dirtyHandles, (long)_capacity * sizeof(int));
            }
            _slots = slots;
            _dirtyHandles = dirty;
            _capacity = handles;
        }

        /// <summary>Handles the table has room for (tests).</summary>
        internal int Capacity => _capacity;

        [System.Runtime.InteropServices.DllImport("libc.so.6", EntryPoint = "mmap")]
        private static extern nint Mmap(nint addr, nuint length, int prot, int flags, int fd, nint offset);
        [System.Runtime.InteropServices.DllImport("libc.so.6", EntryPoint = "munmap")]
        private static extern int Munmap(nint addr, nuint length);

        private static void* MapZeroed(long bytes)
        {
            // PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE: zero pages, resident when touched.
            nint p = Mmap(0, (nuint)bytes, 3, 0x02 | 0x20 | 0x4000, -1, 0);
            if (p == -1) throw new OutOfMemoryException($"mmap of {bytes} bytes for the readiness table failed");
            return (void*)p;
        }

        private static void Unmap(void* p, long bytes) => Munmap((nint)p, (nuint)bytes);

        /// <summary>A report from the stack: counted (the edge-triggered key), recorded, and the handle listed for
        /// epoll's next collection unless it is listed already or the report only took bits away from a known
        /// readiness (the application's own read that drained the socket, a send that filled the buffer): a
        /// registration can have nothing new to report then — a level-triggered one still queued is evaluated and
        /// dropped by the walk anyway, and Linux wakes no edge-triggered waiter for a loss. A report that keeps the
        /// readiness as it was (more data on top of data) is listed: an edge for edge-triggered registrations.</summary>
        public void OnReadinessChanged(int handle, Stack.Tcp.Readiness readiness)
        {
            if ((uint)handle >= (uint)_capacity) Grow(handle);
            ref Slot slot = ref _slots[handle];
            slot.Count++;
            uint was = slot.Readiness, now = (uint)readiness;
            if ((was & Dirty) != 0 || ((was & Known) != 0 && (now & ~was) == 0 && now != (was & ~Flags)))
            {
                slot.Readiness = now | Known | (was & Dirty);
                return;
            }
            slot.Readiness = now | Known | Dirty;
            _dirtyHandles[_dirtyCount++] = handle;
        }

        private void Grow(int handle)
        {
            if (handle < 0) throw new ArgumentOutOfRangeException(nameof(handle));
            Reserve((int)Math.Min(int.MaxValue, Math.Max((long)handle + 1, 2L * _capacity)));
        }

        /// <summary>Every handle that moved since the last call (epoll's ready lists), each once; their dirty marks
        /// are cleared. The span is valid until the next report: the caller holds Engine.Gate and makes the stack
        /// report nothing while it reads it.</summary>
        internal ReadOnlySpan<int> TakeDirty()
        {
            int n = _dirtyCount;
            _dirtyCount = 0;
            Slot* slots = _slots;
            int* handles = _dirtyHandles;
            for (int i = 0; i < n; i++) slots[handles[i]].Readiness &= ~Dirty;
            return new ReadOnlySpan<int>(handles, n);
        }

        /// <summary>Caller holds Engine.Gate.</summary>
        internal int Count(int handle) => (uint)handle < (uint)_capacity ? _slots[handle].Count : 0;

        /// <summary>The handle was just assigned to a socket (open, accept), or the socket was changed by a call that
        /// may move its readiness without a report (shutdown, buffer options): what was recorded for it is not
        /// trusted until the stack's next report. Caller holds Engine.Gate.</summary>
        internal void Forget(int handle)
        {
            if ((uint)handle < (uint)_capacity) _slots[handle].Readiness &= Dirty;
        }

        /// <summary>The slot's readiness word: the last reported readiness with <see cref="Known"/> (and maybe
        /// <see cref="Dirty"/>) set, or without <see cref="Known"/> when nothing is trusted (<see cref="TryGet"/>
        /// inlined). Caller holds Engine.Gate.</summary>
        [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
        internal uint Raw(int handle) => (uint)handle < (uint)_capacity ? _slots[handle].Readiness : 0;

        /// <summary>A connection's readiness from the last report, without asking the stack (epoll_wait evaluates
        /// every ready-listed registration on every wait). Caller holds Engine.Gate.</summary>
        internal bool TryGet(int handle, out Stack.Tcp.Readiness readiness)
        {
            uint r = (uint)handle < (uint)_capacity ? _slots[handle].Readiness : 0;
            readiness = (Stack.Tcp.Readiness)(r & ~Flags);
            return (r & Known) != 0;
        }
    }

    /// <summary>While an application thread polled within this long (µs), the progress thread stays out of the way:
    /// it would only contend for <see cref="Gate"/> and, on a small machine, for the CPU the application needs.</summary>
    internal static long AppActiveUs = 1_000;
    /// <summary>Calls of application threads into the stack (under <see cref="Gate"/>): the progress thread compares
    /// it between its rounds to know whether the application is driving the stack. Costs one increment, no clock.</summary>
    internal static int AppCalls;
    /// <summary>Polls of the stack by application threads (under <see cref="Gate"/>): while they keep coming, the
    /// progress thread has nothing to add (timers run in every poll) and leaves the lock to them.</summary>
    internal static int AppPolls;

    /// <summary>A new stack socket for interpose/. Every handle a socket gets comes from here or
    /// <see cref="AcceptHandle"/>, which forget what <see cref="Edges"/> recorded for the number (an earlier life's
    /// readiness). Caller holds <see cref="Gate"/>.</summary>
    internal static SocketError OpenHandle(out int handle)
    {
        SocketError e = Stack.Open(out handle);
        if (e == SocketError.Success) Edges.Instance.Forget(handle);
        return e;
    }

    /// <summary>An accepted connection's handle, its <see cref="Edges"/> record forgotten (the handle's earlier life,
    /// and the report the accept itself just made). Caller holds <see cref="Gate"/>.</summary>
    internal static SocketError AcceptHandle(int listener, out int handle, out Ipv4Address peer, out ushort peerPort)
    {
        SocketError e = Stack.Accept(listener, out handle, out peer, out peerPort);
        if (e == SocketError.Success) Edges.Instance.Forget(handle);
        return e;
    }

    /// <summary>The thread (pthread_self) whose last epoll_wait returned events and that has not waited again
    /// since (0: none): its event round. Replies it sends and window updates its reads cause meanwhile stay in the
    /// stack's transmit batch (<see cref="NetStack.DeferFlush"/>) and leave together, in one device burst (on af_packet
    /// one <c>sendto()</c> kick per round instead of one per reply), at its next epoll_wait (whose poll flushes), at
    /// any call that polls the stack, when the batch is full, or at the latest when the progress thread polls (about
    /// <see cref="AppActiveUs"/> after the application stopped polling).</summary>
    internal static nint RoundThread; // pthread_self of that thread (no thread-static read: see StackLock)

    /// <summary>An epoll_wait returns <paramref name="r"/>: with events, the calling thread's round begins.</summary>
    internal static long BeginRound(long r)
    {
        if (r > 0) Volatile.Write(ref RoundThread, Kernel.ThreadSelf());
        return r;
    }

    /// <summary>Whether the calling thread is in its event round (see <see cref="RoundThread"/>).</summary>
    internal static bool InRound
    {
        get
        {
            nint t = Volatile.Read(ref RoundThread);
            return t != 0 && t == Kernel.ThreadSelf();
        }
    }

    /// <summary><see cref="InRound"/> for a caller that holds <see cref="Gate"/>: the lock's owner is the calling
    /// thread, so its id is at hand without another pthread_self call (two per RPC, ~20 instructions each).</summary>
    internal static bool InRoundLocked
    {
        [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
        get
        {
            nint t = Volatile.Read(ref RoundThread);
            return t != 0 && t == Gate.Owner;
        }
    }

    /// <summary>Polls the stack from an application thread (caller holds <see cref="Gate"/>) and returns the time the
    /// poll ran at (µs): a wait's round reuses it for its deadline, its sleep and its kernel look instead of reading the
    /// clock again (a sleep computed from it may end later by the round's own work after the poll: microseconds,
    /// never earlier). A clock read is ~20 instructions, and several hundred ns on a VM whose hypervisor traps the
    /// time-stamp counter, as here.</summary>
    internal static long PollLocked()
    {
        long now = PollCore();
        AppCalls++;
        AppPolls++;
        return now;
    }

    private static long PollCore()
    {
        long now = NowUs;
        if (Group is { HandOffPending: true } g) g.Adopt(Stack.Tcp, now); // a closing listener's queue waits for us
        Stack.Poll(now);
        PollCount++;
        StackCounters c = Stack.Counters;
        if (c.RxPackets != s_lastRx || c.TxPackets != s_lastTx)
        {
            // Frames flow: the receiver polls, the memif peer stops signalling (not on transmit alone: a timer's
            // segment sent by another thread must not silence the signals a sleeping waiter asked for).
            if (s_rxArmed && c.RxPackets != s_lastRx) DisarmRxInterrupt();
            s_lastRx = c.RxPackets;
            s_lastTx = c.TxPackets;
            // Only TCP traffic of ours puts the process on the busy schedule: ARP, ICMP, a forked sibling's segments
            // on a shared af_packet device, a late segment for a connection that is gone, and the resets that answer
            // them do not. One such frame used to cost an idle process ~2,000 wake-ups (200 ms of 100 µs steps).
            long ours = c.TcpSegmentsIn + c.TcpSegmentsOut - c.TcpRstSent
                - c.Drops(DropReason.TcpNoSocket) - c.Drops(DropReason.TcpOtherProcess);
            if (ours != s_lastOurs)
            {
                s_lastOurs = ours;
                s_lastActivityUs = now;
            }
            if (s_wakeupsWithoutRx != 0) Volatile.Write(ref s_wakeupsWithoutRx, 0);
        }
        return now;
    }

    /// <summary>How long a waiter should sleep before polling again (µs), given when it must be back at the latest.</summary>
    internal static long NextSleepUs(ref long backoffUs, long deadlineUs)
    {
        long pollAt;
        using (Gate.EnterScope()) pollAt = Stack.PollAt();
        return NextSleepUs(ref backoffUs, deadlineUs, pollAt);
    }

    /// <summary><see cref="NextSleepUs(ref long, long)"/> with the stack's <see cref="NetStack.PollAt"/> read by the
    /// caller under the lock it already held (one lock pair per round of a wait instead of two).</summary>
    internal static long NextSleepUs(ref long backoffUs, long deadlineUs, long pollAt) =>
        NextSleepUs(ref backoffUs, deadlineUs, pollAt, NowUs);

    /// <summary><see cref="NextSleepUs(ref long, long, long)"/> at a time the caller read (its round's poll).</summary>
    internal static long NextSleepUs(ref long backoffUs, long deadlineUs, long pollAt, long now)
    {
        long quietUs = now - Volatile.Read(ref s_lastActivityUs);
        // Long quiet spells (no packet for DeepIdleAfterUs) poll less often: an idle server should cost ~nothing.
        long cap = quietUs <= DeepIdleAfterUs ? IdlePollUs : DeviceCanWait ? DeepIdleDevicePollUs : DeepIdlePollUs;
        if (quietUs < SpinUs) backoffUs = 0;
        else backoffUs = backoffUs == 0 ? 10 : Math.Min(backoffUs * 2, cap);
        long sleep = ClampToPollAt(backoffUs, pollAt, now);
        if (deadlineUs != long.MaxValue) sleep = Math.Min(sleep, Math.Max(0, deadlineUs - now));
        return sleep;
    }

    private static long ClampToPollAt(long sleep, long pollAt, long now) =>
        pollAt != long.MaxValue ? Math.Min(sleep, Math.Max(0, pollAt - now)) : sleep;

    /// <summary>A thread starts/ends waiting inside a blocking call (the progress thread steps back meanwhile).</summary>
    internal static void EnterWait() => Interlocked.Increment(ref s_waiters);
    internal static void ExitWait() => Interlocked.Decrement(ref s_waiters);

    private static void ProgressLoop()
    {
        Kernel.BlockSignals(); // the application's signals are for the application's threads
        long backoff = 0;
        int appCallsSeen = 0, appPollsSeen = 0;
        while (!s_stopping)
        {
            // At least this long while an application thread polls already or called in since the last round (it
            // drives the stack). The stack's next timer can only shorten a sleep, so when the backoff alone is within
            // that floor the timer need not be read: no lock taken while the application is busy (taking it here
            // made this thread spin and yield behind the application's calls, ~10 sched_yield per W1 connection).
            long floor = Volatile.Read(ref s_waiters) > 0 ? 10_000 : 0;
            int appCalls = Volatile.Read(ref AppCalls);
            bool alone = floor == 0 && appCalls == appCallsSeen;
            if (appCalls != appCallsSeen)
            {
                appCallsSeen = appCalls;
                floor = Math.Max(floor, AppActiveUs);
            }
            long sleep = NextSleepUs(ref backoff, long.MaxValue, long.MaxValue);
            if (sleep > floor)
            {
                long pollAt;
                using (Gate.EnterScope()) pollAt = Stack.PollAt();
                sleep = ClampToPollAt(sleep, pollAt, NowUs);
            }
            sleep = Math.Max(sleep, floor);
            if (sleep > 0)
            {
                // Alone in charge (no application thread waiting or calling): a frame ends the sleep.
                if (alone && DeviceWaitFor(sleep) != 0)
                {
                    if (Kernel.IdleUs((nint)sleep) > 0) DeviceWoke();
                }
                else Kernel.SleepUs((nint)sleep);
            }
            else Thread.Yield();
            // An application thread polled while this one slept: the stack is being driven, and taking the lock
            // now would only make the application wait for it.
            int appPolls = Volatile.Read(ref AppPolls);
            if (appPolls != appPollsSeen)
            {
                appPollsSeen = appPolls;
                continue;
            }
            using (Gate.EnterScope())
            {
                ProgressPolls++;
                PollCore();
                if (Group is not null) Stack.Interface.AnswerEcho = Group.IsLeader; // the leader may have changed
            }
        }
    }

    /// <summary>Sleeps of a waiting thread, counted for USERTCP_STATS.</summary>
    internal static long Sleep(long us)
    {
        CountSleep(us);
        return Kernel.SleepUs((nint)us);
    }

    internal static void CountSleep(long us)
    {
        Interlocked.Increment(ref SleepCount);
        Interlocked.Add(ref SleptUs, us);
    }

    /// <summary>USERTCP_STATS=1: one summary at exit through the C floor (never Console): the GC's collections and
    /// allocations, the stack's packet counters and every non-zero drop reason, and how the waits went.</summary>
    private static void PrintStats()
    {
        long runUs = NowUs - s_startUs;
        Kernel.Stats($"run {runUs / 1000} ms; gc collections gen0 {GC.CollectionCount(0)} gen1 {GC.CollectionCount(1)} " +
                     $"gen2 {GC.CollectionCount(2)}; allocated {GC.GetTotalAllocatedBytes(false)} B; " +
                     $"gc pause {GC.GetTotalPauseDuration().TotalMilliseconds:F1} ms");
        StackCounters c;
        using (Gate.EnterScope()) c = Stack.Counters;
        Kernel.Stats($"packets rx {c.RxPackets} tx {c.TxPackets}; tcp in {c.TcpSegmentsIn} out {c.TcpSegmentsOut} " +
                     $"retransmits {c.TcpRetransmits} (fast {c.TcpFastRetransmits}, timeouts {c.TcpTimeouts}) " +
                     $"rst sent {c.TcpRstSent} received {c.TcpRstReceived} challenge acks {c.TcpChallengeAcks}; " +
                     $"active opens {c.TcpActiveOpens} passive opens {c.TcpPassiveOpens}; syn cookies sent " +
                     $"{c.TcpSynCookiesSent} accepted {c.TcpSynCookiesAccepted}");
        var drops = new StringBuilder();
        for (var r = DropReason.None + 1; r < DropReason.Count; r++)
            if (c.Drops(r) != 0) drops.Append(' ').Append(r).Append(' ').Append(c.Drops(r));
        Kernel.Stats("drops" + (drops.Length == 0 ? " none" : drops.ToString()));
        if (s_device is DpdkDevice dpdk)
        {
            try
            {
                DpdkPortStats d = dpdk.Port.GetStats();
                Kernel.Stats($"device {DeviceDescription}: rx {d.RxPackets} tx {d.TxPackets} rx missed {d.RxMissed} " +
                             $"rx errors {d.RxErrors} tx errors {d.TxErrors} rx no mbuf {d.RxNoMbuf}");
                Kernel.Stats($"device bursts: {dpdk.BurstSummary()}");
            }
            catch (DpdkException e) { Kernel.Stats($"device statistics unavailable: {e.Message}"); }
        }
        if (s_device is PacketSocketDevice psd) Kernel.Stats($"device bursts: {psd.Summary()}");
        Kernel.Stats($"waits: stack polls {PollCount} (progress thread {ProgressPolls}); sleeps {SleepCount}, " +
                     $"slept {SleptUs / 1000} ms in total; device wake-ups {DeviceWakeups}; open sockets {Stack.OpenSockets}");
        if (Group is { } g)
            Kernel.Stats($"listener hand-off: connections handed to the group {g.HandedOff}, adopted {g.Adopted}, " +
                         $"expired unadopted {g.HandOffsExpired}");
    }

    /// <summary>Process exit: every connection is closed (peers see FIN, or RST where data was left unread) and the
    /// last segments are flushed before the device goes away.</summary>
    internal static void Shutdown()
    {
        if (Stack is null) return;
        s_stopping = true;
        using (Gate.EnterScope())
        {
            foreach ((int fd, UserSocket s) in FdTable.Snapshot())
            {
                if (s.Handle >= 0 && s.State == SocketState.Listening)
                {
                    ListenerGroups.Release(s); // counted out of the group; its queue goes to a relative that holds the port
                }
                else if (s.Handle >= 0)
                {
                    Stack.Close(s.Handle);
                    s.Handle = -1;
                }
            }
            Group?.ResetOrphanedExports(Stack.Tcp, NowUs); // the last member: nobody else would reset them
            long end = NowUs + 50_000;
            while (NowUs < end && Stack.PollAt() != long.MaxValue && HasDevice)
            {
                PollLocked();
                Kernel.SleepUs(1000);
            }
            PollLocked();
        }
        if (s_stats) PrintStats(); // after the last segments: the counters include the closing exchange
    }
}
