using System;
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using UserTcp.Interpose.Native;

namespace UserTcp.Interpose;

/// <summary>
/// POSIX socket calls on user-stack fds. Every method returns &gt;= 0 or -errno (see <see cref="Errno"/>); the C
/// shim sets errno. Pointers come straight from the application and are checked here (EFAULT), never trusted.
///
/// Scope today: the socket's life cycle and options, with the kernel's semantics for a socket that is not connected.
/// Connections need the user-level stack attached to a device (stack/, DPDK); until then connect() reports
/// ENETUNREACH and says why in the log.
/// </summary>
internal static unsafe partial class SocketCalls
{
    internal const int AF_INET = 2, AF_UNSPEC = 0, SOCK_STREAM = 1, IPPROTO_TCP = 6;
    internal const int SOCK_NONBLOCK = 0x800, SOCK_CLOEXEC = 0x80000, O_NONBLOCK = 0x800, O_RDWR = 2, O_CLOEXEC = 0x80000;
    internal const int MSG_PEEK = 0x2, MSG_DONTWAIT = 0x40, MSG_WAITALL = 0x100, MSG_NOSIGNAL = 0x4000;

    /// <summary>This process's interface address (host order), from the configuration.</summary>
    internal static uint LocalInterfaceAddress;
    private static int s_warnedNoDevice;

    internal static long Socket(int domain, int type, int protocol)
    {
        if (domain != AF_INET) return -Errno.EAFNOSUPPORT;
        if ((type & ~(0xf | SOCK_NONBLOCK | SOCK_CLOEXEC)) != 0) return -Errno.EINVAL;
        if ((type & 0xf) != SOCK_STREAM || (protocol != 0 && protocol != IPPROTO_TCP)) return -Errno.EPROTONOSUPPORT;
        var s = new UserSocket { Refs = 1, NonBlocking = (type & SOCK_NONBLOCK) != 0 };
        long fd = Kernel.FdAlloc(0, (type & SOCK_CLOEXEC) != 0 ? 1 : 0);
        if (fd < 0) return fd;
        FdTable.Set((int)fd, s);
        return fd;
    }

    internal static long Bind(int fd, SockAddrIn* addr, uint len)
    {
        if (FdTable.Get(fd) is not { } s) return -Errno.EBADF;
        if (addr == null) return -Errno.EFAULT;
        if (len < (uint)sizeof(SockAddrIn)) return -Errno.EINVAL;
        if (addr->Family != AF_INET) return -Errno.EAFNOSUPPORT;
        uint ip = BinaryPrimitives.ReverseEndianness(addr->AddrBE);
        ushort port = BinaryPrimitives.ReverseEndianness(addr->PortBE);
        lock (s.Gate)
        {
            if (s.Bound) return -Errno.EINVAL;
            if (ip != 0 && ip != LocalInterfaceAddress) return -Errno.EADDRNOTAVAIL;
            return port == 0 ? AutoBind(s, ip) : BindTo(s, ip, port);
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
            if (BindTo(s, ip, port) == 0) return 0;
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

    internal static long Listen(int fd, int backlog)
    {
        if (FdTable.Get(fd) is not { } s) return -Errno.EBADF;
        lock (s.Gate)
        {
            if (!s.Bound)
            {
                long r = AutoBind(s, 0);
                if (r < 0) return r;
            }
            if ((uint)backlog > 4096) backlog = 4096; // net.core.somaxconn
            s.Backlog = backlog;
            s.State = SocketState.Listening;
            s.Changed();
        }
        return 0;
    }

    internal static long Accept(int fd, SockAddrIn* addr, uint* len, int flags)
    {
        if (FdTable.Get(fd) is not { } s) return -Errno.EBADF;
        if ((flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)) != 0) return -Errno.EINVAL;
        if (s.State != SocketState.Listening) return -Errno.EINVAL;
        // No connection can arrive until the stack is attached to a device: behave as a kernel listener nobody
        // connects to. Blocking callers sleep until a signal interrupts them.
        if (s.NonBlocking) return -Errno.EAGAIN;
        long r = Kernel.PPoll(null, 0, -1, null);
        return r < 0 ? r : -Errno.EINTR;
    }

    internal static long Connect(int fd, SockAddrIn* addr, uint len)
    {
        if (FdTable.Get(fd) is not { } s) return -Errno.EBADF;
        if (addr == null) return -Errno.EFAULT;
        if (len < sizeof(ushort)) return -Errno.EINVAL;
        if (addr->Family == AF_UNSPEC) return 0;
        if (len < (uint)sizeof(SockAddrIn)) return -Errno.EINVAL;
        if (addr->Family != AF_INET) return -Errno.EAFNOSUPPORT;
        if (s.State == SocketState.Listening) return -Errno.EISCONN;
        if (System.Threading.Interlocked.Exchange(ref s_warnedNoDevice, 1) == 0)
            Kernel.Log(1, "connect: the user-level stack has no network device attached in this build; " +
                          "reporting ENETUNREACH (see docs/architecture.md)");
        return -Errno.ENETUNREACH;
    }

    internal static long Shutdown(int fd, int how)
    {
        if (FdTable.Get(fd) is not { } s) return -Errno.EBADF;
        if ((uint)how > 2) return -Errno.EINVAL;
        lock (s.Gate)
        {
            if (s.State == SocketState.Listening)
            {
                if (how != 1) { s.State = SocketState.Unconnected; s.Changed(); }
                return 0;
            }
            // Linux records the shutdown even on a socket that is not connected, then reports ENOTCONN.
            s.ShutdownBits |= how + 1;
            s.Changed();
            return -Errno.ENOTCONN;
        }
    }

    internal static long GetSockName(int fd, SockAddrIn* addr, uint* len)
    {
        if (FdTable.Get(fd) is not { } s) return -Errno.EBADF;
        return CopyAddress(s.LocalAddress, s.LocalPort, addr, len);
    }

    internal static long GetPeerName(int fd, SockAddrIn* addr, uint* len)
    {
        if (FdTable.Get(fd) is null) return -Errno.EBADF;
        return -Errno.ENOTCONN;
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

    // ---- data ----------------------------------------------------------------------------------------------------

    internal static long Receive(int fd, int flags)
    {
        if (FdTable.Get(fd) is not { } s) return -Errno.EBADF;
        if (s.State == SocketState.Listening) return -Errno.ENOTCONN;
        return (s.ShutdownBits & 1) != 0 ? 0 : -Errno.ENOTCONN;
    }

    internal static long Send(int fd, int flags)
    {
        if (FdTable.Get(fd) is null) return -Errno.EBADF;
        // Linux: sending on a TCP socket that is not connected fails with EPIPE and raises SIGPIPE.
        if ((flags & MSG_NOSIGNAL) == 0) Kernel.RaiseSigpipe();
        return -Errno.EPIPE;
    }

    internal static long CheckIov(void* iov, int count)
    {
        if (count < 0 || count > 1024) return -Errno.EINVAL;
        if (count > 0 && iov == null) return -Errno.EFAULT;
        return 0;
    }
}
