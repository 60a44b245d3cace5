using System;
using System.Diagnostics;
using System.Threading;
using UserTcp.Stack;
using UserTcp.Stack.Dpdk;
using UserTcp.Stack.Wire;
using UserTcp.Tests.Dpdk;
using Xunit;
using Xunit.Abstractions;

namespace UserTcp.Tests.Interop;

/// <summary>
/// Two of our stacks talking TCP over a net_memif pair, no kernel in the data path. DPDK allows one EAL per process,
/// so both ports (memif server and client on one abstract socket) live in this process, each polled by its own
/// <see cref="StackDriver"/> thread.
/// </summary>
[Collection("Dpdk")]
public sealed class MemifInteropTests
{
    private readonly ITestOutputHelper _out;
    public MemifInteropTests(ITestOutputHelper output) => _out = output;

    internal static readonly Ipv4Address ServerIp = new(198, 18, 1, 1);
    internal static readonly Ipv4Address ClientIp = new(198, 18, 1, 2);

    [DpdkTheory]
    [InlineData(64)]
    [InlineData(1 << 20)]
    public void TwoStacksOverMemif_BothWays_Intact(int bytes) => RunPair(bytes, TimeSpan.FromSeconds(30));

    /// <summary>Topology (a)'s configuration (docs/dpdk.md, "memif MTU"): both ends at <c>mtu=16000</c> without
    /// checksums (<c>trusted=1</c>), and at <c>mtu=9000</c> with them. The stack's MSS follows the device MTU (MTU - 40
    /// - 12 for timestamps), segments cross in one buffer each (no multi-segment drop), and 4 MB each way arrive intact
    /// (SHA-256 compared), also where no checksum is computed or verified.</summary>
    [DpdkTheory]
    [InlineData(",mtu=16000,trusted=1", 16000)]
    [InlineData(",mtu=9000", 9000)]
    public void TwoStacksOverMemif_LargeMtu_BothWays_Intact(string both, int mtu)
    {
        RunPair(4 << 20, TimeSpan.FromSeconds(60), both, "", (server, client, tc) =>
        {
            Assert.Equal(mtu - 52, tc.Mss);
            foreach (StackDriver d in new[] { server, client })
                Assert.Equal(0L, ((DpdkDevice)d.Device).RxMultiSegmentDrops);
            if (both.Contains("trusted=1", StringComparison.Ordinal))
                Assert.Equal(0L, server.Stack.Counters.Drops(DropReason.TcpBadChecksum) + client.Stack.Counters.Drops(DropReason.TcpBadChecksum));
        });
    }

    [LongDpdkFact]
    public void Long_TwoStacksOverMemif_HundredMegabytesBothWays() => RunPair(100 << 20, TimeSpan.FromMinutes(5));

    private void RunPair(long bytes, TimeSpan limit, string both = "", string clientOnly = "",
        Action<StackDriver, StackDriver, Transfer>? check = null)
    {
        var (server, client) = OpenPair(DpdkTestEnv.Eal, both, clientOnly);
        try
        {
            var (ts, tc) = Transfer(server, client, bytes, limit);
            _out.WriteLine($"server drops: {server.Invoke(s => Interop.Transfer.Drops(s))}; client drops: {client.Invoke(s => Interop.Transfer.Drops(s))}; " +
                           $"timeouts {server.Stack.Counters.TcpTimeouts}/{client.Stack.Counters.TcpTimeouts}, fast rexmit {server.Stack.Counters.TcpFastRetransmits}/{client.Stack.Counters.TcpFastRetransmits}");
            Assert.Equal(SocketError.Success, ts.Error);
            Assert.Equal(SocketError.Success, tc.Error);
            Assert.Equal(bytes, ts.Sent);
            Assert.Equal(bytes, tc.Received);
            Assert.Equal(bytes, tc.Sent);
            Assert.Equal(bytes, ts.Received);
            Assert.Equal(ts.SentSha, tc.ReceivedSha);
            Assert.Equal(tc.SentSha, ts.ReceivedSha);
            Assert.True(tc.Timestamps && tc.Sack && tc.ReceiveWindowScale > 0 && tc.SendWindowScale > 0);
            _out.WriteLine($"{bytes} B each way in {(Math.Max(ts.EndUs, tc.EndUs) - tc.EstablishedUs) / 1000.0:0.0} ms " +
                           $"({tc.Mbps:0} Mbit/s per direction), retransmits {server.Stack.Counters.TcpRetransmits}/{client.Stack.Counters.TcpRetransmits}, MSS {tc.Mss}");
            check?.Invoke(server, client, tc);
        }
        finally
        {
            ClosePair(server, client);
        }
    }

    /// <summary>A memif server port and a client port on a fresh abstract socket, a stack on each, links up.</summary>
    internal static (StackDriver Server, StackDriver Client) OpenPair(DpdkEalConfig eal, string both = "", string clientOnly = "")
    {
        string sock = "/" + DpdkTestEnv.Unique("usertcp-interop") + ".sock";
        string id = DpdkTestEnv.Unique("i");
        DpdkDevice s = DpdkDevice.Open(eal, new DpdkPortConfig { Device = $"net_memif{id}s,role=server,socket={sock},mac=02:00:c6:12:01:01{both}" });
        DpdkDevice c;
        try
        {
            c = DpdkDevice.Open(eal, new DpdkPortConfig { Device = $"net_memif{id}c,role=client,socket={sock},mac=02:00:c6:12:01:02{both}{clientOnly}" });
        }
        catch
        {
            s.Dispose();
            throw;
        }
        var sw = Stopwatch.StartNew();
        while (!(s.Port.LinkUp && c.Port.LinkUp))
        {
            if (sw.Elapsed > TimeSpan.FromSeconds(10))
            {
                s.Dispose();
                c.Dispose();
                throw new TimeoutException("memif pair did not connect within 10 s");
            }
            Thread.Sleep(10);
        }
        var server = new StackDriver("memif-server", s, InteropNet.StackConfigFor(ServerIp, null), s);
        var client = new StackDriver("memif-client", c, InteropNet.StackConfigFor(ClientIp, null), c);
        return (server, client);
    }

    /// <summary>Server listens on 5001, client connects; both send <paramref name="bytes"/> concurrently.</summary>
    internal static (Transfer Server, Transfer Client) Transfer(StackDriver server, StackDriver client, long bytes, TimeSpan limit, ushort port = 5001)
    {
        int listener = server.Invoke(s =>
        {
            Assert.Equal(SocketError.Success, s.Open(out int h));
            Assert.Equal(SocketError.Success, s.Bind(h, ServerIp, port));
            Assert.Equal(SocketError.Success, s.Listen(h, 4));
            return h;
        });
        try
        {
            Transfer ts = server.Start(Interop.Transfer.Accept(listener, bytes, seed: 11));
            Transfer tc = client.Start(Interop.Transfer.Connect(ServerIp, port, bytes, seed: 22));
            client.Wait(tc, limit);
            server.Wait(ts, limit);
            return (ts, tc);
        }
        finally
        {
            server.Invoke(s => s.Close(listener));
        }
    }

    /// <summary>Closes the server side first and waits until the client's port saw the link go down (DPDK 22.11's
    /// memif must not close both ends while the interrupt thread handles a disconnect; see DpdkDeviceTests).</summary>
    internal static void ClosePair(StackDriver server, StackDriver client)
    {
        var cdev = (DpdkDevice)client.Device;
        server.Dispose();
        var sw = Stopwatch.StartNew();
        while (cdev.Port.LinkUp && sw.Elapsed < TimeSpan.FromSeconds(2)) Thread.Sleep(5);
        Thread.Sleep(20);
        client.Dispose();
    }
}
