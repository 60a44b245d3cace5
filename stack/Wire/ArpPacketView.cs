using System;
using System.Buffers.Binary;

namespace UserTcp.Stack.Wire;

/// <summary>ARP operation codes (RFC 826).</summary>
public enum ArpOperation : ushort
{
    Request = 1,
    Reply = 2,
}

/// <summary>
/// Zero-copy view of an ARP packet for Ethernet hardware addresses and IPv4 protocol addresses (RFC 826), the only
/// combination we speak: 28 bytes.
/// </summary>
public readonly ref struct ArpPacketView
{
    public const int Length = 28;
    public const ushort HardwareEthernet = 1;

    private const int HardwareTypeAt = 0, ProtocolTypeAt = 2, HardwareLengthAt = 4, ProtocolLengthAt = 5,
        OperationAt = 6, SenderMacAt = 8, SenderIpAt = 14, TargetMacAt = 18, TargetIpAt = 24;

    private readonly Span<byte> _bytes;

    /// <summary>Wraps <paramref name="bytes"/> without checks.</summary>
    public ArpPacketView(Span<byte> bytes) => _bytes = bytes;

    public Span<byte> Bytes => _bytes;

    public ushort HardwareType { get => BinaryPrimitives.ReadUInt16BigEndian(_bytes[HardwareTypeAt..]); set => BinaryPrimitives.WriteUInt16BigEndian(_bytes[HardwareTypeAt..], value); }
    public ushort ProtocolType { get => BinaryPrimitives.ReadUInt16BigEndian(_bytes[ProtocolTypeAt..]); set => BinaryPrimitives.WriteUInt16BigEndian(_bytes[ProtocolTypeAt..], value); }
    public byte HardwareLength { get => _bytes[HardwareLengthAt]; set => _bytes[HardwareLengthAt] = value; }
    public byte ProtocolLength { get => _bytes[ProtocolLengthAt]; set => _bytes[ProtocolLengthAt] = value; }
    public ArpOperation Operation { get => (ArpOperation)BinaryPrimitives.ReadUInt16BigEndian(_bytes[OperationAt..]); set => BinaryPrimitives.WriteUInt16BigEndian(_bytes[OperationAt..], (ushort)value); }
    public MacAddress SenderMac { get => MacAddress.Read(_bytes[SenderMacAt..]); set => value.Write(_bytes[SenderMacAt..]); }
    public Ipv4Address SenderIp { get => Ipv4Address.Read(_bytes[SenderIpAt..]); set => value.Write(_bytes[SenderIpAt..]); }
    public MacAddress TargetMac { get => MacAddress.Read(_bytes[TargetMacAt..]); set => value.Write(_bytes[TargetMacAt..]); }
    public Ipv4Address TargetIp { get => Ipv4Address.Read(_bytes[TargetIpAt..]); set => value.Write(_bytes[TargetIpAt..]); }

    /// <summary>Accepts Ethernet/IPv4 requests and replies. Other hardware or protocol types and other operations
    /// (RARP, InARP) are <see cref="DropReason.ArpUnsupported"/>; short packets are <see cref="DropReason.ArpMalformed"/>.</summary>
    public static bool TryParse(Span<byte> bytes, out ArpPacketView view, out DropReason reason)
    {
        view = default;
        // The fixed part (through the operation) tells us the address sizes.
        if (bytes.Length < SenderMacAt) { reason = DropReason.ArpMalformed; return false; }
        var v = new ArpPacketView(bytes);
        if (v.HardwareType != HardwareEthernet || v.ProtocolType != Wire.EtherType.Ipv4 ||
            v.HardwareLength != 6 || v.ProtocolLength != 4)
        {
            reason = DropReason.ArpUnsupported;
            return false;
        }
        if (bytes.Length < Length) { reason = DropReason.ArpMalformed; return false; }
        if (v.Operation is not (ArpOperation.Request or ArpOperation.Reply)) { reason = DropReason.ArpUnsupported; return false; }
        view = new ArpPacketView(bytes[..Length]);
        reason = DropReason.None;
        return true;
    }

    /// <summary>Writes a whole Ethernet/IPv4 ARP packet at the front of <paramref name="bytes"/> (28 bytes).</summary>
    public static ArpPacketView Emit(Span<byte> bytes, ArpOperation operation, MacAddress senderMac, Ipv4Address senderIp,
        MacAddress targetMac, Ipv4Address targetIp)
    {
        var v = new ArpPacketView(bytes);
        v.HardwareType = HardwareEthernet;
        v.ProtocolType = Wire.EtherType.Ipv4;
        v.HardwareLength = 6;
        v.ProtocolLength = 4;
        v.Operation = operation;
        v.SenderMac = senderMac;
        v.SenderIp = senderIp;
        v.TargetMac = targetMac;
        v.TargetIp = targetIp;
        return new ArpPacketView(bytes[..Length]);
    }
}
