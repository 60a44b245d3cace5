using System;
using System.Collections.Generic;
using UserTcp.Stack.Iface;
using UserTcp.Stack.Phy;
using UserTcp.Stack.Tcp;
using UserTcp.Stack.Wire;

namespace UserTcp.Stack;

/// <summary>Which directions <see cref="NetStack.Shutdown"/> closes (the values of SHUT_RD/SHUT_WR/SHUT_RDWR).</summary>
public enum ShutdownHow { Read = 0, Write = 1, Both = 2 }

/// <summary>Socket options the façade understands. Times are microseconds; sizes bytes; booleans 0/1.</summary>
public enum SocketOption
{
    NoDelay,
    Cork,
    KeepAlive,
    KeepIdleUs,
    KeepIntervalUs,
    KeepCount,
    UserTimeoutUs,
    /// <summary>SO_LINGER: -1 = off; 0 = close resets; &gt; 0 = graceful (close never blocks here).</summary>
    LingerUs,
    SendBufferSize,
    ReceiveBufferSize,
    ReuseAddress,
}

/// <summary>Implemented by the caller to hear about readiness changes (edge-triggered, invoked without allocation
/// from inside <see cref="NetStack.Poll"/> or an API call; it must not call back into the stack except to read).</summary>
public interface IReadinessListener
{
    void OnReadinessChanged(int handle, Readiness readiness);
}

/// <summary>
/// The façade <c>interpose/</c> uses: one <see cref="Interface"/> and one <see cref="TcpLayer"/> over one
/// <see cref="IDevice"/>. Non-blocking and handle based (small integers indexing a slot table). Not thread-safe: one
/// thread drives an instance. Nothing here reads a clock: <see cref="Poll"/> carries the time, and calls without a
/// time parameter use the time of the latest poll.
/// </summary>
public sealed class NetStack : IDisposable, IIpv4Transport, ITcpTransmit, ITcpEvents
{
    private enum Kind : byte { Free, Fresh, Listener, Connection }

    private sealed class Socket
    {
        public Kind Kind;
        public TcpConnection? Conn;
        public TcpListener? Listener;
        public ushort BoundPort;        // holds a port reference while bound and not yet connected/listening
        public bool ReuseAddress;
        public bool NoDelay, Cork, KeepAlive;
        // Times kept in whole milliseconds (4 bytes each, like the connection's own copies): one of these objects
        // exists per open socket, so at a million connections each field is a megabyte.
        private int _keepIdleMs, _keepIntervalMs, _userTimeoutMs, _lingerMs = -1;
        private byte _keepCount, _error;
        public long KeepIdleUs { get => _keepIdleMs * 1000L; set => _keepIdleMs = Ms(value); }
        public long KeepIntervalUs { get => _keepIntervalMs * 1000L; set => _keepIntervalMs = Ms(value); }
        public long UserTimeoutUs { get => _userTimeoutMs * 1000L; set => _userTimeoutMs = Ms(value); }
        /// <summary>SO_LINGER: -1 = off.</summary>
        public long LingerUs { get => _lingerMs < 0 ? -1 : _lingerMs * 1000L; set => _lingerMs = value < 0 ? -1 : Ms(value); }
        public int KeepCount { get => _keepCount; set => _keepCount = (byte)Math.Clamp(value, 0, 255); }
        public int SendBufferSize, ReceiveBufferSize;
        /// <summary>For sockets without a connection (e.g. connect failed at once).</summary>
        public SocketError Error { get => (SocketError)_error; set => _error = (byte)value; }
        public int NextFree = -1;

        private static int Ms(long us) => (int)Math.Clamp((us + 999) / 1000, 0, int.MaxValue);

        public void Reset(TcpConfig c)
        {
            Kind = Kind.Fresh;
            Conn = null; Listener = null; BoundPort = 0; ReuseAddress = false;
            NoDelay = Cork = KeepAlive = false;
            KeepIdleUs = c.KeepAliveIdleUs; KeepIntervalUs = c.KeepAliveIntervalUs; KeepCount = c.KeepAliveCount;
            UserTimeoutUs = 0; LingerUs = -1; SendBufferSize = 0; ReceiveBufferSize = 0;
            Error = SocketError.Success;
        }
    }

    private readonly IDevice _device;
    private readonly Interface _iface;
    private readonly TcpLayer _tcp;
    private readonly BufferPool _buffers;
    private readonly StackConfig _config;
    private readonly List<Socket> _sockets = new();
    private int _freeHead = -1;
    private int _open;
    private long _nowUs;

    public StackCounters Counters { get; } = new();
    public IReadinessListener? ReadinessListener { get; set; }
    public TcpLayer Tcp => _tcp;
    public Interface Interface => _iface;
    public BufferPool Buffers => _buffers;
    public Ipv4Address Address => _iface.Address;
    public int OpenSockets => _open;

    /// <summary>
    /// While set, the frames <see cref="Send"/> and <see cref="Receive"/> build (data, window updates) stay in the
    /// interface's transmit batch instead of leaving in a burst of their own; they leave with the next
    /// <see cref="Poll"/> or <see cref="Flush"/>, or when the batch is full. On a device whose transmit costs a system
    /// call per burst (af_packet's <c>sendto()</c> kick) an event loop that answers many connections per round then
    /// pays one kick per round instead of one per reply. The caller promises that Poll or Flush follows soon.
    /// </summary>
    public bool DeferFlush { get; set; }

    /// <summary>Transmits what the interface's batch holds (see <see cref="DeferFlush"/>).</summary>
    public void Flush() => _iface.Flush();

    public NetStack(IDevice device, StackConfig config)
    {
        _device = device;
        _config = config;
        _iface = new Interface(device, config.Interface, Counters);
        _buffers = BufferPool.CreateDefault(config.BufferPoolBytes);
        _tcp = new TcpLayer(config.Tcp, this, Counters, _buffers) { Events = this };
        _iface.Transport = this;
    }

    // ------------------------------------------------------------------------------------------------------------
    // Driving
    // ------------------------------------------------------------------------------------------------------------

    /// <summary>Receives what the device has (bursts until empty, bounded), runs due timers, transmits.</summary>
    public void Poll(long nowUs)
    {
        _nowUs = nowUs;
        // Until a burst comes back short (the device is drained), without a last empty receive call.
        // Each burst acknowledges its in-order data once per connection, at its end (TcpLayer.BeginReceiveBurst).
        for (int i = 0; i < 64; i++)
        {
            _tcp.BeginReceiveBurst();
            int n = _iface.PollReceive(nowUs);
            _tcp.EndReceiveBurst(nowUs);
            _iface.Flush(); // the burst's ACKs (nothing to do when there are none)
            if (n != _iface.ReceiveBurst) break;
        }
        _tcp.PollTimers(nowUs);
        _iface.PollTimers(nowUs);
        _iface.Flush();
    }

    /// <summary>When <see cref="Poll"/> must next run even if nothing arrives (long.MaxValue = only on input).</summary>
    public long PollAt() => Math.Min(_tcp.PollAt(), _iface.PollAt());

    // ------------------------------------------------------------------------------------------------------------
    // Socket calls
    // ------------------------------------------------------------------------------------------------------------

    public SocketError Open(out int handle)
    {
        handle = -1;
        if (_open >= _config.MaxSockets) return SocketError.NoBuffers;
        Socket s;
        if (_freeHead >= 0)
        {
            handle = _freeHead;
            s = _sockets[handle];
            _freeHead = s.NextFree;
        }
        else
        {
            handle = _sockets.Count;
            s = new Socket();
            _sockets.Add(s);
        }
        s.Reset(_config.Tcp);
        s.NextFree = -1;
        _open++;
        return SocketError.Success;
    }

    private Socket? Get(int handle) =>
        (uint)handle < (uint)_sockets.Count && _sockets[handle].Kind != Kind.Free ? _sockets[handle] : null;

    /// <summary>bind(2). Port 0 picks an ephemeral port. EADDRINUSE unless the port is free, or SO_REUSEADDR is set
    /// and nobody listens on it (TIME-WAIT and other connections then do not block, as on Linux).</summary>
    public SocketError Bind(int handle, Ipv4Address address, ushort port)
    {
        Socket? s = Get(handle);
        if (s == null) return SocketError.BadHandle;
        if (s.Kind != Kind.Fresh || s.BoundPort != 0) return SocketError.InvalidArgument;
        if (!address.IsAny && address != _iface.Address) return SocketError.AddressNotAvailable;
        if (port == 0)
        {
            port = _tcp.AllocateEphemeralPort();
            if (port == 0) return SocketError.AddressInUse;
        }
        else if (_tcp.PortInUse(port) && (!s.ReuseAddress || _tcp.IsListening(port)))
        {
            return SocketError.AddressInUse;
        }
        _tcp.AcquirePort(port);
        s.BoundPort = port;
        return SocketError.Success;
    }

    public SocketError Listen(int handle, int backlog)
    {
        Socket? s = Get(handle);
        if (s == null) return SocketError.BadHandle;
        if (s.Kind == Kind.Listener)
        {
            s.Listener!.Backlog = Math.Max(1, backlog); // listen() again just changes the backlog
            return SocketError.Success;
        }
        if (s.Kind != Kind.Fresh) return SocketError.InvalidArgument;
        if (s.BoundPort == 0)
        {
            SocketError e = Bind(handle, Ipv4Address.Any, 0);
            if (e != SocketError.Success) return e;
        }
        TcpListener? l = _tcp.Listen(s.BoundPort, Math.Max(1, backlog), out SocketError err);
        if (l == null) return err;
        l.UserHandle = handle;
        l.NoDelay = s.NoDelay;
        l.KeepAlive = s.KeepAlive;
        l.KeepIdleUs = s.KeepIdleUs;
        l.KeepIntervalUs = s.KeepIntervalUs;
        l.KeepCount = s.KeepCount;
        l.UserTimeoutUs = s.UserTimeoutUs;
        l.SendBufferSize = s.SendBufferSize;
        l.ReceiveBufferSize = s.ReceiveBufferSize;
        s.Listener = l;
        s.Kind = Kind.Listener;
        return SocketError.Success;
    }

    public SocketError Accept(int handle, out int newHandle, out Ipv4Address peer, out ushort peerPort)
    {
        newHandle = -1;
        peer = default;
        peerPort = 0;
        Socket? s = Get(handle);
        if (s == null) return SocketError.BadHandle;
        if (s.Kind != Kind.Listener) return SocketError.InvalidArgument;
        if (_open >= _config.MaxSockets) return SocketError.NoBuffers;
        TcpConnection? c = s.Listener!.Accept();
        if (c == null) return SocketError.WouldBlock;
        Open(out newHandle);
        Socket n = _sockets[newHandle];
        n.Kind = Kind.Connection;
        n.Conn = c;
        n.NoDelay = c.NoDelay;
        n.KeepAlive = c.KeepAlive;
        c.UserHandle = newHandle;
        peer = c.RemoteAddress;
        peerPort = c.RemotePort;
        c.UpdateReadiness();
        return SocketError.Success;
    }

    /// <summary>connect(2), non-blocking: returns <see cref="SocketError.InProgress"/>; completion shows as
    /// writability (or an error via <see cref="GetError"/>).</summary>
    public SocketError Connect(int handle, Ipv4Address address, ushort port)
    {
        Socket? s = Get(handle);
        if (s == null) return SocketError.BadHandle;
        if (s.Kind == Kind.Connection)
            return s.Conn!.State switch
            {
                TcpState.SynSent or TcpState.SynReceived => SocketError.Already,
                TcpState.Closed => SocketError.InvalidArgument,
                _ => SocketError.IsConnected,
            };
        if (s.Kind != Kind.Fresh) return SocketError.InvalidArgument;
        if (port == 0 || address.IsAny || address.IsBroadcast || address.IsMulticast) return SocketError.InvalidArgument;
        TcpConnection? c = _tcp.Connect(s.BoundPort, address, port, _nowUs, out SocketError err, (s, handle),
            static (conn, st) =>
            {
                conn.UserHandle = st.handle;
                ApplyOptions(st.s, conn);
            });
        if (c == null) return err;
        if (s.BoundPort != 0) { _tcp.ReleasePort(s.BoundPort); s.BoundPort = 0; } // the connection holds its own
        s.Kind = Kind.Connection;
        s.Conn = c;
        _iface.Flush();
        return err == SocketError.InProgress ? SocketError.InProgress : err;
    }

    private static void ApplyOptions(Socket s, TcpConnection c)
    {
        c.NoDelay = s.NoDelay;
        c.Cork = s.Cork;
        c.KeepAlive = s.KeepAlive;
        c.KeepIdleUs = s.KeepIdleUs;
        c.KeepIntervalUs = s.KeepIntervalUs;
        c.KeepCount = s.KeepCount;
        c.UserTimeoutUs = s.UserTimeoutUs;
        if (s.SendBufferSize > 0) c.TrySetSendBufferSize(s.SendBufferSize);
        if (s.ReceiveBufferSize > 0) c.TrySetReceiveBufferSize(s.ReceiveBufferSize);
    }

    public int Send(int handle, ReadOnlySpan<byte> data, out SocketError error)
    {
        Socket? s = Get(handle);
        if (s == null) { error = SocketError.BadHandle; return 0; }
        if (s.Kind != Kind.Connection) { error = s.Kind == Kind.Listener ? SocketError.NotConnected : SocketError.NotConnected; return 0; }
        int n = s.Conn!.Send(data, _nowUs, out error);
        if (!DeferFlush) _iface.Flush();
        return n;
    }

    public int Receive(int handle, Span<byte> buffer, bool peek, out SocketError error)
    {
        Socket? s = Get(handle);
        if (s == null) { error = SocketError.BadHandle; return 0; }
        if (s.Kind != Kind.Connection) { error = SocketError.NotConnected; return 0; }
        int n = s.Conn!.Receive(buffer, peek, _nowUs, out error);
        if (!DeferFlush) _iface.Flush();
        return n;
    }

    public SocketError Shutdown(int handle, ShutdownHow how)
    {
        Socket? s = Get(handle);
        if (s == null) return SocketError.BadHandle;
        if (s.Kind != Kind.Connection) return SocketError.NotConnected;
        SocketError e = s.Conn!.Shutdown(how != ShutdownHow.Write, how != ShutdownHow.Read, _nowUs);
        _iface.Flush();
        return e;
    }

    /// <summary>close(2): frees the handle. A connection finishes its close in the background (or resets at once
    /// with linger 0 or unread data).</summary>
    public SocketError Close(int handle) => Close(handle, abort: false);

    /// <summary>close(2) with an explicit abort (RST now, as SO_LINGER 0) or the socket's linger setting.</summary>
    public SocketError Close(int handle, bool abort)
    {
        Socket? s = Get(handle);
        if (s == null) return SocketError.BadHandle;
        switch (s.Kind)
        {
            case Kind.Listener:
                _tcp.CloseListener(s.Listener!, _nowUs);
                break;
            case Kind.Connection:
                s.Conn!.Close(abort: abort || s.LingerUs == 0, _nowUs);
                break;
        }
        if (s.BoundPort != 0) _tcp.ReleasePort(s.BoundPort);
        s.Kind = Kind.Free;
        s.Conn = null;
        s.Listener = null;
        s.BoundPort = 0;
        s.NextFree = _freeHead;
        _freeHead = handle;
        _open--;
        _iface.Flush();
        return SocketError.Success;
    }

    public SocketError GetLocalEndpoint(int handle, out Ipv4Address address, out ushort port)
    {
        address = default;
        port = 0;
        Socket? s = Get(handle);
        if (s == null) return SocketError.BadHandle;
        switch (s.Kind)
        {
            case Kind.Connection: address = s.Conn!.LocalAddress; port = s.Conn.LocalPort; break;
            case Kind.Listener: address = s.Listener!.Address; port = s.Listener.Port; break;
            default: port = s.BoundPort; break;
        }
        return SocketError.Success;
    }

    public SocketError GetRemoteEndpoint(int handle, out Ipv4Address address, out ushort port)
    {
        address = default;
        port = 0;
        Socket? s = Get(handle);
        if (s == null) return SocketError.BadHandle;
        if (s.Kind != Kind.Connection || s.Conn!.State is TcpState.Closed && s.Conn.PendingError != SocketError.Success)
            return SocketError.NotConnected;
        address = s.Conn.RemoteAddress;
        port = s.Conn.RemotePort;
        return SocketError.Success;
    }

    /// <summary>SO_ERROR: the pending error, cleared by reading it.</summary>
    public SocketError GetError(int handle, out SocketError error)
    {
        error = SocketError.Success;
        Socket? s = Get(handle);
        if (s == null) return SocketError.BadHandle;
        if (s.Kind == Kind.Connection) error = s.Conn!.TakeError();
        else { error = s.Error; s.Error = SocketError.Success; }
        return SocketError.Success;
    }

    /// <summary>The connection behind a handle, for read-only inspection (TCP_INFO); null when not a connection.</summary>
    public TcpConnection? GetConnection(int handle) => Get(handle) is { Kind: Kind.Connection } s ? s.Conn : null;

    /// <summary>FIONREAD: bytes ready to read (0 when not a connection).</summary>
    public int BytesReadable(int handle) => Get(handle) is { Kind: Kind.Connection } s ? s.Conn!.BytesReadable : 0;

    /// <summary>SIOCOUTQ: bytes queued to send and not yet acknowledged (0 when not a connection).</summary>
    public int BytesUnsent(int handle) => Get(handle) is { Kind: Kind.Connection } s ? s.Conn!.BytesQueuedToSend : 0;

    public TcpState GetState(int handle)
    {
        Socket? s = Get(handle);
        return s?.Kind switch
        {
            Kind.Connection => s.Conn!.State,
            Kind.Listener => TcpState.Listen,
            _ => TcpState.Closed,
        };
    }

    public Readiness GetReadiness(int handle)
    {
        Socket? s = Get(handle);
        if (s == null) return Readiness.Err | Readiness.Hup;
        return s.Kind switch
        {
            Kind.Connection => s.Conn!.GetReadiness(),
            Kind.Listener => s.Listener!.GetReadiness(),
            // An unconnected socket: Linux reports EPOLLOUT|EPOLLHUP for it.
            _ => Readiness.Out | Readiness.Hup,
        };
    }

    public SocketError SetOption(int handle, SocketOption option, long value)
    {
        Socket? s = Get(handle);
        if (s == null) return SocketError.BadHandle;
        TcpConnection? c = s.Conn;
        switch (option)
        {
            case SocketOption.NoDelay:
                s.NoDelay = value != 0;
                if (c != null) { c.NoDelay = s.NoDelay; c.Flush(_nowUs); }
                break;
            case SocketOption.Cork:
                s.Cork = value != 0;
                if (c != null) { c.Cork = s.Cork; c.Flush(_nowUs); }
                break;
            case SocketOption.KeepAlive:
                s.KeepAlive = value != 0;
                c?.SetKeepAlive(s.KeepAlive, _nowUs);
                break;
            case SocketOption.KeepIdleUs:
                if (value <= 0) return SocketError.InvalidArgument;
                s.KeepIdleUs = value;
                if (c != null) { c.KeepIdleUs = value; c.SetKeepAlive(c.KeepAlive, _nowUs); }
                break;
            case SocketOption.KeepIntervalUs:
                if (value <= 0) return SocketError.InvalidArgument;
                s.KeepIntervalUs = value;
                if (c != null) c.KeepIntervalUs = value;
                break;
            case SocketOption.KeepCount:
                if (value <= 0 || value > 127) return SocketError.InvalidArgument;
                s.KeepCount = (int)value;
                if (c != null) c.KeepCount = (int)value;
                break;
            case SocketOption.UserTimeoutUs:
                if (value < 0) return SocketError.InvalidArgument;
                s.UserTimeoutUs = value;
                if (c != null) c.UserTimeoutUs = value;
                break;
            case SocketOption.LingerUs:
                s.LingerUs = value;
                break;
            case SocketOption.SendBufferSize:
                s.SendBufferSize = ClampBuffer(value);
                c?.TrySetSendBufferSize(s.SendBufferSize);
                break;
            case SocketOption.ReceiveBufferSize:
                s.ReceiveBufferSize = ClampBuffer(value);
                c?.TrySetReceiveBufferSize(s.ReceiveBufferSize);
                break;
            case SocketOption.ReuseAddress:
                s.ReuseAddress = value != 0;
                break;
            default:
                return SocketError.NotSupported;
        }
        if (s.Listener is TcpListener l)
        {
            l.NoDelay = s.NoDelay; l.KeepAlive = s.KeepAlive; l.KeepIdleUs = s.KeepIdleUs;
            l.KeepIntervalUs = s.KeepIntervalUs; l.KeepCount = s.KeepCount; l.UserTimeoutUs = s.UserTimeoutUs;
            l.SendBufferSize = s.SendBufferSize; l.ReceiveBufferSize = s.ReceiveBufferSize;
        }
        _iface.Flush();
        return SocketError.Success;
    }

    public SocketError GetOption(int handle, SocketOption option, out long value)
    {
        value = 0;
        Socket? s = Get(handle);
        if (s == null) return SocketError.BadHandle;
        TcpConnection? c = s.Conn;
        value = option switch
        {
            SocketOption.NoDelay => s.NoDelay ? 1 : 0,
            SocketOption.Cork => s.Cork ? 1 : 0,
            SocketOption.KeepAlive => s.KeepAlive ? 1 : 0,
            SocketOption.KeepIdleUs => s.KeepIdleUs,
            SocketOption.KeepIntervalUs => s.KeepIntervalUs,
            SocketOption.KeepCount => s.KeepCount,
            SocketOption.UserTimeoutUs => s.UserTimeoutUs,
            SocketOption.LingerUs => s.LingerUs,
            SocketOption.SendBufferSize => c?.SendBufferSize ?? (s.SendBufferSize > 0 ? s.SendBufferSize : _config.Tcp.SendBufferSize),
            SocketOption.ReceiveBufferSize => c?.ReceiveBufferSize ?? (s.ReceiveBufferSize > 0 ? s.ReceiveBufferSize : _config.Tcp.ReceiveBufferSize),
            SocketOption.ReuseAddress => s.ReuseAddress ? 1 : 0,
            _ => 0,
        };
        return SocketError.Success;
    }

    private int ClampBuffer(long v) => (int)Math.Clamp(v, 4096, _config.Tcp.MaxBufferSize);

    // ------------------------------------------------------------------------------------------------------------
    // Layer plumbing
    // ------------------------------------------------------------------------------------------------------------

    void IIpv4Transport.Receive(in Ipv4Packet ip, Span<byte> payload, PacketOffloads rxFlags, long nowUs)
    {
        _nowUs = nowUs;
        _tcp.Receive(ip.Source, ip.Destination, payload, rxFlags, nowUs);
    }

    void IIpv4Transport.ReceiveIcmpError(IcmpErrorKind kind, Ipv4Address reporter, ReadOnlySpan<byte> originalDatagram,
        int nextHopMtu, long nowUs)
    {
        TcpIcmpError k = kind switch
        {
            IcmpErrorKind.NetUnreachable => TcpIcmpError.NetUnreachable,
            IcmpErrorKind.HostUnreachable => TcpIcmpError.HostUnreachable,
            IcmpErrorKind.ProtocolUnreachable => TcpIcmpError.ProtocolUnreachable,
            IcmpErrorKind.PortUnreachable => TcpIcmpError.PortUnreachable,
            IcmpErrorKind.FragmentationNeeded => TcpIcmpError.FragmentationNeeded,
            IcmpErrorKind.SourceRouteFailed => TcpIcmpError.SourceRouteFailed,
            IcmpErrorKind.Prohibited => TcpIcmpError.AdministrativelyProhibited,
            _ => TcpIcmpError.Other,
        };
        _tcp.ReceiveIcmpError(k, originalDatagram, nextHopMtu, nowUs);
    }

    Ipv4Address ITcpTransmit.LocalAddress => _iface.Address;
    int ITcpTransmit.Mtu => _iface.Mtu;
    bool ITcpTransmit.TxChecksumOffload => _iface.Capabilities.TxTcpChecksum;
    bool ITcpTransmit.TryAllocate(out PacketBuf packet) => _iface.TryAllocate(out packet);
    void ITcpTransmit.Send(ref PacketBuf packet, Ipv4Address destination, long nowUs) => _iface.SendIpv4(ref packet, destination, 6, nowUs);

    void ITcpEvents.OnReadinessChanged(TcpConnection connection, Readiness readiness)
    {
        if (connection.UserHandle >= 0) ReadinessListener?.OnReadinessChanged(connection.UserHandle, readiness);
    }

    void ITcpEvents.OnAcceptReady(TcpListener listener)
    {
        if (listener.UserHandle >= 0) ReadinessListener?.OnReadinessChanged(listener.UserHandle, listener.GetReadiness());
    }

    void ITcpEvents.OnReleased(TcpConnection connection) { }

    public void Dispose()
    {
        _iface.Dispose();
        _buffers.Dispose();
    }
}
