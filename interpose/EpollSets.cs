using System.Collections.Generic;
using System.Threading;
using UserTcp.Interpose.Native;

namespace UserTcp.Interpose;

/// <summary>
/// User fds registered with kernel epoll fds. The kernel epoll fd keeps the kernel fds; we keep the user ones, and
/// epoll_wait merges both (Readiness.EpollWait). Registration is per (epfd, fd) and refers to the socket, as in
/// epoll(7). Changes take one lock; epoll_wait snapshots nothing and allocates nothing.
/// </summary>
internal static class EpollSets
{
    internal sealed class Registration
    {
        public int Epfd;
        /// <summary>Position in its set's list (removal swaps the last one in: O(1)).</summary>
        public int Index;
        /// <summary>The socket's next registration (in another set, or for another fd of it).</summary>
        public Registration? NextOfSocket;
        public int Fd;
        public UserSocket Socket = null!;
        public uint Events;
        public ulong Data;
        public int ReportedVersion = -1;
        /// <summary>The socket's readiness key (<see cref="Multiplex"/>) when this registration was last evaluated,
        /// and whether it was ready then: not ready and unchanged since means not ready now, without asking.</summary>
        public int SeenKey = int.MinValue;
        public bool SeenReady;
        public bool Disarmed; // EPOLLONESHOT fired; re-armed by EPOLL_CTL_MOD
    }

    /// <summary>The stack's own lock: epoll_wait needs both the sets and the stack, and one lock pair per wait is
    /// cheaper than two (Monitor.Enter/Exit were ~285 instructions per RPC with the two nested).</summary>
    private static object s_gate => Engine.Gate;
    private static readonly Dictionary<int, List<Registration>> s_sets = new();
    /// <summary>Every registration by (epfd, fd, socket): epoll_ctl finds its registration without scanning the set
    /// (a scan per ADD/DEL made opening 10k connections quadratic: ~84k instructions per accepted connection with a
    /// few thousand registered, callgrind).</summary>
    private static readonly Dictionary<(int Epfd, int Fd, UserSocket Socket), Registration> s_index = new();
    private static readonly Dictionary<int, ScanState> s_scans = new();

    /// <summary>What the last scan of an epoll set saw (caller holds Gate).</summary>
    internal sealed class ScanState
    {
        public int Epoch = -1;
        public bool HadReady;
        /// <summary>Where the next scan starts: after the last registration reported, so that with more ready
        /// sockets than the caller's maxevents every one is reported in turn (Linux's ready list is FIFO).</summary>
        public int Next;
    }

    internal static ScanState Scan(int epfd)
    {
        if (!s_scans.TryGetValue(epfd, out ScanState? st)) s_scans[epfd] = st = new ScanState();
        return st;
    }

    internal static object Gate => s_gate;

    internal static List<Registration>? Get(int epfd) => s_sets.TryGetValue(epfd, out var l) ? l : null;

    internal static long Control(int epfd, int op, int fd, uint events, ulong data)
    {
        const int ADD = 1, DEL = 2, MOD = 3;
        if (FdTable.Get(fd) is not { } s) return -Errno.EBADF;
        // An epfd with user registrations is known to be open (closing it forgets the set): no system call.
        bool known;
        lock (s_gate) known = s_sets.ContainsKey(epfd);
        if (!known && Kernel.Fcntl(epfd, 1 /* F_GETFD */, 0) < 0) return -Errno.EBADF;
        if (epfd == fd) return -Errno.EINVAL;
        Interlocked.Increment(ref Engine.ReadinessEpoch);
        lock (s_gate)
        {
            List<Registration>? set = Get(epfd);
            s_index.TryGetValue((epfd, fd, s), out Registration? reg);
            switch (op)
            {
                case ADD:
                    if (reg is not null) return -Errno.EEXIST;
                    if (set is null)
                    {
                        s_sets[epfd] = set = new List<Registration>();
                        Kernel.EpfdMark(epfd, 1);
                    }
                    reg = new Registration
                    {
                        Epfd = epfd, Index = set.Count, Fd = fd, Socket = s, Events = events, Data = data,
                        NextOfSocket = s.EpollRegistrations,
                    };
                    set.Add(reg);
                    s_index[(epfd, fd, s)] = reg;
                    s.EpollRegistrations = reg;
                    return 0;
                case MOD:
                    if (reg is null) return -Errno.ENOENT;
                    if ((reg.Events & Poll.EpollExclusive) != 0 || (events & Poll.EpollExclusive) != 0) return -Errno.EINVAL;
                    reg.Events = events;
                    reg.Data = data;
                    reg.Disarmed = false;
                    reg.ReportedVersion = -1;
                    reg.SeenKey = int.MinValue;
                    return 0;
                case DEL:
                    if (reg is null) return -Errno.ENOENT;
                    Remove(set!, reg);
                    UnlinkFromSocket(reg);
                    return 0;
                default:
                    return -Errno.EINVAL;
            }
        }
    }

    /// <summary>For USERTCP_STATS: epoll sets with user registrations and the registrations they hold.</summary>
    internal static string Describe()
    {
        lock (s_gate)
        {
            int regs = 0;
            foreach (List<Registration> set in s_sets.Values) regs += set.Count;
            return $"epoll sets {s_sets.Count}, registrations {regs}";
        }
    }

    /// <summary>Takes reg out of its set's list (the last one moves into its place) and out of the index.</summary>
    private static void Remove(List<Registration> set, Registration reg)
    {
        int last = set.Count - 1;
        if (reg.Index != last)
        {
            Registration moved = set[last];
            set[reg.Index] = moved;
            moved.Index = reg.Index;
        }
        set.RemoveAt(last);
        s_index.Remove((reg.Epfd, reg.Fd, reg.Socket));
    }

    private static void UnlinkFromSocket(Registration reg)
    {
        UserSocket s = reg.Socket;
        if (ReferenceEquals(s.EpollRegistrations, reg))
        {
            s.EpollRegistrations = reg.NextOfSocket;
        }
        else
        {
            for (Registration? r = s.EpollRegistrations; r is not null; r = r.NextOfSocket)
                if (ReferenceEquals(r.NextOfSocket, reg)) { r.NextOfSocket = reg.NextOfSocket; break; }
        }
        reg.NextOfSocket = null;
    }

    /// <summary>The socket's last fd closed: its registrations leave every set (O(its registrations)).</summary>
    internal static void ForgetSocket(UserSocket s)
    {
        lock (s_gate)
        {
            for (Registration? r = s.EpollRegistrations; r is not null;)
            {
                Registration? next = r.NextOfSocket;
                if (s_sets.TryGetValue(r.Epfd, out List<Registration>? set)) Remove(set, r);
                r.NextOfSocket = null;
                r = next;
            }
            s.EpollRegistrations = null;
        }
    }

    internal static void ForgetEpoll(int epfd)
    {
        lock (s_gate)
        {
            s_scans.Remove(epfd);
            if (s_sets.Remove(epfd, out List<Registration>? set))
            {
                foreach (Registration r in set)
                {
                    s_index.Remove((r.Epfd, r.Fd, r.Socket));
                    UnlinkFromSocket(r);
                }
                Kernel.EpfdMark(epfd, 0);
            }
        }
    }
}
