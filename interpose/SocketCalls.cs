using System;
using System.Buffers.Binary;
using UserTcp.Interpose.Native;
using UserTcp.Stack;
using UserTcp.Stack.Wire;

namespace UserTcp.Interpose;

/// <summary>
/// POSIX socket calls on user-stack fds, over this process's <see cref="NetStack"/> (<see cref="Engine"/>). Every
/// method returns &gt;= 0 or -errno (see <see cref="Errno"/>); the C shim sets errno. Pointers come straight from
/// the application and are checked here (EFAULT), never trusted.
///
/// Binding is checked here first (so SO_REUSEPORT groups and the ports recorded before the runtime started keep the
/// kernel's rules) and reaches the stack when the socket listens or connects.
/// </summary>
internal static unsafe partial class SocketCalls
{
    internal const int AF_INET = 2, AF_UNSPEC = 0, SOCK_STREAM = 1, IPPROTO_TCP = 6;
    internal const int SOCK_NONBLOCK = 0x800, SOCK_CLOEXEC = 0x80000, O_NONBLOCK = 0x800, O_RDWR = 2, O_CLOEXEC = 0x80000;
    internal const int MSG_OOB = 0x1, MSG_PEEK = 0x2, MSG_TRUNC = 0x20, MSG_DONTWAIT = 0x40, MSG_WAITALL = 0x100,
        MSG_NOSIGNAL = 0x4000, MSG_MORE = 0x8000;

    /// <summary>This process's interface address (host order), from the configuration.</summary>
    internal static uint LocalInterfaceAddress;

    internal static long Socket(int domain, int type, int protocol)
    {
        if (domain != AF_INET && domain != Inet6.AF_INET6) return -Errno.EAFNOSUPPORT;
        if ((type & ~(0xf | SOCK_NONBLOCK | SOCK_CLOEXEC)) != 0) return -Errno.EINVAL;
        if ((type & 0xf) != SOCK_STREAM || (protocol != 0 && protocol != IPPROTO_TCP)) return -Errno.EPROTONOSUPPORT;
        UserSocket s;
        using (Engine.Gate.EnterScope())
        {
            SocketError e = Engine.OpenHandle(out int h);
            if (e != SocketError.Success) return -ErrnoMap.From(e);
            s = UserSocket.Rent();
            s.Handle = h;
        }
        s.Refs = 1;
        s.NonBlocking = (type & SOCK_NONBLOCK) != 0;
        s.Inet6 = domain == Inet6.AF_INET6;
        long fd = Kernel.FdAlloc(0, (type & SOCK_CLOEXEC) != 0 ? 1 : 0);
        if (fd < 0)
        {
            using (Engine.Gate.EnterScope())
            {
                Engine.Stack.Close(s.Handle);
                UserSocket.Recycle(s);
            }
            return fd;
        }
        FdTable.Set((int)fd, s);
        return fd;
    }

    internal static long OpenHandle(UserSocket s)
    {
        using (Engine.Gate.EnterScope())
        {
            SocketError e = Engine.OpenHandle(out int h);
            if (e != SocketError.Success) return -ErrnoMap.From(e);
            s.Handle = h;
        }
        return 0;
    }

    // ---- binding -------------------------------------------------------------------------------------------------

    internal static long Bind(int fd, SockAddrIn* addr, uint len)
    {
        if (FdTable.Get(fd) is not { } s) return -Errno.EBADF;
        if (addr == null) return -Errno.EFAULT;
        uint ip;
        ushort port;
        bool mapped = false;
        if (s.Inet6)
        {
            long p = Inet6.ParseBind(addr, len, out ip, out port, out mapped);
            if (p < 0) return p;
        }
        else
        {
            if (len < (uint)sizeof(SockAddrIn)) return -Errno.EINVAL;
            if (addr->Family != AF_INET) return -Errno.EAFNOSUPPORT;
            ip = BinaryPrimitives.ReverseEndianness(addr->AddrBE);
            port = BinaryPrimitives.ReverseEndianness(addr->PortBE);
        }
        lock (s.Gate)
        {
            if (s.Bound || s.State != SocketState.Unconnected) return -Errno.EINVAL;
            if (ip != 0 && ip != LocalInterfaceAddress) return -Errno.EADDRNOTAVAIL;
            long r = port == 0 ? AutoBind(s, ip) : BindTo(s, ip, port);
            if (r == 0 && s.Inet6) s.BoundMapped = mapped;
            return r;
        }
    }

    private static long BindTo(UserSocket s, uint ip, ushort port)
    {
        if (PortConflicts(s, ip, port)) return -Errno.EADDRINUSE;
        s.LocalAddress = ip;
        s.LocalPort = port;
        s.Bound = true;
        return 0;
    }

    private const int EphemeralLow = 32768, EphemeralHigh = 60999;
    private static int s_nextEphemeral;

    private static long AutoBind(UserSocket s, uint ip)
    {
        for (int tries = 0; tries <= EphemeralHigh - EphemeralLow; tries++)
        {
            ushort port = (ushort)(EphemeralLow + (s_nextEphemeral++ % (EphemeralHigh - EphemeralLow + 1)));
            bool busy;
            using (Engine.Gate.EnterScope()) busy = Engine.Stack.Tcp.PortInUse(port);
            if (!busy && BindTo(s, ip, port) == 0) return 0;
        }
        return -Errno.EADDRINUSE;
    }

    private static bool PortConflicts(UserSocket me, uint ip, ushort port)
    {
        foreach ((int _, UserSocket o) in FdTable.Snapshot())
        {
            if (ReferenceEquals(o, me) || !o.Bound || o.LocalPort != port) continue;
            if (o.LocalAddress != ip && o.LocalAddress != 0 && ip != 0) continue;
            if (me.Options.ReusePort && o.Options.ReusePort) continue;
            if (me.Options.ReuseAddress && o.Options.ReuseAddress && o.State != SocketState.Listening) continue;
            return true;
        }
        return false;
    }

    /// <summary>The stack-side bind for a socket bound here. Caller holds Engine.Gate.</summary>
    private static long StackBind(UserSocket s)
    {
        if (!s.Bound) return 0;
        Engine.Stack.SetOption(s.Handle, SocketOption.ReuseAddress, 1);
        SocketError e = Engine.Stack.Bind(s.Handle, new Ipv4Address(s.LocalAddress), s.LocalPort);
        return e == SocketError.Success ? 0 : -ErrnoMap.From(e);
    }

    // ---- listening and accepting ----------------------------------------------------------------------------------

    internal static long Listen(int fd, int backlog)
    {
        if (FdTable.Get(fd) is not { } s) return -Errno.EBADF;
        lock (s.Gate) return ListenLocked(s, backlog);
    }

    /// <summary>listen(2) on a socket whose lock the caller holds.</summary>
    internal static long ListenLocked(UserSocket s, int backlog)
    {
        if (s.State == SocketState.Connected) return -Errno.EINVAL;
        if (!s.Bound)
        {
            long r = AutoBind(s, 0);
            if (r < 0) return r;
        }
        if ((uint)backlog > 4096) backlog = 4096; // net.core.somaxconn
        using (Engine.Gate.EnterScope())
        {
            if (s.State == SocketState.Listening)
            {
                s.Backlog = backlog;
                return -ErrnoMap.From(Engine.Stack.Listen(s.Group?.Handle ?? s.Handle, backlog));
            }
            // SO_REUSEPORT: a second listener on the same port shares the first one's accept queue.
            if (!(s.Options.ReusePort && ListenerGroups.TryJoin(s)))
            {
                long b = StackBind(s);
                if (b < 0) return b;
                SocketError e = Engine.Stack.Listen(s.Handle, backlog);
                if (e != SocketError.Success) return -ErrnoMap.From(e);
                if (s.Options.ReusePort) ListenerGroups.Create(s);
                Engine.Group?.ListenerAdded(s.LocalPort);
            }
        }
        s.Backlog = backlog;
        s.State = SocketState.Listening;
        s.Changed();
        return 0;
    }

    private struct AcceptAttempt : IAttempt
    {
        public UserSocket Listener;
        public int Generation;
        public int Handle;
        public Ipv4Address Peer;
        public ushort PeerPort;
        public UserSocket? Accepted; // taken under Engine.Gate with the connection: the listener's port and options too

        public long Try()
        {
            if (Listener.Generation != Generation) return -Errno.EBADF; // closed while this call waited
            SocketError e = Engine.AcceptHandle(Handle, out int newHandle, out Peer, out PeerPort);
            if (e != SocketError.Success) return -ErrnoMap.From(e);
            UserSocket c = UserSocket.Rent();
            c.Refs = 1;
            c.Handle = newHandle;
            c.State = SocketState.Connected;
            c.Bound = true;
            c.LocalAddress = LocalInterfaceAddress;
            c.LocalPort = Listener.LocalPort;
            c.Options = SocketOptions.ForChildOf(Listener.Options);
            c.Inet6 = Listener.Inet6;
            Accepted = c;
            return 0;
        }
    }

    internal static long Accept(int fd, SockAddrIn* addr, uint* len, int flags)
    {
        if (FdTable.Get(fd) is not { } s) return -Errno.EBADF;
        if ((flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)) != 0) return -Errno.EINVAL;
        if (s.State != SocketState.Listening) return -Errno.EINVAL;
        if (addr != null && len == null) return -Errno.EFAULT;
        var a = new AcceptAttempt { Listener = s, Generation = s.Generation, Handle = s.Group?.Handle ?? s.Handle };
        long r = Blocking.Run(ref a, s.NonBlocking, s.Options.ReceiveTimeoutUs);
        if (r < 0) return r;
        UserSocket c = a.Accepted!;
        c.NonBlocking = (flags & SOCK_NONBLOCK) != 0;
        long nfd = Kernel.FdAlloc(0, (flags & SOCK_CLOEXEC) != 0 ? 1 : 0);
        if (nfd < 0)
        {
            using (Engine.Gate.EnterScope())
            {
                Engine.Stack.Close(c.Handle);
                UserSocket.Recycle(c);
            }
            return nfd == -Errno.EMFILE ? -Errno.EMFILE : nfd;
        }
        FdTable.Set((int)nfd, c);
        if (addr != null)
        {
            if (s.Inet6) Inet6.Copy(a.Peer.Value, a.PeerPort, false, addr, len);
            else CopyAddress(a.Peer.Value, a.PeerPort, addr, len);
        }
        return nfd;
    }

    // ---- connecting ------------------------------------------------------------------------------------------------

    private struct ConnectAttempt : IAttempt
    {
        public UserSocket Socket;
        public int Generation;
        public int Handle;

        public long Try()
        {
            if (Socket.Generation != Generation) return -Errno.EBADF; // closed while this call waited
            // Done when the handshake finished (writable) or failed (error pending).
            Stack.Tcp.Readiness r = Engine.Stack.GetReadiness(Handle);
            Engine.Stack.GetError(Handle, out SocketError err);
            if (err != SocketError.Success) return -ErrnoMap.From(err);
            Stack.Tcp.TcpState st = Engine.Stack.GetState(Handle);
            if (st is Stack.Tcp.TcpState.SynSent or Stack.Tcp.TcpState.SynReceived) return -Errno.EAGAIN;
            return (r & Stack.Tcp.Readiness.Out) != 0 || st != Stack.Tcp.TcpState.Closed ? 0 : -Errno.ECONNREFUSED;
        }
    }

    internal static long Connect(int fd, SockAddrIn* addr, uint len)
    {
        if (FdTable.Get(fd) is not { } s) return -Errno.EBADF;
        if (addr == null) return -Errno.EFAULT;
        if (len < sizeof(ushort)) return -Errno.EINVAL;
        if (addr->Family == AF_UNSPEC) return s.State == SocketState.Connected ? -Errno.EOPNOTSUPP : 0;
        uint peer;
        ushort port;
        if (s.Inet6)
        {
            long p = Inet6.ParseConnect(addr, len, out peer, out port);
            if (p < 0) return p;
        }
        else
        {
            if (len < (uint)sizeof(SockAddrIn)) return -Errno.EINVAL;
            if (addr->Family != AF_INET) return -Errno.EAFNOSUPPORT;
            peer = BinaryPrimitives.ReverseEndianness(addr->AddrBE);
            port = BinaryPrimitives.ReverseEndianness(addr->PortBE);
        }
        if (s.State == SocketState.Listening) return -Errno.EISCONN;
        if (s.State == SocketState.Connected && s.ConnectPending)
        {
            long p = ConnectAgain(s);
            if (p != long.MinValue) return p;
        }
        var ip = new Ipv4Address(peer);
        SocketError e;
        lock (s.Gate)
        using (Engine.Gate.EnterScope())
        {
            // No stack poll here: the SYN needs only the time. A load generator that reconnects inside its event
            // loop (wrk) otherwise ran one receive burst per connect on top of its waits' polls; what waits on the
            // device is taken by the next wait (a blocking connect's own wait below polls at once).
            Engine.AppCalls++;
            if (s.State != SocketState.Connected)
            {
                long b = StackBind(s);
                if (b < 0) return b;
            }
            // In an event round the SYN leaves with the round's burst (as replies do: Engine.RoundThread).
            Engine.Stack.DeferFlush = Engine.InRoundLocked;
            e = Engine.Stack.Connect(s.Handle, ip, port, Engine.NowUs);
            Engine.Stack.DeferFlush = false;
            if (e is SocketError.Success or SocketError.InProgress)
            {
                s.State = SocketState.Connected;
                Engine.Stack.GetLocalEndpoint(s.Handle, out Ipv4Address la, out ushort lp);
                s.Bound = true;
                s.LocalAddress = la.IsAny ? LocalInterfaceAddress : la.Value;
                s.LocalPort = lp;
                s.Changed();
            }
        }
        if (e == SocketError.Success) return 0;
        if (e != SocketError.InProgress) return -ErrnoMap.From(e);
        s.ConnectPending = true;
        if (s.NonBlocking) return -Errno.EINPROGRESS;
        var a = new ConnectAttempt { Socket = s, Generation = s.Generation, Handle = s.Handle };
        long r = Blocking.Run(ref a, false, s.Options.SendTimeoutUs);
        if (s.Generation != a.Generation) return -Errno.EBADF; // closed meanwhile: the object is someone else's now
        if (r != -Errno.EAGAIN && r != -Errno.EINTR) s.ConnectPending = false; // the outcome has been reported
        return r == -Errno.EAGAIN ? -Errno.EINPROGRESS : r;
    }

    /// <summary>connect(2) again while an earlier one is in progress or finished unreported (Linux
    /// __inet_stream_connect, SS_CONNECTING): EALREADY while the handshake runs (a blocking call waits for it), 0
    /// once it has completed, and the connection's error once it failed. long.MinValue: not handled here.</summary>
    private static long ConnectAgain(UserSocket s)
    {
        Stack.Tcp.TcpState st;
        using (Engine.Gate.EnterScope())
        {
            Engine.PollLocked();
            st = Engine.Stack.GetState(s.Handle);
        }
        if (st is Stack.Tcp.TcpState.SynSent or Stack.Tcp.TcpState.SynReceived)
        {
            if (s.NonBlocking) return -Errno.EALREADY;
            var a = new ConnectAttempt { Socket = s, Generation = s.Generation, Handle = s.Handle };
            long r = Blocking.Run(ref a, false, s.Options.SendTimeoutUs);
            if (s.Generation != a.Generation) return -Errno.EBADF;
            if (r == -Errno.EAGAIN || r == -Errno.EINTR) return r == -Errno.EAGAIN ? -Errno.EALREADY : r;
            s.ConnectPending = false;
            return r;
        }
        s.ConnectPending = false;
        if (st != Stack.Tcp.TcpState.Closed) return 0;
        SocketError err;
        using (Engine.Gate.EnterScope()) Engine.Stack.GetError(s.Handle, out err);
        return err != SocketError.Success ? -ErrnoMap.From(err) : -Errno.ECONNABORTED;
    }

    internal static long Shutdown(int fd, int how)
    {
        if (FdTable.Get(fd) is not { } s) return -Errno.EBADF;
        if ((uint)how > 2) return -Errno.EINVAL;
        lock (s.Gate)
        {
            if (s.State == SocketState.Listening)
            {
                if (how != 1)
                {
                    using (Engine.Gate.EnterScope())
                    {
                        ListenerGroups.Release(s);
                        Engine.OpenHandle(out s.Handle);
                    }
                    s.State = SocketState.Unconnected;
                    s.Changed();
                }
                return 0;
            }
            if (s.State == SocketState.Unconnected)
            {
                // Linux records the shutdown even on a socket that is not connected, then reports ENOTCONN.
                s.ShutdownBits |= how + 1;
                s.Changed();
                return -Errno.ENOTCONN;
            }
            using (Engine.Gate.EnterScope())
            {
                // Linux: a connection that has already ended (TIME_WAIT is handed to a mini-socket there, so the
                // socket itself is closed) records the shutdown and reports ENOTCONN.
                bool ended = Engine.Stack.GetState(s.Handle) is Stack.Tcp.TcpState.Closed or Stack.Tcp.TcpState.TimeWait;
                long r = -ErrnoMap.From(Engine.Stack.Shutdown(s.Handle, (ShutdownHow)how));
                Engine.Edges.Instance.Forget(s.Handle);
                return ended ? -Errno.ENOTCONN : r;
            }
        }
    }

    internal static long GetSockName(int fd, SockAddrIn* addr, uint* len)
    {
        if (FdTable.Get(fd) is not { } s) return -Errno.EBADF;
        return s.Inet6 ? Inet6.CopyLocal(s, addr, len) : CopyAddress(s.LocalAddress, s.LocalPort, addr, len);
    }

    internal static long GetPeerName(int fd, SockAddrIn* addr, uint* len)
    {
        if (FdTable.Get(fd) is not { } s) return -Errno.EBADF;
        if (s.State != SocketState.Connected) return -Errno.ENOTCONN;
        SocketError e;
        Ipv4Address ip;
        ushort port;
        using (Engine.Gate.EnterScope())
        {
            if (Engine.Stack.GetState(s.Handle) is Stack.Tcp.TcpState.SynSent) return -Errno.ENOTCONN;
            e = Engine.Stack.GetRemoteEndpoint(s.Handle, out ip, out port);
        }
        if (e != SocketError.Success) return -ErrnoMap.From(e);
        return s.Inet6 ? Inet6.Copy(ip.Value, port, false, addr, len) : CopyAddress(ip.Value, port, addr, len);
    }

    internal static long CopyAddress(uint ip, ushort port, SockAddrIn* addr, uint* len)
    {
        if (addr == null || len == null) return -Errno.EFAULT;
        if ((int)*len < 0) return -Errno.EINVAL;
        SockAddrIn a = new()
        {
            Family = AF_INET,
            PortBE = BinaryPrimitives.ReverseEndianness(port),
            AddrBE = BinaryPrimitives.ReverseEndianness(ip),
        };
        uint n = Math.Min(*len, (uint)sizeof(SockAddrIn));
        Buffer.MemoryCopy(&a, addr, n, n);
        *len = (uint)sizeof(SockAddrIn);
        return 0;
    }
}
