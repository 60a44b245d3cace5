using System;
using System.Collections.Generic;
using System.Linq;
using System.Reflection;
using System.Runtime.CompilerServices;
using UserTcp.Bench.Harness;
using UserTcp.Stack;
using UserTcp.Stack.Tcp;

namespace UserTcp.Bench;

/// <summary>
/// <c>idle-memory N [--no-data] [--newreno] [--a-first]</c> (env IDLE_DEBUG=1 lists connections still holding buffers): opens N connections between two in-memory <see cref="TcpLayer"/>s, exchanges
/// 100 bytes each way on each (so every ring block is rented once and given back), lets delayed ACKs drain, and
/// measures what the idle connections keep: managed heap growth (GC.GetTotalMemory(true) and
/// GC.GetGCMemoryInfo().HeapSizeBytes after full blocking collections) and unmanaged ring-pool bytes, per
/// connection and per side. Each side's share is found by dropping every reference to that side's layer and
/// collecting again. Not a BenchmarkDotNet benchmark: one process, one measurement.
/// </summary>
internal static class IdleMemory
{
    public static int Run(string[] args)
    {
        int n = args.Length > 0 && int.TryParse(args[0], out int v) ? v : 10_000;
        bool data = !args.Contains("--no-data");
        CongestionAlgorithm cc = args.Contains("--newreno") ? CongestionAlgorithm.NewReno : CongestionAlgorithm.Cubic;
        const int chunk = 512;
        const int portsPerListener = 60_000;
        int listeners = (n + portsPerListener - 1) / portsPerListener;

        Console.WriteLine($"idle-memory: {n} connections, data exchange {(data ? "on" : "off")}, {cc}, {Environment.ProcessorCount} CPUs, " +
            $"{System.Runtime.InteropServices.RuntimeInformation.FrameworkDescription}, Server GC {System.Runtime.GCSettings.IsServerGC}");

        // The application's own references (a socket table would hold these): allocated before the baseline.
        var clients = new TcpConnection[n];
        var servers = new TcpConnection[n];
        var ls = new TcpListener[listeners];
        var msg = new byte[100];
        var buf = new byte[4096];

        long m0 = Collect(out long h0);
        var net = new LayerPair(new TcpConfig { Seed = 1, CongestionControl = cc }, new TcpConfig { Seed = 2, CongestionControl = cc });
        for (int i = 0; i < listeners; i++) ls[i] = net.B.Layer.Listen((ushort)(80 + i), 2 * chunk, out _)!;
        long m1 = Collect(out long h1);

        for (int start = 0; start < n; start += chunk)
        {
            int end = Math.Min(n, start + chunk);
            for (int i = start; i < end; i++)
            {
                ushort local = (ushort)(1024 + i % portsPerListener), remote = (ushort)(80 + i / portsPerListener);
                clients[i] = net.A.Layer.Connect(local, LayerPair.AddrB, remote, net.NowUs, out SocketError e)
                    ?? throw new InvalidOperationException($"connect {i}: {e}");
            }
            net.Pump();
            for (int i = start; i < end; i++)
                servers[i] = ls[i / portsPerListener].Accept() ?? throw new InvalidOperationException($"accept {i}");
            if (data)
            {
                for (int i = start; i < end; i++) clients[i].Send(msg, net.NowUs, out _);
                net.Pump();
                for (int i = start; i < end; i++)
                {
                    servers[i].Receive(buf, false, net.NowUs, out _);
                    servers[i].Send(msg, net.NowUs, out _);
                }
                net.Pump();
                for (int i = start; i < end; i++) clients[i].Receive(buf, false, net.NowUs, out _);
                // Let the delayed ACKs fire now: a ring block (256 KiB by default) stays rented until its bytes
                // are acknowledged, and the pool would run dry long before N connections.
                net.Settle(200_000);
            }
        }
        net.Settle(10_000_000); // delayed ACKs fire, senders free their rings
        int holding = 0, notEstablished = 0, rare = 0, epochs = 0;
        for (int i = 0; i < n; i++)
        {
            if (clients[i].HoldsBuffers || servers[i].HoldsBuffers) holding++;
            if (clients[i].HasRareState) rare++;
            if (servers[i].HasRareState) rare++;
            if (clients[i].HasCubicEpoch) epochs++;
            if (servers[i].HasCubicEpoch) epochs++;
            if (clients[i].State != TcpState.Established || servers[i].State != TcpState.Established) notEstablished++;
        }
        if (Environment.GetEnvironmentVariable("IDLE_DEBUG") != null)
            for (int i = 0; i < n; i++)
                if (clients[i].HoldsBuffers || servers[i].HoldsBuffers)
                    Console.WriteLine($"  #{i} client[{Dump(clients[i])}] server[{Dump(servers[i])}] {clients[i]} q={clients[i].BytesQueuedToSend} r={clients[i].BytesReadable} w={clients[i].PeerWindow} | {servers[i]} q={servers[i].BytesQueuedToSend} r={servers[i].BytesReadable} w={servers[i].PeerWindow}");
        long drops = net.A.Counters.TotalDrops + net.B.Counters.TotalDrops;
        Console.WriteLine($"open: A {net.A.Layer.ConnectionCount}, B {net.B.Layer.ConnectionCount} connections; " +
            $"{notEstablished} not established, {holding} still holding ring blocks, {rare} ends holding a RareState, {epochs} a CubicEpoch, {drops} drops, " +
            $"{net.A.Layer.PollAt() == long.MaxValue && net.B.Layer.PollAt() == long.MaxValue} no timer armed");

        string tablesA = Tables(net.A.Layer), tablesB = Tables(net.B.Layer);
        string breakdown = Breakdown(clients[0]); // before the measurement: a live connection keeps its whole side alive
        foreach (DropReason r in Enum.GetValues<DropReason>())
            if (r != DropReason.Count && net.A.Counters.Drops(r) + net.B.Counters.Drops(r) != 0)
                Console.WriteLine($"  drops {r}: A {net.A.Counters.Drops(r)}, B {net.B.Counters.Drops(r)}");
        long m2 = Collect(out long h2);
        long poolA = net.A.Buffers.BytesInUse, poolB = net.B.Buffers.BytesInUse;
        long cachedA = net.A.Buffers.BytesCached, cachedB = net.B.Buffers.BytesCached;

        // Drop one side (its layer and connections; B's listeners too), collect, then the other, measuring each
        // release. --a-first swaps the order (a check that the split does not depend on it).
        bool aFirst = args.Contains("--a-first");
        void DropA() { net.A.Layer = null!; Array.Clear(clients); }
        void DropB() { net.B.Layer = null!; Array.Clear(servers); Array.Clear(ls); }
        if (aFirst) DropA(); else DropB();
        long m3 = Collect(out long h3);
        if (aFirst) DropB(); else DropA();
        long m4 = Collect(out long h4);
        long sideA = aFirst ? m2 - m3 : m3 - m4, sideB = aFirst ? m3 - m4 : m2 - m3;
        long heapA = aFirst ? h2 - h3 : h3 - h4, heapB = aFirst ? h3 - h4 : h2 - h3;

        double per(long bytes) => (double)bytes / n;
        Console.WriteLine();
        Console.WriteLine("managed heap (GC.GetTotalMemory(true); GCMemoryInfo.HeapSizeBytes in brackets):");
        Console.WriteLine($"  fixed: two layers + harness before any connection  {m1 - m0,12:N0} B  [{h1 - h0:N0}]");
        Console.WriteLine($"  growth for {n} connection pairs                     {m2 - m1,12:N0} B  [{h2 - h1:N0}]  = {per(m2 - m1):F0} B per pair");
        Console.WriteLine($"  side A (active opener) released{(aFirst ? " first " : " second")}           {sideA,12:N0} B  [{heapA:N0}]  = {per(sideA):F0} B per connection");
        Console.WriteLine($"  side B (listener) released{(aFirst ? " second" : " first ")}                {sideB,12:N0} B  [{heapB:N0}]  = {per(sideB):F0} B per connection");
        Console.WriteLine("  (each side's share includes its layer's fixed tables; below 0.2 % of the share at N >= 10k)");
        Console.WriteLine($"  layer tables A: {tablesA}");
        Console.WriteLine($"  layer tables B: {tablesB}");
        Console.WriteLine("unmanaged ring pool while idle (BufferPool):");
        Console.WriteLine($"  A: {poolA:N0} B in use ({per(poolA):F1} per connection), {cachedA:N0} B cached for reuse (pool-wide, not per connection)");
        Console.WriteLine($"  B: {poolB:N0} B in use ({per(poolB):F1} per connection), {cachedB:N0} B cached for reuse");
        Console.WriteLine($"  packet pools: 2 x {net.A.Pool.Count} x 2 KiB slots, fixed, {net.A.Pool.Outstanding + net.B.Pool.Outstanding} outstanding");
        Console.WriteLine();
        Console.Write(breakdown);
        GC.KeepAlive(net);
        return holding == 0 && notEstablished == 0 && drops == 0 ? 0 : 1;
    }

    /// <summary>Capacities of a layer's per-connection tables (they grow by doubling, so part of each is slack).</summary>
    private static string Tables(TcpLayer layer)
    {
        static object? F(object o, string name) =>
            o.GetType().GetField(name, BindingFlags.Instance | BindingFlags.NonPublic)?.GetValue(o);
        static string Dict(object? d)
        {
            if (d == null) return "?";
            int count = (int)d.GetType().GetProperty("Count")!.GetValue(d)!;
            var entries = (F(d, "_entries") ?? F(d, "_buckets")) as Array;
            return $"{count:N0} used of {entries?.Length ?? 0:N0}";
        }
        var heap = F(layer, "_heap") as Array;
        return $"4-tuple table {Dict(F(layer, "_table"))}, port table {Dict(F(layer, "_portUsers"))}, timer heap array {heap?.Length ?? 0:N0} slots";
    }

    private static string Dump(TcpConnection c)
    {
        static string F(object o, string name) =>
            o.GetType().GetField(name, BindingFlags.Instance | BindingFlags.NonPublic)?.GetValue(o) is { } v
                ? (v is SeqNumber q ? q.Value.ToString() : v.ToString()!) : "?";
        return string.Join(" ", new[] { "_iss", "_sndUna", "_sndNxt", "_irs", "_rcvNxt", "_rcvAdvEdge", "_tsRecent", "_flags", "_delAckAt", "_rtoAt", "TimerIndex", "TimerDue" }
            .Select(n => $"{n}={F(c, n)}"));
    }

    private static long Collect(out long heapSize)
    {
        for (int i = 0; i < 3; i++)
        {
            GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
            GC.WaitForPendingFinalizers();
        }
        long total = GC.GetTotalMemory(true);
        heapSize = GC.GetGCMemoryInfo(GCKind.FullBlocking).HeapSizeBytes;
        return total;
    }

    /// <summary>Where an idle connection's bytes go: object sizes as the runtime laid them out (MethodTable base
    /// size), the table entry, and TcpConnection's fields by size.</summary>
    private static string Breakdown(TcpConnection sample)
    {
        var Console = new System.IO.StringWriter();
        int conn = BaseSize(typeof(TcpConnection));
        int tuple = SizeOf(typeof(TcpTuple));
        // ConnectionTable: the chain link is a TcpConnection field; one bucket slot (8 B) per connection at load 1.
        int entry = 8;
        Console.WriteLine("per-connection objects (one end; sizes are the runtime's base instance sizes):");
        Console.WriteLine($"  {conn,5} B  TcpConnection");
        int total = conn;
        // Objects a connection owns alone: every non-null reference field except links to shared objects.
        var shared = new HashSet<string> { "_layer", "Listener", "NextInQueue", "_ooo", "Wheel", "Owner", "Next", "Prev" };
        foreach (FieldInfo f in typeof(TcpConnection).GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic))
        {
            if (f.FieldType.IsValueType || shared.Contains(f.Name) || f.GetValue(sample) is not { } o) continue;
            int size = o is Array a ? 24 + a.Length * (o.GetType().GetElementType()!.IsValueType ? SizeOf(o.GetType().GetElementType()!) : 8) : BaseSize(o.GetType());
            Console.WriteLine($"  {size,5} B  {o.GetType().Name} ({f.Name})");
            total += size;
        }
        Console.WriteLine($"  {entry,5} B  4-tuple table bucket slot (ConnectionTable, at load 1; up to 16 B just after a doubling)");
        total += entry;
        Console.WriteLine($"  {total,5} B  sum (+ resize slack of the tables, port-table entries on the active side, timer-heap slots)");
        Console.WriteLine("  through NetStack (not measured above): + 8 B handle slot per accepted or connected socket (the slot holds the connection itself)");
        Console.WriteLine();
        Console.WriteLine($"TcpConnection fields ({conn - 16} B of fields after the 16-byte object header), largest first:");
        var fields = typeof(TcpConnection).GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic)
            .Select(f => (f.Name, Type: f.FieldType, Size: f.FieldType.IsValueType ? SizeOf(f.FieldType) : IntPtr.Size))
            .OrderByDescending(f => f.Size).ThenBy(f => f.Name).ToList();
        var groups = new Dictionary<string, (int Count, int Bytes)>();
        foreach (var f in fields)
        {
            string t = f.Type.IsValueType ? f.Type.Name : "reference";
            groups[t] = groups.TryGetValue(t, out var g) ? (g.Count + 1, g.Bytes + f.Size) : (1, f.Size);
        }
        foreach (var f in fields.Where(f => f.Size >= 16))
            Console.WriteLine($"  {f.Size,4} B  {f.Name} ({f.Type.Name})");
        Console.WriteLine("  8 B each: " + string.Join(", ", fields.Where(f => f.Size == 8).Select(f => f.Name)));
        Console.WriteLine("  < 8 B: " + string.Join(", ", fields.Where(f => f.Size < 8).Select(f => $"{f.Name} {f.Size}")));
        Console.WriteLine("  by field type: " + string.Join(", ", groups.OrderByDescending(g => g.Value.Bytes)
            .Select(g => $"{g.Key} {g.Value.Count}x = {g.Value.Bytes} B")));
        Console.WriteLine($"  sum of field sizes {fields.Sum(f => f.Size)} B; the rest of {conn - 16} B is alignment padding");
        return Console.ToString();
    }

    private static int Align(int x, int a) => (x + a - 1) / a * a;

    /// <summary>The runtime's base instance size (header, method table pointer, fields, padding) from the
    /// MethodTable (its second 32-bit word in CoreCLR).</summary>
    private static unsafe int BaseSize(Type t) => *(int*)(t.TypeHandle.Value + 4);

    private static int SizeOf(Type t) =>
        (int)typeof(Unsafe).GetMethod(nameof(Unsafe.SizeOf))!.MakeGenericMethod(t).Invoke(null, null)!;
}
