using System;
using System.Buffers.Binary;
using System.Linq;
using UserTcp.Stack.Phy;
using UserTcp.Stack.Wire;
using Xunit;
using static UserTcp.Tests.Phy.PhyTestUtil;

namespace UserTcp.Tests.Phy;

public class MemoryLinkTests
{
    [Fact]
    public void FramesCrossInBothDirectionsAndBuffersComeBack()
    {
        using MemoryLink link = NewLink();
        for (int i = 0; i < 5; i++) Assert.True(Send(link.A, NumberedFrame(i)));
        Assert.True(Send(link.B, NumberedFrame(100)));
        Assert.Equal(1, link.A.Pool.Outstanding); // the frame from B waits in A's queue
        Assert.Equal(5, link.B.Pool.Outstanding);
        Assert.Equal(new[] { 0, 1, 2, 3, 4 }, Drain(link.B).Select(Number));
        Assert.Equal(new[] { 100 }, Drain(link.A).Select(Number));
        Assert.Equal(0, link.A.Pool.Outstanding);
        Assert.Equal(0, link.B.Pool.Outstanding);
        Assert.Equal(5, link.A.TxFrames);
        Assert.Equal(5, link.B.RxFrames);
    }

    [Fact]
    public void FullQueueRefusesTransmit()
    {
        using MemoryLink link = NewLink(queue: 3);
        Span<PacketBuf> b = stackalloc PacketBuf[5];
        Assert.Equal(5, link.A.Allocate(b));
        for (int i = 0; i < 5; i++) { b[i].SetLength(60); b[i].Data.Clear(); }
        Assert.Equal(3, link.A.Transmit(b));
        Assert.Equal(2, link.A.Pool.Outstanding); // the refused two still belong to the caller
        link.A.Free(ref b[3]);
        link.A.Free(ref b[4]);
        Assert.Equal(3, Drain(link.B).Count);
        Assert.Equal(0, link.A.Pool.Outstanding + link.B.Pool.Outstanding);
    }

    [Fact]
    public void ReceiveHonoursMaxBurst()
    {
        using MemoryLink link = NewLink(maxBurst: 4);
        for (int i = 0; i < 10; i++) Assert.True(Send(link.A, NumberedFrame(i)));
        Span<PacketBuf> b = stackalloc PacketBuf[32];
        int n = link.B.Receive(b);
        Assert.Equal(4, n);
        for (int i = 0; i < n; i++) link.B.Free(ref b[i]);
        Assert.Equal(6, Drain(link.B).Count);
    }

    [Fact]
    public void OversizeFrameIsTakenAndDropped()
    {
        using MemoryLink link = NewLink(mtu: 100);
        Assert.True(Send(link.A, new byte[114]));
        Assert.True(Send(link.A, new byte[115]));
        Assert.Equal(1, link.A.TxOversizeDropped);
        Assert.Single(Drain(link.B));
        Assert.Equal(0, link.A.Pool.Outstanding);
    }

    [Fact]
    public void DisposeFreesQueuedFrames()
    {
        MemoryLink link = NewLink();
        Send(link.A, NumberedFrame(1));
        link.B.Pool.TryRent(out _); // a leak of our own, to show the counter is live
        Assert.Equal(2, link.B.Pool.Outstanding);
        link.Dispose();
        Assert.Equal(0, link.B.RxQueued);
        Assert.Equal(1, link.B.Pool.Outstanding); // the queued frame went back; our own leak shows
    }

    /// <summary>Ethernet + IPv4 (checksum zero) + 20-byte TCP header + 4 data bytes, 10.0.0.1 -> 10.0.0.2.</summary>
    private static byte[] TcpFrame()
    {
        byte[] f = Convert.FromHexString(
            "02000000000b" + "02000000000a" + "0800" +
            "4500002c1234400040060000" + "0a000001" + "0a000002" +
            "04d20050" + "00000001" + "00000000" + "50027210" + "0000" + "0000" +
            "61626364");
        return f;
    }

    [Fact]
    public void TransmitOffloadFillsChecksumsAndReceiveOffloadMarksGood()
    {
        using MemoryLink link = NewLink(txOffload: true, rxOffload: true);
        byte[] f = TcpFrame();
        // What the stack does when TCP checksum offload is on: put the folded pseudo-header sum in the field.
        uint ph = Checksum.PseudoHeader(new Ipv4Address(10, 0, 0, 1), new Ipv4Address(10, 0, 0, 2), 6, 24);
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(14 + 20 + 16), Checksum.FoldUncomplemented(ph));
        Assert.True(Send(link.A, f, PacketOffloads.TxIpv4Checksum | PacketOffloads.TxTcpChecksum));

        Span<PacketBuf> b = stackalloc PacketBuf[1];
        Assert.Equal(1, link.B.Receive(b));
        byte[] got = b[0].Data.ToArray();
        Assert.Equal(PacketOffloads.RxIpv4ChecksumGood | PacketOffloads.RxTcpChecksumGood, b[0].Offloads);
        link.B.Free(ref b[0]);

        Assert.Equal(0, Checksum.Compute(got.AsSpan(14, 20)));
        Assert.NotEqual(0, BinaryPrimitives.ReadUInt16BigEndian(got.AsSpan(24)));
        byte[] tcp = got.AsSpan(34).ToArray();
        Assert.Equal(0, Checksum.Fold(Checksum.Add(ph, tcp)));
    }

    [Fact]
    public void WithoutTxOffloadFlagsTheBytesAreUntouchedAndBadChecksumsAreNotMarkedGood()
    {
        using MemoryLink link = NewLink(txOffload: true, rxOffload: true);
        byte[] f = TcpFrame();
        Assert.True(Send(link.A, f)); // no offload flags on the packet: nothing filled
        Span<PacketBuf> b = stackalloc PacketBuf[1];
        Assert.Equal(1, link.B.Receive(b));
        Assert.Equal(f, b[0].Data.ToArray());
        Assert.Equal(PacketOffloads.None, b[0].Offloads);
        link.B.Free(ref b[0]);
    }
}
