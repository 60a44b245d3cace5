using System.Threading;
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
/// </summary>
internal static class Blocking
{
    internal static long Run<T>(ref T attempt, bool nonBlocking, long timeoutUs) where T : struct, IAttempt
    {
        long r;
        lock (Engine.Gate)
        {
            // Try before polling the device: a read with data waiting or a write with room completes without the
            // cost of a receive burst (the next call that must wait, epoll_wait or the progress thread polls).
            Engine.AppCalls++;
            r = attempt.Try();
            if (r == -Errno.EAGAIN)
            {
                Engine.PollLocked();
                r = attempt.Try();
            }
        }
        if (r != -Errno.EAGAIN || nonBlocking) return r;
        long deadline = timeoutUs > 0 ? Engine.NowUs + timeoutUs : long.MaxValue;
        long backoff = 0;
        Engine.EnterWait();
        try
        {
            while (true)
            {
                if (Engine.NowUs >= deadline) return -Errno.EAGAIN;
                long sleep = Engine.NextSleepUs(ref backoff, deadline);
                if (sleep > 0)
                {
                    if (Engine.Sleep(sleep) == -Errno.EINTR) return -Errno.EINTR;
                }
                else
                {
                    Thread.SpinWait(20);
                }
                lock (Engine.Gate)
                {
                    Engine.PollLocked();
                    r = attempt.Try();
                }
                if (r != -Errno.EAGAIN) return r;
            }
        }
        finally
        {
            Engine.ExitWait();
        }
    }
}
