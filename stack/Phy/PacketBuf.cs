using System;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace UserTcp.Stack.Phy;

/// <summary>Checksum work the hardware did on receive, or must do on transmit.</summary>
[Flags]
public enum PacketOffloads : byte
{
    None = 0,
    /// <summary>Receive: the device verified the IPv4 header checksum and it was good.</summary>
    RxIpv4ChecksumGood = 1,
    /// <summary>Receive: the device verified the TCP checksum and it was good.</summary>
    RxTcpChecksumGood = 2,
    /// <summary>Transmit: the device must fill the IPv4 header checksum.</summary>
    TxIpv4Checksum = 4,
    /// <summary>Transmit: the device must fill the TCP checksum (the pseudo-header sum is already in the field).</summary>
    TxTcpChecksum = 8,
}

/// <summary>
/// One packet in unmanaged memory (a DPDK mbuf and a test buffer look the same).
/// Ownership: exactly one party owns a buffer at a time. <see cref="IDevice.Receive"/> hands buffers to the stack,
/// <see cref="IDevice.Transmit"/> takes them back; whoever owns a buffer it no longer needs calls <see cref="IDevice.Free"/>.
/// Invariant: 0 &lt;= Offset, Offset + Length &lt;= Capacity.
/// Layout: 32 bytes, fields in this order. The DPDK glue reads and writes arrays of PacketBuf directly
/// (struct utd_packet in stack/Dpdk/glue.c; a test compares the two): keep them in step.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct PacketBuf
{
    /// <summary>Start of the buffer, headroom included.</summary>
    public byte* Buffer;
    /// <summary>Start of packet data within <see cref="Buffer"/>.</summary>
    public int Offset;
    /// <summary>Bytes of packet data.</summary>
    public int Length;
    /// <summary>Bytes in <see cref="Buffer"/>.</summary>
    public int Capacity;
    /// <summary>Checksum offload flags (see <see cref="PacketOffloads"/>).</summary>
    public PacketOffloads Offloads;
    /// <summary>Transmit: 0 for an ordinary frame; otherwise the frame is one large TCP segment (TSO) that the device
    /// cuts into segments of this many payload bytes (the last may be shorter), each with its own IPv4 total length,
    /// sequence number and checksums; PSH and FIN only on the last. Only set when the device reports
    /// <see cref="DeviceCapabilities.TsoMaxBytes"/>; the TCP checksum field then holds the pseudo-header sum over the
    /// whole segment (<see cref="PacketOffloads.TxTcpChecksum"/>). Receive: 0 (devices leave it zero).</summary>
    public ushort SegmentSize;
    // (Offloads and SegmentSize sit in Capacity's padding: 32 bytes, two per cache line, instead of 40. The DPDK glue's
    // struct utd_packet has them as padding: it never reads SegmentSize, and DPDK ports report no TSO.)
    /// <summary>The device's own handle (mbuf pointer, pool slot). Opaque to the stack.</summary>
    public nint Handle;

    public readonly Span<byte> Data
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => new(Buffer + Offset, Length);
    }

    /// <summary>Room left in front of the data.</summary>
    public readonly int Headroom => Offset;

    /// <summary>Room left after the data.</summary>
    public readonly int Tailroom => Capacity - Offset - Length;

    /// <summary>Grows the data at the front by <paramref name="count"/> bytes and returns the new front.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public Span<byte> Prepend(int count)
    {
        if ((uint)count > (uint)Offset) Fail("not enough headroom");
        Offset -= count;
        Length += count;
        return new Span<byte>(Buffer + Offset, count);
    }

    /// <summary>Drops <paramref name="count"/> bytes from the front of the data (e.g. a parsed header).</summary>
    public void TrimFront(int count)
    {
        if ((uint)count > (uint)Length) throw new InvalidOperationException("trim past end of data");
        Offset += count;
        Length -= count;
    }

    /// <summary>Sets the data length, keeping the front where it is.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public void SetLength(int length)
    {
        if ((uint)length > (uint)(Capacity - Offset)) Fail("length past end of buffer");
        Length = length;
    }

    /// <summary>The throw kept out of the small methods above so they inline.</summary>
    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private static void Fail(string message) => throw new InvalidOperationException(message);
}
