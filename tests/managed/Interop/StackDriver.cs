using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Diagnostics;
using System.Security.Cryptography;
using System.Threading;
using System.Threading.Tasks;
using UserTcp.Stack;
using UserTcp.Stack.Phy;
using UserTcp.Stack.Tcp;
using UserTcp.Stack.Wire;

namespace UserTcp.Tests.Interop;

/// <summary>
/// Runs one <see cref="NetStack"/> over a real device on a thread of its own, on the real clock: a poll loop that
/// executes calls handed in from other threads (<see cref="Invoke{T}"/>), polls the stack with Stopwatch
/// microseconds, steps the running <see cref="Transfer"/>s, and sleeps briefly when nothing happens. NetStack is
/// single-threaded, so every touch of it goes through this thread. Used by the interop tests and by
/// bench/interop (no xUnit dependency here).
/// </summary>
internal sealed class StackDriver : IDisposable
{
    private static readonly long s_epoch = Stopwatch.GetTimestamp();

    private readonly ConcurrentQueue<Action> _calls = new();
    private readonly List<Transfer> _transfers = new(); // driver thread only
    private readonly Thread _thread;
    private readonly IDisposable? _deviceOwner;
    private volatile bool _stop;
    private volatile Exception? _fault;
    private bool _disposed;
    private readonly PcapDevice? _pcap;
    private readonly System.IO.Stream? _pcapStream;

    public NetStack Stack { get; }
    public IDevice Device { get; }
    public string Name { get; }
    /// <summary>Poll-loop iterations and how many of them ended in a sleep (diagnostics).</summary>
    public long Iterations, Sleeps;
    /// <summary>DPDK mbufs still out of the pool after the stack was disposed (-1 before Dispose or without DPDK).</summary>
    public int MbufsInUseAfterStop { get; private set; } = -1;

    /// <summary>Monotonic microseconds (Stopwatch), the stack's clock.</summary>
    public static long NowUs => UsFromTicks(Stopwatch.GetTimestamp() - s_epoch, Stopwatch.Frequency);

    /// <summary>Stopwatch ticks to microseconds without overflow. Ticks are nanoseconds on Linux, and the uptime
    /// they count times 1,000,000 passes <see cref="long.MaxValue"/> after 9,223 s: the product wrapped, the clock
    /// handed to the stacks was negative over some uptimes (46,117 s to 55,340 s, and every 18,447 s again) and
    /// ran backwards from a connect stamped at 0, so the listener took the handshake's ACK (TSval older than the
    /// SYN's) for an old duplicate (PAWS). Whole seconds and the remainder apart.</summary>
    public static long UsFromTicks(long ticks, long frequency) =>
        ticks / frequency * 1_000_000 + ticks % frequency * 1_000_000 / frequency;

    /// <param name="deviceOwner">disposed after the stack (e.g. the DPDK device, which closes its port)</param>
    public StackDriver(string name, IDevice device, StackConfig config, IDisposable? deviceOwner)
    {
        Name = name;
        Device = device;
        _deviceOwner = deviceOwner;
        // Debugging aid: USERTCP_INTEROP_PCAP=<dir> records every frame the stack receives and sends (stack's view).
        IDevice stackDevice = device;
        if (Environment.GetEnvironmentVariable("USERTCP_INTEROP_PCAP") is { Length: > 0 } dir)
        {
            _pcapStream = new System.IO.FileStream(System.IO.Path.Combine(dir, $"{name}-{Environment.ProcessId}.pcap"), System.IO.FileMode.Create);
            stackDevice = _pcap = new PcapDevice(device, _pcapStream, 200);
        }
        Stack = new NetStack(stackDevice, config);
        _thread = new Thread(Loop) { IsBackground = true, Name = "stack-" + name };
        _thread.Start();
    }

    /// <summary>Runs <paramref name="call"/> on the driver thread and returns its result.</summary>
    public T Invoke<T>(Func<NetStack, T> call, int timeoutMs = 10_000)
    {
        ThrowIfFaulted();
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        _calls.Enqueue(() =>
        {
            try { done.SetResult(call(Stack)); }
            catch (Exception e) { done.SetException(e); }
        });
        if (!done.Task.Wait(timeoutMs))
        {
            ThrowIfFaulted();
            throw new TimeoutException($"{Name}: the driver thread did not run the call within {timeoutMs} ms");
        }
        return done.Task.Result;
    }

    public void Invoke(Action<NetStack> call, int timeoutMs = 10_000) => Invoke(s => { call(s); return 0; }, timeoutMs);

    /// <summary>Hands a transfer to the driver thread, which steps it from now on.</summary>
    public Transfer Start(Transfer t)
    {
        Invoke(s =>
        {
            t.Begin(s);
            _transfers.Add(t);
        });
        return t;
    }

    /// <summary>Waits for a transfer to finish; throws if the driver thread failed or the time ran out.</summary>
    public void Wait(Transfer t, TimeSpan timeout)
    {
        var sw = Stopwatch.StartNew();
        while (!t.Completed.Wait(50))
        {
            ThrowIfFaulted();
            if (sw.Elapsed > timeout)
                throw new TimeoutException($"{Name}: transfer not finished after {timeout.TotalSeconds:0} s: {Invoke(_ => t.Describe(Stack))}");
        }
        ThrowIfFaulted();
    }

    public void ThrowIfFaulted()
    {
        if (_fault is Exception e) throw new InvalidOperationException($"{Name}: the driver thread failed", e);
    }

    private void Loop()
    {
        int idle = 0;
        try
        {
            while (!_stop)
            {
                Iterations++;
                bool busy = false;
                while (_calls.TryDequeue(out Action? call))
                {
                    call();
                    busy = true;
                }
                long now = NowUs;
                if (_pcap != null) _pcap.NowUs = now;
                long rx = Stack.Counters.RxPackets, tx = Stack.Counters.TxPackets;
                Stack.Poll(now);
                for (int i = _transfers.Count - 1; i >= 0; i--)
                {
                    Transfer t = _transfers[i];
                    if (t.Step(Stack, now)) busy = true;
                    if (t.IsDone) _transfers.RemoveAt(i);
                }
                busy |= Stack.Counters.RxPackets != rx || Stack.Counters.TxPackets != tx;
                if (busy)
                {
                    idle = 0;
                    continue;
                }
                // Idle: spin a little (a reply is often microseconds away), then yield, then sleep ~1 ms. The stack's
                // timers are millisecond-grained, so a 1 ms nap never makes one late by more than the tick.
                idle++;
                if (idle < 64) Thread.SpinWait(20);
                else if (idle < 512) Thread.Yield();
                else
                {
                    Sleeps++;
                    Thread.Sleep(1);
                }
            }
        }
        catch (Exception e)
        {
            _fault = e;
            foreach (Transfer t in _transfers) t.Abort("driver thread failed: " + e.Message);
        }
    }

    /// <summary>Stops the thread, disposes the stack (returning every buffer to the device) and the device.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _stop = true;
        _thread.Join();
        Stack.Dispose();
        // Leak check: with the stack gone (it returned its spare transmit buffers too), nothing may be out of the pool.
        if (_deviceOwner is UserTcp.Stack.Dpdk.DpdkDevice dd) MbufsInUseAfterStop = dd.Port.PoolInUse;
        if (Device is IDisposable wrapper && !ReferenceEquals(wrapper, _deviceOwner)) wrapper.Dispose(); // e.g. frames a wrapper holds
        _deviceOwner?.Dispose();
        _pcapStream?.Dispose();
    }
}

public enum TransferOrder
{
    /// <summary>Send and receive at the same time; shut down the write side when everything is sent.</summary>
    Concurrent,
    /// <summary>Send everything and shut down the write side first (reading meanwhile is allowed): the peer's data
    /// then arrives after our FIN.</summary>
    SendFirst,
    /// <summary>Receive to end of stream before sending anything: we send after the peer's FIN.</summary>
    ReceiveFirst,
}

/// <summary>
/// One connection's worth of application work, stepped on the driver thread: accept (from a listening handle) or
/// connect, then send <see cref="SendBytes"/> of seeded random data and receive to end of stream, hashing both
/// directions (SHA-256), then close. Records what the connection negotiated once it is established.
/// </summary>
internal sealed class Transfer
{
    private enum Phase { Accepting, Connecting, Running, Done }

    private readonly Random _rng;
    private readonly byte[] _out = new byte[64 * 1024];
    private readonly byte[] _in = new byte[64 * 1024];
    private readonly IncrementalHash _sentHash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private readonly IncrementalHash _recvHash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private int _outOffset;
    private Phase _phase;
    private bool _shutdown, _eof;
    private readonly int _listenHandle = -1;
    private readonly Ipv4Address _remote;
    private readonly ushort _remotePort;

    public long SendBytes { get; }
    public TransferOrder Order { get; }
    public int Handle { get; private set; } = -1;
    public long Sent, Received;
    public string? SentSha, ReceivedSha;
    /// <summary>The first error seen (connect refused, reset, ...); Success when the transfer completed.</summary>
    public SocketError Error { get; private set; }
    public string? AbortReason { get; private set; }
    /// <summary>Diagnostics taken when end of stream was read.</summary>
    public string? EofNote;
    /// <summary>The stack's retransmission and drop counters when the transfer finished (cumulative per stack).</summary>
    public string? CountersNote;
    public long StartUs, EstablishedUs, EndUs;
    /// <summary>What the connection negotiated (read when it became established).</summary>
    public int Mss, SendWindowScale = -1, ReceiveWindowScale = -1;
    public bool Timestamps, Sack;
    public ManualResetEventSlim Completed { get; } = new();
    public bool IsDone => _phase == Phase.Done;

    private Transfer(long sendBytes, TransferOrder order, int seed)
    {
        SendBytes = sendBytes;
        Order = order;
        _rng = new Random(seed);
        _rng.NextBytes(_out);
    }

    /// <summary>Accepts one connection on <paramref name="listenHandle"/> (the listener stays open), then transfers.</summary>
    public static Transfer Accept(int listenHandle, long sendBytes, TransferOrder order = TransferOrder.Concurrent, int seed = 1)
        => new(listenHandle, default, 0, sendBytes, order, seed);

    /// <summary>Opens a socket and connects it, then transfers.</summary>
    public static Transfer Connect(Ipv4Address remote, ushort port, long sendBytes, TransferOrder order = TransferOrder.Concurrent, int seed = 1)
        => new(-1, remote, port, sendBytes, order, seed);

    private Transfer(int listenHandle, Ipv4Address remote, ushort remotePort, long sendBytes, TransferOrder order, int seed)
        : this(sendBytes, order, seed)
    {
        _listenHandle = listenHandle;
        _remote = remote;
        _remotePort = remotePort;
    }

    internal void Begin(NetStack s)
    {
        StartUs = StackDriver.NowUs;
        if (_listenHandle >= 0)
        {
            _phase = Phase.Accepting;
            return;
        }
        _phase = Phase.Connecting;
        SocketError e = s.Open(out int h);
        if (e != SocketError.Success) { Finish(s, e); return; }
        Handle = h;
        e = s.Connect(h, _remote, _remotePort);
        if (e is not (SocketError.InProgress or SocketError.Success)) Finish(s, e);
    }

    /// <summary>One step; true if anything moved.</summary>
    internal bool Step(NetStack s, long now)
    {
        switch (_phase)
        {
            case Phase.Accepting:
                if (s.Accept(_listenHandle, out int h, out _, out _) != SocketError.Success) return false;
                Handle = h;
                Established(s);
                return true;
            case Phase.Connecting:
                Readiness r = s.GetReadiness(Handle);
                if ((r & (Readiness.Err | Readiness.Hup)) != 0)
                {
                    s.GetError(Handle, out SocketError err);
                    Finish(s, err == SocketError.Success ? SocketError.ConnectionReset : err);
                    return true;
                }
                if ((r & Readiness.Out) == 0) return false;
                Established(s);
                return true;
            case Phase.Running:
                return Run(s);
            default:
                return false;
        }
    }

    private void Established(NetStack s)
    {
        EstablishedUs = StackDriver.NowUs;
        _phase = Phase.Running;
        s.GetLocalEndpoint(Handle, out Ipv4Address la, out ushort lp);
        s.GetRemoteEndpoint(Handle, out Ipv4Address ra, out ushort rp);
        if (s.Tcp.Find(new TcpTuple(la, lp, ra, rp)) is TcpConnection c)
        {
            Mss = c.SendMss;
            SendWindowScale = c.SendWindowScale;
            ReceiveWindowScale = c.ReceiveWindowScale;
            Timestamps = c.TimestampsEnabled;
            Sack = c.SackEnabled;
        }
    }

    private bool Run(NetStack s)
    {
        bool moved = false;
        // Receive (ReceiveFirst and Concurrent/SendFirst all read; only ReceiveFirst holds its sends back).
        while (!_eof)
        {
            int n = s.Receive(Handle, _in, peek: false, out SocketError e);
            if (n > 0)
            {
                _recvHash.AppendData(_in, 0, n);
                Received += n;
                moved = true;
                continue;
            }
            if (e == SocketError.WouldBlock) break;
            if (e != SocketError.Success) { Finish(s, e); return true; }
            _eof = true; // 0 bytes, no error: the peer's FIN
            EofNote = $"state {s.GetState(Handle)} at EOF, rst in {s.Counters.TcpRstReceived}, drops {Drops(s)}, retransmits {s.Counters.TcpRetransmits}";
            moved = true;
        }
        bool maySend = Order != TransferOrder.ReceiveFirst || _eof;
        while (maySend && Sent < SendBytes)
        {
            int want = (int)Math.Min(_out.Length - _outOffset, SendBytes - Sent);
            int n = s.Send(Handle, _out.AsSpan(_outOffset, want), out SocketError e);
            if (n > 0)
            {
                _sentHash.AppendData(_out, _outOffset, n);
                Sent += n;
                _outOffset += n;
                if (_outOffset == _out.Length)
                {
                    _rng.NextBytes(_out);
                    _outOffset = 0;
                }
                moved = true;
                continue;
            }
            if (e == SocketError.WouldBlock) break;
            Finish(s, e);
            return true;
        }
        if (maySend && Sent == SendBytes && !_shutdown)
        {
            SocketError e = s.Shutdown(Handle, ShutdownHow.Write);
            if (e != SocketError.Success) { Finish(s, e); return true; }
            _shutdown = true;
            moved = true;
        }
        if (_shutdown && _eof) Finish(s, SocketError.Success);
        return moved;
    }

    private void Finish(NetStack s, SocketError error)
    {
        CountersNote = $"retransmits {s.Counters.TcpRetransmits} (fast {s.Counters.TcpFastRetransmits}, timeouts {s.Counters.TcpTimeouts}), drops {Drops(s)}";
        Error = error;
        EndUs = StackDriver.NowUs;
        SentSha = Convert.ToHexStringLower(_sentHash.GetHashAndReset());
        ReceivedSha = Convert.ToHexStringLower(_recvHash.GetHashAndReset());
        if (Handle >= 0) s.Close(Handle);
        _phase = Phase.Done;
        Completed.Set();
    }

    internal void Abort(string reason)
    {
        AbortReason = reason;
        _phase = Phase.Done;
        Completed.Set();
    }

    internal static string Drops(NetStack s)
    {
        var parts = new List<string>();
        foreach (DropReason r in Enum.GetValues<DropReason>())
            if (r < DropReason.Count && s.Counters.Drops(r) > 0) parts.Add($"{r} {s.Counters.Drops(r)}");
        return parts.Count == 0 ? "none" : string.Join(", ", parts);
    }

    /// <summary>Progress in words, for timeout messages (driver thread).</summary>
    internal string Describe(NetStack s) =>
        $"phase {_phase}, state {(Handle >= 0 ? s.GetState(Handle).ToString() : "-")}, sent {Sent}/{SendBytes}, received {Received}, " +
        $"shutdown {_shutdown}, eof {_eof}, retransmits {s.Counters.TcpRetransmits}, timeouts {s.Counters.TcpTimeouts}, " +
        $"rx {s.Counters.RxPackets}, tx {s.Counters.TxPackets}, drops {s.Counters.TotalDrops}";

    /// <summary>Mbit/s of the larger direction between establishment and the end.</summary>
    public double Mbps => (Math.Max(Sent, Received) * 8.0) / Math.Max(1, EndUs - EstablishedUs);
}
