using System;
using UserTcp.Stack;
using UserTcp.Stack.Wire;
using Xunit;

namespace UserTcp.Tests.Wire;

public class IcmpTests
{
    private const string EchoData = "6162636465666768696a6b6c6d6e6f7071727374757677616263646566676869";
    private const string EchoRequest = "08004d5400010007" + EchoData;
    private const string EchoReply = "00005554000100076162636465666768696a6b6c6d6e6f7071727374757677616263646566676869";
    // Port unreachable quoting the UDP packet's header and first 8 bytes.
    private const string PortUnreachable = "0303656900000000" + "45000024010100000111a4c60a0000010a000002" + "14e9829a00100000";
    // Fragmentation needed, next-hop MTU 1400 (0x0578).
    private const string FragNeeded = "03045ff000000578" + "45000024010100000111a4c60a0000010a000002" + "14e9829a00100000";

    [Fact]
    public void ParsesEchoRequest()
    {
        byte[] m = Convert.FromHexString(EchoRequest);
        Assert.True(IcmpView.TryParse(m, out IcmpView icmp, out DropReason r));
        Assert.Equal(IcmpType.EchoRequest, icmp.Type);
        Assert.Equal(0, icmp.Code);
        Assert.Equal(1, icmp.Identifier);
        Assert.Equal(7, icmp.SequenceNumber);
        Assert.Equal(EchoData, Convert.ToHexString(icmp.Payload).ToLowerInvariant());
        Assert.False(icmp.IsError);
        Assert.False(icmp.TryGetError(out _, out r));
        Assert.Equal(DropReason.IcmpUnsupported, r);
    }

    [Fact]
    public void EmitsEchoRequestAndReplyInPlace()
    {
        byte[] m = new byte[40];
        Assert.Equal(40, IcmpView.EmitEcho(m, IcmpType.EchoRequest, 1, 7, Convert.FromHexString(EchoData)));
        Assert.Equal(EchoRequest, Convert.ToHexString(m).ToLowerInvariant());
        // The reply reuses the request's buffer: data already in place.
        IcmpView.EmitEcho(m, IcmpType.EchoReply, 1, 7, m.AsSpan(8));
        Assert.Equal(EchoReply, Convert.ToHexString(m).ToLowerInvariant());
    }

    [Fact]
    public void PortUnreachableRoundTrip()
    {
        byte[] quote = Convert.FromHexString(Ipv4HeaderTests.UdpPacket)[..28];
        byte[] m = new byte[36];
        Assert.Equal(36, IcmpView.EmitError(m, IcmpType.DestinationUnreachable, IcmpUnreachableCode.Port, 0, quote));
        Assert.Equal(PortUnreachable, Convert.ToHexString(m).ToLowerInvariant());

        Assert.True(IcmpView.TryParse(m, out IcmpView icmp, out _));
        Assert.True(icmp.TryGetError(out IcmpErrorKind kind, out _));
        Assert.Equal(IcmpErrorKind.PortUnreachable, kind);
        Assert.Equal(quote, icmp.Payload.ToArray());
    }

    [Fact]
    public void FragmentationNeededCarriesNextHopMtu()
    {
        byte[] quote = Convert.FromHexString(Ipv4HeaderTests.UdpPacket)[..28];
        byte[] m = new byte[36];
        IcmpView.EmitError(m, IcmpType.DestinationUnreachable, IcmpUnreachableCode.FragmentationNeeded, 1400, quote);
        Assert.Equal(FragNeeded, Convert.ToHexString(m).ToLowerInvariant());
        Assert.True(IcmpView.TryParse(m, out IcmpView icmp, out _));
        Assert.True(icmp.TryGetError(out IcmpErrorKind kind, out _));
        Assert.Equal(IcmpErrorKind.FragmentationNeeded, kind);
        Assert.Equal(1400, icmp.NextHopMtu);
    }

    [Theory]
    [InlineData(3, 0, IcmpErrorKind.NetUnreachable)]
    [InlineData(3, 1, IcmpErrorKind.HostUnreachable)]
    [InlineData(3, 2, IcmpErrorKind.ProtocolUnreachable)]
    [InlineData(3, 5, IcmpErrorKind.SourceRouteFailed)]
    [InlineData(3, 13, IcmpErrorKind.Prohibited)]
    [InlineData(3, 7, IcmpErrorKind.OtherUnreachable)]
    [InlineData(11, 0, IcmpErrorKind.TtlExceeded)]
    [InlineData(11, 1, IcmpErrorKind.ReassemblyTimeExceeded)]
    public void ErrorKinds(byte type, byte code, IcmpErrorKind expected)
    {
        byte[] m = new byte[36];
        IcmpView.EmitError(m, (IcmpType)type, code, 0, Convert.FromHexString(Ipv4HeaderTests.UdpPacket)[..28]);
        Assert.True(IcmpView.TryParse(m, out IcmpView icmp, out _));
        Assert.True(icmp.IsError);
        Assert.True(icmp.TryGetError(out IcmpErrorKind kind, out _));
        Assert.Equal(expected, kind);
    }

    [Fact]
    public void MalformedMessagesAreDropped()
    {
        Assert.False(IcmpView.TryParse(new byte[7], out _, out DropReason r));
        Assert.Equal(DropReason.IcmpMalformed, r);

        byte[] bad = Convert.FromHexString(EchoRequest);
        bad[20] ^= 1;
        Assert.False(IcmpView.TryParse(bad, out _, out r));
        Assert.Equal(DropReason.IcmpBadChecksum, r);

        // An error that quotes too little of the original datagram.
        byte[] shortQuote = Convert.FromHexString(PortUnreachable)[..35];
        new IcmpView(shortQuote).FillChecksum();
        Assert.True(IcmpView.TryParse(shortQuote, out IcmpView icmp, out _));
        Assert.False(icmp.TryGetError(out _, out r));
        Assert.Equal(DropReason.IcmpMalformed, r);

        // An error quoting something that is not IPv4.
        byte[] notIp = Convert.FromHexString(PortUnreachable);
        notIp[8] = 0x65;
        new IcmpView(notIp).FillChecksum();
        Assert.True(IcmpView.TryParse(notIp, out icmp, out _));
        Assert.False(icmp.TryGetError(out _, out r));
        Assert.Equal(DropReason.IcmpMalformed, r);
    }
}
