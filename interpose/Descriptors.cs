using System.Threading;
using UserTcp.Interpose.Native;

namespace UserTcp.Interpose;

/// <summary>close, dup family, fcntl and ioctl on user-stack fds. A dup shares one socket, like the kernel.</summary>
internal static unsafe class Descriptors
{
    private const int F_DUPFD = 0, F_GETFD = 1, F_SETFD = 2, F_GETFL = 3, F_SETFL = 4, F_DUPFD_CLOEXEC = 1030;
    private const ulong FIONREAD = 0x541B, FIONBIO = 0x5421, SIOCOUTQ = 0x5411, SIOCATMARK = 0x8905;

    internal static long Close(int fd)
    {
        if (Forget(fd) is null) return -Errno.EBADF;
        return Kernel.FdRelease(fd);
    }

    /// <summary>Detaches fd from its socket (the kernel number stays reserved). Returns the socket, or null.</summary>
    private static UserSocket? Forget(int fd)
    {
        UserSocket? s = FdTable.Remove(fd);
        if (s is null) return null;
        if (Interlocked.Decrement(ref s.Refs) == 0) ReleaseLast(s);
        return s;
    }

    /// <summary>What the last close of a socket does, once its caller took the last reference (also an IPv6
    /// socket handed to the kernel, Inet6.Divert). epoll(7): its registrations go with the last fd referring to the
    /// open file description; then its stack handle, and the object back to the pool with a new generation.</summary>
    internal static void ReleaseLast(UserSocket s)
    {
        using (Engine.Gate.EnterScope()) // also EpollSets.Gate: one lock for the registrations, the handle and the pool
        {
            EpollSets.ForgetSocketLocked(s);
            if (s.Options.LingerOn && s.Options.LingerSeconds == 0 && s.Handle >= 0)
                Engine.Stack.SetOption(s.Handle, UserTcp.Stack.SocketOption.LingerUs, 0);
            // In an event round the FIN leaves with the round's burst (as replies do: Engine.RoundThread).
            Engine.Stack.DeferFlush = Engine.InRoundLocked;
            ListenerGroups.Release(s);
            Engine.Stack.DeferFlush = false;
            UserSocket.Recycle(s);
        }
    }

    internal static long Dup(int fd, int minFd, bool cloexec)
    {
        if (FdTable.Get(fd) is not { } s) return -Errno.EBADF;
        int generation = s.Generation;
        long nfd = Kernel.FdAlloc(minFd, cloexec ? 1 : 0);
        if (nfd < 0) return nfd;
        if (!TakeReference(s, generation))
        {
            Kernel.FdRelease((int)nfd);
            return -Errno.EBADF;
        }
        FdTable.Set((int)nfd, s);
        return nfd;
    }

    internal static long Dup3(int fd, int fd2, int flags)
    {
        if ((flags & ~SocketCalls.O_CLOEXEC) != 0) return -Errno.EINVAL;
        if (FdTable.Get(fd) is not { } s) return -Errno.EBADF;
        if (fd == fd2) return -Errno.EINVAL;
        if (FdTable.Get(fd2) is not null) Forget(fd2);
        else EpollSets.ForgetEpoll(fd2); // harmless when fd2 is not an epoll fd of ours
        int generation = s.Generation;
        long r = Kernel.FdAllocAt(fd2, (flags & SocketCalls.O_CLOEXEC) != 0 ? 1 : 0);
        if (r < 0) return r;
        if (!TakeReference(s, generation))
        {
            Kernel.FdRelease(fd2);
            return -Errno.EBADF;
        }
        FdTable.Set(fd2, s);
        return fd2;
    }

    /// <summary>One more fd for the socket, unless another thread closed its last fd meanwhile (the object may be in
    /// the pool or already another connection's): then EBADF, as for an fd closed before the call.</summary>
    private static bool TakeReference(UserSocket s, int generation)
    {
        while (true)
        {
            int refs = Volatile.Read(ref s.Refs);
            if (refs <= 0 || Volatile.Read(ref s.Generation) != generation) return false;
            if (Interlocked.CompareExchange(ref s.Refs, refs + 1, refs) == refs)
            {
                if (Volatile.Read(ref s.Generation) == generation) return true;
                // Reused between the two reads: give the new life its count back (it holds its own reference).
                Interlocked.Decrement(ref s.Refs);
                return false;
            }
        }
    }

    internal static long Fcntl(int fd, int cmd, nint arg)
    {
        if (FdTable.Get(fd) is not { } s) return -Errno.EBADF;
        switch (cmd)
        {
            case F_GETFL: return SocketCalls.O_RDWR | (s.NonBlocking ? SocketCalls.O_NONBLOCK : 0);
            case F_SETFL: s.NonBlocking = (arg & SocketCalls.O_NONBLOCK) != 0; return 0;
            // Close-on-exec is a per-fd flag and our fd is a real kernel fd: the kernel keeps it for us.
            case F_GETFD: case F_SETFD: return Kernel.Fcntl(fd, cmd, arg);
            case F_DUPFD: case F_DUPFD_CLOEXEC:
                if (arg < 0) return -Errno.EINVAL;
                return Dup(fd, (int)arg, cmd == F_DUPFD_CLOEXEC);
            default:
                Kernel.Log(3, $"fcntl({fd}, {cmd}) is not supported on user-stack sockets: EINVAL");
                return -Errno.EINVAL;
        }
    }

    internal static long Ioctl(int fd, ulong request, void* arg)
    {
        if (FdTable.Get(fd) is not { } s) return -Errno.EBADF;
        switch (request)
        {
            case FIONBIO:
                if (arg == null) return -Errno.EFAULT;
                s.NonBlocking = *(int*)arg != 0;
                return 0;
            case FIONREAD: case SIOCOUTQ:
                if (s.State == SocketState.Listening) return -Errno.EINVAL;
                if (arg == null) return -Errno.EFAULT;
                using (Engine.Gate.EnterScope())
                {
                    Engine.PollLocked();
                    *(int*)arg = s.State == SocketState.Connected
                        ? (request == FIONREAD ? Engine.Stack.BytesReadable(s.Handle) : Engine.Stack.BytesUnsent(s.Handle))
                        : 0;
                }
                return 0;
            case SIOCATMARK:
                if (arg == null) return -Errno.EFAULT;
                *(int*)arg = 0;
                return 0;
            default:
                Kernel.Log(3, $"ioctl({fd}, 0x{request:x}) is not supported on user-stack sockets: ENOTTY");
                return -Errno.ENOTTY;
        }
    }
}
