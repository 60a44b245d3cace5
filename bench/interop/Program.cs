// TCP bulk throughput of the user-level stack over DPDK, with the interop test driver (tests/managed/Interop):
//   kernel  the stack on net_af_packet (veth end in a private namespace, scripts/testnet.sh) against the Linux
//           kernel's TCP (tests/managed/Interop/kpeer.py): stack->kernel, then kernel->stack.
//   memif   two stacks in this process joined by net_memif, each polled by its own thread: one direction.
// One connection, SHA-256 of both ends compared, time from establishment to the end of the stream. Needs root.
//
// Run: dotnet run -c Release --project bench/interop -- kernel|memif [--mb N] [--runs N]
using System;
using System.Diagnostics;
using System.IO;
using System.Threading;
using UserTcp.Stack;
using UserTcp.Stack.Dpdk;
using UserTcp.Stack.Wire;
using UserTcp.Tests.Interop;

if (args.Length < 1 || args[0] is not ("kernel" or "memif"))
{
    Console.Error.WriteLine("usage: InteropBench kernel|memif [--mb N] [--runs N]");
    return 2;
}
int mb = 200, runs = 3;
for (int i = 1; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--mb": mb = int.Parse(args[++i]); break;
        case "--runs": runs = int.Parse(args[++i]); break;
        default: Console.Error.WriteLine($"unknown option {args[i]}"); return 2;
    }
}

string root = AppContext.BaseDirectory;
while (!File.Exists(Path.Combine(root, "Interpose.sln"))) root = Path.GetDirectoryName(root) ?? throw new InvalidOperationException("repository root not found");
string glue = Path.Combine(root, "build", "libusertcp-dpdk.so");
if (InteropNet.Run("make", TimeSpan.FromMinutes(2), "-s", "-C", root, "-f", "stack/Dpdk/dpdk.mk", "BUILD=build") is { Code: not 0 } mk)
    throw new InvalidOperationException("building the DPDK glue failed: " + mk.Output);
var eal = new DpdkEalConfig { GluePath = glue, MemoryMb = 256, Hugepages = DpdkHugepages.Auto, Warn = w => Console.Error.WriteLine(w) };
long bytes = (long)mb << 20;
TimeSpan limit = TimeSpan.FromMinutes(5);
Console.WriteLine($"# {args[0]}: {mb} MiB per transfer, {runs} runs; Mbit/s from establishment to end of stream");

if (args[0] == "kernel")
{
    using InteropNet net = InteropNet.Up(root);
    using StackDriver stack = net.StartStack(eal);
    ushort port = 9000;
    for (int r = 0; r < runs; r++)
    {
        foreach (bool stackSends in new[] { true, false })
        {
            port++;
            using KernelPeer peer = net.StartPeer(root, "listen", port.ToString(), "--send", stackSends ? "0" : bytes.ToString(), "--timeout", "300");
            peer.WaitListening(TimeSpan.FromSeconds(30));
            Transfer t = stack.Start(Transfer.Connect(InteropNet.KernelIp, port, stackSends ? bytes : 0));
            stack.Wait(t, limit);
            PeerResult k = peer.Result(limit);
            bool intact = t.Error == SocketError.Success && k.Error == null &&
                          (stackSends ? t.SentSha == k.RecvSha && k.Received == bytes : k.SentSha == t.ReceivedSha && t.Received == bytes);
            Console.WriteLine($"{(stackSends ? "stack->kernel" : "kernel->stack"),-14} run {r + 1}: {t.Mbps,7:0} Mbit/s  " +
                              $"({(t.EndUs - t.EstablishedUs) / 1000.0:0} ms, intact {intact}, stack retransmits {stack.Stack.Counters.TcpRetransmits}, kernel retransmits {k.TotalRetrans})");
            if (!intact) return 1;
        }
    }
}
else
{
    string sock = $"/usertcp-interop-bench{Environment.ProcessId}.sock";
    DpdkDevice s = DpdkDevice.Open(eal, new DpdkPortConfig { Device = $"net_memif0,role=server,socket={sock},mac=02:00:c6:12:01:01" });
    DpdkDevice c = DpdkDevice.Open(eal, new DpdkPortConfig { Device = $"net_memif1,role=client,socket={sock},mac=02:00:c6:12:01:02" });
    var sw = Stopwatch.StartNew();
    while (!(s.Port.LinkUp && c.Port.LinkUp))
    {
        if (sw.Elapsed > TimeSpan.FromSeconds(10)) throw new TimeoutException("memif pair did not connect");
        Thread.Sleep(10);
    }
    Ipv4Address serverIp = new(198, 18, 1, 1), clientIp = new(198, 18, 1, 2);
    var server = new StackDriver("memif-server", s, InteropNet.StackConfigFor(serverIp, null), s);
    var client = new StackDriver("memif-client", c, InteropNet.StackConfigFor(clientIp, null), c);
    try
    {
        int listener = server.Invoke(st =>
        {
            st.Open(out int h);
            st.Bind(h, serverIp, 5001);
            st.Listen(h, 8);
            return h;
        });
        for (int r = 0; r < runs; r++)
        {
            Transfer ts = server.Start(Transfer.Accept(listener, 0));
            Transfer tc = client.Start(Transfer.Connect(serverIp, 5001, bytes));
            client.Wait(tc, limit);
            server.Wait(ts, limit);
            bool intact = ts.Error == SocketError.Success && tc.Error == SocketError.Success && ts.ReceivedSha == tc.SentSha && ts.Received == bytes;
            Console.WriteLine($"stack->stack   run {r + 1}: {tc.Mbps,7:0} Mbit/s  ({(tc.EndUs - tc.EstablishedUs) / 1000.0:0} ms, intact {intact}, " +
                              $"retransmits {client.Stack.Counters.TcpRetransmits}, poll sleeps {server.Sleeps}/{client.Sleeps})");
            if (!intact) return 1;
        }
    }
    finally
    {
        // One end at a time: DPDK 22.11's memif must not tear down both ends while a disconnect is being handled.
        server.Dispose();
        sw.Restart();
        while (c.Port.LinkUp && sw.Elapsed < TimeSpan.FromSeconds(2)) Thread.Sleep(5);
        Thread.Sleep(20);
        client.Dispose();
    }
}
return 0;
