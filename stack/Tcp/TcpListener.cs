using System;
using UserTcp.Stack.Wire;

namespace UserTcp.Stack.Tcp;

/// <summary>
/// A listening socket (RFC 9293 LISTEN). Half-open children (SYN-RECEIVED) are counted against the SYN backlog;
/// established children wait in an intrusive FIFO until accepted. When the SYN backlog is full, new SYNs are answered
/// with SYN cookies (no state) if enabled, else dropped.
/// </summary>
public sealed class TcpListener
{
    private readonly TcpLayer _layer;
    private TcpConnection? _head, _tail;

    internal TcpListener(TcpLayer layer, Ipv4Address address, ushort port, int backlog)
    {
        _layer = layer;
        Address = address;
        Port = port;
        Backlog = Math.Max(1, backlog);
        // Children start from the layer's keepalive defaults, as a connection does (NetStack then copies its socket's
        // options over these): a listener made through the layer alone no longer hands out keepalive times of 0.
        KeepIdleMs = layer.KeepIdleMsDefault;
        KeepIntervalMs = layer.KeepIntervalMsDefault;
        KeepCount = layer.Config.KeepAliveCount;
    }

    public Ipv4Address Address { get; }
    public ushort Port { get; }
    /// <summary>Limit for both the accept queue and half-open children (listen(2) backlog).</summary>
    public int Backlog { get; internal set; }
    public int PendingAccepts { get; private set; }
    public int HalfOpen { get; private set; }
    public int UserHandle = -1;
    internal bool Closed;

    // Options new connections inherit (as Linux children inherit the listener's socket options).
    public bool NoDelay;
    public bool KeepAlive;
    public int KeepCount;
    public int SendBufferSize, ReceiveBufferSize;
    // Kept in whole milliseconds as a connection keeps them (TcpConnection.OptionMs): a child copies them as they are.
    internal int KeepIdleMs, KeepIntervalMs, UserTimeoutMs;
    public long KeepIdleUs { get => KeepIdleMs * 1000L; set => KeepIdleMs = TcpConnection.OptionMs(value); }
    public long KeepIntervalUs { get => KeepIntervalMs * 1000L; set => KeepIntervalMs = TcpConnection.OptionMs(value); }
    public long UserTimeoutUs { get => UserTimeoutMs * 1000L; set => UserTimeoutMs = TcpConnection.OptionMs(value); }

    internal TcpConnection? QueueHead => _head;
    internal bool CanAcceptMore => PendingAccepts < Backlog;
    internal bool SynQueueFull => HalfOpen >= Backlog;

    internal void OnChildCreated() => HalfOpen++;

    internal void OnChildEstablished(TcpConnection c)
    {
        if (!c.IsFromCookie) HalfOpen--;
        c.NextInQueue = null;
        if (_tail == null) _head = c; else _tail.NextInQueue = c;
        _tail = c;
        PendingAccepts++;
        _layer.Events?.OnAcceptReady(this);
    }

    /// <summary>A child closed before it was accepted: forget it.</summary>
    internal void OnChildClosed(TcpConnection c)
    {
        c.Listener = null;
        if (c.State == TcpState.Closed && !IsQueued(c))
        {
            if (!c.IsFromCookie) HalfOpen--;
            return;
        }
        // Unlink from the accept queue.
        TcpConnection? prev = null;
        for (TcpConnection? x = _head; x != null; prev = x, x = x.NextInQueue)
        {
            if (x != c) continue;
            if (prev == null) _head = x.NextInQueue; else prev.NextInQueue = x.NextInQueue;
            if (_tail == x) _tail = prev;
            x.NextInQueue = null;
            PendingAccepts--;
            return;
        }
    }

    private bool IsQueued(TcpConnection c)
    {
        for (TcpConnection? x = _head; x != null; x = x.NextInQueue) if (x == c) return true;
        return false;
    }

    /// <summary>Takes the oldest established connection, or null.</summary>
    public TcpConnection? Accept()
    {
        TcpConnection? c = _head;
        if (c == null) return null;
        _head = c.NextInQueue;
        if (_head == null) _tail = null;
        c.NextInQueue = null;
        c.Listener = null;
        PendingAccepts--;
        return c;
    }

    public Readiness GetReadiness() => _head != null ? Readiness.In : Readiness.None;

    /// <summary>Stops listening: pending children are reset (as Linux does on close of a listener).</summary>
    internal void CloseAll(long nowUs)
    {
        Closed = true;
        while (Accept() is TcpConnection c)
        {
            c.UserHandle = -1;
            c.Abort(nowUs);
        }
    }
}
