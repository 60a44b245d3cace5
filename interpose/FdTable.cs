using System;
using System.Threading;
using UserTcp.Stack;

namespace UserTcp.Interpose;

/// <summary>
/// fd number -> socket, for user-stack fds only. The C shim's bitmap decides ownership (cshim/fdtab.h); this table
/// holds what each owned fd refers to. Lookups and changes are lock-free on a slot; only growth takes the lock. The
/// slots live in fixed chunks (<see cref="ChunkedTable{T}"/>): growth adds a chunk and never moves a slot, so a
/// store racing a growth is never lost, and no earlier array is left behind for the collector.
/// </summary>
internal static class FdTable
{
    private static readonly Lock s_gate = new();
    private static readonly ChunkedTable<UserSocket> s_slots = new(1024);

    internal static UserSocket? Get(int fd) => s_slots.Get(fd);

    /// <summary>The slot table (index = fd; lock-free reads, like <see cref="Get"/>), for a pass over every socket
    /// that must not allocate: <see cref="ChunkedTable{T}.ChunkCount"/> chunks of <see cref="ChunkedTable{T}.ChunkSize"/>.</summary>
    internal static ChunkedTable<UserSocket> Slots => s_slots;

    internal static void Set(int fd, UserSocket socket)
    {
        if ((uint)fd >= (uint)s_slots.Capacity)
            lock (s_gate) s_slots.EnsureCapacity(fd + 1);
        Interlocked.Exchange(ref s_slots[fd], socket);
    }

    /// <summary>Removes the fd and returns what it referred to.</summary>
    internal static UserSocket? Remove(int fd)
    {
        if ((uint)fd >= (uint)s_slots.Capacity) return null;
        return Interlocked.Exchange(ref s_slots[fd], null);
    }

    /// <summary>Every (fd, socket) pair, for bind conflict checks. Allocates; not for the data path.</summary>
    internal static (int Fd, UserSocket Socket)[] Snapshot()
    {
        var list = new System.Collections.Generic.List<(int, UserSocket)>();
        int chunks = s_slots.ChunkCount;
        for (int c = 0; c < chunks; c++)
        {
            ChunkedTable<UserSocket>.Entry[] chunk = s_slots.Chunk(c);
            for (int i = 0; i < chunk.Length; i++)
                if (Volatile.Read(ref chunk[i].Value) is { } s) list.Add(((c << ChunkedTable<UserSocket>.Shift) + i, s));
        }
        return list.ToArray();
    }
}
