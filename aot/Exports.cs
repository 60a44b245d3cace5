using System;
using UserTcp.Interpose;
using UserTcp.Interpose.Native;
using System.Runtime.InteropServices;

namespace UserTcp.Aot;

/// <summary>struct mmsghdr.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct MMsgHdr
{
    public MsgHdr Header;
    public uint Length;
}


/// <summary>
/// The managed entry points the C shim calls (cshim/managed.h). Each one marshals nothing it does not have to, calls
/// interpose/, and returns &gt;= 0 or -errno. No exception ever crosses into C: it is logged and becomes EIO (ENOMEM
/// for an allocation failure).
/// </summary>
internal static unsafe class Exports
{
    private static long Fail(Exception e, string where)
    {
        try { Kernel.Log(0, $"internal error in {where}: {e}"); } catch { }
        return e is OutOfMemoryException ? -Errno.ENOMEM : -Errno.EIO;
    }

    [UnmanagedCallersOnly(EntryPoint = "ut_m_init")]
    internal static int Init(Handover* h)
    {
        try { return (int)Runtime.Start(h); } catch (Exception e) { return (int)Fail(e, "init"); }
    }

    [UnmanagedCallersOnly(EntryPoint = "ut_m_exit")]
    internal static void Exit()
    {
        try { Engine.Shutdown(); } catch (Exception e) { Fail(e, "exit"); }
    }

    [UnmanagedCallersOnly(EntryPoint = "ut_m_socket")]
    internal static nint Socket(int domain, int type, int protocol)
    {
        try { return (nint)SocketCalls.Socket(domain, type, protocol); } catch (Exception e) { return (nint)Fail(e, "socket"); }
    }

    [UnmanagedCallersOnly(EntryPoint = "ut_m_read")]
    internal static nint Read(int fd, byte* buf, nuint n)
    {
        try { return (nint)SocketCalls.Receive1(fd, buf, n, 0); } catch (Exception e) { return (nint)Fail(e, "read"); }
    }

    [UnmanagedCallersOnly(EntryPoint = "ut_m_write")]
    internal static nint Write(int fd, byte* buf, nuint n)
    {
        try { return (nint)SocketCalls.Send1(fd, buf, n, 0); } catch (Exception e) { return (nint)Fail(e, "write"); }
    }

    [UnmanagedCallersOnly(EntryPoint = "ut_m_readv")]
    internal static nint Readv(int fd, IoVec* iov, int count)
    {
        try { return (nint)SocketCalls.Receive(fd, iov, count, 0); } catch (Exception e) { return (nint)Fail(e, "readv"); }
    }

    [UnmanagedCallersOnly(EntryPoint = "ut_m_writev")]
    internal static nint Writev(int fd, IoVec* iov, int count)
    {
        try { return (nint)SocketCalls.Send(fd, iov, count, 0); } catch (Exception e) { return (nint)Fail(e, "writev"); }
    }

    [UnmanagedCallersOnly(EntryPoint = "ut_m_recvfrom")]
    internal static nint RecvFrom(int fd, byte* buf, nuint n, int flags, SockAddrIn* addr, uint* len)
    {
        try
        {
            long r = SocketCalls.Receive1(fd, buf, n, flags, zeroLengthWaits: true);
            if (r >= 0 && addr != null && len != null) *len = 0; // TCP reports no source address per read (Linux)
            return (nint)r;
        }
        catch (Exception e) { return (nint)Fail(e, "recvfrom"); }
    }

    [UnmanagedCallersOnly(EntryPoint = "ut_m_sendto")]
    internal static nint SendTo(int fd, byte* buf, nuint n, int flags, SockAddrIn* addr, uint len)
    {
        try { return (nint)SocketCalls.Send1(fd, buf, n, flags); } catch (Exception e) { return (nint)Fail(e, "sendto"); }
    }

    [UnmanagedCallersOnly(EntryPoint = "ut_m_recvmsg")]
    internal static nint RecvMsg(int fd, MsgHdr* msg, int flags)
    {
        try { return (nint)SocketCalls.ReceiveMsg(fd, msg, flags); } catch (Exception e) { return (nint)Fail(e, "recvmsg"); }
    }

    [UnmanagedCallersOnly(EntryPoint = "ut_m_sendmsg")]
    internal static nint SendMsg(int fd, MsgHdr* msg, int flags)
    {
        try { return (nint)SocketCalls.SendMsg(fd, msg, flags); } catch (Exception e) { return (nint)Fail(e, "sendmsg"); }
    }

    [UnmanagedCallersOnly(EntryPoint = "ut_m_recvmmsg")]
    internal static nint RecvMMsg(int fd, MMsgHdr* vec, uint vlen, int flags, void* timeout)
    {
        try
        {
            if (vec == null && vlen > 0) return -Errno.EFAULT;
            int done = 0;
            for (uint i = 0; i < vlen; i++)
            {
                long r = SocketCalls.ReceiveMsg(fd, &vec[i].Header, done > 0 ? flags | SocketCalls.MSG_DONTWAIT : flags);
                if (r < 0) return done > 0 ? done : (nint)r;
                vec[i].Length = (uint)r;
                done++;
                if (r == 0) break;
            }
            return done;
        }
        catch (Exception e) { return (nint)Fail(e, "recvmmsg"); }
    }

    [UnmanagedCallersOnly(EntryPoint = "ut_m_sendmmsg")]
    internal static nint SendMMsg(int fd, MMsgHdr* vec, uint vlen, int flags)
    {
        try
        {
            if (vec == null && vlen > 0) return -Errno.EFAULT;
            int done = 0;
            for (uint i = 0; i < vlen; i++)
            {
                long r = SocketCalls.SendMsg(fd, &vec[i].Header, flags);
                if (r < 0) return done > 0 ? done : (nint)r;
                vec[i].Length = (uint)r;
                done++;
            }
            return done;
        }
        catch (Exception e) { return (nint)Fail(e, "sendmmsg"); }
    }

    [UnmanagedCallersOnly(EntryPoint = "ut_m_sendfile")]
    internal static nint SendFile(int outFd, int inFd, long* offset, nuint count)
    {
        try { return (nint)SocketCalls.SendFile(outFd, inFd, offset, count); } catch (Exception e) { return (nint)Fail(e, "sendfile"); }
    }

    [UnmanagedCallersOnly(EntryPoint = "ut_m_accept4")]
    internal static nint Accept4(int fd, SockAddrIn* addr, uint* len, int flags)
    {
        try { return (nint)SocketCalls.Accept(fd, addr, len, flags); } catch (Exception e) { return (nint)Fail(e, "accept"); }
    }

    [UnmanagedCallersOnly(EntryPoint = "ut_m_connect")]
    internal static nint Connect(int fd, SockAddrIn* addr, uint len)
    {
        try { return (nint)SocketCalls.Connect(fd, addr, len); } catch (Exception e) { return (nint)Fail(e, "connect"); }
    }

    [UnmanagedCallersOnly(EntryPoint = "ut_m_inet6_divert")]
    internal static nint Inet6Divert(int fd, byte* why, int boundOk)
    {
        try { return (nint)Inet6.Divert(fd, new string((sbyte*)why), boundOk != 0); } catch (Exception e) { return (nint)Fail(e, "inet6 divert"); }
    }

    [UnmanagedCallersOnly(EntryPoint = "ut_m_bind")]
    internal static nint Bind(int fd, SockAddrIn* addr, uint len)
    {
        try { return (nint)SocketCalls.Bind(fd, addr, len); } catch (Exception e) { return (nint)Fail(e, "bind"); }
    }

    [UnmanagedCallersOnly(EntryPoint = "ut_m_listen")]
    internal static nint Listen(int fd, int backlog)
    {
        try { return (nint)SocketCalls.Listen(fd, backlog); } catch (Exception e) { return (nint)Fail(e, "listen"); }
    }

    [UnmanagedCallersOnly(EntryPoint = "ut_m_shutdown")]
    internal static nint Shutdown(int fd, int how)
    {
        try { return (nint)SocketCalls.Shutdown(fd, how); } catch (Exception e) { return (nint)Fail(e, "shutdown"); }
    }

    [UnmanagedCallersOnly(EntryPoint = "ut_m_close")]
    internal static nint Close(int fd)
    {
        try { return (nint)Descriptors.Close(fd); } catch (Exception e) { return (nint)Fail(e, "close"); }
    }

    [UnmanagedCallersOnly(EntryPoint = "ut_m_dup")]
    internal static nint Dup(int fd, int minFd, int cloexec)
    {
        try { return (nint)Descriptors.Dup(fd, minFd, cloexec != 0); } catch (Exception e) { return (nint)Fail(e, "dup"); }
    }

    [UnmanagedCallersOnly(EntryPoint = "ut_m_dup3")]
    internal static nint Dup3(int fd, int fd2, int flags)
    {
        try { return (nint)Descriptors.Dup3(fd, fd2, flags); } catch (Exception e) { return (nint)Fail(e, "dup3"); }
    }

    [UnmanagedCallersOnly(EntryPoint = "ut_m_fcntl")]
    internal static nint Fcntl(int fd, int cmd, nint arg)
    {
        try { return (nint)Descriptors.Fcntl(fd, cmd, arg); } catch (Exception e) { return (nint)Fail(e, "fcntl"); }
    }

    [UnmanagedCallersOnly(EntryPoint = "ut_m_ioctl")]
    internal static nint Ioctl(int fd, nuint request, void* arg)
    {
        try { return (nint)Descriptors.Ioctl(fd, request, arg); } catch (Exception e) { return (nint)Fail(e, "ioctl"); }
    }

    [UnmanagedCallersOnly(EntryPoint = "ut_m_setsockopt")]
    internal static nint SetSockOpt(int fd, int level, int name, byte* val, uint len)
    {
        try { return (nint)SocketCalls.SetSockOpt(fd, level, name, val, len); } catch (Exception e) { return (nint)Fail(e, "setsockopt"); }
    }

    [UnmanagedCallersOnly(EntryPoint = "ut_m_getsockopt")]
    internal static nint GetSockOpt(int fd, int level, int name, byte* val, uint* len)
    {
        try { return (nint)SocketCalls.GetSockOpt(fd, level, name, val, len); } catch (Exception e) { return (nint)Fail(e, "getsockopt"); }
    }

    [UnmanagedCallersOnly(EntryPoint = "ut_m_getsockname")]
    internal static nint GetSockName(int fd, SockAddrIn* addr, uint* len)
    {
        try { return (nint)SocketCalls.GetSockName(fd, addr, len); } catch (Exception e) { return (nint)Fail(e, "getsockname"); }
    }

    [UnmanagedCallersOnly(EntryPoint = "ut_m_getpeername")]
    internal static nint GetPeerName(int fd, SockAddrIn* addr, uint* len)
    {
        try { return (nint)SocketCalls.GetPeerName(fd, addr, len); } catch (Exception e) { return (nint)Fail(e, "getpeername"); }
    }

    [UnmanagedCallersOnly(EntryPoint = "ut_m_poll")]
    internal static nint Poll(PollFd* fds, nuint n, int timeoutMs, void* sigmask)
    {
        try { return (nint)Multiplex.Poll(fds, n, timeoutMs, sigmask); } catch (Exception e) { return (nint)Fail(e, "poll"); }
    }

    [UnmanagedCallersOnly(EntryPoint = "ut_m_epoll_ctl")]
    internal static nint EpollCtl(int epfd, int op, int fd, EpollEvent* ev)
    {
        try
        {
            if (op != 2 && ev == null) return -Errno.EFAULT;
            return (nint)EpollSets.Control(epfd, op, fd, ev == null ? 0 : ev->Events, ev == null ? 0 : ev->Data);
        }
        catch (Exception e) { return (nint)Fail(e, "epoll_ctl"); }
    }

    [UnmanagedCallersOnly(EntryPoint = "ut_m_epoll_wait")]
    internal static nint EpollWait(int epfd, EpollEvent* events, int max, int timeoutMs, void* sigmask)
    {
        try { return (nint)Multiplex.EpollWait(epfd, events, max, timeoutMs, sigmask); } catch (Exception e) { return (nint)Fail(e, "epoll_wait"); }
    }

    [UnmanagedCallersOnly(EntryPoint = "ut_m_epoll_close")]
    internal static nint EpollClose(int epfd)
    {
        try { EpollSets.ForgetEpoll(epfd); return 0; } catch (Exception e) { return (nint)Fail(e, "epoll close"); }
    }

    // ---- packetdrill (cshim/packetdrill.c) -------------------------------------------------------------------------

    [UnmanagedCallersOnly(EntryPoint = "ut_m_pd_start")]
    internal static int PdStart(uint localIp, uint remoteIp, int mtu)
    {
        try { return (int)Packetdrill.Start(localIp, remoteIp, mtu); } catch (Exception e) { return (int)Fail(e, "packetdrill start"); }
    }

    [UnmanagedCallersOnly(EntryPoint = "ut_m_pd_send")]
    internal static nint PdSend(byte* buf, nuint count)
    {
        try { return (nint)Packetdrill.Send(buf, count); } catch (Exception e) { return (nint)Fail(e, "netdev_send"); }
    }

    [UnmanagedCallersOnly(EntryPoint = "ut_m_pd_receive")]
    internal static nint PdReceive(byte* buf, nuint size, long* timeUs, long waitUs)
    {
        try { return (nint)Packetdrill.Receive(buf, size, timeUs, waitUs); } catch (Exception e) { return (nint)Fail(e, "netdev_receive"); }
    }
}
