using System;
using UserTcp.Stack;
using UserTcp.Stack.Wire;
using Xunit;

namespace UserTcp.Tests.Wire;

public class Ipv4HeaderTests
{
    // ICMP echo request 192.168.1.10 -> 192.168.1.1, id 0x1c46, DF, TTL 64, 32 bytes of data.
    internal const string EchoRequestPacket =
        "4500003c1c46400040019b1fc0a8010ac0a80101" +
        "08004d5400010007" + "6162636465666768696a6b6c6d6e6f7071727374757677616263646566676869";

    // A UDP datagram (not DF, TTL 1) with a 20-byte header: 10.0.0.1 -> 10.0.0.2.
    internal const string UdpPacket = "45000024010100000111a4c60a0000010a000002" + "14e9829a00100000" + "3132333435363738";

    [Fact]
    public void ParsesEchoRequestHeader()
    {
        byte[] p = Convert.FromHexString(EchoRequestPacket);
        Assert.True(Ipv4HeaderView.TryParse(p, false, out Ipv4HeaderView ip, out DropReason r));
        Assert.Equal(DropReason.None, r);
        Assert.Equal(4, ip.Version);
        Assert.Equal(20, ip.HeaderLength);
        Assert.Equal(60, ip.TotalLength);
        Assert.Equal(0x1c46, ip.Identification);
        Assert.True(ip.DontFragment);
        Assert.False(ip.MoreFragments);
        Assert.False(ip.IsFragment);
        Assert.Equal(64, ip.Ttl);
        Assert.Equal(IpProtocol.Icmp, ip.Protocol);
        Assert.Equal(0x9b1f, ip.HeaderChecksum);
        Assert.Equal(Ipv4Address.Parse("192.168.1.10"), ip.Source);
        Assert.Equal(Ipv4Address.Parse("192.168.1.1"), ip.Destination);
        Assert.Equal(40, ip.Payload.Length);
        Assert.True(ip.ChecksumValid);
    }

    [Fact]
    public void EmitReproducesBytes()
    {
        byte[] expected = Convert.FromHexString(EchoRequestPacket);
        byte[] p = (byte[])expected.Clone();
        p.AsSpan(0, 20).Fill(0xEE);
        Ipv4HeaderView.Emit(p, Ipv4Address.Parse("192.168.1.10"), Ipv4Address.Parse("192.168.1.1"), IpProtocol.Icmp, 60, 0x1c46);
        Assert.Equal(expected, p);

        byte[] udp = Convert.FromHexString(UdpPacket);
        byte[] u = (byte[])udp.Clone();
        u.AsSpan(0, 20).Clear();
        Ipv4HeaderView.Emit(u, new Ipv4Address(10, 0, 0, 1), new Ipv4Address(10, 0, 0, 2), IpProtocol.Udp, 36, 0x0101, ttl: 1, dontFragment: false);
        Assert.Equal(udp, u);
    }

    [Fact]
    public void EmitWithoutChecksumLeavesZeroForTheDevice()
    {
        byte[] p = new byte[40];
        Ipv4HeaderView ip = Ipv4HeaderView.Emit(p, new Ipv4Address(1, 2, 3, 4), new Ipv4Address(5, 6, 7, 8), IpProtocol.Tcp, 40, 9, fillChecksum: false);
        Assert.Equal(0, ip.HeaderChecksum);
        ip.FillChecksum();
        Assert.True(ip.ChecksumValid);
    }

    [Fact]
    public void PaddingAfterTotalLengthIsCutOff()
    {
        byte[] p = Convert.FromHexString(UdpPacket + "0000000000000000000000"); // Ethernet minimum-frame padding
        Assert.True(Ipv4HeaderView.TryParse(p, false, out Ipv4HeaderView ip, out _));
        Assert.Equal(36, ip.Bytes.Length);
        Assert.Equal(16, ip.Payload.Length);
    }

    [Fact]
    public void OptionsAreSkippedAndHeaderLengthHonoured()
    {
        // IHL 6: one option word (NOP NOP NOP EOL) between header and payload.
        byte[] p = Convert.FromHexString("46000028010100000111000" + "00a0000010a000002" + "01010100" + "14e9829a00100000" + "3132333435363738");
        new Ipv4HeaderView(p).FillChecksum();
        Assert.True(Ipv4HeaderView.TryParse(p, false, out Ipv4HeaderView ip, out _));
        Assert.Equal(24, ip.HeaderLength);
        Assert.Equal("01010100", Convert.ToHexString(ip.Options));
        Assert.Equal("14E9829A00100000", Convert.ToHexString(ip.Payload[..8]));
    }

    private static DropReason Parse(byte[] p, bool verified = false)
    {
        bool ok = Ipv4HeaderView.TryParse(p, verified, out _, out DropReason r);
        Assert.Equal(ok, r == DropReason.None);
        return r;
    }

    private static byte[] Mutated(Action<byte[]> change, bool refreshChecksum = true)
    {
        byte[] p = Convert.FromHexString(UdpPacket);
        change(p);
        if (refreshChecksum && (p[0] & 0xF) >= 5 && (p[0] & 0xF) * 4 <= p.Length) new Ipv4HeaderView(p).FillChecksum();
        return p;
    }

    [Fact]
    public void MalformedHeadersAreDroppedWithTheRightReason()
    {
        Assert.Equal(DropReason.Ipv4Truncated, Parse([]));
        Assert.Equal(DropReason.Ipv4Truncated, Parse(Convert.FromHexString(UdpPacket)[..19]));
        Assert.Equal(DropReason.Ipv4BadVersion, Parse(Mutated(p => p[0] = 0x65)));
        Assert.Equal(DropReason.Ipv4BadHeaderLength, Parse(Mutated(p => p[0] = 0x44, refreshChecksum: false)));
        Assert.Equal(DropReason.Ipv4BadHeaderLength, Parse(Mutated(p => p[0] = 0x40, refreshChecksum: false)));
        Assert.Equal(DropReason.Ipv4Truncated, Parse(Mutated(p => p[0] = 0x4f)));           // 60-byte header in 36 bytes
        Assert.Equal(DropReason.Ipv4BadTotalLength, Parse(Mutated(p => p[3] = 19)));       // total < header
        Assert.Equal(DropReason.Ipv4Truncated, Parse(Mutated(p => p[3] = 37)));            // total > buffer
        Assert.Equal(DropReason.Ipv4BadChecksum, Parse(Mutated(p => p[8] = 2, refreshChecksum: false)));
        Assert.Equal(DropReason.Ipv4Fragment, Parse(Mutated(p => p[6] = 0x20)));           // MF
        Assert.Equal(DropReason.Ipv4Fragment, Parse(Mutated(p => p[7] = 0x01)));           // offset 8
        Assert.Equal(DropReason.None, Parse(Mutated(p => p[6] = 0x40)));                   // DF alone is fine
    }

    [Fact]
    public void ChecksumVerifiedByDeviceIsNotRechecked()
    {
        byte[] p = Mutated(p => p[10] ^= 0xFF, refreshChecksum: false);
        Assert.Equal(DropReason.Ipv4BadChecksum, Parse(p));
        Assert.Equal(DropReason.None, Parse(p, verified: true));
    }
}
