using System;
using System.Threading;

namespace UserTcp.Interpose;

/// <summary>Socket-level state of one user-stack socket (the open file description that dup'd fds share).</summary>
internal enum SocketState : byte { Unconnected, Listening, Connected }

/// <summary>
/// One user-stack TCP socket: the state POSIX calls see (options, local address, mode). Shared by every fd that
/// refers to it (dup), like a kernel open file description. Data-path state will live in the stack; this object is
/// what interpose/ keeps. Guarded by its own lock; calls on different sockets never contend. It is also its own first
/// epoll registration (the fields of <see cref="EpollSets.Registration"/>; most sockets are in exactly one epoll set),
/// so a socket in epoll costs one object.
/// </summary>
internal sealed class UserSocket : EpollSets.Registration
{
    /// <summary>The socket's own lock (the object itself: no second object per socket).</summary>
    internal object Gate => this;
    internal int Refs;
    /// <summary>The stack's handle for this socket (see <see cref="UserTcp.Stack.NetStack"/>); -1 once closed.</summary>
    internal int Handle = -1;
    /// <summary>For a listener that joined an SO_REUSEPORT group: the group (whose handle accepts for everyone).</summary>
    internal ListenerGroups.Group? Group;
    internal bool NonBlocking;
    internal SocketState State;
    /// <summary>listen(2)'s backlog (already capped at somaxconn, 4096, by listen): kept in 16 bits, since a million
    /// idle connections each carry the field.</summary>
    internal int Backlog { get => _backlog; set => _backlog = (ushort)Math.Clamp(value, 0, ushort.MaxValue); }
    private ushort _backlog;
    internal bool Bound;
    internal uint LocalAddress;   // host order
    internal ushort LocalPort;
    /// <summary>An AF_INET6 (dual-stack) socket: addresses are sockaddr_in6, IPv4 ones mapped (Inet6.cs).</summary>
    internal bool Inet6;
    /// <summary>AF_INET6 bound to an IPv4-mapped address (::ffff:0.0.0.0 reads back as such, not as ::).</summary>
    internal bool BoundMapped;
    /// <summary>Shared and immutable once assigned (<see cref="SocketOptions.Intern"/>): a million sockets with the
    /// same options hold one object. setsockopt replaces it.</summary>
    internal SocketOptions Options = SocketOptions.Default;
    /// <summary>shutdown(2) bits: 1 = no more receives, 2 = no more sends.</summary>
    internal int ShutdownBits { get => _shutdownBits; set => _shutdownBits = (byte)value; }
    private byte _shutdownBits;
    /// <summary>connect(2) returned EINPROGRESS (or was interrupted) and no later connect has reported the outcome
    /// yet: Linux's SS_CONNECTING. The next connect reports success once, then EISCONN.</summary>
    internal bool ConnectPending;
    /// <summary>Bumped whenever readiness may have changed (edge-triggered epoll reports once per change).</summary>
    internal int ReadinessVersion;
    /// <summary>The socket's epoll registrations (one per set it is in; chained through NextOfSocket): this object
    /// while its embedded registration is in a set, followed by the extra ones, which hang off this object's
    /// NextOfSocket whether or not the embedded one is in use (no field of its own: 8 bytes less per socket).</summary>
    internal EpollSets.Registration? EpollRegs => Owner is not null ? this : NextOfSocket;
    internal bool DirtyQueued;                  // waiting in EpollSets' changed-socket list
    /// <summary>Bumped (under Engine.Gate) when the socket's last fd closes and the object goes back to the pool. A
    /// call that waits compares it on every attempt: a thread blocked in recv/accept/connect on a socket another
    /// thread closed gets EBADF instead of waking into the next connection that reuses this object or its handle.</summary>
    internal int Generation;

    // ---- pool: accepted connections reuse closed sockets' objects (no allocation per short connection) ----------
    private const int PoolMax = 4096;
    private static readonly UserSocket?[] s_pool = new UserSocket?[PoolMax];
    private static int s_pooled;

    /// <summary>A socket object in its initial state: from the pool, or new. Caller holds Engine.Gate.</summary>
    internal static UserSocket Rent()
    {
        if (s_pooled == 0) return new UserSocket();
        UserSocket s = s_pool[--s_pooled]!;
        s_pool[s_pooled] = null;
        return s;
    }

    /// <summary>The last fd of <paramref name="s"/> closed and its handle is released: the object is reset and kept for
    /// <see cref="Rent"/>. Caller holds Engine.Gate (so a waiting attempt sees the new generation atomically with the
    /// closed handle).</summary>
    internal static void Recycle(UserSocket s)
    {
        s.Generation++;
        s.Reset();
        if (s_pooled < PoolMax) s_pool[s_pooled++] = s;
    }

    /// <summary>Every field back to a new object's value, except <see cref="Generation"/>, <see cref="EpollSets.Registration.Life"/>, <see cref="ReadinessVersion"/>
    /// (only compared for changes) and <see cref="DirtyQueued"/> (an entry on EpollSets' changed list clears it).</summary>
    internal void Reset()
    {
        Refs = 0;
        Handle = -1;
        Group = null;
        NonBlocking = false;
        State = SocketState.Unconnected;
        _backlog = 0;
        Bound = false;
        LocalAddress = 0;
        LocalPort = 0;
        Inet6 = false;
        BoundMapped = false;
        Options = SocketOptions.Default;
        _shutdownBits = 0;
        ConnectPending = false;
        ResetRegistration(); // the embedded registration (its Life counter kept, like Generation)
    }

    /// <summary>Readiness bits as poll(2) reports them (POLLIN=1, POLLOUT=4, POLLERR=8, POLLHUP=0x10, with the
    /// RDNORM/WRNORM companions Linux sets). Caller holds Engine.Gate. Inlined for the common case, a connection
    /// whose readiness the stack reported (epoll_wait evaluates it twice per level-triggered RPC).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    internal short PollMask() => PollMask(Engine.Edges.Instance);

    /// <summary><see cref="PollMask()"/> with the readiness table given (a walk over many sockets loads it once).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    internal short PollMask(Engine.Edges edges)
    {
        if (State == SocketState.Connected && Group is null)
        {
            uint known = edges.Raw(Handle);
            if ((known & Engine.Edges.Known) != 0)
            {
                known &= ~Engine.Edges.Flags;
                return (short)(ushort)(known | ((known & (uint)(Poll.In | Poll.Out)) << 6)); // In -> RdNorm, Out -> WrNorm
            }
        }
        return PollMaskSlow();
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private short PollMaskSlow()
    {
        uint r;
        if (State == SocketState.Unconnected)
        {
            // Neither connected nor listening is "closed" for TCP: Linux reports it writable and hung up.
            r = (uint)(Poll.Out | Poll.Hup);
            if ((ShutdownBits & 1) != 0) r |= (uint)(Poll.In | Poll.RdHup);
        }
        else
        {
            int h = Group?.Handle ?? Handle;
            // A connection's readiness as the stack last reported it (listeners report only new arrivals: asked).
            if (h < 0) r = (uint)Poll.Nval;
            else if (State == SocketState.Connected && Engine.Edges.Instance.TryGet(h, out Stack.Tcp.Readiness known)) r = (uint)known;
            else r = (uint)Engine.Stack.GetReadiness(h);
        }
        if ((r & (uint)Poll.In) != 0) r |= (uint)Poll.RdNorm;
        if ((r & (uint)Poll.Out) != 0) r |= (uint)Poll.WrNorm;
        return (short)(ushort)r;
    }

    internal void Changed()
    {
        Interlocked.Increment(ref ReadinessVersion);
        if (EpollRegs is not null) EpollSets.MarkDirty(this);
    }
}

/// <summary>poll(2)/epoll(7) bits (the values are the same for both).</summary>
internal static class Poll
{
    public const short In = 0x1, Pri = 0x2, Out = 0x4, Err = 0x8, Hup = 0x10, Nval = 0x20, RdNorm = 0x40,
        WrNorm = 0x100, RdHup = 0x2000;
    public const uint EpollExclusive = 1u << 28, EpollWakeup = 1u << 29, EpollOneShot = 1u << 30, EpollEt = 1u << 31;
}

/// <summary>Socket options a program set, with Linux's defaults for the rest.</summary>
/// <summary>
/// A socket's option values as the application set them. A record (value equality) so that equal sets are shared:
/// <see cref="Intern"/> maps each distinct set to one instance (at most <see cref="MaxInterned"/> kept), and nobody
/// changes an instance after it was handed out (setsockopt copies with <c>with { }</c>, changes the copy, interns
/// it). That keeps the per-socket cost at one reference instead of a ~130-byte object.
/// </summary>
internal sealed record class SocketOptions
{
    internal static readonly SocketOptions Default = new();
    private const int MaxInterned = 256;
    private static readonly System.Collections.Generic.Dictionary<SocketOptions, SocketOptions> s_interned = new() { [Default] = Default };
    private static readonly System.Collections.Generic.Dictionary<SocketOptions, SocketOptions> s_child = new();

    /// <summary>The shared instance equal to <paramref name="o"/> (o itself when new; not shared once the table is
    /// full, which only costs memory).</summary>
    internal static SocketOptions Intern(SocketOptions o)
    {
        lock (s_interned)
        {
            if (s_interned.TryGetValue(o, out SocketOptions? shared)) return shared;
            if (s_interned.Count < MaxInterned) s_interned[o] = o;
            return o;
        }
    }

    /// <summary>A setsockopt on options <c>From</c> that gave <c>To</c> (immutable: swapped whole into a slot).</summary>
    private sealed class Step(SocketOptions from, int level, int name, int value, SocketOptions to)
    {
        public readonly SocketOptions From = from, To = to;
        public readonly int Level = level, Name = name, Value = value;
    }

    private static readonly Step?[] s_steps = new Step?[64];

    private static int StepSlot(SocketOptions from, int level, int name, int value) =>
        (int)((uint)(System.Runtime.CompilerServices.RuntimeHelpers.GetHashCode(from) * 31 + level * 131 + name * 17 + value)
              % (uint)s_steps.Length);

    /// <summary>What setsockopt(level, name, value) on a socket with options <paramref name="from"/> produced
    /// before (an int-valued option), or null. Lock-free: a slot holds one immutable step. Never for the IPv6 level:
    /// its answers depend on more than the options (the socket's family, whether it is bound).</summary>
    internal static SocketOptions? Transition(SocketOptions from, int level, int name, int value)
    {
        if (level == Inet6.IPPROTO_IPV6) return null;
        Step? st = System.Threading.Volatile.Read(ref s_steps[StepSlot(from, level, name, value)]);
        return st is not null && ReferenceEquals(st.From, from) && st.Level == level && st.Name == name && st.Value == value
            ? st.To : null;
    }

    /// <summary>Remembers a transition whose result is shared (interned); others would pin private copies.</summary>
    internal static void RememberTransition(SocketOptions from, int level, int name, int value, SocketOptions to)
    {
        if (level == Inet6.IPPROTO_IPV6) return; // see Transition
        bool shared;
        lock (s_interned) shared = s_interned.TryGetValue(to, out SocketOptions? t) && ReferenceEquals(t, to)
                                   && s_interned.TryGetValue(from, out SocketOptions? f) && ReferenceEquals(f, from);
        if (shared)
            System.Threading.Volatile.Write(ref s_steps[StepSlot(from, level, name, value)], new Step(from, level, name, value, to));
    }

    /// <summary>The options an accepted socket starts with: the defaults plus what it inherits from its listener.</summary>
    internal static SocketOptions ForChildOf(SocketOptions listener)
    {
        // One listener's children in a row (every accept): no dictionary lookup (a record's hash reads every field).
        if (System.Threading.Volatile.Read(ref s_lastChildBox) is { } last && ReferenceEquals(last.Parent, listener))
            return last.Child;
        SocketOptions result = ForChildOfSlow(listener);
        System.Threading.Volatile.Write(ref s_lastChildBox, new ChildBox(listener, result));
        return result;
    }

    private sealed record class ChildBox(SocketOptions Parent, SocketOptions Child);
    private static ChildBox? s_lastChildBox;

    private static SocketOptions ForChildOfSlow(SocketOptions listener)
    {
        lock (s_interned)
            if (s_child.TryGetValue(listener, out SocketOptions? c)) return c;
        var child = new SocketOptions();
        child.InheritFrom(listener);
        child = Intern(child);
        lock (s_interned)
            if (s_child.Count < MaxInterned) s_child[listener] = child;
        return child;
    }

    public bool ReuseAddress, ReusePort, KeepAlive, OobInline, NoDelay, Cork, QuickAck = true, Broadcast, DontRoute;
    public int ReceiveBuffer = 131072, SendBuffer = 16384, ReceiveLowWater = 1, Priority;
    public int KeepIdle = 7200, KeepInterval = 75, KeepCount = 9, UserTimeout, DeferAccept, MaxSegment = 536,
        SynCount = 6, Linger2 = 60, WindowClamp, Tos, Ttl = 64, TClass;
    public bool BindAddressNoPort, FreeBind, RecvErr;
    public bool LingerOn;
    public int LingerSeconds;
    public long ReceiveTimeoutUs, SendTimeoutUs;
    public string Congestion = "cubic";

    /// <summary>What an accepted socket inherits from its listener (as Linux copies the listener's options).</summary>
    public void InheritFrom(SocketOptions l)
    {
        ReuseAddress = l.ReuseAddress; ReusePort = l.ReusePort; // Linux clones the listener's sock, sk_reuse included
        KeepAlive = l.KeepAlive; NoDelay = l.NoDelay; Cork = l.Cork; OobInline = l.OobInline;
        ReceiveBuffer = l.ReceiveBuffer; SendBuffer = l.SendBuffer; KeepIdle = l.KeepIdle; KeepInterval = l.KeepInterval;
        KeepCount = l.KeepCount; UserTimeout = l.UserTimeout; LingerOn = l.LingerOn; LingerSeconds = l.LingerSeconds;
        ReceiveTimeoutUs = l.ReceiveTimeoutUs; SendTimeoutUs = l.SendTimeoutUs; Congestion = l.Congestion; Tos = l.Tos;
        Ttl = l.Ttl; Priority = l.Priority; TClass = l.TClass;
    }
}
