using System.Runtime.InteropServices;
using UserTcp.Stack.Phy;


namespace UserTcp.Stack.Dpdk;

/// <summary>
/// The fields of DPDK 22.11's <c>struct rte_mbuf</c> (x86-64, 128 bytes) that the device reads and writes. Only these
/// offsets are relied on; glue.c static-asserts them and <see cref="Layout"/> lists them in the order
/// <c>utd_mbuf_layout()</c> reports, so a test compares both.
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = 128)]
internal unsafe struct RteMbuf
{
    [FieldOffset(0)] public byte* BufAddr;
    [FieldOffset(16)] public ushort DataOff;
    [FieldOffset(18)] public ushort RefCnt;
    [FieldOffset(20)] public ushort NbSegs;
    [FieldOffset(22)] public ushort Port;
    [FieldOffset(24)] public ulong OlFlags;
    [FieldOffset(32)] public uint PacketType;
    [FieldOffset(36)] public uint PktLen;
    [FieldOffset(40)] public ushort DataLen;
    [FieldOffset(42)] public ushort VlanTci;
    [FieldOffset(54)] public ushort BufLen;
    [FieldOffset(56)] public nint Pool;
    [FieldOffset(64)] public RteMbuf* Next;
    /// <summary>Bit fields: l2_len:7, l3_len:9, l4_len:8, tso_segsz:16, ... (lowest bits first).</summary>
    [FieldOffset(72)] public ulong TxOffload;

    // Values of DPDK's RTE_PKTMBUF_HEADROOM and RTE_MBUF_F_* flags (rte_mbuf_core.h, 22.11).
    public const int Headroom = 128;
    public const ulong RxIpCksumMask = (1UL << 4) | (1UL << 7);
    public const ulong RxIpCksumGood = 1UL << 7;
    public const ulong RxL4CksumMask = (1UL << 3) | (1UL << 8);
    public const ulong RxL4CksumGood = 1UL << 8;
    public const ulong TxIpv4 = 1UL << 55;
    public const ulong TxIpCksum = 1UL << 54;
    public const ulong TxTcpCksum = 1UL << 52;
    /// <summary>RTE_MBUF_F_TX_OFFLOAD_MASK: every transmit request flag (bits 41..60; 61/62 are EXTERNAL/INDIRECT,
    /// buffer bookkeeping that must never be cleared).</summary>
    public const ulong TxFlagsMask = 0x1FFF_FE00_0000_0000UL;

    /// <summary>What this mirror assumes, in utd_mbuf_layout() order: size, offsets of buf_addr, data_off, refcnt,
    /// nb_segs, port, ol_flags, packet_type, pkt_len, data_len, vlan_tci, buf_len, pool, next, tx_offload, the
    /// headroom, then the flag values.</summary>
    public static long[] Layout()
    {
        RteMbuf m = default;
        RteMbuf* b = &m;
        return
    [
        sizeof(RteMbuf),
        Off(b, &b->BufAddr),
        Off(b, &b->DataOff),
        Off(b, &b->RefCnt),
        Off(b, &b->NbSegs),
        Off(b, &b->Port),
        Off(b, &b->OlFlags),
        Off(b, &b->PacketType),
        Off(b, &b->PktLen),
        Off(b, &b->DataLen),
        Off(b, &b->VlanTci),
        Off(b, &b->BufLen),
        Off(b, &b->Pool),
        Off(b, &b->Next),
        Off(b, &b->TxOffload),
        Headroom,
        (long)RxIpCksumMask, (long)RxIpCksumGood, (long)RxL4CksumMask, (long)RxL4CksumGood,
        (long)TxIpv4, (long)TxIpCksum, (long)TxTcpCksum, (long)TxFlagsMask,
    ];
    }

    private static long Off(RteMbuf* b, void* field) => (byte*)field - (byte*)b;
    private static long Off(PacketBuf* b, void* field) => (byte*)field - (byte*)b;

    /// <summary>What glue.c's struct utd_packet assumes of <see cref="PacketBuf"/>, in utd_packet_layout() order:
    /// size, offsets of Buffer, Offset, Length, Capacity, Offloads, Handle.</summary>
    public static long[] PacketLayout()
    {
        PacketBuf p = default;
        PacketBuf* b = &p;
        return
    [
        sizeof(PacketBuf),
        Off(b, &b->Buffer), Off(b, &b->Offset), Off(b, &b->Length), Off(b, &b->Capacity), Off(b, &b->Offloads),
        Off(b, &b->Handle),
    ];
    }

    public static long[] NativePacketLayout()
    {
        int n = DpdkNative.PacketLayout(null, 0);
        long[] v = new long[n];
        fixed (long* p = v) DpdkNative.PacketLayout(p, n);
        return v;
    }

    /// <summary>The glue's view of the same facts (requires the glue to be loaded).</summary>
    public static long[] NativeLayout()
    {
        int n = DpdkNative.MbufLayout(null, 0);
        long[] v = new long[n];
        fixed (long* p = v) DpdkNative.MbufLayout(p, n);
        return v;
    }
}
