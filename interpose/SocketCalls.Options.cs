using System;
using System.Text;
using UserTcp.Interpose.Native;
using UserTcp.Stack;

namespace UserTcp.Interpose;

/// <summary>setsockopt/getsockopt with Linux's rules: lengths, value ranges, buffer doubling, defaults.</summary>
internal static unsafe partial class SocketCalls
{
    internal const int SOL_SOCKET = 1, IPPROTO_IP = 0;
    internal const int SO_REUSEADDR = 2, SO_TYPE = 3, SO_ERROR = 4, SO_DONTROUTE = 5, SO_BROADCAST = 6, SO_SNDBUF = 7,
        SO_RCVBUF = 8, SO_KEEPALIVE = 9, SO_OOBINLINE = 10, SO_PRIORITY = 12, SO_LINGER = 13, SO_REUSEPORT = 15,
        SO_RCVLOWAT = 18, SO_RCVTIMEO = 20, SO_SNDTIMEO = 21, SO_ACCEPTCONN = 30, SO_SNDBUFFORCE = 32,
        SO_RCVBUFFORCE = 33, SO_PROTOCOL = 38, SO_DOMAIN = 39;
    internal const int TCP_NODELAY = 1, TCP_MAXSEG = 2, TCP_CORK = 3, TCP_KEEPIDLE = 4, TCP_KEEPINTVL = 5,
        TCP_KEEPCNT = 6, TCP_SYNCNT = 7, TCP_LINGER2 = 8, TCP_DEFER_ACCEPT = 9, TCP_WINDOW_CLAMP = 10, TCP_INFO = 11,
        TCP_QUICKACK = 12, TCP_CONGESTION = 13, TCP_USER_TIMEOUT = 18;
    internal const int IP_TOS = 1, IP_TTL = 2, IP_RECVERR = 11, IP_FREEBIND = 15, IP_BIND_ADDRESS_NO_PORT = 24;

    // The kernel's minimums (SOCK_MIN_RCVBUF / SOCK_MIN_SNDBUF); the maximums are this machine's net.core.rmem_max /
    // wmem_max, read once, as the kernel clamps SO_RCVBUF / SO_SNDBUF to them.
    private const int MinRcvBuf = 2304, MinSndBuf = 4608;
    private static int RmemMax => BufferLimits.Rmem;
    private static int WmemMax => BufferLimits.Wmem;

    private static class BufferLimits
    {
        internal static readonly int Rmem = Read("/proc/sys/net/core/rmem_max");
        internal static readonly int Wmem = Read("/proc/sys/net/core/wmem_max");

        private static int Read(string path)
        {
            long v = 212992; // Linux's default, when the file cannot be read (or under the JIT in unit tests)
            try { v = Kernel.SysctlLong(path, v); }
            catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { }
            return (int)Math.Clamp(v, 2048, int.MaxValue / 2);
        }
    }
    private const int TcpInfoSize = 232, TcpStateClose = 7;

    internal static long SetSockOpt(int fd, int level, int name, byte* val, uint len)
    {
        if (FdTable.Get(fd) is not { } s) return -Errno.EBADF;
        // The common case (TCP_NODELAY on every accepted connection): an int option set to a value seen before on
        // sockets with the same options. Its checks passed when the step was remembered and depend only on (level,
        // name, value) (SocketOptions.Transition never answers for the IPv6 level, whose checks depend on the socket).
        // No socket lock: the options are swapped in one compare-and-swap (the full path swaps the same way,
        // so neither loses the other's change), and the stack gets what the socket holds when it is applied.
        if (len >= sizeof(int) && val != null)
        {
            SocketOptions before = s.Options;
            if (SocketOptions.Transition(before, level, name, *(int*)val) is { } known
                && System.Threading.Interlocked.CompareExchange(ref s.Options, known, before) == before)
                return s.Handle >= 0 ? ApplyToStack(s, level, name) : 0;
        }
        lock (s.Gate) return SetOption(s, level, name, val, len);
    }

    internal static long SetOption(UserSocket s, int level, int name, byte* val, uint len)
    {
        if (level == Inet6.IPPROTO_IPV6 && !s.Inet6) return -Errno.ENOPROTOOPT;
        long min = Kernel.SockoptMinLen(level, name);
        if (min < 0) return min;
        if (level == SOL_SOCKET && name is SO_ERROR or SO_TYPE or SO_DOMAIN or SO_PROTOCOL or SO_ACCEPTCONN)
            return -Errno.ENOPROTOOPT;
        if (level == IPPROTO_TCP && name == TCP_INFO) return -Errno.ENOPROTOOPT;
        if ((long)len < min) return -Errno.EINVAL;
        if (len > 0 && val == null) return -Errno.EFAULT;
        int v = min == sizeof(int) ? *(int*)val : 0;
        // The same option set to the same value on sockets with the same options (TCP_NODELAY on every accepted
        // connection) ends in the same shared object: remembered, so the common case neither copies nor interns.
        SocketOptions before = s.Options;
        if (min == sizeof(int) && SocketOptions.Transition(before, level, name, v) is { } known)
        {
            // Swapped like SetSockOpt's lock-free path does (a concurrent one there would otherwise be lost).
            if (System.Threading.Interlocked.CompareExchange(ref s.Options, known, before) != before)
                return SetOption(s, level, name, val, len);
            return s.Handle >= 0 ? ApplyToStack(s, level, name) : 0;
        }
        // Options objects are shared (interned) and never changed in place: work on a copy, then intern it.
        SocketOptions o = before with { };
        switch (level, name)
        {
            case (SOL_SOCKET, SO_REUSEADDR): o.ReuseAddress = v != 0; break;
            case (SOL_SOCKET, SO_REUSEPORT): o.ReusePort = v != 0; break;
            case (SOL_SOCKET, SO_KEEPALIVE): o.KeepAlive = v != 0; break;
            case (SOL_SOCKET, SO_OOBINLINE): o.OobInline = v != 0; break;
            case (SOL_SOCKET, SO_BROADCAST): o.Broadcast = v != 0; break;
            case (SOL_SOCKET, SO_DONTROUTE): o.DontRoute = v != 0; break;
            case (SOL_SOCKET, SO_PRIORITY):
                if ((uint)v > 6) return -Errno.EPERM;
                o.Priority = v; break;
            case (SOL_SOCKET, SO_RCVBUF) or (SOL_SOCKET, SO_RCVBUFFORCE):
                o.ReceiveBuffer = Math.Max(MinRcvBuf, (int)Math.Min((uint)Math.Max(v, 0), name == SO_RCVBUF ? RmemMax : int.MaxValue / 2) * 2);
                break;
            case (SOL_SOCKET, SO_SNDBUF) or (SOL_SOCKET, SO_SNDBUFFORCE):
                o.SendBuffer = Math.Max(MinSndBuf, (int)Math.Min((uint)Math.Max(v, 0), name == SO_SNDBUF ? WmemMax : int.MaxValue / 2) * 2);
                break;
            case (SOL_SOCKET, SO_RCVLOWAT): o.ReceiveLowWater = v <= 0 ? 1 : v; break;
            case (SOL_SOCKET, SO_LINGER):
                o.LingerOn = ((int*)val)[0] != 0;
                o.LingerSeconds = Math.Max(((int*)val)[1], 0);
                break;
            case (SOL_SOCKET, SO_RCVTIMEO) or (SOL_SOCKET, SO_SNDTIMEO):
            {
                long sec = ((long*)val)[0], usec = ((long*)val)[1];
                if (usec < 0 || usec >= 1_000_000) return -33; // EDOM, as Linux
                long us = sec < 0 ? 0 : sec * 1_000_000 + usec;
                if (name == SO_RCVTIMEO) o.ReceiveTimeoutUs = us; else o.SendTimeoutUs = us;
                break;
            }
            case (IPPROTO_TCP, TCP_NODELAY): o.NoDelay = v != 0; break;
            case (IPPROTO_TCP, TCP_CORK): o.Cork = v != 0; break;
            case (IPPROTO_TCP, TCP_QUICKACK): o.QuickAck = v != 0; break;
            case (IPPROTO_TCP, TCP_KEEPIDLE):
                if (v < 1 || v > 32767) return -Errno.EINVAL;
                o.KeepIdle = v; break;
            case (IPPROTO_TCP, TCP_KEEPINTVL):
                if (v < 1 || v > 32767) return -Errno.EINVAL;
                o.KeepInterval = v; break;
            case (IPPROTO_TCP, TCP_KEEPCNT):
                if (v < 1 || v > 127) return -Errno.EINVAL;
                o.KeepCount = v; break;
            case (IPPROTO_TCP, TCP_USER_TIMEOUT):
                if (v < 0) return -Errno.EINVAL;
                o.UserTimeout = v; break;
            case (IPPROTO_TCP, TCP_DEFER_ACCEPT): o.DeferAccept = Math.Max(v, 0); break;
            case (IPPROTO_TCP, TCP_MAXSEG):
                if (v != 0 && (v < 88 || v > 65535)) return -Errno.EINVAL;
                o.MaxSegment = v == 0 ? 536 : v; break;
            case (IPPROTO_TCP, TCP_SYNCNT):
                if (v < 1 || v > 127) return -Errno.EINVAL;
                o.SynCount = v; break;
            case (IPPROTO_TCP, TCP_LINGER2): o.Linger2 = v; break;
            case (IPPROTO_TCP, TCP_WINDOW_CLAMP): o.WindowClamp = Math.Max(v, 0); break;
            case (IPPROTO_TCP, TCP_CONGESTION):
            {
                int n = 0;
                while (n < (int)len && n < 16 && val[n] != 0) n++;
                string algo = Encoding.ASCII.GetString(val, n);
                if (algo is not ("cubic" or "reno")) return -Errno.ENOENT;
                o.Congestion = algo;
                break;
            }
            case (IPPROTO_IP, IP_TOS): o.Tos = v & 0xFC; break;
            case (IPPROTO_IP, IP_TTL):
                if (v == -1) v = 64;
                if (v < 1 || v > 255) return -Errno.EINVAL;
                o.Ttl = v; break;
            case (IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT): o.BindAddressNoPort = v != 0; break;
            case (IPPROTO_IP, IP_FREEBIND): o.FreeBind = v != 0; break;
            case (IPPROTO_IP, IP_RECVERR): o.RecvErr = v != 0; break;
            // Only 0 reaches here: 1 moves the socket to the kernel first (cshim/inet6.c). Fixed once bound.
            case (Inet6.IPPROTO_IPV6, Inet6.IPV6_V6ONLY):
                if (s.Bound) return -Errno.EINVAL;
                if (v != 0) return -Errno.EAFNOSUPPORT;
                break;
            case (Inet6.IPPROTO_IPV6, Inet6.IPV6_TCLASS):
                if (v < -1 || v > 0xff) return -Errno.EINVAL;
                o.TClass = v == -1 ? 0 : v & 0xFC; // TCP keeps the ECN bits its own (Linux)
                break;
            default: return -Errno.ENOPROTOOPT;
        }
        SocketOptions after = SocketOptions.Intern(o);
        if (System.Threading.Interlocked.CompareExchange(ref s.Options, after, before) != before)
            return SetOption(s, level, name, val, len); // a lock-free setsockopt changed them meanwhile: again
        if (min == sizeof(int)) SocketOptions.RememberTransition(before, level, name, v, after);
        return s.Handle >= 0 ? ApplyToStack(s, level, name) : 0;
    }

    /// <summary>Hands an option the stack acts on to it (the socket's value lives here; the stack gets units it uses).</summary>
    internal static long ApplyToStack(UserSocket s, int level, int name)
    {
        SocketOptions o = s.Options;
        (SocketOption opt, long value) = (level, name) switch
        {
            (IPPROTO_TCP, TCP_NODELAY) => (SocketOption.NoDelay, o.NoDelay ? 1L : 0L),
            (IPPROTO_TCP, TCP_CORK) => (SocketOption.Cork, o.Cork ? 1L : 0L),
            (SOL_SOCKET, SO_KEEPALIVE) => (SocketOption.KeepAlive, o.KeepAlive ? 1L : 0L),
            (IPPROTO_TCP, TCP_KEEPIDLE) => (SocketOption.KeepIdleUs, o.KeepIdle * 1_000_000L),
            (IPPROTO_TCP, TCP_KEEPINTVL) => (SocketOption.KeepIntervalUs, o.KeepInterval * 1_000_000L),
            (IPPROTO_TCP, TCP_KEEPCNT) => (SocketOption.KeepCount, (long)o.KeepCount),
            (IPPROTO_TCP, TCP_USER_TIMEOUT) => (SocketOption.UserTimeoutUs, o.UserTimeout * 1000L),
            (SOL_SOCKET, SO_LINGER) => (SocketOption.LingerUs, o.LingerOn ? o.LingerSeconds * 1_000_000L : -1L),
            (SOL_SOCKET, SO_SNDBUF) or (SOL_SOCKET, SO_SNDBUFFORCE) => (SocketOption.SendBufferSize, (long)o.SendBuffer),
            (SOL_SOCKET, SO_RCVBUF) or (SOL_SOCKET, SO_RCVBUFFORCE) => (SocketOption.ReceiveBufferSize, (long)o.ReceiveBuffer),
            _ => ((SocketOption)(-1), 0L),
        };
        if ((int)opt < 0) return 0;
        using (Engine.Gate.EnterScope())
        {
            // In an event round what pulling the cork (or turning Nagle off) sends leaves with the round's burst,
            // as a reply written in the round does (nginx's tcp_nopush uncorks once per response).
            Engine.Stack.DeferFlush = Engine.InRoundLocked;
            SocketError e = Engine.Stack.SetOption(s.Handle, opt, value);
            Engine.Stack.DeferFlush = false;
            Engine.Edges.Instance.Forget(s.Handle); // a buffer size can change writability without a report
            // Buffer sizes the stack cannot honour on a live connection keep the old size, as Linux does silently.
            return e is SocketError.Success or SocketError.NotSupported or SocketError.InvalidArgument
                && opt is SocketOption.SendBufferSize or SocketOption.ReceiveBufferSize ? 0 : -ErrnoMap.From(e);
        }
    }

    internal static long GetSockOpt(int fd, int level, int name, byte* val, uint* len)
    {
        if (FdTable.Get(fd) is not { } s) return -Errno.EBADF;
        if (len == null) return -Errno.EFAULT;
        if ((int)*len < 0) return -Errno.EINVAL;
        if (level == Inet6.IPPROTO_IPV6 && !s.Inet6) return -Errno.EOPNOTSUPP; // Linux ip_getsockopt
        long min = Kernel.SockoptMinLen(level, name);
        if (min < 0) return min == -Errno.EOPNOTSUPP ? -Errno.ENOPROTOOPT : min;
        // Options with an int value (SO_ERROR after every non-blocking connect, ...): no 232-byte buffer to clear.
        if (TryGetIntOption(s, level, name, out int iv))
        {
            uint n = Math.Min(*len, (uint)sizeof(int));
            if (n > 0 && val == null) return -Errno.EFAULT;
            if (n == sizeof(int)) *(int*)val = iv; // little-endian, as the kernel copies it
            else for (int i = 0; i < (int)n; i++) val[i] = (byte)(iv >> (8 * i));
            *len = n;
            return 0;
        }
        return GetWideOption(s, level, name, val, len);
    }

    /// <summary>getsockopt of an option whose value is an int: false for the others (and unknown ones).</summary>
    private static bool TryGetIntOption(UserSocket s, int level, int name, out int iv)
    {
        SocketOptions o = s.Options;
        iv = 0;
        // No socket lock: the options are one immutable object read once above; what the stack holds is read under
        // the stack's lock, with the socket's handle (which only changes under that lock: shutdown of a listener,
        // the last close).
        switch (level, name)
        {
            case (SOL_SOCKET, SO_REUSEADDR): iv = o.ReuseAddress ? 1 : 0; return true;
            case (SOL_SOCKET, SO_REUSEPORT): iv = o.ReusePort ? 1 : 0; return true;
            case (SOL_SOCKET, SO_KEEPALIVE): iv = o.KeepAlive ? 1 : 0; return true;
            case (SOL_SOCKET, SO_OOBINLINE): iv = o.OobInline ? 1 : 0; return true;
            case (SOL_SOCKET, SO_BROADCAST): iv = o.Broadcast ? 1 : 0; return true;
            case (SOL_SOCKET, SO_DONTROUTE): iv = o.DontRoute ? 1 : 0; return true;
            case (SOL_SOCKET, SO_PRIORITY): iv = o.Priority; return true;
            case (SOL_SOCKET, SO_RCVBUF): iv = o.ReceiveBuffer; return true;
            case (SOL_SOCKET, SO_SNDBUF): iv = o.SendBuffer; return true;
            case (SOL_SOCKET, SO_RCVLOWAT): iv = o.ReceiveLowWater; return true;
            case (SOL_SOCKET, SO_ERROR):
                using (Engine.Gate.EnterScope())
                {
                    if (s.Handle < 0) return true;
                    Engine.Stack.GetError(s.Handle, out SocketError err);
                    iv = ErrnoMap.From(err);
                }
                return true;
            case (SOL_SOCKET, SO_TYPE): iv = SOCK_STREAM; return true;
            case (SOL_SOCKET, SO_DOMAIN): iv = s.Inet6 ? Inet6.AF_INET6 : AF_INET; return true;
            case (SOL_SOCKET, SO_PROTOCOL): iv = IPPROTO_TCP; return true;
            case (SOL_SOCKET, SO_ACCEPTCONN): iv = s.State == SocketState.Listening ? 1 : 0; return true;
            case (IPPROTO_TCP, TCP_NODELAY): iv = o.NoDelay ? 1 : 0; return true;
            case (IPPROTO_TCP, TCP_CORK): iv = o.Cork ? 1 : 0; return true;
            case (IPPROTO_TCP, TCP_QUICKACK): iv = o.QuickAck ? 1 : 0; return true;
            case (IPPROTO_TCP, TCP_KEEPIDLE): iv = o.KeepIdle; return true;
            case (IPPROTO_TCP, TCP_KEEPINTVL): iv = o.KeepInterval; return true;
            case (IPPROTO_TCP, TCP_KEEPCNT): iv = o.KeepCount; return true;
            case (IPPROTO_TCP, TCP_USER_TIMEOUT): iv = o.UserTimeout; return true;
            case (IPPROTO_TCP, TCP_DEFER_ACCEPT): iv = o.DeferAccept; return true;
            case (IPPROTO_TCP, TCP_MAXSEG):
                iv = o.MaxSegment;
                if (s.State == SocketState.Connected)
                    using (Engine.Gate.EnterScope())
                        if (s.Handle >= 0 && Engine.Stack.GetConnection(s.Handle) is { } c) iv = c.SendMss;
                return true;
            case (IPPROTO_TCP, TCP_SYNCNT): iv = o.SynCount; return true;
            case (IPPROTO_TCP, TCP_LINGER2): iv = o.Linger2; return true;
            case (IPPROTO_TCP, TCP_WINDOW_CLAMP): iv = o.WindowClamp; return true;
            case (IPPROTO_IP, IP_TOS): iv = o.Tos; return true;
            case (IPPROTO_IP, IP_TTL): iv = o.Ttl; return true;
            case (IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT): iv = o.BindAddressNoPort ? 1 : 0; return true;
            case (IPPROTO_IP, IP_FREEBIND): iv = o.FreeBind ? 1 : 0; return true;
            case (IPPROTO_IP, IP_RECVERR): iv = o.RecvErr ? 1 : 0; return true;
            case (Inet6.IPPROTO_IPV6, Inet6.IPV6_V6ONLY): iv = 0; return true;
            case (Inet6.IPPROTO_IPV6, Inet6.IPV6_TCLASS): iv = o.TClass; return true;
            default: return false;
        }
    }

    /// <summary>getsockopt of the options that are not an int (a struct, a name, TCP_INFO), and of unknown ones.</summary>
    private static long GetWideOption(UserSocket s, int level, int name, byte* val, uint* len)
    {
        SocketOptions o = s.Options;
        Span<byte> out8 = stackalloc byte[TcpInfoSize];
        out8.Clear();
        int size;
        switch (level, name)
        {
            case (SOL_SOCKET, SO_LINGER):
                size = 8;
                BitConverter.TryWriteBytes(out8, o.LingerOn ? 1 : 0);
                BitConverter.TryWriteBytes(out8[4..], o.LingerSeconds);
                break;
            case (SOL_SOCKET, SO_RCVTIMEO) or (SOL_SOCKET, SO_SNDTIMEO):
            {
                size = 16;
                long us = name == SO_RCVTIMEO ? o.ReceiveTimeoutUs : o.SendTimeoutUs;
                BitConverter.TryWriteBytes(out8, us / 1_000_000);
                BitConverter.TryWriteBytes(out8[8..], us % 1_000_000);
                break;
            }
            case (IPPROTO_TCP, TCP_INFO):
                size = TcpInfoSize;
                using (Engine.Gate.EnterScope()) TcpInfo.Fill(s, out8);
                break;
            case (IPPROTO_TCP, TCP_CONGESTION):
                size = 16;
                Encoding.ASCII.GetBytes(o.Congestion, out8);
                break;
            default: return -Errno.ENOPROTOOPT;
        }
        uint n = Math.Min(*len, (uint)size);
        if (n > 0 && val == null) return -Errno.EFAULT;
        out8[..(int)n].CopyTo(new Span<byte>(val, (int)n));
        *len = n;
        return 0;
    }
}
