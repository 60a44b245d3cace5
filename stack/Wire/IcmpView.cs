using System;
using System.Buffers.Binary;

namespace UserTcp.Stack.Wire;

/// <summary>ICMPv4 message types we handle (RFC 792).</summary>
public enum IcmpType : byte
{
    EchoReply = 0,
    DestinationUnreachable = 3,
    EchoRequest = 8,
    TimeExceeded = 11,
}

/// <summary>Destination unreachable codes (RFC 792, RFC 1122 §3.2.2.1, RFC 1812 §5.2.7.1).</summary>
public static class IcmpUnreachableCode
{
    public const byte Net = 0;
    public const byte Host = 1;
    public const byte Protocol = 2;
    public const byte Port = 3;
    /// <summary>Fragmentation needed and DF set; the next-hop MTU is in bytes 6-7 (RFC 1191 §4).</summary>
    public const byte FragmentationNeeded = 4;
    public const byte SourceRouteFailed = 5;
    public const byte NetProhibited = 9;
    public const byte HostProhibited = 10;
    public const byte AdminProhibited = 13;
}

/// <summary>An ICMP error as the transport layer sees it.</summary>
public enum IcmpErrorKind : byte
{
    NetUnreachable,
    HostUnreachable,
    ProtocolUnreachable,
    PortUnreachable,
    /// <summary>Path MTU discovery (RFC 1191): the next-hop MTU comes with it (0 if the router did not say).</summary>
    FragmentationNeeded,
    SourceRouteFailed,
    /// <summary>Codes 9, 10, 13 (administratively prohibited).</summary>
    Prohibited,
    /// <summary>Any other destination-unreachable code.</summary>
    OtherUnreachable,
    /// <summary>Time exceeded, code 0: TTL reached zero in transit.</summary>
    TtlExceeded,
    /// <summary>Time exceeded, code 1: fragment reassembly time exceeded.</summary>
    ReassemblyTimeExceeded,
}

/// <summary>
/// Zero-copy view of an ICMPv4 message (RFC 792): type, code, checksum over the whole message, four type-specific
/// bytes, then data (echo data, or for errors the original IP header plus at least 8 bytes of its payload).
/// </summary>
public readonly ref struct IcmpView
{
    public const int HeaderLength = 8;
    /// <summary>The least an error must quote: the original IPv4 header (20) and 64 bits of data (RFC 792).</summary>
    public const int MinErrorQuote = 28;

    private const int TypeAt = 0, CodeAt = 1, ChecksumAt = 2, RestAt = 4, IdentifierAt = 4, SequenceAt = 6, NextHopMtuAt = 6;

    private readonly Span<byte> _bytes;

    /// <summary>Wraps <paramref name="bytes"/> (the whole message) without checks.</summary>
    public IcmpView(Span<byte> bytes) => _bytes = bytes;

    public Span<byte> Bytes => _bytes;

    public IcmpType Type { get => (IcmpType)_bytes[TypeAt]; set => _bytes[TypeAt] = (byte)value; }
    public byte Code { get => _bytes[CodeAt]; set => _bytes[CodeAt] = value; }
    public ushort Checksum { get => BinaryPrimitives.ReadUInt16BigEndian(_bytes[ChecksumAt..]); set => BinaryPrimitives.WriteUInt16BigEndian(_bytes[ChecksumAt..], value); }
    /// <summary>The four type-specific bytes after the checksum.</summary>
    public uint RestOfHeader { get => BinaryPrimitives.ReadUInt32BigEndian(_bytes[RestAt..]); set => BinaryPrimitives.WriteUInt32BigEndian(_bytes[RestAt..], value); }
    /// <summary>Echo identifier.</summary>
    public ushort Identifier { get => BinaryPrimitives.ReadUInt16BigEndian(_bytes[IdentifierAt..]); set => BinaryPrimitives.WriteUInt16BigEndian(_bytes[IdentifierAt..], value); }
    /// <summary>Echo sequence number.</summary>
    public ushort SequenceNumber { get => BinaryPrimitives.ReadUInt16BigEndian(_bytes[SequenceAt..]); set => BinaryPrimitives.WriteUInt16BigEndian(_bytes[SequenceAt..], value); }
    /// <summary>Fragmentation needed: the MTU of the next hop (RFC 1191 §4), 0 from old routers.</summary>
    public ushort NextHopMtu { get => BinaryPrimitives.ReadUInt16BigEndian(_bytes[NextHopMtuAt..]); set => BinaryPrimitives.WriteUInt16BigEndian(_bytes[NextHopMtuAt..], value); }
    /// <summary>Echo data, or the quoted original datagram of an error.</summary>
    public Span<byte> Payload => _bytes[HeaderLength..];

    public bool IsError => Type is IcmpType.DestinationUnreachable or IcmpType.TimeExceeded;

    public void FillChecksum()
    {
        Checksum = 0;
        Checksum = Wire.Checksum.Compute(_bytes);
    }

    /// <summary>Checks length and checksum. Any type is accepted; the caller decides what it handles.</summary>
    public static bool TryParse(Span<byte> message, out IcmpView view, out DropReason reason)
    {
        view = default;
        if (message.Length < HeaderLength) { reason = DropReason.IcmpMalformed; return false; }
        if (Wire.Checksum.Compute(message) != 0) { reason = DropReason.IcmpBadChecksum; return false; }
        view = new IcmpView(message);
        reason = DropReason.None;
        return true;
    }

    /// <summary>
    /// For destination-unreachable and time-exceeded messages: the error kind, after checking that the quote holds
    /// an IPv4 header and 8 bytes of its payload (enough for the transport ports and sequence number).
    /// False with <see cref="DropReason.IcmpUnsupported"/> for other types, <see cref="DropReason.IcmpMalformed"/>
    /// for a short or non-IPv4 quote.
    /// </summary>
    public bool TryGetError(out IcmpErrorKind kind, out DropReason reason)
    {
        kind = default;
        switch (Type)
        {
            case IcmpType.DestinationUnreachable:
                kind = Code switch
                {
                    IcmpUnreachableCode.Net => IcmpErrorKind.NetUnreachable,
                    IcmpUnreachableCode.Host => IcmpErrorKind.HostUnreachable,
                    IcmpUnreachableCode.Protocol => IcmpErrorKind.ProtocolUnreachable,
                    IcmpUnreachableCode.Port => IcmpErrorKind.PortUnreachable,
                    IcmpUnreachableCode.FragmentationNeeded => IcmpErrorKind.FragmentationNeeded,
                    IcmpUnreachableCode.SourceRouteFailed => IcmpErrorKind.SourceRouteFailed,
                    IcmpUnreachableCode.NetProhibited or IcmpUnreachableCode.HostProhibited
                        or IcmpUnreachableCode.AdminProhibited => IcmpErrorKind.Prohibited,
                    _ => IcmpErrorKind.OtherUnreachable,
                };
                break;
            case IcmpType.TimeExceeded:
                kind = Code == 0 ? IcmpErrorKind.TtlExceeded : IcmpErrorKind.ReassemblyTimeExceeded;
                break;
            default:
                reason = DropReason.IcmpUnsupported;
                return false;
        }
        Span<byte> quote = Payload;
        if (quote.Length < MinErrorQuote || quote[0] >> 4 != 4 || (quote[0] & 0xF) * 4 < Ipv4HeaderView.MinHeaderLength ||
            (quote[0] & 0xF) * 4 + 8 > quote.Length)
        {
            reason = DropReason.IcmpMalformed;
            return false;
        }
        reason = DropReason.None;
        return true;
    }

    /// <summary>Writes an echo request or reply with <paramref name="data"/> (which may already sit in place, or
    /// overlap) and fills the checksum. Returns the message length.</summary>
    public static int EmitEcho(Span<byte> bytes, IcmpType type, ushort identifier, ushort sequence, ReadOnlySpan<byte> data)
    {
        data.CopyTo(bytes[HeaderLength..]);
        var v = new IcmpView(bytes[..(HeaderLength + data.Length)]);
        v.Type = type;
        v.Code = 0;
        v.Identifier = identifier;
        v.SequenceNumber = sequence;
        v.FillChecksum();
        return HeaderLength + data.Length;
    }

    /// <summary>Writes an error message quoting <paramref name="original"/> (the caller chooses how much: at least
    /// the IP header and 8 bytes, RFC 1122 §3.2.2) and fills the checksum. For fragmentation needed pass the next-hop
    /// MTU in the low 16 bits of <paramref name="restOfHeader"/>. Returns the message length.</summary>
    public static int EmitError(Span<byte> bytes, IcmpType type, byte code, uint restOfHeader, ReadOnlySpan<byte> original)
    {
        original.CopyTo(bytes[HeaderLength..]);
        var v = new IcmpView(bytes[..(HeaderLength + original.Length)]);
        v.Type = type;
        v.Code = code;
        v.RestOfHeader = restOfHeader;
        v.FillChecksum();
        return HeaderLength + original.Length;
    }
}
