using System;
using System.Buffers.Binary;
using UserTcp.Interpose;
using UserTcp.Stack;
using UserTcp.Stack.Wire;
using Xunit;

namespace UserTcp.Tests.Interpose;

/// <summary>The packetdrill device under a real stack: raw IPv4 in and out, ARP answered inside the device.</summary>
public class PacketdrillDeviceTests
{
    private static readonly Ipv4Address Local = new(192, 168, 0, 1), Remote = new(192, 0, 2, 1);

    private static NetStack NewStack(PacketdrillDevice dev) =>
        new(dev, new StackConfig
        {
            Interface = new Stack.Iface.InterfaceConfig { Address = Local, PrefixLength = 0 },
            Tcp = new Stack.Tcp.TcpConfig { Seed = 42 },
        });

    [Fact]
    public void ActiveOpenResolvesThePeerInsideTheDeviceAndEmitsARawIpv4Syn()
    {
        using var dev = new PacketdrillDevice(Local);
        var stack = NewStack(dev);
        long now = 1_000_000;
        stack.Poll(now);
        Assert.Equal(SocketError.Success, stack.Open(out int h));
        var e = stack.Connect(h, Remote, 8080);
        Assert.True(e is SocketError.Success or SocketError.InProgress or SocketError.WouldBlock, e.ToString());
        stack.Poll(now);
        // The ARP request became an answer waiting in the device; nothing left for packetdrill yet but IPv4.
        for (int i = 0; i < 3 && dev.HasInbound; i++) stack.Poll(now);
        Assert.False(dev.HasInbound);

        var buf = new byte[2048];
        int n = dev.TryTake(buf, out long sentUs);
        Assert.True(n >= 40, $"no SYN came out ({n})");
        Assert.Equal(4, buf[0] >> 4);                       // IPv4, no Ethernet header in front
        Assert.Equal(6, buf[9]);                            // TCP
        Assert.Equal(Local, Ipv4Address.Read(buf.AsSpan(12)));
        Assert.Equal(Remote, Ipv4Address.Read(buf.AsSpan(16)));
        int ihl = (buf[0] & 15) * 4;
        Assert.Equal(8080, BinaryPrimitives.ReadUInt16BigEndian(buf.AsSpan(ihl + 2)));
        Assert.Equal(0x02, buf[ihl + 13]);                  // SYN
        Assert.Equal(n, BinaryPrimitives.ReadUInt16BigEndian(buf.AsSpan(2)));
        long wall = PacketdrillDevice.WallClockUs();
        Assert.InRange(sentUs, wall - 5_000_000, wall);
        Assert.Equal(0, dev.TryTake(buf, out _));           // ARP never reaches packetdrill
    }

    [Fact]
    public void InjectRefusesWhatIsNotAnIpv4PacketAndDropsWhenFull()
    {
        using var dev = new PacketdrillDevice(Local);
        Assert.False(dev.Inject(new byte[10]));
        var ipv6 = new byte[60];
        ipv6[0] = 0x60;
        Assert.False(dev.Inject(ipv6));
        Assert.False(dev.Inject(new byte[1501]));
        var ip = new byte[40];
        ip[0] = 0x45;
        int accepted = 0;
        while (dev.Inject(ip) && accepted < 10_000) accepted++;
        Assert.True(accepted > 0 && accepted < 10_000);
        Assert.Equal(1, dev.DroppedIn);
    }

    [Fact]
    public void APacketLargerThanTheBufferIsCutShort()
    {
        using var dev = new PacketdrillDevice(Local);
        var stack = NewStack(dev);
        stack.Poll(0);
        Assert.Equal(SocketError.Success, stack.Open(out int h));
        stack.Connect(h, Remote, 80);
        for (int i = 0; i < 4; i++) stack.Poll(0);
        var small = new byte[20];
        Assert.Equal(20, dev.TryTake(small, out _));
        Assert.Equal(0x45, small[0]);
    }
}
