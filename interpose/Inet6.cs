using System;
using System.Threading;
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using UserTcp.Interpose.Native;

namespace UserTcp.Interpose;

/// <summary>sockaddr_in6 as Linux lays it out (28 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct SockAddrIn6
{
    public ushort Family;
    public ushort PortBE;
    public uint FlowInfo;
    public fixed byte Addr[16];
    public uint ScopeId;
}

/// <summary>
/// AF_INET6 sockets on the user-level stack. The stack carries IPv4 only, so a user-stack AF_INET6 socket is always a
/// dual-stack one (IPV6_V6ONLY 0, the Linux default while net.ipv6.bindv6only is 0) that talks IPv4 through
/// IPv4-mapped addresses (::ffff:a.b.c.d), as the kernel does for such a socket. The moment a socket would need
/// IPv6 itself (IPV6_V6ONLY set to 1, a bind to or a connect to an address that is not IPv4-mapped) it is handed to
/// the kernel: a kernel AF_INET6 socket with the same options (and the same port, when bound) takes its fd number,
/// and the call runs there (<see cref="Divert"/>, cshim/inet6.c).
/// </summary>
internal static unsafe partial class Inet6
{
    internal const int AF_INET6 = 10, IPPROTO_IPV6 = 41, IPV6_V6ONLY = 26, IPV6_TCLASS = 67;
    /// <summary>SIN6_LEN_RFC2133: the shortest sockaddr_in6 Linux takes (without sin6_scope_id).</summary>
    internal const uint MinLength = 24;

    internal enum Kind { Any, Mapped, Native }

    /// <summary>What an IPv6 address is to this stack: the unspecified address, an IPv4-mapped one (ip = the IPv4
    /// address, host order), or a native IPv6 address the stack cannot carry.</summary>
    internal static Kind Classify(SockAddrIn6* a, out uint ip)
    {
        ulong hi = *(ulong*)a->Addr;
        uint w2 = *(uint*)(a->Addr + 8), w3 = *(uint*)(a->Addr + 12);
        ip = BinaryPrimitives.ReverseEndianness(w3);
        if (hi == 0 && w2 == 0 && w3 == 0) return Kind.Any;
        if (hi == 0 && w2 == BinaryPrimitives.ReverseEndianness(0xffffu)) return Kind.Mapped;
        ip = 0;
        return Kind.Native;
    }

    /// <summary>bind(2) address checks for an AF_INET6 socket (Linux inet6_bind): the IPv4 address and port to bind
    /// and whether the address is IPv4-mapped, or -errno.</summary>
    internal static long ParseBind(SockAddrIn* addr, uint len, out uint ip, out ushort port, out bool mapped)
    {
        ip = 0;
        port = 0;
        mapped = false;
        if (len < MinLength) return -Errno.EINVAL;
        var a = (SockAddrIn6*)addr;
        if (a->Family != AF_INET6) return -Errno.EAFNOSUPPORT;
        port = BinaryPrimitives.ReverseEndianness(a->PortBE);
        // A native address gets here only when the socket could not move to the kernel (cshim/inet6.c): it is never
        // this stack's (EADDRNOTAVAIL, or EINVAL when already bound, from the caller's checks).
        Kind kind = Classify(a, out ip);
        mapped = kind == Kind.Mapped;
        if (kind == Kind.Native) ip = uint.MaxValue;
        return 0;
    }

    /// <summary>connect(2) address checks for an AF_INET6 socket (Linux tcp_v6_connect): the IPv4 peer, or -errno.</summary>
    internal static long ParseConnect(SockAddrIn* addr, uint len, out uint ip, out ushort port)
    {
        ip = 0;
        port = 0;
        if (len < MinLength) return -Errno.EINVAL;
        var a = (SockAddrIn6*)addr;
        if (a->Family != AF_INET6) return -Errno.EAFNOSUPPORT;
        port = BinaryPrimitives.ReverseEndianness(a->PortBE);
        return Classify(a, out ip) == Kind.Mapped ? 0 : -Errno.ENETUNREACH;
    }

    /// <summary>Writes a sockaddr_in6 for an IPv4 endpoint: ::ffff:a.b.c.d, or :: when <paramref name="any"/>
    /// (a socket bound to the unspecified address, or not bound). Truncates to *len like the kernel.</summary>
    internal static long Copy(uint ip, ushort port, bool any, SockAddrIn* addr, uint* len)
    {
        if (addr == null || len == null) return -Errno.EFAULT;
        if ((int)*len < 0) return -Errno.EINVAL;
        SockAddrIn6 a = default;
        a.Family = AF_INET6;
        a.PortBE = BinaryPrimitives.ReverseEndianness(port);
        if (!any)
        {
            *(uint*)(a.Addr + 8) = BinaryPrimitives.ReverseEndianness(0xffffu);
            *(uint*)(a.Addr + 12) = BinaryPrimitives.ReverseEndianness(ip);
        }
        uint n = Math.Min(*len, (uint)sizeof(SockAddrIn6));
        Buffer.MemoryCopy(&a, addr, n, n);
        *len = (uint)sizeof(SockAddrIn6);
        return 0;
    }

    /// <summary>getsockname for an AF_INET6 socket.</summary>
    internal static long CopyLocal(UserSocket s, SockAddrIn* addr, uint* len) =>
        Copy(s.LocalAddress, s.LocalPort, s.LocalAddress == 0 && !s.BoundMapped, addr, len);

    /// <summary>
    /// Hands fd's socket to the kernel (see the class summary); a bound one only when <paramref name="boundOk"/> (the
    /// kernel socket is bound to the same port). 0: done, the caller repeats its call on the kernel
    /// socket; 1: not applicable here (not an AF_INET6 user socket, or not in a state the kernel would let change:
    /// the caller goes on with the user-stack call, which reports the kernel's error); &lt; 0: -errno.
    /// </summary>
    internal static long Divert(int fd, string why, bool boundOk)
    {
        if (FdTable.Get(fd) is not { } s) return -Errno.EBADF;
        lock (s.Gate)
        {
            if (!s.Inet6 || s.State != SocketState.Unconnected || (s.Bound && !boundOk)) return 1;
            // Take the only reference (a dup racing this takes none: it checks the count without this lock).
            if (Interlocked.CompareExchange(ref s.Refs, 0, 1) != 1)
            {
                Kernel.Log(1, $"fd {fd}: an IPv6 socket with more than one fd ({why}) cannot move to the kernel");
                return -Errno.EAFNOSUPPORT;
            }
            SocketOptions o = s.Options;
            int* opts = stackalloc int[3 * 12];
            int n = 0;
            static void Add(int level, int name, int value, int* p, ref int k)
            {
                p[3 * k] = level; p[3 * k + 1] = name; p[3 * k + 2] = value; k++;
            }
            if (o.ReuseAddress) Add(SocketCalls.SOL_SOCKET, SocketCalls.SO_REUSEADDR, 1, opts, ref n);
            if (o.ReusePort) Add(SocketCalls.SOL_SOCKET, SocketCalls.SO_REUSEPORT, 1, opts, ref n);
            if (o.KeepAlive) Add(SocketCalls.SOL_SOCKET, SocketCalls.SO_KEEPALIVE, 1, opts, ref n);
            if (o.NoDelay) Add(SocketCalls.IPPROTO_TCP, SocketCalls.TCP_NODELAY, 1, opts, ref n);
            if (o.Cork) Add(SocketCalls.IPPROTO_TCP, SocketCalls.TCP_CORK, 1, opts, ref n);
            if (o.FreeBind) Add(SocketCalls.IPPROTO_IP, SocketCalls.IP_FREEBIND, 1, opts, ref n);
            if (o.TClass != 0) Add(IPPROTO_IPV6, IPV6_TCLASS, o.TClass, opts, ref n);
            if (o.DeferAccept != 0) Add(SocketCalls.IPPROTO_TCP, SocketCalls.TCP_DEFER_ACCEPT, o.DeferAccept, opts, ref n);
            if (o.ReceiveBuffer != SocketOptions.Default.ReceiveBuffer) Add(SocketCalls.SOL_SOCKET, SocketCalls.SO_RCVBUF, o.ReceiveBuffer / 2, opts, ref n);
            if (o.SendBuffer != SocketOptions.Default.SendBuffer) Add(SocketCalls.SOL_SOCKET, SocketCalls.SO_SNDBUF, o.SendBuffer / 2, opts, ref n);
            long r = K.ToKernel(fd, s.NonBlocking ? 1 : 0, s.Bound ? s.LocalPort : 0, opts, n);
            if (r < 0)
            {
                Volatile.Write(ref s.Refs, 1);
                Kernel.Log(1, $"fd {fd}: an IPv6 socket ({why}) could not move to the kernel: errno {-r}");
                return -Errno.EAFNOSUPPORT;
            }
            FdTable.Remove(fd);
        }
        // As the last close does it, outside the socket's lock (its epoll registrations go: the kernel socket is not
        // in those sets, docs/compatibility.md).
        Descriptors.ReleaseLast(s);
        Kernel.Log(3, $"fd {fd}: IPv6 socket handed to the kernel ({why}): usertcp carries IPv4 only");
        return 0;
    }

    private static partial class K
    {
        [LibraryImport("cshim", EntryPoint = "k_inet6_to_kernel")]
        internal static partial nint ToKernel(int fd, int nonblock, int port, int* opts, int nopts);
    }
}
