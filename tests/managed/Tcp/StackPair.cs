using System;
using UserTcp.Stack;
using UserTcp.Stack.Iface;
using UserTcp.Stack.Phy;
using UserTcp.Stack.Tcp;
using UserTcp.Stack.Wire;
using Xunit;

namespace UserTcp.Tests.Tcp;

/// <summary>Two <see cref="NetStack"/>s over a <see cref="MemoryLink"/>, each receiving through a
/// <see cref="FaultInjectingDevice"/>, driven in virtual time.</summary>
internal sealed class StackPair : IDisposable
{
    public static readonly Ipv4Address AddrA = new(10, 0, 0, 1), AddrB = new(10, 0, 0, 2);
    public readonly MemoryLink Link;
    public readonly FaultInjectingDevice DevA, DevB;
    public readonly NetStack A, B;
    public long NowUs = 1_000;

    public StackPair(FaultConfig? faults = null, int seed = 1, TcpConfig? tcpA = null, TcpConfig? tcpB = null,
        bool offload = false, int poolSize = 2048, int tsoA = 0, bool txOffloadA = false)
    {
        // tsoA: A's device segments large TCP segments (TSO, which implies transmit checksum offload); B verifies
        // every piece's checksums in software unless offload is on. txOffloadA: A's device fills A's TCP checksums
        // (the stack copies payloads without summing them), B verifies them in software.
        var capsA = new DeviceCapabilities { MacAddress = new MacAddress(0x02_00_00_00_00_01), TxTcpChecksum = offload || tsoA > 0 || txOffloadA, RxTcpChecksum = offload, TxIpv4Checksum = offload, RxIpv4Checksum = offload, TsoMaxBytes = tsoA };
        var capsB = new DeviceCapabilities { MacAddress = new MacAddress(0x02_00_00_00_00_02), TxTcpChecksum = offload, RxTcpChecksum = offload, TxIpv4Checksum = offload, RxIpv4Checksum = offload };
        Link = new MemoryLink(new MemoryLinkConfig { Capabilities = capsA, PoolSize = poolSize, RxQueueCapacity = 1024 },
            new MemoryLinkConfig { Capabilities = capsB, PoolSize = poolSize, RxQueueCapacity = 1024 });
        faults ??= new FaultConfig { DelayUs = 50 };
        DevA = new FaultInjectingDevice(Link.A, faults, seed);
        DevB = new FaultInjectingDevice(Link.B, faults, seed + 7919);
        A = new NetStack(DevA, new StackConfig { Interface = new InterfaceConfig { Address = AddrA }, Tcp = tcpA ?? new TcpConfig { Seed = 1 } });
        B = new NetStack(DevB, new StackConfig { Interface = new InterfaceConfig { Address = AddrB }, Tcp = tcpB ?? new TcpConfig { Seed = 2 } });
    }

    private void PollBoth()
    {
        DevA.Advance(NowUs);
        DevB.Advance(NowUs);
        A.Poll(NowUs);
        B.Poll(NowUs);
    }

    /// <summary>Runs until <paramref name="done"/> (checked after every poll round) or the virtual deadline.</summary>
    public bool RunUntil(Func<bool> done, long maxUs)
    {
        long end = NowUs + maxUs;
        int spins = 0;
        while (true)
        {
            PollBoth();
            if (done()) return true;
            bool queued = Link.A.RxQueued > 0 || Link.B.RxQueued > 0;
            long next = Math.Min(Math.Min(A.PollAt(), B.PollAt()), Math.Min(DevA.NextReleaseUs, DevB.NextReleaseUs));
            if (queued && spins++ < 4) continue; // frames on the wire: let the receivers pull them now
            spins = 0;
            if (next > end) { NowUs = end; PollBoth(); return done(); }
            NowUs = Math.Max(NowUs + 1, next);
        }
    }

    public void Dispose()
    {
        A.Dispose();
        B.Dispose();
        DevA.Dispose();
        DevB.Dispose();
        Link.Dispose();
    }
}
