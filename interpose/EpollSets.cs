using System.Collections.Generic;
using System.Runtime.CompilerServices;
using System.Threading;
using UserTcp.Interpose.Native;

namespace UserTcp.Interpose;

/// <summary>
/// epoll registrations of user-stack sockets, per epoll fd (the kernel epoll fd is real; the user sockets in it live
/// here). Built to hold a million registrations at no per-registration cost beyond the <see cref="Registration"/>
/// itself: a registration is found from its fd through the fd table's socket (<see cref="UserSocket.EpollRegs"/>,
/// one entry per set the socket is in), so a set keeps no index of its own, and epoll_wait looks only at the
/// registrations of sockets whose readiness moved (a ready list per set, as the kernel keeps one), never at every
/// registration.
///
/// How a registration reaches the ready list: the stack reports a readiness edge for a handle
/// (<see cref="Engine.Edges"/>, under Engine.Gate) or the interpose layer changes a socket's state
/// (<see cref="UserSocket.Changed"/>); both only record what moved. <see cref="CollectDirty"/>, called by epoll_wait
/// with both gates held, turns those records into ready-list entries through the socket's and the handle's
/// registration chains. ADD and MOD queue the registration at once. A level-triggered registration stays queued
/// while it is ready (it is reported on every wait, as Linux does); one that is not ready, or edge-triggered and
/// already reported, leaves the list until its socket moves again.
/// </summary>
internal static class EpollSets
{
    /// <summary>One (epoll set, fd) registration. A socket's first registration is the socket object itself
    /// (<see cref="UserSocket"/> derives from this class; most sockets are in exactly one set): no object per
    /// registered socket. Further ones (a socket in several sets, or dup'd into two fds of one set) are
    /// <see cref="ExtraRegistration"/> objects.</summary>
    internal abstract class Registration
    {
        public int Fd;
        public uint Events;
        public ulong Data;
        public int ReportedVersion = -1;
        public bool Disarmed; // EPOLLONESHOT fired; re-armed by EPOLL_CTL_MOD
        public Set? Owner;    // null once removed
        public bool Queued;   // on Owner.Ready
        public int IndexedHandle = -1;     // the stack handle it is indexed under (the socket's, or its group's)
        public Registration? NextOfSocket; // the socket's registrations (one per epoll set it is in)
        public Registration? NextOfHandle; // registrations indexed under the same handle
        /// <summary>Bumped when the registration is removed (and a separate one pooled): a ready-list entry of an
        /// earlier life (it may still sit on a set's ready list until that set's next wait) is recognised and dropped.</summary>
        public int Life;

        /// <summary>The socket registered: the object itself for a socket's embedded registration
        /// (inlined: a method-table compare, read twice per reported event).</summary>
        public UserSocket Socket
        {
            [MethodImpl(MethodImplOptions.AggressiveInlining)]
            get => this is UserSocket s ? s : Unsafe.As<ExtraRegistration>(this).Of;
        }

        /// <summary>Back to a new registration's state (not <see cref="Life"/>).</summary>
        protected void ResetRegistration()
        {
            Fd = 0;
            Events = 0;
            Data = 0;
            ReportedVersion = -1;
            Disarmed = false;
            Owner = null;
            Queued = false;
            IndexedHandle = -1;
            NextOfSocket = null;
            NextOfHandle = null;
        }
    }

    /// <summary>A registration beyond the socket's embedded one (pooled).</summary>
    internal sealed class ExtraRegistration : Registration
    {
        public UserSocket Of = null!;
    }

    /// <summary>A ready-list entry: the registration and the life of it that was queued.</summary>
    internal readonly struct Queued(Registration reg)
    {
        public readonly Registration Reg = reg;
        public readonly int Life = reg.Life;
        public bool Current => Reg.Life == Life;
    }

    internal sealed class Set
    {
        /// <summary>Registrations in this set (found through their sockets; counted so that forgetting the set can
        /// stop looking once it has met all of them).</summary>
        public int Count;
        public readonly List<Queued> Ready = new();

        /// <summary>The last look at the set's kernel fds by a wait that did not sleep (see Multiplex.EpollWait).
        /// A hint, read and written without the lock by waiting threads.</summary>
        public Multiplex.KernelLook KernelSide;
    }

    /// <summary>The registration of (<paramref name="set"/>, <paramref name="fd"/>) on <paramref name="s"/>, or null. Linux keys
    /// a registration by (open file, fd): a socket dup'd into two fds may be in one set twice.</summary>
    private static Registration? Find(Set set, UserSocket s, int fd)
    {
        for (Registration? r = s.EpollRegs; r is not null; r = r.NextOfSocket)
            if (ReferenceEquals(r.Owner, set) && r.Fd == fd) return r;
        return null;
    }

    // Lists that a burst grew (a million accepts queued at once) give their memory back once they are small again:
    // a list whose capacity is over ListKeep and four times what it holds shrinks to twice that (an allocation after a
    // burst, never in steady state, where the capacity stays at or below ListKeep or the lists stay full).
    private const int ListKeep = 4096;

    internal static void Trim<T>(List<T> list)
    {
        int cap = list.Capacity;
        if (cap > ListKeep && list.Count < cap / 4) list.Capacity = System.Math.Max(ListKeep, list.Count * 2);
    }

    // Removed registrations, reused by EPOLL_CTL_ADD (no allocation per accepted connection). Under Gate.
    private const int PoolMax = 4096;
    private static readonly ExtraRegistration?[] s_pool = new ExtraRegistration?[PoolMax];
    private static int s_pooled;

    /// <summary>The stack's own lock: epoll_wait needs both the sets and the stack, and one lock per wait is cheaper
    /// than two nested (Monitor.Enter/Exit were ~285 instructions per RPC with two).</summary>
    private static StackLock s_gate => Engine.Gate;
    private static readonly Dictionary<int, Set> s_sets = new();
    // Registrations by stack handle, in fixed chunks (no earlier array left behind when it grows). Under Gate.
    private static readonly Stack.ChunkedTable<Registration> s_byHandle = new(1024);

    // Sockets whose interpose-level state changed (UserSocket.Changed may run under any lock: this one is a leaf).
    private static readonly StackLock s_dirtyGate = StackLock.Create();
    private static List<UserSocket> s_dirtySockets = new(), s_draining = new();

    internal static StackLock Gate => s_gate;

    /// <summary>The set of <paramref name="epfd"/>, or null. Caller holds <see cref="Gate"/>. The last one found is
    /// kept: a process waits on one set (per thread, usually one in all), and every epoll_wait and epoll_ctl asks.</summary>
    internal static Set? Get(int epfd)
    {
        if (epfd == s_lastEpfd) return s_lastSet;
        if (!s_sets.TryGetValue(epfd, out Set? set)) return null;
        s_lastEpfd = epfd;
        s_lastSet = set;
        return set;
    }

    private static int s_lastEpfd = -1;
    private static Set? s_lastSet;

    private static int HandleOf(UserSocket s) => s.Group?.Handle ?? s.Handle;

    internal static long Control(int epfd, int op, int fd, uint events, ulong data)
    {
        const int ADD = 1, DEL = 2, MOD = 3;
        if (FdTable.Get(fd) is not { } s) return -Errno.EBADF;
        if (epfd == fd) return -Errno.EINVAL;
        using (s_gate.EnterScope())
        {
            Set? set = Get(epfd);
            // A known set's epfd is open (closing or replacing it forgets the set): only a new one is asked of the
            // kernel, so epoll_ctl on a set in use costs no system call.
            if (set is null && Kernel.Fcntl(epfd, 1 /* F_GETFD */, 0) < 0) return -Errno.EBADF;
            Registration? reg = set is null ? null : Find(set, s, fd);
            switch (op)
            {
                case ADD:
                    if (reg is not null) return -Errno.EEXIST;
                    if (set is null)
                    {
                        s_sets[epfd] = set = new Set();
                        Kernel.EpfdMark(epfd, 1);
                    }
                    // A registration of an earlier socket under this fd number (closed while a dup kept the socket
                    // open) is another (file, fd) key and stays, as on Linux: it goes when that socket's last fd closes.
                    if (s.Owner is null) reg = s; // the socket's embedded registration is free
                    else
                    {
                        ExtraRegistration x = s_pooled > 0 ? s_pool[--s_pooled]! : new ExtraRegistration();
                        s_pool[s_pooled] = null;
                        x.Of = s;
                        reg = x;
                    }
                    reg.Fd = fd;
                    reg.Events = events;
                    reg.Data = data;
                    reg.ReportedVersion = -1;
                    reg.Disarmed = false;
                    reg.Owner = set;
                    reg.Queued = false;
                    set.Count++;
                    if (!ReferenceEquals(reg, s))
                    {
                        // An extra registration goes at the head of the extras, which hang off the socket's own
                        // NextOfSocket; the embedded one (just put in use) heads the chain through that same link.
                        reg.NextOfSocket = s.NextOfSocket;
                        s.NextOfSocket = reg;
                    }
                    Index(reg, HandleOf(s));
                    Enqueue(reg);
                    return 0;
                case MOD:
                    if (reg is null) return -Errno.ENOENT;
                    if ((reg.Events & Poll.EpollExclusive) != 0 || (events & Poll.EpollExclusive) != 0) return -Errno.EINVAL;
                    reg.Events = events;
                    reg.Data = data;
                    reg.Disarmed = false;
                    reg.ReportedVersion = -1;
                    Enqueue(reg);
                    return 0;
                case DEL:
                    if (reg is null) return -Errno.ENOENT;
                    Remove(reg);
                    return 0;
                default:
                    return -Errno.EINVAL;
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Enqueue(Registration reg)
    {
        if (reg.Queued || reg.Owner is null) return;
        reg.Queued = true;
        reg.Owner.Ready.Add(new Queued(reg));
    }

    private static void Index(Registration reg, int handle)
    {
        reg.IndexedHandle = handle;
        if (handle < 0) return;
        if (handle >= s_byHandle.Capacity) s_byHandle.EnsureCapacity(handle + 1);
        reg.NextOfHandle = s_byHandle[handle];
        s_byHandle[handle] = reg;
    }

    private static void Unindex(Registration reg)
    {
        int h = reg.IndexedHandle;
        reg.IndexedHandle = -1;
        if (h < 0 || h >= s_byHandle.Capacity) return;
        ref Registration? link = ref s_byHandle[h];
        while (link is not null)
        {
            if (ReferenceEquals(link, reg)) { link = reg.NextOfHandle; break; }
            link = ref link.NextOfHandle;
        }
        reg.NextOfHandle = null;
    }

    /// <summary>Takes a registration out of its set and both chains (a queued one is dropped by the next wait).</summary>
    private static void Remove(Registration reg)
    {
        if (reg.Owner is { } set) set.Count--;
        reg.Owner = null;
        Unindex(reg);
        if (reg is ExtraRegistration)
        {
            // Out of the extras chained from the socket's own NextOfSocket (see UserSocket.EpollRegs). The embedded
            // registration keeps its NextOfSocket: it still heads the socket's extras.
            ref Registration? link = ref reg.Socket.NextOfSocket;
            while (link is not null)
            {
                if (ReferenceEquals(link, reg)) { link = reg.NextOfSocket; break; }
                link = ref link.NextOfSocket;
            }
            reg.NextOfSocket = null;
        }
        // A new life (an entry still on a ready list belongs to the old one and is dropped by its wait); a separate
        // registration is pooled, the embedded one is free for the socket's next EPOLL_CTL_ADD.
        reg.Life++;
        reg.Queued = false;
        if (reg is ExtraRegistration x)
        {
            x.Of = null!;
            if (s_pooled < PoolMax) s_pool[s_pooled++] = x;
        }
    }

    /// <summary>Called by <see cref="UserSocket.Changed"/>: remember the socket for the next wait.</summary>
    internal static void MarkDirty(UserSocket s)
    {
        using (s_dirtyGate.EnterScope())
        {
            if (s.DirtyQueued) return;
            s.DirtyQueued = true;
            s_dirtySockets.Add(s);
        }
    }

    /// <summary>Moves what changed since the last call onto the ready lists. Caller holds <see cref="Gate"/> and
    /// Engine.Gate (after polling the stack).</summary>
    internal static void CollectDirty()
    {
        // Sockets changed by interpose-level calls are rare on the data path (listen, shutdown, connect): the list
        // is looked at without its lock first. A change marked just after this read waits for the next wait's
        // collection, as one marked just after the swap below always did.
        if (Volatile.Read(ref s_dirtySockets).Count != 0) CollectDirtySockets();
        Stack.ChunkedTable<Registration> byHandle = s_byHandle;
        int capacity = byHandle.Capacity;
        foreach (int h in Engine.Edges.Instance.TakeDirty())
        {
            if ((uint)h >= (uint)capacity) continue;
            for (Registration? r = byHandle[h]; r is not null; r = r.NextOfHandle) Enqueue(r);
        }
    }

    private static void CollectDirtySockets()
    {
        List<UserSocket> sockets;
        using (s_dirtyGate.EnterScope())
        {
            sockets = s_dirtySockets;
            s_dirtySockets = s_draining;
            s_draining = sockets;
        }
        foreach (UserSocket s in sockets)
        {
            s.DirtyQueued = false;
            int h = HandleOf(s);
            for (Registration? r = s.EpollRegs; r is not null; r = r.NextOfSocket)
            {
                if (r.IndexedHandle != h) { Unindex(r); Index(r, h); } // the socket joined or left a listener group
                Enqueue(r);
            }
        }
        sockets.Clear();
        Trim(sockets);
    }

    /// <summary>Drops every registration of a socket whose last fd is gone (epoll(7)). Caller holds <see cref="Gate"/>.</summary>
    internal static void ForgetSocketLocked(UserSocket s)
    {
        while (s.EpollRegs is { } r) Remove(r);
    }

    internal static void ForgetEpoll(int epfd)
    {
        using (s_gate.EnterScope())
        {
            if (!s_sets.Remove(epfd, out Set? set)) return;
            if (epfd == s_lastEpfd)
            {
                s_lastEpfd = -1;
                s_lastSet = null;
            }
            // Every registration hangs off a socket, and every socket that has one is open (its last close removes
            // them), so it is in the fd table: one pass over the table, ended as soon as the set is empty. Closing an
            // epoll fd is rare (exit, reload); the wait and epoll_ctl paths keep no per-set index for it.
            Stack.ChunkedTable<UserSocket> table = FdTable.Slots;
            for (int i = 0; i < table.Capacity && set.Count > 0; i++)
            {
                if (table.Get(i) is not { EpollRegs: not null } s) continue;
                for (Registration? r = s.EpollRegs; r is not null;)
                {
                    Registration? next = r.NextOfSocket;
                    if (ReferenceEquals(r.Owner, set)) Remove(r);
                    r = next;
                }
            }
            set.Ready.Clear();
            Kernel.EpfdMark(epfd, 0);
        }
    }
}
