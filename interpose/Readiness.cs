using System.Collections.Generic;
using UserTcp.Interpose.Native;

namespace UserTcp.Interpose;

/// <summary>poll and epoll_wait over a mix of kernel fds and user-stack fds.</summary>
internal static unsafe class Readiness
{
    /// <summary>
    /// poll(2): user entries are answered from socket state; kernel entries go to the real ppoll in one call, with
    /// user entries hidden from it (a negative fd is ignored by the kernel) and a zero timeout if anything is ready.
    /// </summary>
    internal static long Poll(PollFd* fds, nuint n, int timeoutMs, void* sigmask)
    {
        if (n > 1_048_576) return -Errno.EINVAL;
        if (n > 0 && fds == null) return -Errno.EFAULT;
        int count = (int)n;
        bool[]? rented = count > 512 ? new bool[count] : null;
        System.Span<bool> isUser = rented ?? stackalloc bool[count];
        int userReady = 0;
        for (int i = 0; i < count; i++)
        {
            if (FdTable.Get(fds[i].Fd) is not { } s) continue;
            isUser[i] = true;
            short mask = (short)(s.PollMask() & (fds[i].Events | Interpose.Poll.Err | Interpose.Poll.Hup));
            fds[i].Revents = mask;
            if (mask != 0) userReady++;
            fds[i].Fd = ~fds[i].Fd; // negative: the kernel skips it (it would poll our placeholder)
        }
        long r = Kernel.PPoll(fds, n, userReady > 0 ? 0 : timeoutMs, sigmask);
        int kernelReady = 0;
        for (int i = 0; i < count; i++)
        {
            if (!isUser[i])
            {
                if (fds[i].Revents != 0) kernelReady++;
                continue;
            }
            fds[i].Fd = ~fds[i].Fd;
            // The kernel cleared revents for the hidden entry; put ours back.
            fds[i].Revents = FdTable.Get(fds[i].Fd) is { } s
                ? (short)(s.PollMask() & (fds[i].Events | Interpose.Poll.Err | Interpose.Poll.Hup))
                : Interpose.Poll.Nval;
        }
        if (r < 0 && userReady == 0) return r;
        return kernelReady + userReady;
    }

    internal static long EpollWait(int epfd, EpollEvent* events, int max, int timeoutMs, void* sigmask)
    {
        if (max <= 0 || max > int.MaxValue / sizeof(EpollEvent)) return -Errno.EINVAL;
        if (events == null) return -Errno.EFAULT;
        int n = 0;
        lock (EpollSets.Gate)
        {
            List<EpollSets.Registration>? set = EpollSets.Get(epfd);
            if (set is not null)
            {
                foreach (EpollSets.Registration reg in set)
                {
                    if (n == max) break;
                    if (reg.Disarmed) continue;
                    uint mask = (uint)(ushort)reg.Socket.PollMask() & (reg.Events | (uint)Interpose.Poll.Err | (uint)Interpose.Poll.Hup);
                    if (mask == 0) continue;
                    int version = reg.Socket.ReadinessVersion;
                    if ((reg.Events & Interpose.Poll.EpollEt) != 0 && reg.ReportedVersion == version) continue;
                    reg.ReportedVersion = version;
                    if ((reg.Events & Interpose.Poll.EpollOneShot) != 0) reg.Disarmed = true;
                    events[n++] = new EpollEvent { Events = mask, Data = reg.Data };
                }
            }
        }
        if (n == max) return n;
        long r = Kernel.EpollPWait(epfd, events + n, max - n, n > 0 ? 0 : timeoutMs, sigmask);
        if (r < 0) return n > 0 ? n : r;
        return n + r;
    }
}
