using System;
using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using UserTcp.Stack.Phy;

namespace UserTcp.Stack.Dpdk;

/// <summary>
/// One queue pair of a <see cref="DpdkPort"/> as an <see cref="IDevice"/>. Packets are DPDK mbufs used in place:
/// a received frame is parsed where the NIC wrote it, a transmitted frame is built in an mbuf from
/// <see cref="Allocate"/>. For a <see cref="PacketBuf"/>: Buffer = buf_addr, Offset = data_off, Length = data_len
/// (single segment), Capacity = buf_len, Handle = the rte_mbuf*.
/// Not thread-safe: one thread polls one device; different devices (queues) of a port may be polled by different
/// threads. The steady-state path allocates nothing and makes no system call (DPDK's poll-mode drivers).
/// </summary>
public sealed unsafe class DpdkDevice : IDevice, IDisposable
{
    private readonly DpdkPort _owner;
    private readonly ushort _port;
    private readonly ushort _queue;
    private readonly nint _pool;
    private readonly int _maxBurst;
    private readonly bool _canRx, _canTx;
    private readonly bool _hwTxIp, _hwTxTcp, _hwRxIp, _hwRxTcp;
    // memif trusted=1: no checksum is computed or verified on this link (DpdkPort.TrustedLink).
    private readonly bool _trusted;
    // Scratch arrays of mbuf pointers for one burst, allocated once (unmanaged: the glue writes into them).
    private nint* _burst;
    private volatile bool _detached;

    /// <summary>Received multi-segment frames, dropped (the stack wants one contiguous frame; scatter is never
    /// enabled, so this only counts driver surprises).</summary>
    public long RxMultiSegmentDrops;
    /// <summary>Transmitted frames whose checksums were asked of the device but computed here because the port
    /// cannot offload them.</summary>
    public long TxSoftwareChecksums;

    /// <summary>Burst counters (cheap increments, read for USERTCP_STATS): receive calls, the calls that returned
    /// frames and the frames; transmit calls (on af_packet each is one <c>sendto()</c> kick), frames taken, and calls
    /// the driver took only part of. Frames per burst and kicks per MB come from these.</summary>
    public long RxCalls, RxBursts, RxFrames, TxCalls, TxFrames, TxShortBursts;
    /// <summary>Transmit calls the driver took nothing of, and the frames it refused in all short calls.</summary>
    public long TxEmptyBursts, TxRefusedFrames;

    public DeviceCapabilities Capabilities { get; }
    public DpdkPort Port => _owner;
    public ushort Queue => _queue;

    internal DpdkDevice(DpdkPort owner, ushort queue, bool canRx, bool canTx, int maxBurst)
    {
        _owner = owner;
        _port = owner.PortId;
        _queue = queue;
        _pool = owner.Pool;
        _maxBurst = maxBurst;
        _canRx = canRx;
        _canTx = canTx;
        byte off = owner.Offloads;
        _hwRxIp = (off & DpdkNative.OffRxIpv4) != 0;
        _hwRxTcp = (off & DpdkNative.OffRxTcp) != 0;
        _hwTxIp = (off & DpdkNative.OffTxIpv4) != 0;
        _hwTxTcp = (off & DpdkNative.OffTxTcp) != 0;
        _trusted = owner.TrustedLink;
        _burst = (nint*)NativeMemory.AllocZeroed((nuint)maxBurst, (nuint)sizeof(nint));
        Capabilities = new DeviceCapabilities
        {
            Mtu = owner.Mtu,
            MacAddress = owner.MacAddress,
            MaxBurst = maxBurst,
            Headroom = RteMbuf.Headroom,
            RxIpv4Checksum = _hwRxIp || _trusted,
            RxTcpChecksum = _hwRxTcp || _trusted,
            TxIpv4Checksum = _hwTxIp || _trusted,
            TxTcpChecksum = _hwTxTcp || _trusted,
        };
    }

    /// <summary>Opens a port with one queue pair and returns its device (dispose the device to close the port).</summary>
    public static DpdkDevice Open(DpdkEalConfig eal, DpdkPortConfig port)
    {
        if (port.RxQueues != 1 || port.TxQueues != 1)
            throw new ArgumentException("DpdkDevice.Open opens one queue pair; use DpdkPort.Open for several");
        return DpdkPort.Open(eal, port).Devices[0];
    }

    // Each burst is one call into the glue, which converts between mbufs and PacketBufs in the loop that touches the
    // mbufs anyway (utd_rx_packets, utd_alloc_packets, utd_tx_packets, utd_free_packets; PacketBuf's layout is
    // mirrored there as struct utd_packet). The rare cases (multi-segment frames, checksum offload) run in managed
    // passes of their own over the RteMbuf mirror. The spans are pinned for the call only: a stack's buffers may
    // live in managed arrays.

    [MethodImpl(MethodImplOptions.NoInlining)] // a burst call is cheap; inlined into a caller it adds register pressure
    public int Receive(Span<PacketBuf> burst)
    {
        if (_detached || !_canRx) return 0;
        int want = Math.Min(burst.Length, _maxBurst);
        if (want == 0) return 0;
        uint segments;
        int n;
        fixed (PacketBuf* dst = burst)
            n = DpdkNative.RxPackets(_port, _queue, dst, (ushort)want, _burst, &segments);
        RxCalls++;
        if (n > 0) { RxBursts++; RxFrames += n; }
        if (segments > 1) n = DropMultiSegment(burst, n); // nb_segs is 1 for every single-segment frame
        if (_hwRxIp | _hwRxTcp) ReadRxOffloads(burst, n);
        else if (_trusted) MarkChecksumsGood(burst, n);
        return n;
    }

    /// <summary>Frees the multi-segment frames of a received burst and closes the gaps; returns what is left.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private int DropMultiSegment(Span<PacketBuf> burst, int n)
    {
        int k = 0;
        for (int i = 0; i < n; i++)
        {
            RteMbuf* m = (RteMbuf*)burst[i].Handle;
            if (m->NbSegs != 1)
            {
                DpdkNative.Free((nint)m);
                RxMultiSegmentDrops++;
                continue;
            }
            burst[k++] = burst[i];
        }
        for (int i = k; i < n; i++) burst[i] = default;
        return k;
    }

    /// <summary>A trusted link: nothing was checksummed by the sender, nothing is verified here.</summary>
    private static void MarkChecksumsGood(Span<PacketBuf> burst, int n)
    {
        for (int i = 0; i < n; i++) burst[i].Offloads = PacketOffloads.RxIpv4ChecksumGood | PacketOffloads.RxTcpChecksumGood;
    }

    /// <summary>The driver's checksum verdicts, as <see cref="PacketOffloads"/>.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ReadRxOffloads(Span<PacketBuf> burst, int n)
    {
        bool rxIp = _hwRxIp, rxTcp = _hwRxTcp;
        for (int i = 0; i < n; i++)
        {
            ulong f = ((RteMbuf*)burst[i].Handle)->OlFlags;
            PacketOffloads o = PacketOffloads.None;
            if (rxIp && (f & RteMbuf.RxIpCksumMask) == RteMbuf.RxIpCksumGood) o |= PacketOffloads.RxIpv4ChecksumGood;
            if (rxTcp && (f & RteMbuf.RxL4CksumMask) == RteMbuf.RxL4CksumGood) o |= PacketOffloads.RxTcpChecksumGood;
            burst[i].Offloads = o;
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    public int Allocate(Span<PacketBuf> burst)
    {
        if (_detached) return 0;
        int want = Math.Min(burst.Length, _maxBurst);
        if (want == 0) return 0;
        fixed (PacketBuf* dst = burst)
            return (int)DpdkNative.AllocPackets(_pool, dst, (uint)want, _burst); // Offset = RTE_PKTMBUF_HEADROOM
    }

    /// <summary>
    /// The glue writes each buffer's Offset and Length back into its mbuf (the mbuf may come from Allocate or from
    /// Receive: a frame sent back out) and transmits. Checksum requests, or transmit flags left from an earlier
    /// attempt, make it return first; they are applied here and the burst is submitted again.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public int Transmit(ReadOnlySpan<PacketBuf> burst)
    {
        if (_detached || !_canTx) return 0;
        int n = Math.Min(burst.Length, _maxBurst);
        if (n == 0) return 0;
        int rc;
        fixed (PacketBuf* src = burst)
        {
            // A trusted link sends the frames as the stack left them (checksum requests ignored: memif reads no
            // mbuf flags, and the peer verifies nothing).
            rc = DpdkNative.TxPackets(_port, _queue, src, (ushort)n, _burst, _trusted ? 1 : 0);
            if (rc == DpdkNative.TxNeedsOffload)
            {
                ApplyTxOffloads(burst, n);
                rc = DpdkNative.TxPackets(_port, _queue, src, (ushort)n, _burst, 1);
            }
        }
        if (rc < 0) ThrowForeignBuffer(-rc - 1);
        TxCalls++;
        TxFrames += rc;
        if (rc < n) CountShort(n, rc);
        return rc;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void CountShort(int offered, int taken)
    {
        TxShortBursts++;
        TxRefusedFrames += offered - taken;
        if (taken == 0) TxEmptyBursts++;
    }

    /// <summary>Sets or clears the transmit checksum requests of a burst (see <see cref="PrepareChecksums"/>).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ApplyTxOffloads(ReadOnlySpan<PacketBuf> burst, int n)
    {
        for (int i = 0; i < n; i++)
        {
            PacketOffloads want = burst[i].Offloads;
            RteMbuf* m = (RteMbuf*)burst[i].Handle;
            if ((want & (PacketOffloads.TxIpv4Checksum | PacketOffloads.TxTcpChecksum)) != 0)
            {
                PrepareChecksums(m, want, out ulong flags, out ulong txOffload);
                m->OlFlags = (m->OlFlags & ~RteMbuf.TxFlagsMask) | flags;
                m->TxOffload = txOffload; // second cache line of the mbuf: only touched when offloading
            }
            else
            {
                m->OlFlags &= ~RteMbuf.TxFlagsMask;
            }
        }
    }

    public void Free(ref PacketBuf packet)
    {
        if (packet.Handle != 0)
        {
            // After the port closed its pool is gone too: there is nothing left to return the mbuf to.
            if (!_detached) DpdkNative.Free(packet.Handle);
        }
        packet = default;
    }

    /// <summary>Frees a whole burst with one call (what a forwarding loop or the stack's receive path wants). Each
    /// buffer's Handle and Length are zeroed (so a second free is a no-op); the other fields are left as they were.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public void FreeBurst(Span<PacketBuf> packets)
    {
        if (_detached)
        {
            // The pool is gone with the port: nothing to return the mbufs to.
            foreach (ref PacketBuf p in packets) { p.Handle = 0; p.Length = 0; }
            return;
        }
        int total = packets.Length, burst = _maxBurst;
        fixed (PacketBuf* first = packets)
        {
            for (int start = 0; start < total; start += burst)
                DpdkNative.FreePackets(first + start, (uint)Math.Min(total - start, burst), _burst);
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowForeignBuffer(int index) =>
        throw new ArgumentException($"packet {index} is not an mbuf of this device, or its Offset/Length exceed the buffer");

    /// <summary>
    /// Checksums the stack asked of the device. With hardware offload DPDK wants the header lengths in tx_offload,
    /// TX_IPV4 set, the IPv4 checksum field zero and the TCP checksum field holding the pseudo-header sum (which the
    /// stack already put there). Otherwise the checksums are computed here (RFC 1071) so the frame is never sent
    /// with a wrong sum.
    /// </summary>
    private void PrepareChecksums(RteMbuf* m, PacketOffloads want, out ulong flags, out ulong txOffload)
    {
        flags = 0;
        txOffload = 0;
        byte* frame = m->BufAddr + m->DataOff;
        int len = m->DataLen;
        if (len < 14 + 20) return;
        int l2 = 14;
        ushort type = BinaryPrimitives.ReadUInt16BigEndian(new ReadOnlySpan<byte>(frame + 12, 2));
        if (type == 0x8100 && len >= 18 + 20) { l2 = 18; type = BinaryPrimitives.ReadUInt16BigEndian(new ReadOnlySpan<byte>(frame + 16, 2)); }
        if (type != 0x0800) return;
        byte* ip = frame + l2;
        int l3 = (ip[0] & 0x0F) * 4;
        if ((ip[0] >> 4) != 4 || l3 < 20 || l2 + l3 > len) return;
        bool wantIp = (want & PacketOffloads.TxIpv4Checksum) != 0;
        bool wantTcp = (want & PacketOffloads.TxTcpChecksum) != 0 && ip[9] == 6;

        if ((!wantIp || _hwTxIp) && (!wantTcp || _hwTxTcp))
        {
            flags = RteMbuf.TxIpv4;
            if (wantIp) { flags |= RteMbuf.TxIpCksum; ip[10] = 0; ip[11] = 0; }
            if (wantTcp) flags |= RteMbuf.TxTcpCksum;
            txOffload = (uint)l2 | (uint)l3 << 7; // l2_len: 7 bits, l3_len: 9 bits
            return;
        }

        TxSoftwareChecksums++;
        if (wantTcp)
        {
            int total = BinaryPrimitives.ReadUInt16BigEndian(new ReadOnlySpan<byte>(ip + 2, 2));
            int segment = Math.Min(total, len - l2) - l3;
            if (segment >= 20)
            {
                // RFC 793 section 3.1: the sum covers a pseudo-header (addresses, protocol, TCP length) and the
                // segment with the checksum field zero. The stack put the pseudo-header sum in the field already,
                // but it is recomputed here from the IPv4 header so that a frame transmitted again (a retry after a
                // short tx burst) is summed correctly a second time.
                byte* tcp = ip + l3;
                ulong pseudo = (ulong)OnesSum(ip + 12, 8) + 6 + (ulong)segment;
                tcp[16] = 0;
                tcp[17] = 0;
                ulong full = pseudo + OnesSum(tcp, segment);
                while ((full >> 16) != 0) full = (full & 0xFFFF) + (full >> 16);
                ushort sum = (ushort)~(ushort)full;
                tcp[16] = (byte)(sum >> 8);
                tcp[17] = (byte)sum;
            }
        }
        if (wantIp)
        {
            ip[10] = 0;
            ip[11] = 0;
            ushort sum = (ushort)~OnesSum(ip, l3);
            ip[10] = (byte)(sum >> 8);
            ip[11] = (byte)sum;
        }
    }

    /// <summary>The 16-bit ones' complement sum of <paramref name="length"/> bytes (big-endian words, odd byte padded).</summary>
    private static ushort OnesSum(byte* p, int length)
    {
        ulong sum = 0;
        int i = 0;
        for (; i + 1 < length; i += 2) sum += (ulong)p[i] << 8 | (ulong)p[i + 1];
        if (i < length) sum += (ulong)p[i] << 8;
        while ((sum >> 16) != 0) sum = (sum & 0xFFFF) + (sum >> 16);
        return (ushort)sum;
    }

    /// <summary>The burst counters as one line: frames per non-empty receive call, frames per transmit call.</summary>
    public string BurstSummary() =>
        $"rx calls {RxCalls} non-empty {RxBursts} frames {RxFrames} ({(RxBursts == 0 ? 0 : (double)RxFrames / RxBursts):F2} " +
        $"per burst); tx calls {TxCalls} frames {TxFrames} ({(TxCalls == 0 ? 0 : (double)TxFrames / TxCalls):F2} per call), " +
        $"short {TxShortBursts} (none taken {TxEmptyBursts}, frames refused {TxRefusedFrames}); {LcoreSummary()}";

    /// <summary>Threads the glue gave an lcore id (so their mbufs go through the pool's per-lcore cache: glue.c,
    /// "lcore ids for every thread"), and threads that found none left.</summary>
    public static string LcoreSummary()
    {
        uint given, refused, released;
        DpdkNative.LcoreStats(&given, &refused, &released);
        return $"threads given an lcore id {given} (given back {released})" + (refused > 0 ? $" (none left for {refused})" : "");
    }

    /// <summary>The driver can wake a receiver that sleeps (<see cref="ArmRxInterrupt"/>): memif, whose rings have an
    /// eventfd the peer writes after sending while the receiver asks for it.</summary>
    public bool HasRxInterrupt => _canRx && _owner.Driver == "net_memif";

    /// <summary>
    /// Before sleeping: asks the peer to signal the next frame for this queue and returns a file descriptor that
    /// turns readable (POLLIN) when one arrives (or already waits: then it is readable at once). Negative errno when
    /// there is nothing to sleep on: ENOTCONN while the link is down, ENOTSUP for drivers without it (or a memif
    /// PMD laid out differently from DPDK 22.11's), ENODEV after close. The signals cost the peer a system call per
    /// transmit burst, so call <see cref="DisarmRxInterrupt"/> once frames flow again. Not the data path: once per
    /// sleep. May be called beside the thread that polls this device (it only flips the ring's flag).
    /// </summary>
    public int ArmRxInterrupt()
    {
        if (_detached) return -19; // ENODEV
        if (!HasRxInterrupt) return -95; // ENOTSUP
        return DpdkNative.MemifRxArm(_port, _queue);
    }

    /// <summary>Stops the peer's signals (the receiver polls again). With <paramref name="drain"/> also empties the
    /// eventfd, so the next sleep does not end at once on a signal already consumed. 0 or a negative errno.</summary>
    public int DisarmRxInterrupt(bool drain)
    {
        if (_detached) return -19;
        if (!HasRxInterrupt) return -95;
        return DpdkNative.MemifRxDisarm(_port, _queue, drain ? 1 : 0);
    }

    /// <summary>Called by the port when it closes: later calls do nothing instead of touching a stopped port.</summary>
    internal void Detach()
    {
        if (_detached) return;
        _detached = true;
        NativeMemory.Free(_burst);
        _burst = null;
    }

    /// <summary>Closes the whole port (all its devices).</summary>
    public void Dispose() => _owner.Dispose();
}
