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
    private enum Kind : byte { Fresh, Listener }

    /// <summary>A handle that is not a connection: a fresh socket (options set before connect or listen, its bound
    /// port) or a listener. An open connection needs none of this (its options live in the connection), so its slot
    /// holds the <see cref="TcpConnection"/> itself: no object per connection here. These objects are pooled.</summary>
    private sealed class Socket
    {
        public Kind Kind;
        public TcpListener? Listener;
        public ushort BoundPort;        // holds a port reference while bound and not yet connected/listening
        public bool ReuseAddress;
        public bool NoDelay, Cork, KeepAlive;
        private int _keepIdleMs, _keepIntervalMs, _userTimeoutMs, _lingerMs = -1;
        private byte _keepCount, _error;
        public long KeepIdleUs { get => _keepIdleMs * 1000L; set => _keepIdleMs = Ms(value); }
        public long KeepIntervalUs { get => _keepIntervalMs * 1000L; set => _keepIntervalMs = Ms(value); }
        public long UserTimeoutUs { get => _userTimeoutMs * 1000L; set => _userTimeoutMs = Ms(value); }
        /// <summary>SO_LINGER: -1 = off.</summary>
        public long LingerUs { get => _lingerMs < 0 ? -1 : _lingerMs * 1000L; set => _lingerMs = value < 0 ? -1 : Ms(value); }
        public int LingerMs => _lingerMs;
        public int KeepCount { get => _keepCount; set => _keepCount = (byte)Math.Clamp(value, 0, 255); }
        public int SendBufferSize, ReceiveBufferSize;
        /// <summary>For sockets without a connection (e.g. connect failed at once).</summary>
        public SocketError Error { get => (SocketError)_error; set => _error = (byte)value; }

        internal static int Ms(long us) => (int)Math.Clamp((us + 999) / 1000, 0, int.MaxValue);

        public void Reset(TcpConfig c)
        {
            Kind = Kind.Fresh;
            Listener = null; BoundPort = 0; ReuseAddress = false;
            NoDelay = Cork = KeepAlive = false;
            KeepIdleUs = c.KeepAliveIdleUs; KeepIntervalUs = c.KeepAliveIntervalUs; KeepCount = c.KeepAliveCount;
            UserTimeoutUs = 0; LingerUs = -1; SendBufferSize = 0; ReceiveBufferSize = 0;
            Error = SocketError.Success;
        }
    }

    /// <summary>What a connection's socket carries that the connection does not (SO_LINGER, SO_REUSEADDR): kept only
    /// for connections where they differ from the defaults (off), in <see cref="_extras"/>.</summary>
    private struct Extra
    {
        public int LingerMs;     // -1 = off
        public bool ReuseAddress;
        public readonly bool IsDefault => LingerMs < 0 && !ReuseAddress;
    }

    private readonly IDevice _device;
    private readonly Interface _iface;
    private readonly TcpLayer _tcp;
    private readonly BufferPool _buffers;
    private readonly StackConfig _config;
    /// <summary>The handle table: a slot holds the <see cref="TcpConnection"/> of a connected socket, the
    /// <see cref="Socket"/> of a fresh or listening one, or null when free (8 bytes per handle, nothing else per
    /// connection). Slots below <see cref="_used"/> have been handed out; free ones are on <see cref="_free"/>.</summary>
    private readonly ChunkedTable<object> _slots = new(); // fixed chunks: growth copies no slot, leaves no old array
    private int _used;
    private int[] _free = new int[64];
    private int _freeCount;
    private readonly Dictionary<int, Extra> _extras = new();
    private const int SocketPoolMax = 64;
    private readonly Socket?[] _socketPool = new Socket?[SocketPoolMax];
    private int _socketsPooled;
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
    /// While set, the frames <see cref="Send"/>, <see cref="Receive"/> and <see cref="SetOption"/> (a pulled cork) build stay in the
    /// interface's transmit batch instead of leaving in a burst of their own; they leave with the next
    /// <see cref="Poll"/> or <see cref="Flush"/>, or when the batch is full. On a device whose transmit costs a system
    /// call per burst (af_packet's <c>sendto()</c> kick) an event loop that answers many connections per round then
    /// pays one kick per round instead of one per reply. The caller promises that Poll or Flush follows soon.
    /// <see cref="Connect(int, Ipv4Address, ushort)"/>'s SYN and <see cref="Close(int, bool)"/>'s FIN (or RST) wait
    /// the same way.
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
        Socket s = _socketsPooled > 0 ? _socketPool[--_socketsPooled]! : new Socket();
        _socketPool[_socketsPooled] = null;
        s.Reset(_config.Tcp);
        handle = TakeHandle(s);
        return SocketError.Success;
    }

    /// <summary>A free handle (the latest freed first), now holding <paramref name="o"/>.</summary>
    private int TakeHandle(object o)
    {
        int handle;
        if (_freeCount > 0) handle = _free[--_freeCount];
        else
        {
            if (_used == _slots.Capacity) _slots.EnsureCapacity(_used + 1);
            handle = _used++;
        }
        _slots[handle] = o;
        _open++;
        return handle;
    }

    private void FreeHandle(int handle)
    {
        _slots[handle] = null;
        if (_freeCount == _free.Length) Array.Resize(ref _free, _free.Length * 2);
        _free[_freeCount++] = handle;
        _open--;
    }

    private void PoolSocket(Socket s)
    {
        s.Listener = null;
        if (_socketsPooled < SocketPoolMax) _socketPool[_socketsPooled++] = s;
    }

    /// <summary>The slot's object: a <see cref="TcpConnection"/>, a <see cref="Socket"/>, or null (free or out of range).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private object? Slot(int handle) => (uint)handle < (uint)_used ? _slots[handle] : null;

    private Socket? GetSocket(int handle) => Slot(handle) as Socket;

    /// <summary>bind(2). Port 0 picks an ephemeral port. EADDRINUSE unless the port is free, or SO_REUSEADDR is set
    /// and nobody listens on it (TIME-WAIT and other connections then do not block, as on Linux).</summary>
    public SocketError Bind(int handle, Ipv4Address address, ushort port)
    {
        object? o = Slot(handle);
        if (o == null) return SocketError.BadHandle;
        if (o is not Socket s || s.Kind != Kind.Fresh || s.BoundPort != 0) return SocketError.InvalidArgument;
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
        object? o = Slot(handle);
        if (o == null) return SocketError.BadHandle;
        if (o is not Socket s) return SocketError.InvalidArgument;
        if (s.Kind == Kind.Listener)
        {
            s.Listener!.Backlog = Math.Max(1, backlog); // listen() again just changes the backlog
            return SocketError.Success;
        }
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
        object? o = Slot(handle);
        if (o == null) return SocketError.BadHandle;
        if (o is not Socket { Kind: Kind.Listener } s) return SocketError.InvalidArgument;
        if (_open >= _config.MaxSockets) return SocketError.NoBuffers;
        TcpConnection? c = s.Listener!.Accept();
        if (c == null) return SocketError.WouldBlock;
        // The connection is the handle's whole state: its options came from the listener.
        newHandle = TakeHandle(c);
        c.UserHandle = newHandle;
        peer = c.RemoteAddress;
        peerPort = c.RemotePort;
        c.UpdateReadiness();
        return SocketError.Success;
    }

    /// <summary><see cref="Connect(int, Ipv4Address, ushort)"/> at <paramref name="nowUs"/> without a
    /// <see cref="Poll"/> first: the SYN's timestamp and its retransmission timer count from this time (a caller that
    /// only opens a connection need not pay for a receive burst; what waits on the device stays for the next poll).
    /// A time before the last poll's is ignored.</summary>
    public SocketError Connect(int handle, Ipv4Address address, ushort port, long nowUs)
    {
        if (nowUs > _nowUs) _nowUs = nowUs;
        return Connect(handle, address, port);
    }

    /// <summary>connect(2), non-blocking: returns <see cref="SocketError.InProgress"/>; completion shows as
    /// writability (or an error via <see cref="GetError"/>).</summary>
    public SocketError Connect(int handle, Ipv4Address address, ushort port)
    {
        object? o = Slot(handle);
        if (o == null) return SocketError.BadHandle;
        if (o is TcpConnection existing)
            return existing.State switch
            {
                TcpState.SynSent or TcpState.SynReceived => SocketError.Already,
                TcpState.Closed => SocketError.InvalidArgument,
                _ => SocketError.IsConnected,
            };
        var s = (Socket)o;
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
        // From here the slot holds the connection; what only the socket knew moves to the (rarely used) extras.
        var extra = new Extra { LingerMs = s.LingerMs, ReuseAddress = s.ReuseAddress };
        if (!extra.IsDefault) _extras[handle] = extra;
        _slots[handle] = c;
        PoolSocket(s);
        if (!DeferFlush) _iface.Flush();
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
        object? o = Slot(handle);
        if (o is not TcpConnection c) { error = o == null ? SocketError.BadHandle : SocketError.NotConnected; return 0; }
        int n = c.Send(data, _nowUs, out error);
        if (!DeferFlush) _iface.Flush();
        return n;
    }

    public int Receive(int handle, Span<byte> buffer, bool peek, out SocketError error)
    {
        object? o = Slot(handle);
        if (o is not TcpConnection c) { error = o == null ? SocketError.BadHandle : SocketError.NotConnected; return 0; }
        int n = c.Receive(buffer, peek, _nowUs, out error);
        if (!DeferFlush) _iface.Flush();
        return n;
    }

    public SocketError Shutdown(int handle, ShutdownHow how)
    {
        object? o = Slot(handle);
        if (o is not TcpConnection c) return o == null ? SocketError.BadHandle : SocketError.NotConnected;
        SocketError e = c.Shutdown(how != ShutdownHow.Write, how != ShutdownHow.Read, _nowUs);
        _iface.Flush();
        return e;
    }

    /// <summary>close(2): frees the handle. A connection finishes its close in the background (or resets at once
    /// with linger 0 or unread data).</summary>
    public SocketError Close(int handle) => Close(handle, abort: false);

    /// <summary>close(2) with an explicit abort (RST now, as SO_LINGER 0) or the socket's linger setting.</summary>
    public SocketError Close(int handle, bool abort)
    {
        object? o = Slot(handle);
        if (o == null) return SocketError.BadHandle;
        if (o is TcpConnection c)
        {
            if (_extras.Count != 0 && _extras.Remove(handle, out Extra extra) && extra.LingerMs == 0) abort = true;
            c.Close(abort, _nowUs);
        }
        else
        {
            var s = (Socket)o;
            if (s.Kind == Kind.Listener) _tcp.CloseListener(s.Listener!, _nowUs);
            if (s.BoundPort != 0) _tcp.ReleasePort(s.BoundPort);
            s.BoundPort = 0;
            PoolSocket(s);
        }
        FreeHandle(handle);
        if (!DeferFlush) _iface.Flush();
        return SocketError.Success;
    }

    public SocketError GetLocalEndpoint(int handle, out Ipv4Address address, out ushort port)
    {
        address = default;
        port = 0;
        switch (Slot(handle))
        {
            case null: return SocketError.BadHandle;
            case TcpConnection c: address = c.LocalAddress; port = c.LocalPort; break;
            case Socket { Kind: Kind.Listener } s: address = s.Listener!.Address; port = s.Listener.Port; break;
            case Socket s: port = s.BoundPort; break;
        }
        return SocketError.Success;
    }

    public SocketError GetRemoteEndpoint(int handle, out Ipv4Address address, out ushort port)
    {
        address = default;
        port = 0;
        object? o = Slot(handle);
        if (o == null) return SocketError.BadHandle;
        if (o is not TcpConnection c || c.State is TcpState.Closed && c.PendingError != SocketError.Success)
            return SocketError.NotConnected;
        address = c.RemoteAddress;
        port = c.RemotePort;
        return SocketError.Success;
    }

    /// <summary>SO_ERROR: the pending error, cleared by reading it.</summary>
    public SocketError GetError(int handle, out SocketError error)
    {
        error = SocketError.Success;
        switch (Slot(handle))
        {
            case null: return SocketError.BadHandle;
            case TcpConnection c: error = c.TakeError(); break;
            case Socket s: error = s.Error; s.Error = SocketError.Success; break;
        }
        return SocketError.Success;
    }

    /// <summary>The connection behind a handle, for read-only inspection (TCP_INFO); null when not a connection.</summary>
    public TcpConnection? GetConnection(int handle) => Slot(handle) as TcpConnection;

    /// <summary>FIONREAD: bytes ready to read (0 when not a connection).</summary>
    public int BytesReadable(int handle) => Slot(handle) is TcpConnection c ? c.BytesReadable : 0;

    /// <summary>SIOCOUTQ: bytes queued to send and not yet acknowledged (0 when not a connection).</summary>
    public int BytesUnsent(int handle) => Slot(handle) is TcpConnection c ? c.BytesQueuedToSend : 0;

    public TcpState GetState(int handle) => Slot(handle) switch
    {
        TcpConnection c => c.State,
        Socket { Kind: Kind.Listener } => TcpState.Listen,
        _ => TcpState.Closed,
    };

    public Readiness GetReadiness(int handle) => Slot(handle) switch
    {
        TcpConnection c => c.GetReadiness(),
        Socket { Kind: Kind.Listener } s => s.Listener!.GetReadiness(),
        // An unconnected socket: Linux reports EPOLLOUT|EPOLLHUP for it.
        Socket => Readiness.Out | Readiness.Hup,
        _ => Readiness.Err | Readiness.Hup,
    };

    public SocketError SetOption(int handle, SocketOption option, long value)
    {
        object? o = Slot(handle);
        if (o == null) return SocketError.BadHandle;
        if (o is TcpConnection c) return SetConnectionOption(handle, c, option, value);
        var s = (Socket)o;
        switch (option)
        {
            case SocketOption.NoDelay: s.NoDelay = value != 0; break;
            case SocketOption.Cork: s.Cork = value != 0; break;
            case SocketOption.KeepAlive: s.KeepAlive = value != 0; break;
            case SocketOption.KeepIdleUs:
                if (value <= 0) return SocketError.InvalidArgument;
                s.KeepIdleUs = value;
                break;
            case SocketOption.KeepIntervalUs:
                if (value <= 0) return SocketError.InvalidArgument;
                s.KeepIntervalUs = value;
                break;
            case SocketOption.KeepCount:
                if (value <= 0 || value > 127) return SocketError.InvalidArgument;
                s.KeepCount = (int)value;
                break;
            case SocketOption.UserTimeoutUs:
                if (value < 0) return SocketError.InvalidArgument;
                s.UserTimeoutUs = value;
                break;
            case SocketOption.LingerUs: s.LingerUs = value; break;
            case SocketOption.SendBufferSize: s.SendBufferSize = ClampBuffer(value); break;
            case SocketOption.ReceiveBufferSize: s.ReceiveBufferSize = ClampBuffer(value); break;
            case SocketOption.ReuseAddress: s.ReuseAddress = value != 0; break;
            default: return SocketError.NotSupported;
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

    /// <summary>An option on a connected socket: the connection holds it (SO_LINGER and SO_REUSEADDR: the extras).</summary>
    private SocketError SetConnectionOption(int handle, TcpConnection c, SocketOption option, long value)
    {
        switch (option)
        {
            // Only a change that lets data go (Nagle off, the cork pulled) can send anything, as on Linux.
            case SocketOption.NoDelay:
                c.NoDelay = value != 0;
                if (value != 0) c.Flush(_nowUs);
                break;
            case SocketOption.Cork:
                c.Cork = value != 0;
                if (value == 0) c.Flush(_nowUs);
                break;
            case SocketOption.KeepAlive:
                c.SetKeepAlive(value != 0, _nowUs);
                break;
            case SocketOption.KeepIdleUs:
                if (value <= 0) return SocketError.InvalidArgument;
                c.KeepIdleUs = value;
                c.SetKeepAlive(c.KeepAlive, _nowUs);
                break;
            case SocketOption.KeepIntervalUs:
                if (value <= 0) return SocketError.InvalidArgument;
                c.KeepIntervalUs = value;
                break;
            case SocketOption.KeepCount:
                if (value <= 0 || value > 127) return SocketError.InvalidArgument;
                c.KeepCount = (int)value;
                break;
            case SocketOption.UserTimeoutUs:
                if (value < 0) return SocketError.InvalidArgument;
                c.UserTimeoutUs = value;
                break;
            case SocketOption.LingerUs:
            {
                Extra e = GetExtra(handle);
                e.LingerMs = value < 0 ? -1 : Socket.Ms(value);
                SetExtra(handle, e);
                break;
            }
            case SocketOption.SendBufferSize:
                c.TrySetSendBufferSize(ClampBuffer(value));
                break;
            case SocketOption.ReceiveBufferSize:
                c.TrySetReceiveBufferSize(ClampBuffer(value));
                break;
            case SocketOption.ReuseAddress:
            {
                Extra e = GetExtra(handle);
                e.ReuseAddress = value != 0;
                SetExtra(handle, e);
                break;
            }
            default:
                return SocketError.NotSupported;
        }
        if (!DeferFlush) _iface.Flush(); // the uncorked data leaves with the caller's burst (see DeferFlush)
        return SocketError.Success;
    }

    private Extra GetExtra(int handle) =>
        _extras.Count != 0 && _extras.TryGetValue(handle, out Extra e) ? e : new Extra { LingerMs = -1 };

    private void SetExtra(int handle, Extra e)
    {
        if (e.IsDefault) _extras.Remove(handle);
        else _extras[handle] = e;
    }

    public SocketError GetOption(int handle, SocketOption option, out long value)
    {
        value = 0;
        object? o = Slot(handle);
        if (o == null) return SocketError.BadHandle;
        if (o is TcpConnection c)
        {
            Extra e = GetExtra(handle);
            value = option switch
            {
                SocketOption.NoDelay => c.NoDelay ? 1 : 0,
                SocketOption.Cork => c.Cork ? 1 : 0,
                SocketOption.KeepAlive => c.KeepAlive ? 1 : 0,
                SocketOption.KeepIdleUs => c.KeepIdleUs,
                SocketOption.KeepIntervalUs => c.KeepIntervalUs,
                SocketOption.KeepCount => c.KeepCount,
                SocketOption.UserTimeoutUs => c.UserTimeoutUs,
                SocketOption.LingerUs => e.LingerMs < 0 ? -1 : e.LingerMs * 1000L,
                SocketOption.SendBufferSize => c.SendBufferSize,
                SocketOption.ReceiveBufferSize => c.ReceiveBufferSize,
                SocketOption.ReuseAddress => e.ReuseAddress ? 1 : 0,
                _ => 0,
            };
            return SocketError.Success;
        }
        var s = (Socket)o;
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
            SocketOption.SendBufferSize => s.SendBufferSize > 0 ? s.SendBufferSize : _config.Tcp.SendBufferSize,
            SocketOption.ReceiveBufferSize => s.ReceiveBufferSize > 0 ? s.ReceiveBufferSize : _config.Tcp.ReceiveBufferSize,
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
    int ITcpTransmit.TsoMaxBytes => _iface.Capabilities.TsoMaxBytes;
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
