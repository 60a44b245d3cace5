using System;
using UserTcp.Stack;
using UserTcp.Stack.Wire;
using Xunit;

namespace UserTcp.Tests.Tcp;

public class TcpWireTests
{
    // A Linux SYN: ports 40000 -> 80, seq 0x01020304, MSS 1460, SACK-permitted, TS 0x11223344/0, NOP, WS 7.
    private static readonly byte[] s_linuxSyn =
    {
        0x9c, 0x40, 0x00, 0x50, 0x01, 0x02, 0x03, 0x04, 0x00, 0x00, 0x00, 0x00, 0xa0, 0x02, 0xfa, 0xf0,
        0x12, 0x34, 0x00, 0x00,
        0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x11, 0x22, 0x33, 0x44, 0x00, 0x00, 0x00, 0x00,
        0x01, 0x03, 0x03, 0x07,
    };

    [Fact]
    public void ParsesLinuxSyn()
    {
        byte[] seg = (byte[])s_linuxSyn.Clone();
        Assert.True(TcpHeaderView.TryParse(seg, out var h, out _));
        Assert.Equal(40000, h.SourcePort);
        Assert.Equal(80, h.DestinationPort);
        Assert.Equal(0x01020304u, h.SequenceNumber);
        Assert.Equal(0u, h.AckNumber);
        Assert.Equal(40, h.HeaderLength);
        Assert.Equal(TcpFlags.Syn, h.Flags);
        Assert.Equal(64240, h.Window);
        Assert.Equal(0x1234, h.Checksum);
        Assert.Equal(0, h.Payload.Length);
        Assert.True(TcpOptions.TryParse(h.Options, out var o, out _));
        Assert.True(o.HasMss); Assert.Equal(1460, o.Mss);
        Assert.True(o.SackPermitted);
        Assert.True(o.HasTimestamps); Assert.Equal(0x11223344u, o.TsVal); Assert.Equal(0u, o.TsEcr);
        Assert.True(o.HasWindowScale); Assert.Equal(7, o.WindowScale);
    }

    [Fact]
    public void EmitsLinuxSynOptionLayout()
    {
        var o = new TcpOptions { HasMss = true, Mss = 1460, SackPermitted = true, HasTimestamps = true, TsVal = 0x11223344, HasWindowScale = true, WindowScale = 7 };
        Span<byte> buf = stackalloc byte[40];
        int n = o.Emit(buf);
        Assert.Equal(20, n);
        Assert.Equal(o.Length, n);
        Assert.Equal(s_linuxSyn.AsSpan(20, 20).ToArray(), buf[..n].ToArray());
    }

    [Fact]
    public void EmitsHeaderBytes()
    {
        byte[] b = new byte[20];
        TcpHeaderView.Emit(b, 40000, 80, 0x01020304, 0x0a0b0c0d, TcpFlags.Ack | TcpFlags.Psh | TcpFlags.Ece | TcpFlags.Cwr, 502, 20);
        Assert.Equal(new byte[] { 0x9c, 0x40, 0x00, 0x50, 1, 2, 3, 4, 0x0a, 0x0b, 0x0c, 0x0d, 0x50, 0xd8, 0x01, 0xf6, 0, 0, 0, 0 }, b);
        var h = new TcpHeaderView(b);
        Assert.True(h.Has(TcpFlags.Ece)); Assert.True(h.Has(TcpFlags.Cwr)); Assert.False(h.Has(TcpFlags.Syn));
    }

    [Fact]
    public void RejectsTruncatedAndBadDataOffset()
    {
        Assert.False(TcpHeaderView.TryParse(new byte[19], out _, out var r));
        Assert.Equal(DropReason.TcpTruncated, r);
        byte[] b = new byte[20];
        b[12] = 0x40; // 16 bytes: below minimum
        Assert.False(TcpHeaderView.TryParse(b, out _, out r));
        Assert.Equal(DropReason.TcpBadHeaderLength, r);
        b[12] = 0x60; // 24 bytes but only 20 present
        Assert.False(TcpHeaderView.TryParse(b, out _, out r));
        Assert.Equal(DropReason.TcpTruncated, r);
        byte[] c = new byte[24];
        c[12] = 0x60;
        Assert.True(TcpHeaderView.TryParse(c, out var h, out _));
        Assert.Equal(4, h.Options.Length);
    }

    [Fact]
    public void TimestampsAndSackBlocksRoundTrip()
    {
        var o = new TcpOptions { HasTimestamps = true, TsVal = 7, TsEcr = 9 };
        for (uint i = 0; i < 4; i++) o.AddSack(new SackBlock(100 * i, 100 * i + 50));
        Span<byte> buf = stackalloc byte[40];
        int n = o.Emit(buf);
        Assert.Equal(40, n); // 12 for timestamps + 4 + 3 blocks: the fourth does not fit
        Assert.Equal(new byte[] { 1, 1, 8, 10, 0, 0, 0, 7, 0, 0, 0, 9, 1, 1, 5, 26 }, buf[..16].ToArray());
        Assert.True(TcpOptions.TryParse(buf[..n], out var p, out _));
        Assert.True(p.HasTimestamps); Assert.Equal(7u, p.TsVal); Assert.Equal(9u, p.TsEcr);
        Assert.Equal(3, p.SackCount);
        Assert.Equal(new SackBlock(200, 250), p.GetSack(2));

        var noTs = new TcpOptions();
        for (uint i = 0; i < 4; i++) noTs.AddSack(new SackBlock(i, i + 1));
        Assert.False(noTs.AddSack(new SackBlock(9, 10)));
        n = noTs.Emit(buf);
        Assert.Equal(36, n);
        Assert.True(TcpOptions.TryParse(buf[..n], out p, out _));
        Assert.Equal(4, p.SackCount);
        Assert.Equal(new SackBlock(3, 4), p.GetSack(3));
    }

    [Fact]
    public void WindowScaleCappedAt14()
    {
        Assert.True(TcpOptions.TryParse(new byte[] { 3, 3, 20, 0 }, out var o, out _));
        Assert.True(o.HasWindowScale);
        Assert.Equal(14, o.WindowScale);
    }

    [Fact]
    public void UnknownOptionsSkippedByLengthAndEolStops()
    {
        // unknown kind 30 len 4, MSS, EOL, then garbage that must be ignored
        Assert.True(TcpOptions.TryParse(new byte[] { 30, 4, 0xff, 0xff, 2, 4, 0x02, 0x18, 0, 0xff, 0xff, 0xff }, out var o, out _));
        Assert.True(o.HasMss); Assert.Equal(536, o.Mss);
        // wrong length for a known kind: ignored, not fatal (Linux behaviour)
        Assert.True(TcpOptions.TryParse(new byte[] { 2, 3, 5, 1 }, out o, out _));
        Assert.False(o.HasMss);
    }

    [Theory]
    [InlineData(new byte[] { 2 })]                 // kind without length
    [InlineData(new byte[] { 2, 1, 0, 0 })]        // length below 2
    [InlineData(new byte[] { 30, 0, 0, 0 })]       // zero length (would loop forever)
    [InlineData(new byte[] { 1, 8, 10, 0, 0, 0 })] // runs past the end
    public void MalformedLengthsRejected(byte[] bytes)
    {
        Assert.False(TcpOptions.TryParse(bytes, out _, out var r));
        Assert.Equal(DropReason.TcpBadOptions, r);
    }

    [Fact]
    public void RandomBytesNeverThrow()
    {
        var rng = new Random(1);
        byte[] b = new byte[40];
        for (int i = 0; i < 20000; i++)
        {
            rng.NextBytes(b);
            int len = rng.Next(41);
            TcpOptions.TryParse(b.AsSpan(0, len), out var o, out _);
            Assert.InRange(o.SackCount, 0, 4);
            Assert.InRange(o.WindowScale, 0, 14);
            byte[] seg = new byte[rng.Next(64)];
            rng.NextBytes(seg);
            if (TcpHeaderView.TryParse(seg, out var h, out _)) Assert.InRange(h.HeaderLength, 20, seg.Length);
        }
    }
}
