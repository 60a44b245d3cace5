using System;
using System.Collections.Generic;
using System.Threading;
using UserTcp.Interpose.Native;

namespace UserTcp.Interpose;

/// <summary>
/// poll and epoll_wait over a mix of kernel fds and user-stack fds. Each round polls the stack, answers the user fds
/// from socket state, and asks the kernel about its fds with a timeout that is zero when something is already ready,
/// else the next step of the waiting schedule (<see cref="Engine.NextSleepUs"/>) — so the process sleeps in the kernel
/// while idle and still notices packets and timers.
///
/// Signals: a call that may wait (nothing ready yet, a timeout other than 0) is a wait in cshim/signals.c's sense
/// (<see cref="Kernel.WaitBegin"/> before its first sleep): between the sleeps the thread's asynchronous signals are
/// blocked, so a handler can only run inside a sleep, which then ends with EINTR and the call fails with EINTR like the
/// kernel's. Without it a handler that ran in the managed code between two sleeps went unseen and the call slept on
/// to its timeout (forever with -1).
/// </summary>
internal static unsafe class Multiplex
{
    /// <summary>
    /// When a wait that did not mean to sleep last asked the kernel (µs; 0: never) and whether the kernel had events
    /// then. Such a wait (user events to return, or a spin step right after traffic) needs the kernel only for kernel
    /// fds and for pending signals, and both can wait a little after a look that found nothing: the interval starts
    /// at <see cref="KernelLookIntervalUs"/> and doubles with every look in a row that found nothing, up to
    /// <see cref="KernelLookMaxIntervalUs"/> (a busy nginx's channel to its master is silent for hours: at 50 µs its
    /// worker still made one zero-timeout epoll_pwait2 per three W1 connections). A look that finds events starts
    /// over. Rounds that sleep always ask. epoll keeps one per set, poll one per thread.
    /// </summary>
    internal struct KernelLook
    {
        private long _askedUs;
        private bool _hadEvents;
        private int _intervalUs; // 0: KernelLookIntervalUs

        public readonly bool MaySkip(long nowUs) =>
            _askedUs != 0 && !_hadEvents && nowUs - _askedUs < (_intervalUs == 0 ? KernelLookIntervalUs : _intervalUs);

        public void Asked(long nowUs, bool hadEvents)
        {
            // Grows only when the last interval ran out with nothing found (not when a look came early).
            if (hadEvents) _intervalUs = 0;
            else if (!_hadEvents && _askedUs != 0)
                _intervalUs = (int)Math.Min(KernelLookMaxIntervalUs, 2 * (_intervalUs == 0 ? KernelLookIntervalUs : _intervalUs));
            _askedUs = nowUs;
            _hadEvents = hadEvents;
        }
    }

    [System.ThreadStatic] private static KernelLook t_pollLook;

    internal static long Poll(PollFd* fds, nuint n, int timeoutMs, void* sigmask)
    {
        if (n > 1_048_576) return -Errno.EINVAL;
        if (n > 0 && fds == null) return -Errno.EFAULT;
        int count = (int)n;
        bool[]? heap = count > 512 ? new bool[count] : null;
        System.Span<bool> isUser = heap ?? stackalloc bool[count];
        short[]? heapMasks = count > 512 ? new short[count] : null;
        System.Span<short> userMask = heapMasks ?? stackalloc short[count];
        int kernelFds = 0;
        for (int i = 0; i < count; i++)
        {
            isUser[i] = FdTable.Get(fds[i].Fd) is not null;
            if (!isUser[i] && fds[i].Fd >= 0) kernelFds++; // a negative fd is ignored (revents 0), as the kernel does
        }
        long deadline = long.MinValue; // from the first round's poll, as in EpollWait
        long backoff = 0;
        bool waiting = false;
        try
        {
            while (true)
            {
                int userReady = 0;
                long pollAt = 0; // only read when nothing is ready
                long now;
                using (Engine.Gate.EnterScope())
                {
                    now = Engine.PollLocked();
                    for (int i = 0; i < count; i++)
                    {
                        if (!isUser[i]) continue;
                        short mask = FdTable.Get(fds[i].Fd) is { } s
                            ? (short)(s.PollMask() & (fds[i].Events | Interpose.Poll.Err | Interpose.Poll.Hup))
                            : Interpose.Poll.Nval;
                        userMask[i] = mask;
                        if (mask != 0) userReady++;
                    }
                    if (userReady == 0) pollAt = Engine.Stack.PollAt(); // for the sleep that follows
                }
                if (deadline == long.MinValue) deadline = timeoutMs < 0 ? long.MaxValue : now + timeoutMs * 1000L;
                long sleep = userReady > 0 ? 0 : Engine.NextSleepUs(ref backoff, deadline, pollAt, now);
                if (!waiting && userReady == 0 && timeoutMs != 0) { Engine.EnterWait(); Kernel.WaitBegin(); waiting = true; }
                // Hide user fds from the kernel (it would poll the placeholder): a negative fd is skipped.
                if (userReady > 0 && kernelFds == 0 && sigmask == null)
                {
                    // Only user fds, some ready: nothing to ask the kernel (one system call per call saved). Not with
                    // a signal mask: ppoll runs a handler the mask unblocks even when it returns events.
                    for (int i = 0; i < count; i++) fds[i].Revents = isUser[i] ? userMask[i] : (short)0;
                    return userReady;
                }
                // A spin step over user fds only: the kernel has nothing to say but pending signals; let them in
                // every KernelLookIntervalUs, doubling up to KernelLookMaxIntervalUs while it keeps spinning, as
                // epoll_wait does.
                if (sleep == 0 && kernelFds == 0 && sigmask == null)
                {
                    if (t_pollLook.MaySkip(now))
                    {
                        if (now >= deadline) { for (int i = 0; i < count; i++) fds[i].Revents = 0; return 0; }
                        continue;
                    }
                    t_pollLook.Asked(now, hadEvents: false); // no kernel fd: it can only have signals
                }
                for (int i = 0; i < count; i++) if (isUser[i]) fds[i].Fd = ~fds[i].Fd;
                // The device's fds ride along as hidden extra entries: a frame ends the sleep, the app never sees them.
                int deviceReady = 0;
                long r = Engine.DeviceWaitFor(sleep) != 0
                    ? Kernel.PPollDeviceUs(fds, n, (nint)sleep, sigmask, &deviceReady)
                    : Kernel.PPollUs(fds, n, (nint)sleep, sigmask);
                if (deviceReady != 0) Engine.DeviceWoke();
                int kernelReady = 0;
                for (int i = 0; i < count; i++)
                {
                    if (isUser[i])
                    {
                        fds[i].Fd = ~fds[i].Fd;
                        fds[i].Revents = userMask[i]; // the kernel zeroed the hidden entry
                    }
                    else if (fds[i].Revents != 0) kernelReady++;
                }
                if (r < 0 && r != -Errno.EINTR) return r;
                if (userReady > 0) return userReady + kernelReady;
                if (r == -Errno.EINTR) return r;
                if (kernelReady > 0 || (deadline != long.MaxValue && Engine.NowUs >= deadline))
                {
                    return kernelReady;
                }
            }
        }
        finally
        {
            if (waiting) { Kernel.WaitEnd(); Engine.ExitWait(); }
        }
    }

    /// <summary>How long epoll_wait rounds that do not sleep may leave the kernel unasked after a look at a set's
    /// kernel side that found nothing (µs), at first: the interval doubles with every look in a row that found nothing,
    /// up to <see cref="KernelLookMaxIntervalUs"/>, and returns to this after a look that found events. So a kernel
    /// event waits at most 800 µs behind a stream of user events or a spin, and pending signals get in at least that
    /// often while a waiter spins. Rounds that sleep always ask.</summary>
    internal const long KernelLookIntervalUs = 50;

    /// <summary>The longest a kernel fd's event can wait behind a stream of user events (µs): see
    /// <see cref="KernelLook"/>.</summary>
    internal const long KernelLookMaxIntervalUs = 800;

    internal static long EpollWait(int epfd, EpollEvent* events, int max, int timeoutMs, void* sigmask)
    {
        if (max <= 0 || max > int.MaxValue / sizeof(EpollEvent)) return -Errno.EINVAL;
        if (events == null) return -Errno.EFAULT;
        // Counted from the first round's poll (one clock read per round, the poll's: below), a little after the call
        // began: a timeout never ends early.
        long deadline = long.MinValue;
        long backoff = 0;
        bool waiting = false;
        if (Engine.InRound) Volatile.Write(ref Engine.RoundThread, 0); // this wait's poll flushes the round
        try
        {
            while (true)
            {
                int n = CollectUserEvents(epfd, events, max, out long pollAt, out EpollSets.Set? set, out long now);
                if (deadline == long.MinValue) deadline = timeoutMs < 0 ? long.MaxValue : now + timeoutMs * 1000L;
                if (n == max) return Engine.BeginRound(n);
                // Events ready and no kernel fd in the set: nothing to ask the kernel (one system call per wait saved).
                // (Not with a signal mask: epoll_pwait runs a handler the mask unblocks even when it returns events.)
                if (n > 0 && sigmask == null && Kernel.EpfdPure(epfd) != 0) return Engine.BeginRound(n);
                long sleep = n > 0 ? 0 : Engine.NextSleepUs(ref backoff, deadline, pollAt, now);
                if (!waiting && n == 0 && timeoutMs != 0) { Engine.EnterWait(); Kernel.WaitBegin(); waiting = true; }
                // A round that will not sleep (user events to return, or a spin step right after traffic) asks the
                // kernel only to hear about the set's kernel fds (nginx: the channel to its master) and, while
                // spinning, to let the caller's signals in. Both can wait a little: after a look that found nothing,
                // such rounds skip the kernel for KernelLookIntervalUs and longer (doubling up to
                // KernelLookMaxIntervalUs while the looks find nothing; a busy nginx paid one zero-timeout
                // epoll_pwait2 per connection for nothing). A set whose kernel fds had events is asked every round.
                if (sleep == 0 && sigmask == null && set is not null)
                {
                    if (set.KernelSide.MaySkip(now))
                    {
                        if (n > 0 || now >= deadline) return Engine.BeginRound(n);
                        continue; // spin: poll the stack again
                    }
                }
                int deviceReady = 0;
                long r = Engine.DeviceWaitFor(sleep) != 0
                    ? Kernel.EpollWaitDeviceUs(epfd, events + n, max - n, (nint)sleep, sigmask, &deviceReady)
                    : Kernel.EpollWaitUs(epfd, events + n, max - n, (nint)sleep, sigmask);
                if (deviceReady != 0) Engine.DeviceWoke();
                if (sleep == 0 && set is not null && r >= 0) set.KernelSide.Asked(now, r > 0);
                if (r < 0) return n > 0 ? Engine.BeginRound(n) : r;
                if (n + r > 0 || (deadline != long.MaxValue && Engine.NowUs >= deadline)) return Engine.BeginRound(n + r);
            }
        }
        finally
        {
            if (waiting) { Kernel.WaitEnd(); Engine.ExitWait(); }
        }
    }

    /// <summary>An edge-triggered or one-shot registration whose socket is ready: whether to report it now
    /// (edge-triggered: once per change of the socket's readiness, stack edges + our own changes), disarming a
    /// one-shot one that reports.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private static bool ReportEdge(EpollSets.Registration reg, UserSocket s, uint events)
    {
        if ((events & Interpose.Poll.EpollEt) != 0)
        {
            int h = s.Group?.Handle ?? s.Handle;
            int key = s.ReadinessVersion * 7919 + (h >= 0 ? Engine.Edges.Instance.Count(h) : 0);
            if (reg.ReportedVersion == key) return false;
            reg.ReportedVersion = key;
        }
        if ((events & Interpose.Poll.EpollOneShot) != 0) reg.Disarmed = true;
        return true;
    }

    private static int CollectUserEvents(int epfd, EpollEvent* events, int max, out long pollAt, out EpollSets.Set? set,
        out long now)
    {
        int n = 0;
        pollAt = 0; // only read when nothing is ready
        using (Engine.Gate.EnterScope()) // also EpollSets.Gate
        {
            now = Engine.PollLocked();
            EpollSets.CollectDirty();
            set = EpollSets.Get(epfd);
            if (set is null)
            {
                pollAt = Engine.Stack.PollAt(); // for the sleep that follows
                return 0;
            }
            // Only registrations whose socket moved (or level-triggered ones still ready) are on the ready list.
            // Walked as a span (no List indexer's version and double bounds checks); an entry that stays where it
            // is is not written back (no write barrier).
            List<EpollSets.Queued> ready = set.Ready;
            System.Span<EpollSets.Queued> list = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(ready);
            int keep = 0, i = 0;
            Engine.Edges edges = Engine.Edges.Instance; // once, not per registration
            for (; i < list.Length && n < max; i++)
            {
                EpollSets.Queued entry = list[i];
                EpollSets.Registration reg = entry.Reg;
                if (reg.Life != entry.Life) continue; // removed (and maybe reused elsewhere) since it was queued
                bool stay = false;
                if (reg.Owner == set && !reg.Disarmed)
                {
                    uint want = reg.Events;
                    UserSocket s = reg.Socket;
                    uint mask = (uint)(ushort)s.PollMask(edges) & (want | (uint)Interpose.Poll.Err | (uint)Interpose.Poll.Hup);
                    if (mask != 0)
                    {
                        if ((want & (Interpose.Poll.EpollEt | Interpose.Poll.EpollOneShot)) == 0)
                        {
                            // Level-triggered and still ready: reported again on the next wait.
                            events[n++] = new EpollEvent { Events = mask, Data = reg.Data };
                            stay = true;
                        }
                        else if (ReportEdge(reg, s, want))
                        {
                            events[n++] = new EpollEvent { Events = mask, Data = reg.Data };
                        }
                    }
                }
                if (stay)
                {
                    if (keep != i) list[keep] = entry;
                    keep++;
                }
                else reg.Queued = false;
            }
            if (keep != list.Length)
            {
                // Entries not looked at (the caller's buffer filled up) stay for the next wait, ahead of the
                // level-triggered ones just reported: with more ready than maxevents every registration gets its turn
                // (Linux's ready list is FIFO too). In place, no allocation: [stayed][unvisited] becomes
                // [unvisited][stayed].
                int stayed = keep;
                for (; i < list.Length; i++) if (list[i].Current) list[keep++] = list[i];
                ready.RemoveRange(keep, ready.Count - keep);
                if (stayed > 0 && stayed < keep)
                {
                    ready.Reverse(0, stayed);
                    ready.Reverse(stayed, keep - stayed);
                    ready.Reverse(0, keep);
                }
            }
            if (n == 0) pollAt = Engine.Stack.PollAt(); // for the sleep that follows
        }
        return n;
    }
}
