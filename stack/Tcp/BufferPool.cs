using System;
using System.Numerics;
using System.Runtime.InteropServices;

namespace UserTcp.Stack.Tcp;

/// <summary>
/// One block of unmanaged memory rented from a <see cref="BufferPool"/>. A value type so renting allocates nothing;
/// the renter must hand the same value back to <see cref="BufferPool.Return"/> exactly once.
/// </summary>
public readonly unsafe struct PoolBlock
{
    /// <summary>Start of the block (64-byte aligned). Null for the default value.</summary>
    public readonly byte* Pointer;
    /// <summary>Bytes in the block: always one of the pool's size classes (a power of two).</summary>
    public readonly int Length;
    /// <summary>Index of the size class the block belongs to.</summary>
    internal readonly int SizeClass;

    internal PoolBlock(byte* pointer, int length, int sizeClass)
    {
        Pointer = pointer;
        Length = length;
        SizeClass = sizeClass;
    }

    public bool IsNull => Pointer == null;
    public Span<byte> Span => new(Pointer, Length);
}

/// <summary>
/// A bounded pool of unmanaged blocks for send and receive rings. Blocks come in a few power-of-two size classes
/// (e.g. 4 KiB .. 1 MiB) so a ring can wrap with a mask. Freed blocks are kept on an intrusive free list per class
/// (the link lives in the first bytes of the free block, so the list costs no managed memory). The bound covers both
/// rented and cached bytes: when it would be exceeded, cached blocks of other classes are freed first, and only if
/// that is not enough does <see cref="TryRent"/> fail (the caller then shrinks its window; it never throws).
/// Not thread-safe: one pool per stack instance, driven by one thread.
/// </summary>
public sealed unsafe class BufferPool : IDisposable
{
    private const int Alignment = 64;
    private readonly int[] _sizes;
    private readonly nint[] _freeHead;
    private readonly int[] _freeCount;
    private readonly int[] _outstandingPerClass;
    // By k = ceil(log2(bytes)): the smallest class whose blocks hold 2^k bytes, or -1. The classes are powers of two,
    // so that is also the smallest class holding any byte count in (2^(k-1), 2^k]: a lookup instead of a scan.
    private readonly sbyte[] _classForLog2 = new sbyte[32];
    private bool _disposed;

    /// <param name="maxBytes">Upper bound on bytes held (rented plus cached).</param>
    /// <param name="blockSizes">Size classes; each a power of two of at least 64 bytes.</param>
    public BufferPool(long maxBytes, params int[] blockSizes)
    {
        if (maxBytes <= 0) throw new ArgumentOutOfRangeException(nameof(maxBytes));
        if (blockSizes is null || blockSizes.Length == 0) throw new ArgumentException("at least one size class", nameof(blockSizes));
        _sizes = (int[])blockSizes.Clone();
        Array.Sort(_sizes);
        for (int i = 0; i < _sizes.Length; i++)
        {
            int s = _sizes[i];
            if (s < Alignment || !BitOperations.IsPow2(s)) throw new ArgumentException($"size class {s} is not a power of two >= {Alignment}", nameof(blockSizes));
            if (i > 0 && _sizes[i - 1] == s) throw new ArgumentException($"duplicate size class {s}", nameof(blockSizes));
        }
        MaxBytes = maxBytes;
        _freeHead = new nint[_sizes.Length];
        _freeCount = new int[_sizes.Length];
        _outstandingPerClass = new int[_sizes.Length];
        for (int k = 0, c = 0; k < _classForLog2.Length; k++)
        {
            while (c < _sizes.Length && _sizes[c] < (1L << k)) c++;
            _classForLog2[k] = (sbyte)(c < _sizes.Length ? c : -1);
        }
    }

    /// <summary>A pool with the default classes 4 KiB, 16 KiB, 64 KiB, 256 KiB and 1 MiB.</summary>
    public static BufferPool CreateDefault(long maxBytes) => new(maxBytes, 4096, 16384, 65536, 262144, 1 << 20);

    public long MaxBytes { get; }
    /// <summary>Bytes in blocks currently rented out.</summary>
    public long BytesInUse { get; private set; }
    /// <summary>Bytes in freed blocks kept for reuse.</summary>
    public long BytesCached { get; private set; }
    /// <summary>Blocks rented and not yet returned (zero when nothing leaks).</summary>
    public int OutstandingBlocks { get; private set; }
    /// <summary>Rent requests refused because the bound was reached.</summary>
    public long FailedRents { get; private set; }
    public int SizeClassCount => _sizes.Length;
    /// <summary>True when more than half the bound is rented: drained rings should give their blocks back at once
    /// rather than keep them for the next burst.</summary>
    public bool UnderPressure => BytesInUse > MaxBytes / 2;
    public int MaxBlockSize => _sizes[^1];
    public int BlockSize(int sizeClass) => _sizes[sizeClass];

    /// <summary>The smallest block size that holds <paramref name="bytes"/>, or -1 when larger than every class.</summary>
    public int BlockSizeFor(int bytes)
    {
        int c = ClassFor(bytes);
        return c < 0 ? -1 : _sizes[c];
    }

    private int ClassFor(int bytes) =>
        _classForLog2[bytes <= 1 ? 0 : 32 - BitOperations.LeadingZeroCount((uint)(bytes - 1))];

    /// <summary>
    /// Rents the smallest block of at least <paramref name="minBytes"/>. False (and a default block) when the request
    /// is larger than every class or the pool's bound would be exceeded.
    /// </summary>
    public bool TryRent(int minBytes, out PoolBlock block)
    {
        block = default;
        int c = ClassFor(Math.Max(minBytes, 1));
        if (c < 0 || _disposed)
        {
            FailedRents++;
            return false;
        }
        int size = _sizes[c];
        byte* p;
        if (_freeHead[c] != 0)
        {
            p = (byte*)_freeHead[c];
            _freeHead[c] = *(nint*)p;
            _freeCount[c]--;
            BytesCached -= size;
        }
        else
        {
            if (BytesInUse + BytesCached + size > MaxBytes && !EvictCached(BytesInUse + BytesCached + size - MaxBytes))
            {
                FailedRents++;
                return false;
            }
            p = (byte*)NativeMemory.AlignedAlloc((nuint)size, Alignment);
        }
        BytesInUse += size;
        OutstandingBlocks++;
        _outstandingPerClass[c]++;
        block = new PoolBlock(p, size, c);
        return true;
    }

    /// <summary>Gives a block back. The caller must not touch its memory afterwards.</summary>
    public void Return(in PoolBlock block)
    {
        if (block.Pointer == null) return;
        int c = block.SizeClass;
        if ((uint)c >= (uint)_sizes.Length || _sizes[c] != block.Length || _outstandingPerClass[c] == 0)
            throw new ArgumentException("block does not belong to this pool", nameof(block));
        _outstandingPerClass[c]--;
        OutstandingBlocks--;
        BytesInUse -= block.Length;
        if (_disposed)
        {
            NativeMemory.AlignedFree(block.Pointer);
            return;
        }
        *(nint*)block.Pointer = _freeHead[c];
        _freeHead[c] = (nint)block.Pointer;
        _freeCount[c]++;
        BytesCached += block.Length;
    }

    /// <summary>Gives back a block known by its pointer and length (<see cref="ByteRing"/> keeps only those two: the
    /// size class follows from the length, the classes being distinct).</summary>
    public void Return(byte* pointer, int length)
    {
        if (pointer == null) return;
        int c = ClassFor(length);
        if (c < 0 || _sizes[c] != length) throw new ArgumentException("block does not belong to this pool", nameof(length));
        Return(new PoolBlock(pointer, length, c));
    }

    /// <summary>Frees cached blocks (largest first) until at least <paramref name="bytes"/> are released.</summary>
    private bool EvictCached(long bytes)
    {
        for (int c = _sizes.Length - 1; c >= 0 && bytes > 0; c--)
        {
            while (_freeHead[c] != 0 && bytes > 0)
            {
                byte* p = (byte*)_freeHead[c];
                _freeHead[c] = *(nint*)p;
                _freeCount[c]--;
                BytesCached -= _sizes[c];
                bytes -= _sizes[c];
                NativeMemory.AlignedFree(p);
            }
        }
        return bytes <= 0;
    }

    /// <summary>Frees every cached block back to the system.</summary>
    public void Trim() => EvictCached(long.MaxValue);

    /// <summary>Frees the cache; blocks still rented are freed when returned.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        Trim();
        _disposed = true;
    }
}
