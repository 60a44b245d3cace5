using System.Runtime.CompilerServices;
using System.Threading;
using UserTcp.Interpose.Native;

namespace UserTcp.Interpose;

/// <summary>
/// The stack's lock (<see cref="Engine.Gate"/>): a compare-and-swap on the owner's pthread id, re-entrant like the
/// <see cref="Lock"/> it replaces. <see cref="Lock"/> identifies its owner by the managed thread id, a thread static:
/// in a shared library every read of it is a <c>__tls_get_addr</c> call, and entering and leaving cost ~65
/// instructions per pair (~10 pairs per accepted connection, ~2.5 per RPC). Here the owner is pthread_self (the
/// thread pointer register, through a P/Invoke without GC transition) and a pair costs a third of that.
///
/// Waiting: the holders are short (a stack poll, a socket call); a waiter spins, then yields the CPU, and past a few
/// thousand rounds sleeps 1 ms per round (only exit's final flush holds the lock that long).
///
/// A struct over a shared state object, so that `lock (Engine.Gate)` does not compile (it would take a Monitor on a
/// boxed copy, excluding nothing): every holder writes `using (Engine.Gate.EnterScope())`.
/// </summary>
internal readonly struct StackLock
{
    internal sealed class State
    {
        public nint Owner; // pthread_self of the holder, 0 while free
        public int Depth;  // re-entries by the holder
    }

    private readonly State _state;

    private StackLock(State state) => _state = state;

    internal static StackLock Create() => new(new State());

    /// <summary>The holder's pthread id (0 while free): the calling thread's own id when it holds the lock.</summary>
    internal nint Owner => Volatile.Read(ref _state.Owner);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal Scope EnterScope()
    {
        Enter();
        return new Scope(_state);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void Enter()
    {
        State s = _state;
        nint self = Kernel.ThreadSelf();
        if (Interlocked.CompareExchange(ref s.Owner, self, 0) == 0) return;
        if (s.Owner == self)
        {
            s.Depth++;
            return;
        }
        EnterContended(s, self);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void EnterContended(State s, nint self)
    {
        var spinner = new SpinWait();
        for (int rounds = 0; ; rounds++)
        {
            if (Volatile.Read(ref s.Owner) == 0 && Interlocked.CompareExchange(ref s.Owner, self, 0) == 0) return;
            if (rounds < 4096) spinner.SpinOnce(sleep1Threshold: -1);
            else Thread.Sleep(1);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Exit(State s)
    {
        if (s.Depth > 0)
        {
            s.Depth--;
            return;
        }
        Volatile.Write(ref s.Owner, 0);
    }

    internal ref struct Scope
    {
        private readonly State _state;
        internal Scope(State state) => _state = state;
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Dispose() => Exit(_state);
    }
}
