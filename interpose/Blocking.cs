using UserTcp.Interpose.Native;

namespace UserTcp.Interpose;

/// <summary>One attempt of a socket call against the stack. Returns &gt;= 0, -errno, or -EAGAIN to wait.</summary>
internal interface IAttempt
{
    long Try();
}

/// <summary>
/// Blocking built on non-blocking attempts (gVisor's shape): try, and while the answer is "would block", keep the
/// stack moving and sleep in growing steps until the call can complete, its timeout passes (EAGAIN) or a signal
/// handler runs (EINTR). Generic over a struct so nothing is allocated per call.
///
/// Signals follow signal(7): after a handler installed with SA_RESTART the wait goes on (the kernel restarts the
/// call), unless a timeout is set on the socket (SO_RCVTIMEO/SO_SNDTIMEO: EINTR) or the caller already has a partial
/// result it returns instead (`restartable` false: a MSG_WAITALL receive or a long send that made
/// progress). cshim/signals.c tells which kind of handler ran.
/// </summary>
internal static class Blocking
{
    /// <param name="firstTried">The caller already made the first attempt under Engine.Gate (a read/write fast path,
    /// SocketCalls.Receive1/Send1) and it would have blocked: start with the poll.</param>
    internal static long Run<T>(ref T attempt, bool nonBlocking, long timeoutUs, bool restartable = true,
        bool firstTried = false)
        where T : struct, IAttempt
    {
        long r, pollAt = long.MaxValue;
        using (Engine.Gate.EnterScope())
        {
            // Try before polling the device: a read with data waiting or a write with room completes without the
            // cost of a receive burst (the next call that must wait, epoll_wait or the progress thread polls).
            if (firstTried) r = -Errno.EAGAIN;
            else
            {
                Engine.AppCalls++;
                r = attempt.Try();
            }
            if (r == -Errno.EAGAIN)
            {
                Engine.PollLocked();
                r = attempt.Try();
                if (r == -Errno.EAGAIN && !nonBlocking) pollAt = Engine.Stack.PollAt();
            }
        }
        if (r != -Errno.EAGAIN || nonBlocking) return r;
        long deadline = timeoutUs > 0 ? Engine.NowUs + timeoutUs : long.MaxValue;
        long backoff = 0;
        int restart = restartable && timeoutUs <= 0 ? 1 : 0;
        Engine.EnterWait();
        Kernel.WaitBegin();
        try
        {
            while (true)
            {
                long now = Engine.NowUs;
                if (now >= deadline) return -Errno.EAGAIN;
                long sleep = Engine.NextSleepUs(ref backoff, deadline, pollAt, now);
                // Also with nothing to sleep: the zero-length sleep is where a pending signal gets in.
                if (sleep > 0) Engine.CountSleep(sleep);
                long woke = Kernel.WaitUs((nint)sleep, restart, Engine.DeviceWaitFor(sleep));
                if (woke == -Errno.EINTR) return -Errno.EINTR;
                if (woke > 0) Engine.DeviceWoke();
                using (Engine.Gate.EnterScope())
                {
                    Engine.PollLocked();
                    r = attempt.Try();
                    if (r == -Errno.EAGAIN) pollAt = Engine.Stack.PollAt();
                }
                if (r != -Errno.EAGAIN) return r;
            }
        }
        finally
        {
            Kernel.WaitEnd();
            Engine.ExitWait();
        }
    }
}
