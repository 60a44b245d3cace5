using System.Runtime.InteropServices;

namespace UserTcp.Interpose.Native;

/// <summary>
/// The floor: libc reached through the C shim's k_* helpers (cshim/real.h, fdtab.h, log.h). Managed code never calls
/// the exported libc symbols (they would route back into the stack). Every helper returns a value &gt;= 0 or -errno.
/// Linked statically into libusertcp.so (DirectPInvoke "cshim"); not available under JIT.
/// </summary>
internal static unsafe partial class Kernel
{
    private const string Lib = "cshim";

    /// <summary>A number read from a /proc/sys file, or dflt.</summary>
    [LibraryImport(Lib, EntryPoint = "k_sysctl_long", StringMarshalling = StringMarshalling.Utf8)]
    internal static partial long SysctlLong(string path, long dflt);
    [LibraryImport(Lib, EntryPoint = "k_kill_self_sigpipe")]
    internal static partial nint RaiseSigpipe();
    [LibraryImport(Lib, EntryPoint = "k_fd_alloc")]
    internal static partial nint FdAlloc(int minFd, int cloexec);
    [LibraryImport(Lib, EntryPoint = "k_fd_alloc_at")]
    internal static partial nint FdAllocAt(int fd, int cloexec);
    [LibraryImport(Lib, EntryPoint = "k_fd_release")]
    internal static partial nint FdRelease(int fd);
    [LibraryImport(Lib, EntryPoint = "k_epfd_mark")]
    internal static partial nint EpfdMark(int epfd, int on);
    /// <summary>1 when epfd is an epoll set this process created and never added a kernel fd to (cshim/fdtab.h).</summary>
    [LibraryImport(Lib, EntryPoint = "k_epfd_pure"), SuppressGCTransition]
    internal static partial nint EpfdPure(int epfd);
    /// <summary>pthread_self(): the owner id of <see cref="StackLock"/> (no thread static, so no __tls_get_addr).</summary>
    [LibraryImport(Lib, EntryPoint = "k_thread_self"), SuppressGCTransition]
    internal static partial nint ThreadSelf();
    [LibraryImport(Lib, EntryPoint = "k_sockopt_minlen"), SuppressGCTransition]
    internal static partial nint SockoptMinLen(int level, int name);
    [LibraryImport(Lib, EntryPoint = "k_fcntl")]
    internal static partial nint Fcntl(int fd, int cmd, nint arg);
    [LibraryImport(Lib, EntryPoint = "k_sleep_us")]
    internal static partial nint SleepUs(nint us);
    /// <summary>A blocking call's sleep (cshim/signals.c): 0 to go on waiting (also after a handler that asked for
    /// SA_RESTART, when <paramref name="restartable"/>), -EINTR when the call must fail. With <paramref name="device"/>
    /// the sleep also ends when a frame waits on the device (<see cref="DeviceFdsSet"/>): 1 then.</summary>
    [LibraryImport(Lib, EntryPoint = "k_wait_us")]
    internal static partial nint WaitUs(nint us, int restartable, int device);
    /// <summary>The AF_PACKET sockets open in this process (cshim/real.c), at most <paramref name="max"/>.</summary>
    [LibraryImport(Lib, EntryPoint = "k_packet_fds")]
    internal static partial nint PacketFds(int* fds, int max);
    /// <summary>The device's pollable fds: the waits that take a <c>device</c> flag also end when a frame waits there.</summary>
    [LibraryImport(Lib, EntryPoint = "k_device_fds_set")]
    internal static partial nint DeviceFdsSet(int* fds, int n);
    /// <summary>The progress thread's sleep: until the timeout or a frame on the device (1).</summary>
    [LibraryImport(Lib, EntryPoint = "k_idle_us")]
    internal static partial nint IdleUs(nint us);
    /// <summary><see cref="PPollUs"/> with the device's fds as hidden extra entries (up to 64 caller entries).</summary>
    [LibraryImport(Lib, EntryPoint = "k_ppoll_dev_us")]
    internal static partial nint PPollDeviceUs(PollFd* fds, nuint n, nint us, void* sigmask, int* deviceReady);
    /// <summary><see cref="EpollWaitUs"/> that also ends when a frame waits on the device (never reported as an event).</summary>
    [LibraryImport(Lib, EntryPoint = "k_epoll_wait_dev_us")]
    internal static partial nint EpollWaitDeviceUs(int epfd, EpollEvent* events, int max, nint us, void* sigmask, int* deviceReady);
    /// <summary>A wait starts/ends: between the two, the thread's asynchronous signals get in only inside the waits'
    /// sleeps (<see cref="WaitUs"/>, <see cref="PPollUs"/>, <see cref="EpollWaitUs"/>), so none goes unnoticed.</summary>
    [LibraryImport(Lib, EntryPoint = "k_wait_begin")]
    internal static partial nint WaitBegin();
    [LibraryImport(Lib, EntryPoint = "k_wait_end")]
    internal static partial nint WaitEnd();
    [LibraryImport(Lib, EntryPoint = "k_pread")]
    internal static partial nint PRead(int fd, byte* buf, nuint n, nint offset);
    [LibraryImport(Lib, EntryPoint = "k_lseek")]
    internal static partial nint LSeek(int fd, nint offset, int whence);
    [LibraryImport(Lib, EntryPoint = "k_block_signals")]
    internal static partial nint BlockSignals();
    [LibraryImport(Lib, EntryPoint = "k_ppoll_us")]
    internal static partial nint PPollUs(PollFd* fds, nuint n, nint us, void* sigmask);
    [LibraryImport(Lib, EntryPoint = "k_epoll_wait_us")]
    internal static partial nint EpollWaitUs(int epfd, EpollEvent* events, int max, nint us, void* sigmask);
    [LibraryImport(Lib, EntryPoint = "k_pid_alive")]
    internal static partial nint PidAlive(int pid);
    [LibraryImport(Lib, EntryPoint = "k_log", StringMarshalling = StringMarshalling.Utf8)]
    internal static partial void Log(int level, string message);
    [LibraryImport(Lib, EntryPoint = "k_stats", StringMarshalling = StringMarshalling.Utf8)]
    internal static partial void Stats(string message);
}

[StructLayout(LayoutKind.Sequential)]
internal struct PollFd
{
    public int Fd;
    public short Events;
    public short Revents;
}

/// <summary>struct epoll_event is packed on x86-64: 4 bytes of events then 8 bytes of data.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 4)]
internal struct EpollEvent
{
    public uint Events;
    public ulong Data;
}
