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
