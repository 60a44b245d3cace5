using System;
using System.Buffers.Binary;
using System.IO;

namespace UserTcp.Stack.Phy;

/// <summary>
/// Wraps a device and records every frame it receives and every frame the device accepts for transmission to a
/// stream in classic libpcap format (microsecond timestamps, LINKTYPE_ETHERNET), readable by Wireshark/tcpdump.
/// Timestamps are virtual: set <see cref="NowUs"/>. For tests and debugging; it writes to the stream synchronously.
/// </summary>
public sealed class PcapDevice : IDevice
{
    public const uint Magic = 0xA1B2C3D4;      // microsecond timestamps
    public const uint LinkTypeEthernet = 1;
    public const int FileHeaderLength = 24;
    public const int RecordHeaderLength = 16;

    private readonly IDevice _inner;
    private readonly Stream _stream;
    private readonly int _snapLength;
    private byte[] _scratch = new byte[4096]; // transmit records are staged here: after Transmit the frames are gone

    public PcapDevice(IDevice inner, Stream stream, int snapLength = 65535)
    {
        _inner = inner;
        _stream = stream;
        _snapLength = snapLength;
        Span<byte> h = stackalloc byte[FileHeaderLength];
        // Written little-endian; readers detect the byte order from the magic number.
        BinaryPrimitives.WriteUInt32LittleEndian(h, Magic);
        BinaryPrimitives.WriteUInt16LittleEndian(h[4..], 2);  // version 2.4
        BinaryPrimitives.WriteUInt16LittleEndian(h[6..], 4);
        BinaryPrimitives.WriteInt32LittleEndian(h[8..], 0);   // thiszone: UTC
        BinaryPrimitives.WriteUInt32LittleEndian(h[12..], 0); // sigfigs
        BinaryPrimitives.WriteUInt32LittleEndian(h[16..], (uint)snapLength);
        BinaryPrimitives.WriteUInt32LittleEndian(h[20..], LinkTypeEthernet);
        _stream.Write(h);
    }

    public DeviceCapabilities Capabilities => _inner.Capabilities;

    /// <summary>Timestamp for the next records, microseconds.</summary>
    public long NowUs { get; set; }

    public int Receive(Span<PacketBuf> burst)
    {
        int n = _inner.Receive(burst);
        for (int i = 0; i < n; i++)
        {
            int len = WriteRecord(burst[i].Data, 0);
            _stream.Write(_scratch, 0, len);
        }
        return n;
    }

    public int Transmit(ReadOnlySpan<PacketBuf> burst)
    {
        // Stage the records first: the device may reuse a buffer as soon as it takes it.
        int total = 0;
        Span<int> ends = burst.Length <= 256 ? stackalloc int[burst.Length] : new int[burst.Length];
        for (int i = 0; i < burst.Length; i++)
        {
            total += WriteRecord(burst[i].Data, total);
            ends[i] = total;
        }
        int taken = _inner.Transmit(burst);
        if (taken > 0) _stream.Write(_scratch, 0, ends[taken - 1]);
        return taken;
    }

    public int Allocate(Span<PacketBuf> burst) => _inner.Allocate(burst);
    public void Free(ref PacketBuf packet) => _inner.Free(ref packet);

    /// <summary>Writes one record (header + captured bytes) into the scratch buffer at <paramref name="at"/>.</summary>
    private int WriteRecord(ReadOnlySpan<byte> frame, int at)
    {
        int captured = Math.Min(frame.Length, _snapLength);
        int need = at + RecordHeaderLength + captured;
        if (need > _scratch.Length) Array.Resize(ref _scratch, Math.Max(need, _scratch.Length * 2));
        Span<byte> r = _scratch.AsSpan(at);
        long now = Math.Max(0, NowUs);
        BinaryPrimitives.WriteUInt32LittleEndian(r, (uint)(now / 1_000_000));
        BinaryPrimitives.WriteUInt32LittleEndian(r[4..], (uint)(now % 1_000_000));
        BinaryPrimitives.WriteUInt32LittleEndian(r[8..], (uint)captured);
        BinaryPrimitives.WriteUInt32LittleEndian(r[12..], (uint)frame.Length);
        frame[..captured].CopyTo(r[RecordHeaderLength..]);
        return RecordHeaderLength + captured;
    }
}
