using System;
using System.Runtime.CompilerServices;
using System.Threading;

namespace UserTcp.Stack;

/// <summary>
/// A table of references indexed by small integers (handles, fd numbers) that grows without copying its slots: the
/// slots live in fixed chunks of <see cref="ChunkSize"/> (32 KiB, below the large-object threshold), found through a
/// small directory. A flat array doubled by copying leaves every earlier array behind (as much again as the final
/// one, on the large-object heap, where a process holding a million sockets kept ~30 B per socket of them in RSS),
/// and its slack after a doubling is up to 2x; here growth allocates one chunk, and only the directory (8 B per
/// 4,096 slots) is ever copied. A slot, once its chunk exists, never moves: a store into it is never lost to a
/// concurrent growth, so lock-free readers and writers need no more than <see cref="Volatile"/> and
/// <see cref="Interlocked"/> on the slot (growth itself is the caller's to serialise).
/// </summary>
public sealed class ChunkedTable<T> where T : class
{
    public const int Shift = 12, ChunkSize = 1 << Shift, Mask = ChunkSize - 1;

    /// <summary>A slot. Chunks are arrays of this struct, not of <typeparamref name="T"/>: an address of (or a store
    /// into) an element of an array of a non-sealed reference type costs a covariance check in the runtime
    /// (TypeCast.LdelemaRef/StelemRef, ~80 instructions per RPC in callgrind), an element of a struct array none.</summary>
    public struct Entry
    {
        public T? Value;
    }

    private Entry[]?[] _chunks;  // the directory: doubles; its entries past _chunkCount are null
    private int _chunkCount;

    public ChunkedTable(int capacity = ChunkSize)
    {
        _chunks = [];
        EnsureCapacity(capacity);
    }

    /// <summary>Slots that exist (a multiple of <see cref="ChunkSize"/>).</summary>
    public int Capacity => Volatile.Read(ref _chunkCount) << Shift;

    /// <summary>The slot of <paramref name="index"/>, which must be below <see cref="Capacity"/>.</summary>
    public ref T? this[int index]
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => ref _chunks[index >> Shift]![index & Mask].Value;
    }

    /// <summary>The value at <paramref name="index"/>, or null when the index is negative or beyond the table
    /// (lock-free: a reader may run beside a growth).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public T? Get(int index)
    {
        Entry[]?[] chunks = Volatile.Read(ref _chunks);
        uint c = (uint)index >> Shift;
        Entry[]? chunk = c < (uint)chunks.Length ? Volatile.Read(ref chunks[c]) : null;
        return chunk != null ? Volatile.Read(ref chunk[index & Mask].Value) : null;
    }

    /// <summary>Makes slots 0 .. <paramref name="count"/> - 1 exist. Callers serialise growth; readers may run
    /// meanwhile (they see the old directory, whose chunks are the same objects).</summary>
    public void EnsureCapacity(int count)
    {
        int need = (int)(((uint)count + Mask) >> Shift);
        if (need <= _chunkCount) return;
        Entry[]?[] chunks = _chunks;
        if (need > chunks.Length)
        {
            var bigger = new Entry[]?[Math.Max(need, Math.Max(4, chunks.Length * 2))];
            Array.Copy(chunks, bigger, chunks.Length);
            Volatile.Write(ref _chunks, chunks = bigger);
        }
        // Only the chunks asked for: the directory's spare entries stay null (no slack beyond one chunk).
        for (int i = _chunkCount; i < need; i++) Volatile.Write(ref chunks[i], new Entry[ChunkSize]);
        Volatile.Write(ref _chunkCount, need);
    }

    /// <summary>Chunk <paramref name="i"/> of <see cref="ChunkCount"/>, for a pass over every slot without allocating.</summary>
    public Entry[] Chunk(int i) => Volatile.Read(ref _chunks)[i]!;
    public int ChunkCount => Volatile.Read(ref _chunkCount);
}
