using System;
using BenchmarkDotNet.Attributes;
using UserTcp.Bench.Harness;
using UserTcp.Stack;
using UserTcp.Stack.Iface;
using UserTcp.Stack.Phy;
using UserTcp.Stack.Tcp;
using UserTcp.Stack.Wire;

namespace UserTcp.Bench.Benchmarks;

/// <summary>
/// The connection life of <see cref="TcpConnectBenchmarks"/> through the whole stack: two <see cref="NetStack"/>s
/// over a <see cref="MemoryLink"/>, so each segment also passes Ethernet and IPv4 (headers, IPv4 checksum, ARP cache
/// lookup), the device (a copy into the peer's packet pool) and the socket-handle table: open, connect, accept,
/// 100 bytes each way, close both, and the client's TIME-WAIT run out by following the timers (virtual time jumps
/// 2*MSL). ARP entries are configured not to expire, so the 60 s jumps do not add an ARP exchange per connection.
/// </summary>
[Config(typeof(BenchConfig))]
public class NetStackConnectBenchmarks
{
    private MemoryLink _link = null!;
    private NetStack _a = null!, _b = null!;
    private int _listen;
    private long _now = 1_000;
    private long _msl2;
    private readonly byte[] _msg = new byte[100];
    private readonly byte[] _buf = new byte[4096];

    [GlobalSetup]
    public void Setup()
    {
        _link = new MemoryLink(
            new MemoryLinkConfig { Capabilities = new DeviceCapabilities { MacAddress = new MacAddress(0x02_00_00_00_00_01) }, PoolSize = 1024, RxQueueCapacity = 512 },
            new MemoryLinkConfig { Capabilities = new DeviceCapabilities { MacAddress = new MacAddress(0x02_00_00_00_00_02) }, PoolSize = 1024, RxQueueCapacity = 512 });
        var tcpA = new TcpConfig { Seed = 1 };
        _msl2 = 2 * tcpA.MslUs + 1;
        _a = new NetStack(_link.A, new StackConfig { Interface = new InterfaceConfig { Address = LayerPair.AddrA, ArpEntryLifetimeUs = long.MaxValue / 4 }, Tcp = tcpA });
        _b = new NetStack(_link.B, new StackConfig { Interface = new InterfaceConfig { Address = LayerPair.AddrB, ArpEntryLifetimeUs = long.MaxValue / 4 }, Tcp = new TcpConfig { Seed = 2 } });
        Check(_b.Open(out _listen), "open listener");
        Check(_b.Bind(_listen, Ipv4Address.Any, 80), "bind");
        Check(_b.Listen(_listen, 128), "listen");
        for (int i = 0; i < 3; i++) OpenClose(); // the first one resolves ARP
        long framesBefore = _link.A.Pool.Outstanding;
        long dropsBefore = _a.Counters.TotalDrops + _b.Counters.TotalDrops; // the peer's start-up gratuitous ARP is one
        OpenClose();
        long drops = _a.Counters.TotalDrops + _b.Counters.TotalDrops - dropsBefore;
        if (_a.OpenSockets != 0 || _b.OpenSockets != 1 || _a.Tcp.ConnectionCount + _b.Tcp.ConnectionCount != 0 || drops != 0
            || _a.Buffers.BytesInUse + _b.Buffers.BytesInUse != 0 || _link.A.Pool.Outstanding > framesBefore)
            throw new InvalidOperationException($"connection life not clean: sockets {_a.OpenSockets}/{_b.OpenSockets}, connections {_a.Tcp.ConnectionCount}/{_b.Tcp.ConnectionCount}, ring bytes {_a.Buffers.BytesInUse}/{_b.Buffers.BytesInUse}, frames {framesBefore}->{_link.A.Pool.Outstanding}, drops {drops} ({DropList(_a)} / {DropList(_b)})");
        Console.WriteLine($"// netstack connect/close: {_a.Counters.TcpSegmentsOut + _b.Counters.TcpSegmentsOut} segments over 4 connections");
    }

    private static string DropList(NetStack n)
    {
        var parts = new System.Collections.Generic.List<string>();
        foreach (DropReason r in Enum.GetValues<DropReason>())
            if (r != DropReason.Count && n.Counters.Drops(r) != 0) parts.Add($"{r} {n.Counters.Drops(r)}");
        return string.Join(", ", parts);
    }

    private static void Check(SocketError e, string what)
    {
        if (e != SocketError.Success && e != SocketError.InProgress) throw new InvalidOperationException($"{what}: {e}");
    }

    /// <summary>Both stacks poll until the link is empty.</summary>
    private void Pump()
    {
        do
        {
            _a.Poll(_now);
            _b.Poll(_now);
        } while (_link.A.RxQueued > 0 || _link.B.RxQueued > 0);
    }

    [Benchmark]
    public void OpenClose()
    {
        Check(_a.Open(out int c), "open");
        Check(_a.Connect(c, LayerPair.AddrB, 80), "connect");
        Pump();
        Check(_b.Accept(_listen, out int s, out _, out _), "accept");
        _a.Send(c, _msg, out _);
        Pump();
        _b.Receive(s, _buf, false, out _);
        _b.Send(s, _msg, out _);
        Pump();
        _a.Receive(c, _buf, false, out _);
        _a.Close(c);
        Pump();
        _b.Close(s);
        Pump();
        _now += _msl2;
        Pump();
        while (_a.Tcp.ConnectionCount > 0)
        {
            long next = _a.PollAt();
            if (next == long.MaxValue) throw new InvalidOperationException("TIME-WAIT connection without a timer");
            _now = Math.Max(_now + 1, next);
            Pump();
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _a.Dispose();
        _b.Dispose();
        _link.Dispose();
    }
}
