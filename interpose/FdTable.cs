using System;
using System.Threading;

namespace UserTcp.Interpose;

/// <summary>
/// fd number -> socket, for user-stack fds only. The C shim's bitmap decides ownership (cshim/fdtab.h); this table
/// holds what each owned fd refers to. Lookups are lock-free reads of an array slot; so are changes, except while
/// the array grows (see TryStore).
/// </summary>
internal static class FdTable
{
    private static readonly Lock s_gate = new();
    private static UserSocket?[] s_slots = new UserSocket?[1024];

    internal static UserSocket? Get(int fd)
    {
        UserSocket?[] slots = Volatile.Read(ref s_slots);
        return (uint)fd < (uint)slots.Length ? Volatile.Read(ref slots[fd]) : null;
    }

    /// <summary>The current slot array (index = fd; lock-free read, like <see cref="Get"/>), for a pass over every
    /// socket that must not allocate.</summary>
    internal static UserSocket?[] Slots => Volatile.Read(ref s_slots);

    internal static void Set(int fd, UserSocket socket)
    {
        if (!TryStore(fd, socket))
            lock (s_gate)
            {
                if (fd >= s_slots.Length)
                {
                    int size = s_slots.Length;
                    while (size <= fd) size *= 2;
                    UserSocket?[] bigger = new UserSocket?[size];
                    Volatile.Write(ref s_growing, true);
                    Interlocked.MemoryBarrier();
                    Array.Copy(s_slots, bigger, s_slots.Length);
                    Volatile.Write(ref s_slots, bigger);
                    Volatile.Write(ref s_growing, false);
                }
                Volatile.Write(ref s_slots[fd], socket);
            }
    }

    /// <summary>Removes the fd and returns what it referred to.</summary>
    internal static UserSocket? Remove(int fd)
    {
        UserSocket?[] slots = Volatile.Read(ref s_slots);
        if ((uint)fd >= (uint)slots.Length) return null;
        UserSocket? s = Interlocked.Exchange(ref slots[fd], null);
        if (Stable(slots)) return s;
        lock (s_gate)
        {
            // A growth copied the slot meanwhile (maybe before the exchange): clear it in the array that counts.
            UserSocket? t = Interlocked.Exchange(ref s_slots[fd], null);
            return s ?? t;
        }
    }

    // Set and Remove take no lock (one per accepted connection each, before): they store into the current array and
    // then check that no growth ran meanwhile. A growth raises s_growing before it copies; the store and that flag
    // are each followed by a full fence, so either the copy sees the store or the storer sees the flag (or the new
    // array) and stores again under the lock, after the copy. Growth is rare (the fd space doubling).
    private static bool s_growing;

    private static bool TryStore(int fd, UserSocket socket)
    {
        UserSocket?[] slots = Volatile.Read(ref s_slots);
        if ((uint)fd >= (uint)slots.Length) return false;
        Interlocked.Exchange(ref slots[fd], socket);
        return Stable(slots);
    }

    /// <summary>After a store into <paramref name="slots"/> (an interlocked one: a full fence): no growth ran or is
    /// running, so the store is in the array everyone reads.</summary>
    private static bool Stable(UserSocket?[] slots) =>
        !Volatile.Read(ref s_growing) && ReferenceEquals(Volatile.Read(ref s_slots), slots);

    /// <summary>Every (fd, socket) pair, for bind conflict checks. Allocates; not for the data path.</summary>
    internal static (int Fd, UserSocket Socket)[] Snapshot()
    {
        lock (s_gate)
        {
            var list = new System.Collections.Generic.List<(int, UserSocket)>();
            for (int i = 0; i < s_slots.Length; i++)
                if (s_slots[i] is { } s) list.Add((i, s));
            return list.ToArray();
        }
    }
}
