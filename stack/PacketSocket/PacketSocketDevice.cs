using System;
using System.Runtime.InteropServices;
using System.Text;
using System.Threading;
using UserTcp.Stack.Phy;
using UserTcp.Stack.Wire;

namespace UserTcp.Stack.PacketSocket;

/// <summary>Settings of a <see cref="PacketSocketDevice"/> (USERTCP_DEV=<c>packet:IFACE[,tso=0|1][,bypass=0|1][,burst=N][,buffers=N][,ring=N]</c>).</summary>
public sealed class PacketSocketConfig
{
    /// <summary>The interface to bind to (in the caller's network namespace).</summary>
    public string Interface { get; init; } = "";
    /// <summary>Offer TCP segmentation offload (large segments handed to the kernel as GSO packets). On by default.</summary>
    public bool Tso { get; init; } = true;
    /// <summary>Frames per receive or transmit call (1..64).</summary>
    public int Burst { get; init; } = 32;
    /// <summary>PACKET_QDISC_BYPASS: null = on unless we send GSO packets to an interface without TSO (the kernel
    /// then drops them instead of segmenting them).</summary>
    public bool? QdiscBypass { get; init; }
    /// <summary>Buffers in the device's pool (each holds a 64 KB segment; pages are touched only as they are used).</summary>
    public int Buffers { get; init; } = 512;
    /// <summary>Slots in the TPACKET_V2 receive ring (each one MTU-sized frame, 1,616 bytes for an MTU of 1,500; a
    /// larger frame, a GSO packet, waits in the socket's queue); 0 = no ring, one recvmmsg() per poll into the pool's
    /// buffers. 10,240 by default (256 blocks, 16 MiB at an MTU of 1,500): a closed-loop client of 10,000
    /// connections sends a request on each at once, and while the process is not running (a shared CPU) the kernel
    /// drops what the ring cannot hold; each drop costs the peer a loss probe or a retransmission timeout (W3 at 10k
    /// connections: 2,000-19,000 drops per run with 1,024 or 4,096 slots; docs/benchmarks.md, "Session 6,
    /// tcpfix").</summary>
    public int RingFrames { get; init; } = DefaultRingFrames;
    public const int DefaultRingFrames = 10240;

    /// <summary>Parses the text after <c>packet:</c>: the interface name, then comma-separated options.</summary>
    public static PacketSocketConfig Parse(string text)
    {
        string[] parts = text.Split(',');
        string iface = parts[0];
        if (iface.Length == 0 || iface.Length > 15 || iface.Contains('/') || iface.Contains(' '))
            throw new ArgumentException($"'{iface}' is not an interface name (packet:IFACE[,tso=0|1][,bypass=0|1][,burst=N][,buffers=N][,ring=N])");
        bool tso = true;
        bool? bypass = null;
        int burst = 32, buffers = 512, ring = DefaultRingFrames;
        for (int i = 1; i < parts.Length; i++)
        {
            string[] kv = parts[i].Split('=', 2);
            if (kv.Length != 2) throw new ArgumentException($"option '{parts[i]}' is not name=value");
            switch (kv[0])
            {
                case "tso" when kv[1] is "0" or "1": tso = kv[1] == "1"; break;
                case "bypass" when kv[1] is "0" or "1": bypass = kv[1] == "1"; break;
                case "burst" when int.TryParse(kv[1], out int b) && b is >= 1 and <= 64: burst = b; break;
                case "buffers" when int.TryParse(kv[1], out int n) && n is >= 64 and <= 65536: buffers = n; break;
                case "ring" when int.TryParse(kv[1], out int f) && f is 0 or (>= 8 and <= 65536): ring = f; break;
                default: throw new ArgumentException($"bad option '{parts[i]}' (tso=0|1, bypass=0|1, burst=1..64, buffers=64..65536, ring=0|8..65536)");
            }
        }
        return new PacketSocketConfig { Interface = iface, Tso = tso, QdiscBypass = bypass, Burst = burst, Buffers = buffers, RingFrames = ring };
    }
}

/// <summary>
/// A Linux packet socket (AF_PACKET, SOCK_RAW) bound to one interface, with PACKET_VNET_HDR: every frame travels with
/// a <c>struct virtio_net_hdr</c> in front of it, through which the kernel takes large TCP segments as GSO packets
/// (TSO: <see cref="PacketBuf.SegmentSize"/>) and leaves TCP checksums to be completed later (NEEDS_CSUM), and hands
/// over received GSO packets whole. Transmit: one sendmmsg() per burst from our own buffers (the kernel copies each
/// frame into an skb; with qdisc bypass it goes straight to the driver). Receive: one recvmmsg() per burst into our
/// buffers. The socket's fd is what an idle process waits on (<see cref="Fd"/>). System calls go through libc's
/// syscall(), so a preloaded libusertcp.so never sees them as calls of the application. Not thread-safe.
/// </summary>
public sealed unsafe class PacketSocketDevice : IDevice, IDisposable
{
    private const int VnetHeader = 10; // struct virtio_net_hdr
    private const int Headroom = 128;
    /// <summary>Largest TCP payload of one GSO packet we send: one IPv4 packet (65,535) less IPv4 and TCP headers.</summary>
    public const int MaxSegmentBytes = 65535 - 20 - 60;

    private readonly NativePacketPool _pool;
    private readonly int _burst;
    private int _fd;
    // sendmmsg/recvmmsg arguments, built once: per message a struct mmsghdr (64 bytes) and one iovec (16 bytes).
    private readonly byte* _txMsgs, _txIov, _rxMsgs, _rxIov;
    // Receive buffers posted to the kernel: slot i's iovec points at _rxPosted[i].
    private readonly PacketBuf[] _rxPosted;
    // The TPACKET_V2 receive ring (null without one): _ringFrames slots of _slotSize bytes, _slotsPerBlock to a block
    // of RingBlockSize bytes; _ringHead is the next slot the kernel fills in order, at _headSlot, the
    // _headInBlock-th of its block. A frame too big for a slot (PACKET_COPY_THRESH) takes its slot truncated with
    // TP_STATUS_COPY and waits whole in the socket's queue, read with recvmmsg() into _rxPosted[0].
    private byte* _ring;
    private readonly long _ringBytes;
    private readonly int _ringFrames, _slotSize, _slotsPerBlock;
    private int _ringHead, _headInBlock;
    private byte* _headSlot;

    /// <summary>Bytes per ring block (an order-4 allocation).</summary>
    public const int RingBlockSize = 1 << 16;

    /// <summary>Bytes of a slot before the Ethernet header: the tpacket2 header, its sockaddr_ll, alignment and the
    /// virtio header (76 on 6.18; a little room kept).</summary>
    private const int RingSlotHeader = 80;

    /// <summary>Bytes per ring slot for an interface MTU: the slot header, then a frame of the MTU with two VLAN tags,
    /// rounded to 16 (TPACKET_ALIGNMENT): 1,616 for an MTU of 1,500, so 40 slots to a block (2,048-byte slots gave
    /// 32). At most 2,048: a larger frame (jumbo MTU, a GSO packet) takes the TP_STATUS_COPY path.</summary>
    public static int RingSlotSize(int mtu) => Math.Min(2048, (RingSlotHeader + 14 + 8 + Math.Max(mtu, 68) + 15) & ~15);

    /// <summary>Bytes per slot of this device's ring (0 without one).</summary>
    public int RingSlotBytes => _ring != null ? _slotSize : 0;

    public DeviceCapabilities Capabilities { get; }
    /// <summary>The packet socket (POLLIN while a frame waits).</summary>
    public int Fd => _fd;
    public string InterfaceName { get; }
    /// <summary>Frames skip the interface's qdisc (PACKET_QDISC_BYPASS).</summary>
    public bool QdiscBypass { get; private init; }
    /// <summary>The interface segments TCP itself (ethtool tso on): our GSO packets pass through whole.</summary>
    public bool InterfaceTso { get; private init; }

    /// <summary>Slots in the receive ring (0: recvmmsg() per poll).</summary>
    public int RingFrames => _ringFrames;

    // Counters (USERTCP_STATS). RxCalls counts receive system calls (none with the ring); RxPolls every Receive.
    public long RxPolls, RxEmptyPolls, RxCalls, RxFrames, RxLarge, RxDropped, TxCalls, TxFrames, TxLarge, TxDropped, TxRefused;

    private PacketSocketDevice(PacketSocketConfig config, int fd, MacAddress mac, int mtu, byte* ring, long ringBytes, int ringFrames,
        int slotSize)
    {
        _fd = fd;
        _ring = ring;
        _ringBytes = ringBytes;
        _ringFrames = ringFrames;
        _slotSize = slotSize;
        _slotsPerBlock = RingBlockSize / slotSize;
        _headSlot = ring;
        _burst = config.Burst;
        InterfaceName = config.Interface;
        int bufferSize = Headroom + 14 + 20 + 60 + MaxSegmentBytes + 64;
        _pool = new NativePacketPool(config.Buffers, bufferSize, Headroom);
        Capabilities = new DeviceCapabilities
        {
            Mtu = mtu,
            MacAddress = mac,
            MaxBurst = config.Burst,
            Headroom = Headroom,
            TxTcpChecksum = true,   // NEEDS_CSUM: the kernel (or nobody, on a veth) completes the checksum
            RxTcpChecksum = true,   // NEEDS_CSUM / DATA_VALID frames are marked good; others are checked by the stack
            TsoMaxBytes = config.Tso ? MaxSegmentBytes : 0,
        };
        _txMsgs = (byte*)NativeMemory.AllocZeroed((nuint)(64 * _burst));
        _txIov = (byte*)NativeMemory.AllocZeroed((nuint)(16 * _burst));
        _rxMsgs = (byte*)NativeMemory.AllocZeroed((nuint)(64 * _burst));
        _rxIov = (byte*)NativeMemory.AllocZeroed((nuint)(16 * _burst));
        for (int i = 0; i < _burst; i++)
        {
            // struct msghdr: name 0, namelen 8, iov 16, iovlen 24, control 32, controllen 40, flags 48; msg_len at 56.
            *(byte**)(_txMsgs + 64 * i + 16) = _txIov + 16 * i;
            *(long*)(_txMsgs + 64 * i + 24) = 1;
            *(byte**)(_rxMsgs + 64 * i + 16) = _rxIov + 16 * i;
            *(long*)(_rxMsgs + 64 * i + 24) = 1;
        }
        _rxPosted = new PacketBuf[_burst];
        if (_ring == null)
            for (int i = 0; i < _burst; i++) PostRx(i);
        else
            PostRx(0);
    }

    /// <summary>Opens and binds the socket. Throws <see cref="InvalidOperationException"/> with the reason (no such
    /// interface, not permitted, ...).</summary>
    public static PacketSocketDevice Open(PacketSocketConfig config)
    {
        const int AF_PACKET = 17, SOCK_RAW = 3, SOCK_NONBLOCK = 0x800, SOCK_CLOEXEC = 0x80000;
        const ushort ETH_P_ALL_BE = 0x0300; // htons(ETH_P_ALL = 3)
        // Protocol 0: the socket receives nothing until bind() names the interface and ETH_P_ALL (with ETH_P_ALL here
        // frames of every interface would queue up in between).
        long fd = Sys.Call(Sys.Socket, AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) throw Fail("socket(AF_PACKET)", fd, config.Interface);
        try
        {
            byte* ifr = stackalloc byte[40];
            Ifreq(ifr, config.Interface);
            long r = Sys.Call(Sys.Ioctl, fd, 0x8933 /* SIOCGIFINDEX */, (long)ifr);
            if (r < 0) throw Fail("SIOCGIFINDEX", r, config.Interface);
            int ifindex = *(int*)(ifr + 16);
            Ifreq(ifr, config.Interface);
            r = Sys.Call(Sys.Ioctl, fd, 0x8927 /* SIOCGIFHWADDR */, (long)ifr);
            if (r < 0) throw Fail("SIOCGIFHWADDR", r, config.Interface);
            ulong mac = 0;
            for (int i = 0; i < 6; i++) mac = mac << 8 | ifr[18 + i];
            Ifreq(ifr, config.Interface);
            r = Sys.Call(Sys.Ioctl, fd, 0x8921 /* SIOCGIFMTU */, (long)ifr);
            if (r < 0) throw Fail("SIOCGIFMTU", r, config.Interface);
            int mtu = *(int*)(ifr + 16);

            const int SOL_PACKET = 263, SOL_SOCKET = 1;
            SetInt(fd, SOL_PACKET, 15 /* PACKET_VNET_HDR */, 1, "PACKET_VNET_HDR", config.Interface);
            // Qdisc bypass hands each frame straight to the driver, which must then take a GSO packet as it is: the
            // kernel drops (ENOBUFS) one it would have to segment. So bypass only where the interface does TSO
            // itself (ethtool's tcp-segmentation-offload); elsewhere frames take the qdisc path, where the kernel
            // segments GSO packets in software, as it does for its own TCP on that interface.
            Ifreq(ifr, config.Interface);
            int* ev = stackalloc int[2];
            ev[0] = 0x1e; // ETHTOOL_GTSO
            ev[1] = 0;
            *(int**)(ifr + 16) = ev;
            bool ifaceTso = Sys.Call(Sys.Ioctl, fd, 0x8946 /* SIOCETHTOOL */, (long)ifr) >= 0 && ev[1] != 0;
            bool bypass = config.QdiscBypass ?? (ifaceTso || !config.Tso);
            if (bypass && !ifaceTso && config.Tso)
            {
                // bypass=1 asked for on an interface without TSO: every GSO packet would be refused (ENOBUFS, taken
                // for a full queue, so the burst's head would be retried for ever). Large segments off instead.
                config = new PacketSocketConfig
                {
                    Interface = config.Interface, Tso = false, QdiscBypass = config.QdiscBypass, Burst = config.Burst,
                    Buffers = config.Buffers, RingFrames = config.RingFrames,
                };
            }
            if (bypass) SetInt(fd, SOL_PACKET, 20 /* PACKET_QDISC_BYPASS */, 1, "PACKET_QDISC_BYPASS", config.Interface);
            SetInt(fd, SOL_PACKET, 23 /* PACKET_IGNORE_OUTGOING */, 1, "PACKET_IGNORE_OUTGOING", config.Interface);
            // Room for bursts of 64 KB segments in flight in both directions (FORCE: past the sysctl limits; root
            // is needed for the socket anyway). Best effort: without it the sends are refused sooner.
            int big = 16 << 20;
            if (SetIntRaw(fd, SOL_SOCKET, 32 /* SO_SNDBUFFORCE */, big) < 0) SetIntRaw(fd, SOL_SOCKET, 7 /* SO_SNDBUF */, big);
            if (SetIntRaw(fd, SOL_SOCKET, 33 /* SO_RCVBUFFORCE */, big) < 0) SetIntRaw(fd, SOL_SOCKET, 8 /* SO_RCVBUF */, big);

            // The receive ring (after PACKET_VNET_HDR, which the kernel refuses once a ring exists; before bind, so no
            // frame lands in the socket's queue instead): TPACKET_V2, slots of one MTU-sized frame (RingSlotSize).
            byte* ring = null;
            long ringBytes = 0;
            int ringFrames = 0, slotSize = RingSlotSize(mtu);
            if (config.RingFrames > 0)
            {
                SetInt(fd, SOL_PACKET, 10 /* PACKET_VERSION */, 1 /* TPACKET_V2 */, "PACKET_VERSION", config.Interface);
                // Frames bigger than a slot are queued whole on the socket too (the slot says TP_STATUS_COPY).
                SetInt(fd, SOL_PACKET, 7 /* PACKET_COPY_THRESH */, 1, "PACKET_COPY_THRESH", config.Interface);
                int perBlock = RingBlockSize / slotSize;
                int blocks = (config.RingFrames + perBlock - 1) / perBlock;
                ringFrames = blocks * perBlock;
                uint* req = stackalloc uint[4]; // struct tpacket_req
                req[0] = RingBlockSize;
                req[1] = (uint)blocks;
                req[2] = (uint)slotSize;
                req[3] = (uint)ringFrames;
                r = Sys.Call(Sys.Setsockopt, fd, SOL_PACKET, 5 /* PACKET_RX_RING */, (long)req, 16);
                if (r < 0) throw Fail("PACKET_RX_RING", r, config.Interface);
                ringBytes = (long)blocks * RingBlockSize;
                r = Sys.Call(Sys.Mmap, 0, ringBytes, 3 /* PROT_READ | PROT_WRITE */, 1 /* MAP_SHARED */, fd, 0);
                if (r < 0) throw Fail("mmap of the receive ring", r, config.Interface);
                ring = (byte*)r;
            }

            byte* sll = stackalloc byte[20];
            new Span<byte>(sll, 20).Clear();
            *(ushort*)sll = AF_PACKET;
            *(ushort*)(sll + 2) = ETH_P_ALL_BE;
            *(int*)(sll + 4) = ifindex;
            r = Sys.Call(Sys.Bind, fd, (long)sll, 20);
            if (r < 0)
            {
                if (ring != null) Sys.Call(Sys.Munmap, (long)ring, ringBytes);
                throw Fail("bind", r, config.Interface);
            }
            return new PacketSocketDevice(config, (int)fd, new MacAddress(mac), mtu, ring, ringBytes, ringFrames, slotSize)
            {
                QdiscBypass = bypass,
                InterfaceTso = ifaceTso,
            };
        }
        catch
        {
            Sys.Call(Sys.Close, fd);
            throw;
        }
    }

    private static void Ifreq(byte* ifr, string name)
    {
        new Span<byte>(ifr, 40).Clear();
        Encoding.ASCII.GetBytes(name, new Span<byte>(ifr, 15));
    }

    private static long SetIntRaw(long fd, int level, int name, int value)
    {
        int v = value;
        return Sys.Call(Sys.Setsockopt, fd, level, name, (long)&v, 4);
    }

    private static void SetInt(long fd, int level, int name, int value, string what, string iface)
    {
        long r = SetIntRaw(fd, level, name, value);
        if (r < 0) throw Fail(what, r, iface);
    }

    private static InvalidOperationException Fail(string what, long r, string iface) =>
        new($"packet socket on '{iface}': {what} failed: {Sys.ErrnoName((int)-r)}");

    /// <summary>Posts a fresh pool buffer in receive slot <paramref name="i"/> (or none when the pool is empty).</summary>
    private void PostRx(int i)
    {
        if (!_pool.TryRent(out PacketBuf p))
        {
            _rxPosted[i] = default;
            *(long*)(_rxIov + 16 * i + 8) = 0;
            return;
        }
        _rxPosted[i] = p;
        *(byte**)(_rxIov + 16 * i) = p.Buffer + p.Offset - VnetHeader;
        *(long*)(_rxIov + 16 * i + 8) = p.Capacity - p.Offset + VnetHeader;
    }

    public int Receive(Span<PacketBuf> burst)
    {
        RxPolls++;
        if (_ring != null) return ReceiveRing(burst);
        int want = Math.Min(burst.Length, _burst);
        // Slots without a buffer (the pool ran dry) are refilled first; a burst stops at the first empty one.
        int ready = 0;
        while (ready < want && (_rxPosted[ready].Buffer != null || RefillRx(ready))) ready++;
        if (ready == 0 || _fd < 0) return 0;
        for (int i = 0; i < ready; i++) *(int*)(_rxMsgs + 64 * i + 48) = 0; // msg_flags
        long n = Sys.RecvMmsg(_fd, _rxMsgs, ready, 0x40 /* MSG_DONTWAIT */);
        RxCalls++;
        if (n <= 0)
        {
            RxEmptyPolls++;
            return 0;
        }
        int got = 0;
        for (int i = 0; i < (int)n; i++)
        {
            PacketBuf p = _rxPosted[i];
            int len = *(int*)(_rxMsgs + 64 * i + 56) - VnetHeader;
            int flags = *(int*)(_rxMsgs + 64 * i + 48);
            byte* h = p.Buffer + p.Offset - VnetHeader;
            if (len < 14 || (flags & 0x20 /* MSG_TRUNC */) != 0 || len > p.Capacity - p.Offset)
            {
                RxDropped++;
                continue; // the buffer stays posted
            }
            p.SetLength(len);
            p.Offloads = PacketOffloads.None;
            // virtio_net_hdr flags: NEEDS_CSUM (1: the checksum is still to be completed; it was never at risk on the
            // wire) or DATA_VALID (2: the kernel checked it): the TCP checksum counts as good.
            if ((h[0] & 3) != 0) p.Offloads = PacketOffloads.RxTcpChecksumGood;
            if (h[1] != 0) RxLarge++;
            burst[got++] = p;
            PostRx(i);
        }
        // Move the posted slots back into order (taken ones were refilled in place): nothing to do, each slot has
        // its own buffer. Frames dropped above kept theirs.
        RxFrames += got;
        return got;
    }

    /// <summary>Takes the frames the kernel has put in the ring, in order, without a system call: each is copied into
    /// a pool buffer (so the stack may keep it as long as it likes) and its slot goes back to the kernel at once.
    /// When the ring is full the kernel drops new frames and counts them (PACKET_STATISTICS).</summary>
    private int ReceiveRing(Span<PacketBuf> burst)
    {
        int want = Math.Min(burst.Length, _burst);
        int got = 0;
        while (got < want)
        {
            byte* f = _headSlot;
            // tpacket2_hdr: tp_status 0, tp_len 4, tp_snaplen 8, tp_mac 12. TP_STATUS_USER (1): the frame is ours;
            // the acquire read orders the reads of the frame after it.
            if ((Volatile.Read(ref *(uint*)f) & 1) == 0) break;
            uint status = *(uint*)f;
            uint len = *(uint*)(f + 4), snap = *(uint*)(f + 8);
            int mac = *(ushort*)(f + 12);
            if ((status & 2 /* TP_STATUS_COPY */) != 0)
            {
                // Too big for the slot: the whole frame is the next one in the socket's queue.
                if (_rxPosted[0].Buffer == null && !RefillRx(0)) break; // no buffer: it waits
                if (TakeQueued(out PacketBuf big)) burst[got++] = big;
            }
            else if (snap < 14 || snap != len || mac < 32 + VnetHeader || mac + (long)snap > _slotSize
                || snap > (uint)(_pool.BufferSize - _pool.Headroom))
            {
                RxDropped++; // runt, truncated (did not fit the slot) or bigger than our buffers
            }
            else
            {
                if (!_pool.TryRent(out PacketBuf p)) break; // no buffer: the frame waits in the ring
                System.Buffer.MemoryCopy(f + mac, p.Buffer + p.Offset, p.Capacity - p.Offset, snap);
                p.SetLength((int)snap);
                byte* h = f + mac - VnetHeader;
                p.Offloads = (h[0] & 3) != 0 ? PacketOffloads.RxTcpChecksumGood : PacketOffloads.None;
                if (h[1] != 0) RxLarge++;
                burst[got++] = p;
            }
            // Back to the kernel (TP_STATUS_KERNEL); the release write orders our reads of the frame before it.
            Volatile.Write(ref *(uint*)f, 0u);
            // The next slot: on in this block, else the start of the next block (a block's tail past its last slot is
            // unused), else the ring's start.
            if (++_ringHead == _ringFrames) { _ringHead = 0; _headInBlock = 0; _headSlot = _ring; }
            else if (++_headInBlock == _slotsPerBlock) { _headInBlock = 0; _headSlot = _ring + (long)(_ringHead / _slotsPerBlock) * RingBlockSize; }
            else _headSlot += _slotSize;
        }
        if (got == 0) RxEmptyPolls++;
        RxFrames += got;
        return got;
    }

    /// <summary>Reads the frame at the head of the socket's queue (one that did not fit a ring slot) into the buffer
    /// posted in receive slot 0. False (counted as a drop) when the kernel had none or it is unusable.</summary>
    private bool TakeQueued(out PacketBuf p)
    {
        p = default;
        *(int*)(_rxMsgs + 48) = 0;
        long n = Sys.RecvMmsg(_fd, _rxMsgs, 1, 0x40 /* MSG_DONTWAIT */);
        RxCalls++;
        if (n <= 0)
        {
            RxDropped++;
            return false;
        }
        PacketBuf q = _rxPosted[0];
        int len = *(int*)(_rxMsgs + 56) - VnetHeader;
        byte* h = q.Buffer + q.Offset - VnetHeader;
        if (len < 14 || (*(int*)(_rxMsgs + 48) & 0x20 /* MSG_TRUNC */) != 0 || len > q.Capacity - q.Offset)
        {
            RxDropped++;
            return false; // the buffer stays posted
        }
        q.SetLength(len);
        q.Offloads = (h[0] & 3) != 0 ? PacketOffloads.RxTcpChecksumGood : PacketOffloads.None;
        if (h[1] != 0) RxLarge++;
        p = q;
        PostRx(0);
        return true;
    }

    private bool RefillRx(int i)
    {
        PostRx(i);
        return _rxPosted[i].Buffer != null;
    }

    public int Allocate(Span<PacketBuf> burst) => _pool.Rent(burst);

    public int Transmit(ReadOnlySpan<PacketBuf> burst)
    {
        int n = Math.Min(burst.Length, _burst);
        if (n == 0) return 0;
        if (_fd < 0) return 0;
        int built = 0;
        for (int i = 0; i < n; i++)
        {
            PacketBuf p = burst[i];
            byte* f = p.Buffer + p.Offset;
            if (p.Offset < VnetHeader)
            {
                // No room for the virtio header (not a buffer of ours): an empty message, which the kernel refuses
                // (EINVAL), so it is counted and dropped below like any frame the kernel rejects.
                *(byte**)(_txIov + 16 * built) = f;
                *(long*)(_txIov + 16 * built + 8) = 0;
                built++;
                continue;
            }
            byte* h = f - VnetHeader;
            *(ulong*)h = 0;
            *(ushort*)(h + 8) = 0;
            if ((p.Offloads & PacketOffloads.TxTcpChecksum) != 0 || p.SegmentSize != 0)
            {
                // IPv4 (no VLAN): the checksum starts at the TCP header, its field 16 bytes in.
                int ihl = p.Length >= 34 && f[12] == 8 && f[13] == 0 ? (f[14] & 0xF) * 4 : 0;
                if (ihl >= 20 && f[23] == 6 && p.Length >= 14 + ihl + 20)
                {
                    h[0] = 1; // VIRTIO_NET_HDR_F_NEEDS_CSUM
                    *(ushort*)(h + 6) = (ushort)(14 + ihl);
                    *(ushort*)(h + 8) = 16;
                    if (p.SegmentSize != 0)
                    {
                        int thl = (f[14 + ihl + 12] >> 4) * 4;
                        h[1] = 1; // VIRTIO_NET_HDR_GSO_TCPV4
                        *(ushort*)(h + 2) = (ushort)(14 + ihl + thl);
                        *(ushort*)(h + 4) = p.SegmentSize;
                    }
                }
            }
            *(byte**)(_txIov + 16 * built) = h;
            *(long*)(_txIov + 16 * built + 8) = p.Length + VnetHeader;
            built++;
        }
        int taken = 0;
        while (taken < n)
        {
            long r = Sys.SendMmsg(_fd, _txMsgs + 64 * taken, n - taken, 0x40 /* MSG_DONTWAIT */);
            TxCalls++;
            if (r > 0)
            {
                for (int i = taken; i < taken + (int)r; i++)
                {
                    if (burst[i].SegmentSize != 0) TxLarge++;
                    PacketBuf done = burst[i];
                    _pool.Return(ref done);
                }
                TxFrames += r;
                taken += (int)r;
                continue;
            }
            int err = (int)-r;
            if (err is 11 /* EAGAIN */ or 105 /* ENOBUFS */ or 4 /* EINTR */)
            {
                TxRefused++;
                break; // the socket's send buffer is full: the caller keeps the rest and retries
            }
            // The kernel rejected this frame (malformed, too big for the device, link down): counted and dropped, the
            // burst goes on.
            TxDropped++;
            PacketBuf bad = burst[taken];
            _pool.Return(ref bad);
            taken++;
        }
        return taken;
    }

    public void Free(ref PacketBuf packet) => _pool.Return(ref packet);

    /// <summary>Frames the kernel dropped because the socket's receive queue was full (PACKET_STATISTICS, summed
    /// over the reads: the kernel resets its count on each).</summary>
    public long KernelRxDrops
    {
        get
        {
            if (_fd < 0) return _kernelDrops;
            uint* st = stackalloc uint[2];
            int len = 8;
            if (Sys.Call(Sys.Getsockopt, _fd, 263 /* SOL_PACKET */, 6 /* PACKET_STATISTICS */, (long)st, (long)&len) >= 0)
                _kernelDrops += st[1];
            return _kernelDrops;
        }
    }
    private long _kernelDrops;

    /// <summary>One line for USERTCP_STATS.</summary>
    public string Summary() =>
        $"packet socket {InterfaceName}: rx {(_ring != null ? $"ring {_ringFrames} slots" : "recvmmsg")} polls {RxPolls} " +
        $"(empty {RxEmptyPolls}) calls {RxCalls} frames {RxFrames} (large {RxLarge}, dropped {RxDropped}, " +
        $"kernel queue drops {KernelRxDrops}); " +
        $"tx calls {TxCalls} frames {TxFrames} (large {TxLarge}, dropped {TxDropped}, refused bursts {TxRefused}); " +
        $"tso {(Capabilities.TsoMaxBytes > 0 ? "on" : "off")}, interface tso {(InterfaceTso ? "on" : "off")}, " +
        $"qdisc bypass {(QdiscBypass ? "on" : "off")}";

    public void Dispose()
    {
        if (_ring != null) Sys.Call(Sys.Munmap, (long)_ring, _ringBytes);
        _ring = null;
        if (_fd >= 0) Sys.Call(Sys.Close, _fd);
        _fd = -1;
        for (int i = 0; i < _rxPosted.Length; i++)
            if (_rxPosted[i].Buffer != null) _pool.Return(ref _rxPosted[i]);
        NativeMemory.Free(_txMsgs);
        NativeMemory.Free(_txIov);
        NativeMemory.Free(_rxMsgs);
        NativeMemory.Free(_rxIov);
        _pool.Dispose();
    }

    /// <summary>Raw Linux x86-64 system calls through libc's syscall() (not the socket functions a preloaded
    /// libusertcp.so wraps). Results are the kernel's: negative errno on failure.</summary>
    private static class Sys
    {
        public const long Close = 3, Mmap = 9, Munmap = 11, Ioctl = 16, Socket = 41, Bind = 49, Setsockopt = 54, Getsockopt = 55, RecvMmsgNr = 299, SendMmsgNr = 307;

        [DllImport("libc.so.6", EntryPoint = "syscall", SetLastError = true)]
        private static extern long syscall(long n, long a1, long a2, long a3, long a4, long a5, long a6);

        public static long Call(long n, long a1 = 0, long a2 = 0, long a3 = 0, long a4 = 0, long a5 = 0, long a6 = 0)
        {
            long r = syscall(n, a1, a2, a3, a4, a5, a6);
            return r == -1 ? -Marshal.GetLastPInvokeError() : r;
        }

        public static long SendMmsg(int fd, byte* msgs, int n, int flags) => Call(SendMmsgNr, fd, (long)msgs, n, flags);
        public static long RecvMmsg(int fd, byte* msgs, int n, int flags) => Call(RecvMmsgNr, fd, (long)msgs, n, flags, 0);

        public static string ErrnoName(int e) => e switch
        {
            1 => "EPERM (needs CAP_NET_RAW)",
            19 => "ENODEV (no such interface)",
            13 => "EACCES",
            97 => "EAFNOSUPPORT",
            92 => "ENOPROTOOPT (kernel lacks the option)",
            _ => $"errno {e}",
        };
    }
}
