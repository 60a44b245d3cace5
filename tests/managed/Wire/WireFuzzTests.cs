using System;
using FsCheck;
using FsCheck.Fluent;
using UserTcp.Stack;
using UserTcp.Stack.Wire;
using Xunit;

namespace UserTcp.Tests.Wire;

/// <summary>Arbitrary bytes into every parser: never throws, and a successful parse leaves in-bounds views.</summary>
public class WireFuzzTests
{
    private static bool ParseAll(byte[] data)
    {
        data ??= [];
        Span<byte> s = data;
        if (EthernetFrameView.TryParse(s, out EthernetFrameView eth, out _))
        {
            _ = eth.Source; _ = eth.Destination; _ = eth.EtherType; _ = eth.Payload.Length;
        }
        if (ArpPacketView.TryParse(s, out ArpPacketView arp, out _))
        {
            _ = arp.SenderIp; _ = arp.TargetMac; _ = arp.TargetIp;
        }
        foreach (bool verified in new[] { false, true })
        {
            if (Ipv4HeaderView.TryParse(s, verified, out Ipv4HeaderView ip, out DropReason r))
            {
                _ = ip.Options.Length; _ = ip.Payload.Length; _ = ip.Source; _ = ip.Destination;
                if (ip.Protocol == IpProtocol.Icmp && IcmpView.TryParse(ip.Payload, out IcmpView inner, out _))
                    inner.TryGetError(out _, out _);
            }
            else if (r == DropReason.None) return false;
        }
        if (IcmpView.TryParse(s, out IcmpView icmp, out _))
        {
            _ = icmp.NextHopMtu; _ = icmp.Payload.Length;
            icmp.TryGetError(out _, out _);
        }
        return true;
    }

    [Fact]
    public void RandomBytesNeverThrow() => Prop.ForAll<byte[]>(ParseAll).QuickCheckThrowOnFailure();

    [Fact]
    public void RandomIpv4LikeBytesNeverThrow()
    {
        // Bias towards version 4 and a valid checksum so the deeper paths run.
        var rng = new Random(1);
        for (int i = 0; i < 20000; i++)
        {
            byte[] b = new byte[rng.Next(0, 80)];
            rng.NextBytes(b);
            if (b.Length >= 20)
            {
                b[0] = (byte)(0x40 | rng.Next(0, 16));
                b[2] = 0;
                b[3] = (byte)rng.Next(0, b.Length + 4);
                b[6] = b[7] = 0;
                b[9] = IpProtocol.Icmp;
                if ((b[0] & 0xF) * 4 <= b.Length && (b[0] & 0xF) >= 5) new Ipv4HeaderView(b).FillChecksum();
            }
            Assert.True(ParseAll(b));
        }
    }
}
