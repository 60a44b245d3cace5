using System;
using System.Runtime.InteropServices;
using UserTcp.Interpose.Native;
using UserTcp.Stack;

namespace UserTcp.Interpose;

/// <summary>struct iovec.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct IoVec
{
    public byte* Base;
    public nuint Length;
}

/// <summary>struct msghdr (x86-64).</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct MsgHdr
{
    public void* Name;
    public uint NameLength;
    public IoVec* Iov;
    public nuint IovLength;
    public void* Control;
    public nuint ControlLength;
    public int Flags;
}

/// <summary>read/recv/write/send and their vector forms, sendfile.</summary>
internal static unsafe partial class SocketCalls
{
    private const int MaxIov = 1024;

    private struct ReceiveAttempt : IAttempt
    {
        public UserSocket Socket;
        public int Generation; // the socket's when the call began: a close (and reuse) meanwhile ends it with EBADF
        public int Handle;
        public IoVec* Iov;
        public int Count;
        public bool Peek;
        // A null buffer with a length among the iovecs, and the bytes the buffers before it hold: queued bytes that
        // reach it make the call EFAULT with nothing taken (Linux copies a queued segment in one piece and takes
        // none of it when the copy faults; with several small segments queued it would return the ones before:
        // not modelled). Fewer never reach it (ReceiveInto's null-buffer answer when the loop gets there).
        public bool HasNullBuffer;
        public long BeforeNull;

        public long Try()
        {
            if (Socket.Generation != Generation) return -Errno.EBADF;
            long total = 0;
            NetStack stack = Engine.Stack; // Try runs under Engine.Gate (Blocking.Run)
            if (HasNullBuffer && stack.BytesReadable(Handle) > BeforeNull) return -Errno.EFAULT;
            for (int i = 0; i < Count; i++)
            {
                if (Iov[i].Length == 0) continue;
                int want = (int)Math.Min(Iov[i].Length, int.MaxValue);
                long n = ReceiveInto(stack, Handle, Iov[i].Base, want, Peek);
                if (n < 0) return total > 0 ? total : n;
                total += n;
                if (n < want || Peek) break; // drained (or end of stream); a peek looks at the first buffer only
            }
            return total;
        }
    }

    /// <summary>A wait for readability (data, end of stream or an error) that takes nothing.</summary>
    private struct ReadableAttempt : IAttempt
    {
        public UserSocket Socket;
        public int Generation; // the socket's when the call began: a close (and reuse) meanwhile ends it with EBADF
        public int Handle;

        public long Try() =>
            Socket.Generation != Generation ? -Errno.EBADF :
            (Engine.Stack.GetReadiness(Handle) & (Stack.Tcp.Readiness.In | Stack.Tcp.Readiness.Err | Stack.Tcp.Readiness.Hup)) != 0
                ? 0 : -Errno.EAGAIN;
    }

    /// <summary>One receive from the stack into one buffer, under <see cref="Engine.Gate"/> (the caller checked the
    /// socket's generation): the bytes taken, 0 at the end of the stream, or -errno (-EAGAIN: nothing yet). The body of
    /// both the read fast path (<see cref="Receive1"/>) and the full path's attempts.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private static long ReceiveInto(NetStack stack, int handle, byte* buf, int want, bool peek)
    {
        if (buf == null) return ReceiveIntoNull(stack, handle);
        stack.DeferFlush = Engine.InRoundLocked; // a window update in an event round leaves with the round's burst
        int n = stack.Receive(handle, new Span<byte>(buf, want), peek, out SocketError e);
        stack.DeferFlush = false;
        return e == SocketError.Success ? n : -ErrnoMap.From(e); // WouldBlock: EAGAIN
    }

    /// <summary>A receive into a null buffer (with a length): Linux looks at the queue before it copies, so only
    /// queued bytes make it EFAULT (and stay queued); otherwise the answer a good buffer would get — EAGAIN (a
    /// blocking call waits for it to change), 0 at the end of the stream, the connection's error.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static long ReceiveIntoNull(NetStack stack, int handle)
    {
        byte probe;
        int n = stack.Receive(handle, new Span<byte>(&probe, 1), true, out SocketError e);
        if (e != SocketError.Success) return -ErrnoMap.From(e);
        return n > 0 ? -Errno.EFAULT : 0;
    }

    /// <param name="zeroLengthWaits">recv/recvmsg of zero bytes wait for the socket to become readable, as Linux's
    /// socket layer does; read/readv of zero bytes return at once.</param>
    internal static long Receive(int fd, IoVec* iov, int count, int flags, bool zeroLengthWaits = false)
    {
        // One buffer and no flags (readv, recvmsg of one iovec): Receive1's fast path.
        if (count == 1 && flags == 0 && iov != null) return Receive1(fd, iov->Base, iov->Length, 0, zeroLengthWaits);
        if (FdTable.Get(fd) is not { } s) return -Errno.EBADF;
        return ReceiveOn(s, s.Generation, iov, count, flags, zeroLengthWaits, firstTried: false);
    }

    /// <param name="generation">The socket's generation when the call found it in the fd table: a close (and reuse of
    /// the pooled socket by another accept) since then ends the call with EBADF instead of reading another connection.</param>
    /// <param name="firstTried">The caller's first attempt on <paramref name="s"/> would have blocked
    /// (<see cref="Receive1"/>'s fast path): the wait starts with a poll of the stack.</param>
    private static long ReceiveOn(UserSocket s, int generation, IoVec* iov, int count, int flags, bool zeroLengthWaits, bool firstTried)
    {
        if (s.Generation != generation) return -Errno.EBADF;
        if (count < 0 || count > MaxIov) return -Errno.EINVAL;
        if (count > 0 && iov == null) return -Errno.EFAULT;
        if ((flags & MSG_OOB) != 0) return -Errno.EINVAL; // no urgent data is ever kept out of band
        if (s.State != SocketState.Connected)
            return s.State == SocketState.Unconnected && (s.ShutdownBits & 1) != 0 ? 0 : -Errno.ENOTCONN;
        long want = 0;
        for (int i = 0; i < count; i++) want += (long)iov[i].Length;
        bool nonBlocking = s.NonBlocking || (flags & MSG_DONTWAIT) != 0;
        if (want == 0)
        {
            if (!zeroLengthWaits) return 0;
            var w = new ReadableAttempt { Socket = s, Generation = generation, Handle = s.Handle };
            return Blocking.Run(ref w, nonBlocking, s.Options.ReceiveTimeoutUs);
        }
        var a = new ReceiveAttempt { Socket = s, Generation = generation, Handle = s.Handle, Iov = iov, Count = count, Peek = (flags & MSG_PEEK) != 0 };
        for (int i = 0; i < count; i++)
        {
            if (iov[i].Base == null && iov[i].Length != 0) { a.HasNullBuffer = true; break; }
            a.BeforeNull += (long)iov[i].Length;
        }
        long r = Blocking.Run(ref a, nonBlocking, s.Options.ReceiveTimeoutUs, firstTried: firstTried);
        if (r <= 0 || (flags & MSG_WAITALL) == 0 || a.Peek || nonBlocking || r >= want) return r;
        return ReceiveRest(s, ref a, iov, count, r, want);
    }

    /// <summary>MSG_WAITALL: keep reading until the request is full, the stream ends, an error, a timeout or a
    /// signal. Out of <see cref="Receive"/>: its stackalloc would cost every call a stack cookie check.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static long ReceiveRest(UserSocket s, ref ReceiveAttempt a, IoVec* iov, int count, long r, long want)
    {
        long got = r, beforeNull = a.BeforeNull;
        IoVec* rest = stackalloc IoVec[count];
        while (got < want)
        {
            int k = Remaining(iov, count, got, rest);
            a.Iov = rest;
            a.Count = k;
            a.BeforeNull = beforeNull - got;
            long more = Blocking.Run(ref a, false, s.Options.ReceiveTimeoutUs, restartable: false);
            if (more <= 0) break;
            got += more;
        }
        return got;
    }

    /// <summary>The part of an iovec array after the first <paramref name="skip"/> bytes.</summary>
    private static int Remaining(IoVec* iov, int count, long skip, IoVec* into)
    {
        int k = 0;
        for (int i = 0; i < count; i++)
        {
            if (skip >= (long)iov[i].Length) { skip -= (long)iov[i].Length; continue; }
            into[k].Base = iov[i].Base + skip;
            into[k].Length = iov[i].Length - (nuint)skip;
            skip = 0;
            k++;
        }
        return k;
    }

    private struct SendAttempt : IAttempt
    {
        public UserSocket Socket;
        public int Generation; // the socket's when the call began: a close (and reuse) meanwhile ends it with EBADF
        public int Handle;
        public IoVec* Iov;
        public int Count;

        public long Try()
        {
            if (Socket.Generation != Generation) return -Errno.EBADF;
            long total = 0;
            NetStack stack = Engine.Stack;
            for (int i = 0; i < Count; i++)
            {
                if (Iov[i].Length == 0) continue;
                int want = (int)Math.Min(Iov[i].Length, int.MaxValue);
                int n = SendFrom(stack, Handle, Iov[i].Base, want, out SocketError e); // under Engine.Gate (Blocking.Run)
                if (e != SocketError.Success && n == 0)
                {
                    if (total > 0) return total;
                    return e == SocketError.WouldBlock ? -Errno.EAGAIN : -ErrnoMap.From(e);
                }
                total += n;
                if (n < want) break;
            }
            return total;
        }
    }

    /// <summary>One send to the stack from one buffer, under <see cref="Engine.Gate"/> (the caller checked the
    /// socket's generation): what the stack took, and its error when it took nothing. The body of both the write fast
    /// path (<see cref="Send1"/>) and the full path's attempts.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private static int SendFrom(NetStack stack, int handle, byte* buf, int want, out SocketError e)
    {
        stack.DeferFlush = Engine.InRoundLocked; // in an event round the reply leaves with the round's burst
        int n = stack.Send(handle, new ReadOnlySpan<byte>(buf, want), out e);
        stack.DeferFlush = false;
        return n;
    }

    /// <summary>A failed send as the application sees it: the stack says "not connected" for a connection that has
    /// ended (closed, reset already reported, or TIME_WAIT); to the application the socket was connected, and Linux
    /// answers EPIPE (sk_stream_wait_connect) — with SIGPIPE unless MSG_NOSIGNAL.</summary>
    private static long SendFailed(long r, int flags)
    {
        if (r == -Errno.ENOTCONN) r = -Errno.EPIPE;
        if (r == -Errno.EPIPE && (flags & MSG_NOSIGNAL) == 0) Kernel.RaiseSigpipe();
        return r;
    }

    internal static long Send(int fd, IoVec* iov, int count, int flags)
    {
        // One buffer (writev/sendmsg of one iovec: nginx's response header before its sendfile): Send1's fast path,
        // which sends any flags it does not handle the full way.
        if (count == 1 && iov != null) return Send1(fd, iov->Base, iov->Length, flags);
        if (FdTable.Get(fd) is not { } s) return -Errno.EBADF;
        return SendOn(s, s.Generation, iov, count, flags, firstTried: false);
    }

    /// <param name="firstTried">The caller's first attempt on <paramref name="s"/> would have blocked
    /// (<see cref="Send1"/>'s fast path): the wait starts with a poll of the stack.</param>
    /// <param name="generation">As <see cref="ReceiveOn"/>'s.</param>
    private static long SendOn(UserSocket s, int generation, IoVec* iov, int count, int flags, bool firstTried)
    {
        if (s.Generation != generation) return -Errno.EBADF;
        if (count < 0 || count > MaxIov) return -Errno.EINVAL;
        if (count > 0 && iov == null) return -Errno.EFAULT;
        if ((flags & MSG_OOB) != 0) return -Errno.EOPNOTSUPP;
        long r;
        if (s.State != SocketState.Connected)
        {
            r = -Errno.EPIPE; // Linux: sending on a TCP socket that is not connected is EPIPE (and SIGPIPE)
        }
        else
        {
            long want = 0;
            for (int i = 0; i < count; i++) want += (long)iov[i].Length;
            if (want == 0) return 0;
            bool nonBlocking = s.NonBlocking || (flags & MSG_DONTWAIT) != 0;
            var a = new SendAttempt { Socket = s, Generation = generation, Handle = s.Handle, Iov = iov, Count = count };
            r = Blocking.Run(ref a, nonBlocking, s.Options.SendTimeoutUs, firstTried: firstTried);
            if (r > 0 && r < want && !nonBlocking) r = SendRest(s, ref a, iov, count, r, want);
        }
        return r < 0 ? SendFailed(r, flags) : r;
    }

    /// <summary>A blocking send on a stream socket sends everything unless a signal or timeout cuts it short. Out of
    /// <see cref="Send"/>: its stackalloc would cost every call a stack cookie check.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static long SendRest(UserSocket s, ref SendAttempt a, IoVec* iov, int count, long r, long want)
    {
        long sent = r;
        IoVec* rest = stackalloc IoVec[count];
        while (sent < want)
        {
            a.Count = Remaining(iov, count, sent, rest);
            a.Iov = rest;
            long more = Blocking.Run(ref a, false, s.Options.SendTimeoutUs, restartable: false);
            if (more <= 0) break;
            sent += more;
        }
        return sent;
    }

    internal static long Receive1(int fd, byte* buf, nuint n, int flags, bool zeroLengthWaits = false)
    {
        if ((flags & MSG_TRUNC) != 0) return ReceiveDiscarding(fd, n, flags & ~MSG_TRUNC);
        if (FdTable.Get(fd) is not { } s) return -Errno.EBADF;
        int generation = s.Generation;
        bool firstTried = false;
        // The common read: no flags, one buffer, a connected socket. The first attempt is made here, without the
        // iovec and the generic wait's layers (Receive -> Blocking.Run -> ReceiveAttempt.Try: ~190 instructions a
        // call); one that would block continues in the full path, which polls the stack and tries again, as before.
        if (flags == 0 && n - 1 < int.MaxValue && s.State == SocketState.Connected)
        {
            long r;
            NetStack stack = Engine.Stack;
            using (Engine.Gate.EnterScope())
            {
                Engine.AppCalls++;
                if (s.Generation != generation) return -Errno.EBADF; // closed (and reused) meanwhile
                // The handle is read after the check: it changes only under the lock.
                r = ReceiveInto(stack, s.Handle, buf, (int)n, false);
            }
            if (r != -Errno.EAGAIN) return r;
            firstTried = true;
        }
        return Receive1Full(s, generation, buf, n, flags, zeroLengthWaits, firstTried);
    }

    /// <summary>Out of <see cref="Receive1"/>: the iovec whose address it takes would cost every call a frame.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static long Receive1Full(UserSocket s, int generation, byte* buf, nuint n, int flags, bool zeroLengthWaits, bool firstTried)
    {
        IoVec v = new() { Base = buf, Length = n };
        return ReceiveOn(s, generation, &v, 1, flags, zeroLengthWaits, firstTried);
    }

    [ThreadStatic] private static byte[]? t_discard;

    /// <summary>recv(MSG_TRUNC) on TCP (Linux tcp(7)): the bytes are taken from the stream (or only counted, with
    /// MSG_PEEK) but not copied; the caller's buffer is never touched and may be NULL. Blocks like recv for the first
    /// bytes, then takes what is there up to the length (everything, with MSG_WAITALL).</summary>
    private static long ReceiveDiscarding(int fd, nuint n, int flags)
    {
        if (FdTable.Get(fd) is null) return -Errno.EBADF;
        byte[] chunk = t_discard ??= new byte[64 * 1024];
        bool peek = (flags & MSG_PEEK) != 0, waitAll = (flags & MSG_WAITALL) != 0;
        long total = 0;
        fixed (byte* b = chunk)
        {
            do
            {
                nuint want = Math.Min(n - (nuint)total, (nuint)chunk.Length);
                IoVec v = new() { Base = b, Length = want };
                long r = Receive(fd, &v, 1, total == 0 || waitAll ? flags : flags | MSG_DONTWAIT);
                if (r < 0) return total > 0 ? total : r;
                if (r == 0) break;
                total += r;
                if (peek) break; // a peek sees the first buffer's worth only
            } while ((nuint)total < n);
        }
        return total;
    }

    internal static long Send1(int fd, byte* buf, nuint n, int flags)
    {
        if (FdTable.Get(fd) is not { } s) return -Errno.EBADF;
        if (n > 0 && buf == null) return -Errno.EFAULT;
        int generation = s.Generation;
        bool firstTried = false;
        // The common write (see Receive1): the first attempt here; the rest of a blocking write, a write that would
        // block and every unusual case continue in the full path.
        if ((flags & ~(MSG_DONTWAIT | MSG_NOSIGNAL)) == 0 && n - 1 < int.MaxValue && s.State == SocketState.Connected)
        {
            int handle, sent;
            SocketError e;
            NetStack stack = Engine.Stack;
            using (Engine.Gate.EnterScope())
            {
                Engine.AppCalls++;
                if (s.Generation != generation) return -Errno.EBADF; // closed (and reused) meanwhile
                handle = s.Handle; // read after the check: it changes only under the lock
                sent = SendFrom(stack, handle, buf, (int)n, out e);
            }
            if ((nuint)sent == n) return sent;
            if (sent > 0 || e == SocketError.Success)
            {
                // Part of it (SendAttempt.Try's answer): a blocking write goes on with the rest, as SendOn does.
                if (sent == 0 || s.NonBlocking || (flags & MSG_DONTWAIT) != 0) return sent;
                return Send1Rest(s, generation, handle, buf, n, sent);
            }
            if (e != SocketError.WouldBlock) return SendFailed(-ErrnoMap.From(e), flags);
            firstTried = true;
        }
        return Send1Full(s, generation, buf, n, flags, firstTried);
    }

    /// <summary>Out of <see cref="Send1"/> (see <see cref="Receive1Full"/>).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static long Send1Full(UserSocket s, int generation, byte* buf, nuint n, int flags, bool firstTried)
    {
        IoVec v = new() { Base = buf, Length = n };
        return SendOn(s, generation, &v, 1, flags, firstTried);
    }

    /// <summary>The rest of a blocking write whose first attempt in <see cref="Send1"/> sent part of it.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static long Send1Rest(UserSocket s, int generation, int handle, byte* buf, nuint n, int sent)
    {
        IoVec v = new() { Base = buf, Length = n };
        var a = new SendAttempt { Socket = s, Generation = generation, Handle = handle, Iov = &v, Count = 1 };
        return SendRest(s, ref a, &v, 1, sent, (long)n);
    }

    internal static long ReceiveMsg(int fd, MsgHdr* msg, int flags)
    {
        if (msg == null) return -Errno.EFAULT;
        if (msg->IovLength > MaxIov) return -Errno.EMSGSIZE;
        long r = Receive(fd, msg->Iov, (int)msg->IovLength, flags, zeroLengthWaits: true);
        if (r >= 0)
        {
            msg->NameLength = 0;     // TCP does not report a source address per read
            msg->ControlLength = 0;  // no ancillary data
            msg->Flags = 0;
        }
        return r;
    }

    internal static long SendMsg(int fd, MsgHdr* msg, int flags)
    {
        if (msg == null) return -Errno.EFAULT;
        if (msg->IovLength > MaxIov) return -Errno.EMSGSIZE;
        return Send(fd, msg->Iov, (int)msg->IovLength, flags);
    }

    [ThreadStatic] private static byte[]? t_fileChunk;

    /// <summary>sendfile(2) from a kernel file to a user socket: the file is read with pread at the given (or current)
    /// offset and handed to the stack; the offset advances by what the socket took.</summary>
    internal static long SendFile(int outFd, int inFd, long* offset, nuint count)
    {
        if (FdTable.Get(outFd) is not { } s) return -Errno.EBADF;
        long pos = offset != null ? *offset : Kernel.LSeek(inFd, 0, 1 /* SEEK_CUR */);
        if (pos < 0) return pos == -Errno.ESPIPE ? -Errno.EINVAL : pos;
        if (count == 0) return 0;
        byte[] chunk = t_fileChunk ??= new byte[64 * 1024];
        long sent = 0;
        fixed (byte* buf = chunk)
        {
            while ((nuint)sent < count)
            {
                int want = (int)Math.Min((long)(count - (nuint)sent), chunk.Length);
                long got = Kernel.PRead(inFd, buf, (nuint)want, (nint)(pos + sent));
                if (got < 0) { if (sent == 0) return got; break; }
                if (got == 0) break; // end of file
                // After the first chunk only take what fits without waiting, like the kernel's sendfile on a
                // non-blocking socket; a blocking socket waits for room for the first chunk.
                int flags = sent > 0 ? MSG_DONTWAIT | MSG_NOSIGNAL : 0;
                long n = Send1(outFd, buf, (nuint)got, flags);
                if (n < 0) { if (sent == 0) return n; break; }
                sent += n;
                if (n < got) break;
            }
        }
        if (offset != null) *offset = pos + sent;
        else Kernel.LSeek(inFd, (nint)(pos + sent), 0 /* SEEK_SET */);
        return sent;
    }
}
