using System;
using UserTcp.Stack;
using UserTcp.Stack.Wire;
using Xunit;

namespace UserTcp.Tests.Wire;

public class EthernetArpTests
{
    // A captured broadcast ARP request: who has 24.166.173.159? tell 24.166.172.1 (00:07:0d:af:f4:54).
    private const string ArpRequestFrame =
        "ffffffffffff" + "00070daff454" + "0806" +
        "0001" + "0800" + "06" + "04" + "0001" + "00070daff454" + "18a6ac01" + "000000000000" + "18a6ad9f";

    [Fact]
    public void ParsesCapturedArpRequest()
    {
        byte[] f = Convert.FromHexString(ArpRequestFrame);
        Assert.True(EthernetFrameView.TryParse(f, out EthernetFrameView eth, out DropReason r));
        Assert.Equal(DropReason.None, r);
        Assert.True(eth.Destination.IsBroadcast);
        Assert.Equal("00:07:0d:af:f4:54", eth.Source.ToString());
        Assert.Equal(EtherType.Arp, eth.EtherType);

        Assert.True(ArpPacketView.TryParse(eth.Payload, out ArpPacketView arp, out r));
        Assert.Equal(ArpOperation.Request, arp.Operation);
        Assert.Equal(eth.Source, arp.SenderMac);
        Assert.Equal(Ipv4Address.Parse("24.166.172.1"), arp.SenderIp);
        Assert.Equal(MacAddress.Zero, arp.TargetMac);
        Assert.Equal(Ipv4Address.Parse("24.166.173.159"), arp.TargetIp);
    }

    [Fact]
    public void EmitsCapturedArpRequestByteForByte()
    {
        byte[] f = new byte[42];
        MacAddress.TryParse("00:07:0d:af:f4:54", out MacAddress mac);
        EthernetFrameView eth = EthernetFrameView.Emit(f, MacAddress.Broadcast, mac, EtherType.Arp);
        ArpPacketView.Emit(eth.Payload, ArpOperation.Request, mac, Ipv4Address.Parse("24.166.172.1"),
            MacAddress.Zero, Ipv4Address.Parse("24.166.173.159"));
        Assert.Equal(ArpRequestFrame, Convert.ToHexString(f).ToLowerInvariant());
    }

    [Fact]
    public void SettersWriteInPlace()
    {
        byte[] f = Convert.FromHexString(ArpRequestFrame);
        var arp = new ArpPacketView(f.AsSpan(14));
        arp.Operation = ArpOperation.Reply;
        arp.TargetMac = new MacAddress(0x0102_0304_0506);
        Assert.Equal("0002", Convert.ToHexString(f, 20, 2));
        Assert.Equal("010203040506", Convert.ToHexString(f, 32, 6));
    }

    [Fact]
    public void ArpParsesWithEthernetPadding()
    {
        byte[] f = Convert.FromHexString(ArpRequestFrame + "000000000000000000000000000000000000"); // padded to 60
        Assert.True(ArpPacketView.TryParse(f.AsSpan(14), out ArpPacketView arp, out _));
        Assert.Equal(ArpPacketView.Length, arp.Bytes.Length);
    }

    [Fact]
    public void TruncatedEthernetIsDropped()
    {
        Assert.False(EthernetFrameView.TryParse(new byte[13], out _, out DropReason r));
        Assert.Equal(DropReason.EthernetTruncated, r);
        Assert.False(EthernetFrameView.TryParse([], out _, out r));
        Assert.Equal(DropReason.EthernetTruncated, r);
    }

    [Theory]
    [InlineData(0)]   // empty
    [InlineData(7)]   // shorter than the fixed part
    [InlineData(27)]  // cut in the target address
    public void TruncatedArpIsMalformed(int length)
    {
        byte[] p = Convert.FromHexString(ArpRequestFrame)[14..][..length];
        Assert.False(ArpPacketView.TryParse(p, out _, out DropReason r));
        Assert.Equal(DropReason.ArpMalformed, r);
    }

    [Theory]
    [InlineData(1, 0x06)]  // hardware type 6 (IEEE 802)
    [InlineData(3, 0xdd)]  // protocol type 0x08dd
    [InlineData(4, 8)]     // hardware length 8
    [InlineData(5, 16)]    // protocol length 16 (IPv6-sized)
    [InlineData(7, 3)]     // operation 3: RARP request
    public void OtherArpFlavoursAreUnsupported(int offset, byte value)
    {
        byte[] p = Convert.FromHexString(ArpRequestFrame)[14..];
        p[offset] = value;
        Assert.False(ArpPacketView.TryParse(p, out _, out DropReason r));
        Assert.Equal(DropReason.ArpUnsupported, r);
    }
}
