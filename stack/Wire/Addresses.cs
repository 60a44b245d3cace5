using System;
using System.Buffers.Binary;

namespace UserTcp.Stack.Wire;

/// <summary>An IPv4 address held in host byte order (so comparisons and masks are plain integer operations).</summary>
public readonly record struct Ipv4Address(uint Value) : IComparable<Ipv4Address>
{
    public static readonly Ipv4Address Any = new(0);
    public static readonly Ipv4Address Broadcast = new(0xFFFF_FFFF);

    public Ipv4Address(byte a, byte b, byte c, byte d) : this((uint)(a << 24 | b << 16 | c << 8 | d)) { }

    public static Ipv4Address Read(ReadOnlySpan<byte> bytes) => new(BinaryPrimitives.ReadUInt32BigEndian(bytes));
    public void Write(Span<byte> bytes) => BinaryPrimitives.WriteUInt32BigEndian(bytes, Value);

    public bool IsAny => Value == 0;
    public bool IsBroadcast => Value == 0xFFFF_FFFF;
    public bool IsMulticast => (Value >> 28) == 0xE;
    public bool IsLoopback => (Value >> 24) == 127;
    public bool InSubnet(Ipv4Address network, int prefixLength) =>
        prefixLength == 0 || ((Value ^ network.Value) >> (32 - prefixLength)) == 0;

    public static bool TryParse(ReadOnlySpan<char> text, out Ipv4Address address)
    {
        address = default;
        uint value = 0;
        int parts = 0;
        foreach (Range r in text.Split('.'))
        {
            ReadOnlySpan<char> part = text[r];
            if (part.Length is 0 or > 3 || !uint.TryParse(part, System.Globalization.NumberStyles.None, null, out uint octet) || octet > 255) return false;
            value = value << 8 | octet;
            parts++;
        }
        if (parts != 4) return false;
        address = new Ipv4Address(value);
        return true;
    }

    public static Ipv4Address Parse(string text) =>
        TryParse(text, out Ipv4Address a) ? a : throw new FormatException($"not an IPv4 address: '{text}'");

    public int CompareTo(Ipv4Address other) => Value.CompareTo(other.Value);
    public override string ToString() => $"{Value >> 24}.{(Value >> 16) & 0xFF}.{(Value >> 8) & 0xFF}.{Value & 0xFF}";
}

/// <summary>An Ethernet MAC address (48 bits, held in the low bits of a <see cref="ulong"/>).</summary>
public readonly record struct MacAddress(ulong Value)
{
    public static readonly MacAddress Broadcast = new(0xFFFF_FFFF_FFFFUL);
    public static readonly MacAddress Zero = new(0);

    public static MacAddress Read(ReadOnlySpan<byte> b) => // two loads instead of six checked byte reads
        new((ulong)BinaryPrimitives.ReadUInt32BigEndian(b) << 16 | BinaryPrimitives.ReadUInt16BigEndian(b.Slice(4, 2)));

    public void Write(Span<byte> b)
    {
        // Two stores instead of six checked byte writes (twice per transmitted frame).
        BinaryPrimitives.WriteUInt32BigEndian(b, (uint)(Value >> 16));
        BinaryPrimitives.WriteUInt16BigEndian(b.Slice(4), (ushort)Value);
    }

    public bool IsBroadcast => Value == 0xFFFF_FFFF_FFFFUL;
    /// <summary>Group bit: the least significant bit of the first octet.</summary>
    public bool IsMulticast => ((Value >> 40) & 1) != 0;

    public static bool TryParse(ReadOnlySpan<char> text, out MacAddress mac)
    {
        mac = default;
        ulong v = 0;
        int parts = 0;
        foreach (Range r in text.Split(':'))
        {
            if (!byte.TryParse(text[r], System.Globalization.NumberStyles.HexNumber, null, out byte octet) || text[r].Length != 2) return false;
            v = v << 8 | octet;
            parts++;
        }
        if (parts != 6) return false;
        mac = new MacAddress(v);
        return true;
    }

    public override string ToString() =>
        $"{(byte)(Value >> 40):x2}:{(byte)(Value >> 32):x2}:{(byte)(Value >> 24):x2}:{(byte)(Value >> 16):x2}:{(byte)(Value >> 8):x2}:{(byte)Value:x2}";
}
