using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using UserTcp.Stack.Phy;
using UserTcp.Stack.Wire;

namespace UserTcp.Tests.Phy;

internal static class PhyTestUtil
{
    public static MemoryLink NewLink(int mtu = 1500, int maxBurst = 32, int queue = 256, int pool = 512,
        bool txOffload = false, bool rxOffload = false)
    {
        MemoryLinkConfig End(ulong mac) => new()
        {
            Capabilities = new DeviceCapabilities
            {
                Mtu = mtu, MacAddress = new MacAddress(mac), MaxBurst = maxBurst,
                TxIpv4Checksum = txOffload, TxTcpChecksum = txOffload,
                RxIpv4Checksum = rxOffload, RxTcpChecksum = rxOffload,
            },
            RxQueueCapacity = queue,
            PoolSize = pool,
        };
        return new MemoryLink(End(0x02_00_00_00_00_0a), End(0x02_00_00_00_00_0b));
    }

    /// <summary>Sends one frame whose bytes are <paramref name="bytes"/>; returns whether the device took it.</summary>
    public static bool Send(IDevice dev, ReadOnlySpan<byte> bytes, PacketOffloads flags = PacketOffloads.None)
    {
        Span<PacketBuf> b = stackalloc PacketBuf[1];
        if (dev.Allocate(b) != 1) return false;
        b[0].SetLength(bytes.Length);
        bytes.CopyTo(b[0].Data);
        b[0].Offloads = flags;
        if (dev.Transmit(b) == 1) return true;
        dev.Free(ref b[0]);
        return false;
    }

    /// <summary>A 60-byte frame carrying a sequence number at offset 14.</summary>
    public static byte[] NumberedFrame(int n)
    {
        byte[] f = new byte[60];
        f[12] = 0x88; f[13] = 0xb5; // local experimental EtherType
        BinaryPrimitives.WriteInt32BigEndian(f.AsSpan(14), n);
        return f;
    }

    /// <summary>Receives everything available, copies the frames out and frees the buffers.</summary>
    public static List<byte[]> Drain(IDevice dev)
    {
        var frames = new List<byte[]>();
        Span<PacketBuf> b = stackalloc PacketBuf[64];
        int n;
        while ((n = dev.Receive(b)) > 0)
        {
            for (int i = 0; i < n; i++)
            {
                frames.Add(b[i].Data.ToArray());
                dev.Free(ref b[i]);
            }
        }
        return frames;
    }

    public static int Number(byte[] frame) => BinaryPrimitives.ReadInt32BigEndian(frame.AsSpan(14));
}
