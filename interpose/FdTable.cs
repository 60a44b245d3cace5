using System;
using System.Threading;

namespace UserTcp.Interpose;

/// <summary>
/// fd number -> socket, for user-stack fds only. The C shim's bitmap decides ownership (cshim/fdtab.h); this table
/// holds what each owned fd refers to. Lookups are lock-free reads of an array slot; changes take one lock
/// (they happen at socket/accept/dup/close, not per byte).
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
        lock (s_gate)
        {
            if (fd >= s_slots.Length)
            {
                int size = s_slots.Length;
                while (size <= fd) size *= 2;
                UserSocket?[] bigger = new UserSocket?[size];
                Array.Copy(s_slots, bigger, s_slots.Length);
                Volatile.Write(ref s_slots, bigger);
            }
            Volatile.Write(ref s_slots[fd], socket);
        }
    }

    /// <summary>Removes the fd and returns what it referred to.</summary>
    internal static UserSocket? Remove(int fd)
    {
        lock (s_gate)
        {
            if ((uint)fd >= (uint)s_slots.Length) return null;
            UserSocket? s = s_slots[fd];
            Volatile.Write(ref s_slots[fd], null);
            return s;
        }
    }

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
