using System;
using System.Buffers.Binary;
using UserTcp.Stack.Wire;

namespace UserTcp.Stack.Phy;

/// <summary>
/// What a NIC's checksum offload does, for software devices: fill IPv4/TCP checksums on transmit and verify them on
/// receive. Works on raw Ethernet II frames (no VLAN tags) and ignores anything it does not understand, like hardware.
/// </summary>
internal static class OffloadEmulation
{
    private const int EthHeader = 14;

    /// <summary>Locates the IPv4 header and the TCP segment; false for anything else (or malformed).</summary>
    private static bool TryLocate(Span<byte> frame, out Span<byte> ipHeader, out Span<byte> tcp)
    {
        ipHeader = tcp = default;
        if (frame.Length < EthHeader + 20 || BinaryPrimitives.ReadUInt16BigEndian(frame[12..]) != 0x0800) return false;
        Span<byte> ip = frame[EthHeader..];
        if (ip[0] >> 4 != 4) return false;
        int ihl = (ip[0] & 0xF) * 4;
        int total = BinaryPrimitives.ReadUInt16BigEndian(ip[2..]);
        if (ihl < 20 || total < ihl || total > ip.Length) return false;
        ipHeader = ip[..ihl];
        bool fragment = (BinaryPrimitives.ReadUInt16BigEndian(ip[6..]) & 0x3FFF) != 0; // MF or offset
        if (ip[9] == 6 && !fragment && total - ihl >= 20) tcp = ip[ihl..total];
        return true;
    }

    public static void FillTransmitChecksums(Span<byte> frame, bool ip, bool tcp)
    {
        if (!(ip || tcp) || !TryLocate(frame, out Span<byte> ipHeader, out Span<byte> segment)) return;
        if (ip)
        {
            ipHeader[10] = ipHeader[11] = 0;
            BinaryPrimitives.WriteUInt16BigEndian(ipHeader[10..], Checksum.Compute(ipHeader));
        }
        if (tcp && !segment.IsEmpty)
        {
            // The stack left the folded pseudo-header sum in the checksum field; summing over it completes the job.
            BinaryPrimitives.WriteUInt16BigEndian(segment[16..], Checksum.Compute(segment));
        }
    }

    /// <summary>TSO: how many pieces of at most <paramref name="segmentSize"/> payload bytes the TCP/IPv4 segment in
    /// <paramref name="frame"/> is cut into; -1 when it is not one (or malformed, or has no payload to cut).</summary>
    public static int CountSegments(Span<byte> frame, int segmentSize)
    {
        if (segmentSize <= 0 || !TryLocate(frame, out _, out Span<byte> tcp) || tcp.IsEmpty) return -1;
        int thl = (tcp[12] >> 4) * 4;
        if (thl < 20 || thl > tcp.Length || tcp.Length == thl) return -1;
        return (tcp.Length - thl + segmentSize - 1) / segmentSize;
    }

    /// <summary>
    /// TSO: writes piece <paramref name="index"/> of the large segment in <paramref name="frame"/> (checked by
    /// <see cref="CountSegments"/>) to <paramref name="dest"/>: the Ethernet, IPv4 and TCP headers with the IPv4
    /// total length and ID (+ index), the sequence number (+ index · size) and the flags fixed (PSH and FIN only on
    /// the last piece, CWR only on the first), the TCP checksum field set to the piece's pseudo-header sum and the IPv4
    /// checksum cleared (both to be filled as for checksum offload), then its payload. Returns the frame length.
    /// </summary>
    public static unsafe int WriteSegment(Span<byte> frame, int segmentSize, int index, byte* dest, int destCapacity)
    {
        TryLocate(frame, out Span<byte> ipHeader, out Span<byte> tcp);
        int ihl = ipHeader.Length, thl = (tcp[12] >> 4) * 4;
        int headers = EthHeader + ihl + thl, payload = tcp.Length - thl;
        int start = index * segmentSize, len = Math.Min(segmentSize, payload - start);
        bool last = start + len == payload;
        if (len <= 0 || headers + len > destCapacity) throw new ArgumentOutOfRangeException(nameof(index));
        var d = new Span<byte>(dest, headers + len);
        frame[..headers].CopyTo(d);
        frame.Slice(headers + start, len).CopyTo(d[headers..]);
        Span<byte> ip = d[EthHeader..];
        BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)(ihl + thl + len));
        BinaryPrimitives.WriteUInt16BigEndian(ip[4..], (ushort)(BinaryPrimitives.ReadUInt16BigEndian(ip[4..]) + index));
        ip[10] = ip[11] = 0;
        Span<byte> t = ip[ihl..];
        BinaryPrimitives.WriteUInt32BigEndian(t[4..], BinaryPrimitives.ReadUInt32BigEndian(t[4..]) + (uint)start);
        if (!last) t[13] &= unchecked((byte)~0x09); // PSH, FIN
        if (index != 0) t[13] &= unchecked((byte)~0x80); // CWR
        uint pseudo = Checksum.PseudoHeader(Ipv4Address.Read(ip[12..]), Ipv4Address.Read(ip[16..]), 6, thl + len);
        BinaryPrimitives.WriteUInt16BigEndian(t[16..], Checksum.FoldUncomplemented(pseudo));
        return headers + len;
    }

    public static PacketOffloads VerifyReceiveChecksums(Span<byte> frame, bool ip, bool tcp)
    {
        PacketOffloads flags = PacketOffloads.None;
        if (!(ip || tcp) || !TryLocate(frame, out Span<byte> ipHeader, out Span<byte> segment)) return flags;
        if (ip && Checksum.Compute(ipHeader) == 0) flags |= PacketOffloads.RxIpv4ChecksumGood;
        if (tcp && !segment.IsEmpty)
        {
            uint sum = Checksum.PseudoHeader(Ipv4Address.Read(ipHeader[12..]), Ipv4Address.Read(ipHeader[16..]), 6, segment.Length);
            if (Checksum.Fold(Checksum.Add(sum, segment)) == 0) flags |= PacketOffloads.RxTcpChecksumGood;
        }
        return flags;
    }
}
