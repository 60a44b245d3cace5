using System;
using System.IO;
using UserTcp.Stack.Phy;
using Xunit;
using static UserTcp.Tests.Phy.PhyTestUtil;

namespace UserTcp.Tests.Phy;

public class PcapDeviceTests
{
    [Fact]
    public void FileHeaderBytes()
    {
        using MemoryLink link = NewLink();
        var ms = new MemoryStream();
        _ = new PcapDevice(link.A, ms);
        Assert.Equal(Convert.FromHexString("d4c3b2a1" + "0200" + "0400" + "00000000" + "00000000" + "ffff0000" + "01000000"), ms.ToArray());
    }

    [Fact]
    public void RecordsTransmittedAndReceivedFrames()
    {
        using MemoryLink link = NewLink(queue: 1);
        var ms = new MemoryStream();
        var a = new PcapDevice(link.A, ms);
        a.NowUs = 1_500_002; // 1 s + 500002 us
        byte[] f = { 1, 2, 3, 4, 5 };
        Assert.True(Send(a, f));
        Assert.False(Send(a, new byte[] { 9 })); // queue full: refused, so not recorded
        Drain(link.B);
        Assert.True(Send(link.B, new byte[] { 0xaa, 0xbb }));
        a.NowUs = 2_000_000;
        Assert.Single(Drain(a));

        byte[] file = ms.ToArray();
        Assert.Equal(24 + 16 + 5 + 16 + 2, file.Length);
        Assert.Equal(Convert.FromHexString("01000000" + "22a10700" + "05000000" + "05000000" + "0102030405"), file[24..45]);
        Assert.Equal(Convert.FromHexString("02000000" + "00000000" + "02000000" + "02000000" + "aabb"), file[45..]);
        Assert.Equal(0, link.A.Pool.Outstanding + link.B.Pool.Outstanding);
    }

    [Fact]
    public void SnapLengthTruncatesCapturedBytesOnly()
    {
        using MemoryLink link = NewLink();
        var ms = new MemoryStream();
        var a = new PcapDevice(link.A, ms, snapLength: 4);
        Assert.True(Send(a, new byte[60]));
        byte[] file = ms.ToArray();
        Assert.Equal(24 + 16 + 4, file.Length);
        Assert.Equal(4, BitConverter.ToInt32(file, 24 + 8));
        Assert.Equal(60, BitConverter.ToInt32(file, 24 + 12));
    }
}
