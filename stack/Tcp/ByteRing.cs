using System;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace UserTcp.Stack.Tcp;

/// <summary>
/// A ring of bytes over a block rented from a <see cref="BufferPool"/>, used for the send and receive buffers of a
/// connection. The ring holds no block while it is empty (an idle connection costs only this struct): a block is
/// taken on the first write and returned by <see cref="ReleaseIfEmpty"/>. The block starts small (the pool's
/// smallest class that fits, at least <see cref="MinBlockBytes"/>) and grows by size class as bytes accumulate, up to
/// <see cref="Capacity"/>: a connection with a few hundred bytes in flight holds 4 KiB, not its whole socket buffer,
/// which is what lets many thousands of connections each have a little data outstanding.
///
/// Layout, as offsets from the read position (the oldest byte):
/// <code>
///   [0, Count)            contiguous bytes: readable (receive) or not yet acknowledged (send)
///   [Count, Capacity)     free; the receive side may place out-of-order bytes here with WriteAt
/// </code>
/// Send side: <see cref="Write"/> appends, <see cref="Peek"/>/<see cref="GetReadSpans"/> read at an offset from
/// SND.UNA for (re)transmission, <see cref="Consume"/> drops acknowledged bytes.
/// Receive side: offsets given to <see cref="WriteAt"/> are relative to the end of the contiguous data (= RCV.NXT),
/// the same offsets <see cref="Assembler"/> uses; <see cref="Advance"/> makes bytes contiguous once the assembler
/// says they are. No operation allocates.
///
/// A mutable struct (28 bytes) so a connection holds its two rings inline, without two object headers and
/// references: keep it in a field or local and never copy it (a copy would share the block). The pool is not a field
/// (the connection's two rings share one, and a million idle connections would carry two copies of the reference):
/// the operations that may rent or return a block take it as an argument, always the same pool for one ring. The
/// block is its pointer and length (its size class follows from the length); 4-byte packing keeps the struct at 28
/// bytes rather than padding it to 32.
/// </summary>
[StructLayout(LayoutKind.Sequential, Pack = 4)]
public unsafe struct ByteRing
{
    private byte* _ptr;     // the block (null while none is held)
    private int _len;       // its length: a power of two, one of the pool's size classes
    private int _head;      // block index of offset 0
    private int _count;     // contiguous bytes
    private int _extent;    // bytes from the head that were ever written (>= _count): covers out-of-order data

    /// <summary>The first block a ring takes.</summary>
    public const int MinBlockBytes = 4096;

    /// <param name="pool">Where the block comes from.</param>
    /// <param name="capacity">Logical capacity in bytes (at most the pool's largest block).</param>
    public ByteRing(BufferPool pool, int capacity)
    {
        ArgumentNullException.ThrowIfNull(pool);
        // (BlockSizeFor(capacity) < 0 exactly when no class is that large: one comparison per connection instead of
        // the walk over the classes.)
        if (capacity <= 0 || capacity > pool.MaxBlockSize) throw new ArgumentOutOfRangeException(nameof(capacity));
        Capacity = capacity;
    }

    /// <summary>Logical capacity: the most bytes the ring holds (counting out-of-order bytes placed by WriteAt).</summary>
    public int Capacity { readonly get => _capacity; private set => _capacity = value; }
    private int _capacity;
    /// <summary>Contiguous bytes held.</summary>
    public int Count => _count;
    /// <summary>Room for contiguous bytes: <see cref="Capacity"/> - <see cref="Count"/>.</summary>
    public int Free => Capacity - _count;
    public bool IsEmpty => _count == 0;
    public bool HasBlock => _ptr != null;
    /// <summary>True when a block is held but no bytes (contiguous or out-of-order): <see cref="ReleaseIfEmpty"/>
    /// would give it back.</summary>
    public bool IsDrained { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => _extent == 0 && _ptr != null; }
    /// <summary>True when bytes beyond <see cref="Count"/> were placed by WriteAt and not yet advanced over.</summary>
    public bool HasOutOfOrderBytes => _extent > _count;

    /// <summary>
    /// Changes the logical capacity (socket buffer size). Refused when the new size is smaller than the bytes held or,
    /// while a block is held, larger than that block.
    /// </summary>
    public bool TrySetCapacity(BufferPool pool, int capacity)
    {
        if (capacity <= 0 || capacity < _extent || capacity > pool.MaxBlockSize) return false;
        Capacity = capacity; // the block grows to it when bytes need the room
        return true;
    }

    /// <summary>Takes a block from the pool if the ring has none. False when the pool is exhausted.</summary>
    public bool EnsureBlock(BufferPool pool) => EnsureRoom(pool, 1);

    /// <summary>
    /// Makes the block cover <paramref name="bytes"/> from the read position: rents the smallest fitting block, or
    /// moves the held bytes into a bigger one (one copy per size class crossed). False when the pool cannot supply it;
    /// the ring is then unchanged.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool EnsureRoom(BufferPool pool, int bytes) => (_ptr != null && bytes <= _len) || Grow(pool, bytes);

    /// <summary><see cref="EnsureRoom"/> when the block is missing or too small.</summary>
    private bool Grow(BufferPool pool, int bytes)
    {
        if (HasBlock && bytes <= _len) return true;
        int want = Math.Min(Math.Max(bytes, MinBlockBytes), Math.Max(Capacity, bytes));
        if (!pool.TryRent(want, out PoolBlock bigger)) return false;
        if (HasBlock)
        {
            // Linearise what is held (contiguous and out-of-order bytes alike) at the start of the new block.
            int start = _head, firstLen = Math.Min(_extent, _len - start);
            new ReadOnlySpan<byte>(_ptr + start, firstLen).CopyTo(new Span<byte>(bigger.Pointer, firstLen));
            new ReadOnlySpan<byte>(_ptr, _extent - firstLen).CopyTo(new Span<byte>(bigger.Pointer + firstLen, _extent - firstLen));
            pool.Return(_ptr, _len);
        }
        _ptr = bigger.Pointer;
        _len = bigger.Length;
        _head = 0;
        return true;
    }

    /// <summary>Returns the block to the pool when no bytes (contiguous or out-of-order) are held.</summary>
    public bool ReleaseIfEmpty(BufferPool pool)
    {
        if (!HasBlock || _extent != 0) return false;
        ReleaseBlock(pool);
        return true;
    }

    /// <summary>Drops all bytes (including out-of-order ones) and returns the block (connection closed/reset).</summary>
    public void Clear(BufferPool pool)
    {
        _count = 0;
        _extent = 0;
        if (HasBlock) ReleaseBlock(pool);
    }

    private void ReleaseBlock(BufferPool pool)
    {
        pool.Return(_ptr, _len);
        _ptr = null;
        _len = 0;
        _head = 0;
    }

    /// <summary>Appends bytes after the contiguous data. Returns how many were accepted (limited by Free).</summary>
    public int Write(BufferPool pool, ReadOnlySpan<byte> data)
    {
        int n = Math.Min(data.Length, Free);
        if (n == 0) return 0;
        if (!EnsureRoom(pool, Math.Max(_extent, _count + n)))
        {
            // The pool could not grow the block: take what fits in the one held.
            if (!HasBlock) return 0;
            n = Math.Min(n, _len - Math.Max(_extent, _count));
            if (n <= 0) return 0;
        }
        CopyIn(_count, data.Slice(0, n));
        _count += n;
        if (_extent < _count) _extent = _count;
        return n;
    }

    /// <summary>
    /// Places bytes at <paramref name="offset"/> past the end of the contiguous data without making them readable
    /// (out-of-order segment). Returns how many were stored (bytes past Capacity are cut off).
    /// </summary>
    public int WriteAt(BufferPool pool, int offset, ReadOnlySpan<byte> data)
    {
        if (offset < 0) throw new ArgumentOutOfRangeException(nameof(offset));
        long start = (long)_count + offset;
        if (start >= Capacity || data.IsEmpty) return 0;
        int n = (int)Math.Min(data.Length, Capacity - start);
        if (!EnsureRoom(pool, Math.Max(_extent, (int)start + n)))
        {
            if (!HasBlock || start >= _len) return 0;
            n = (int)Math.Min(n, _len - start);
        }
        CopyIn((int)start, data.Slice(0, n));
        if (_extent < start + n) _extent = (int)start + n;
        return n;
    }

    /// <summary>Makes <paramref name="count"/> bytes placed by WriteAt contiguous.</summary>
    public void Advance(int count)
    {
        if (count < 0 || count > _extent - _count) throw new ArgumentOutOfRangeException(nameof(count), "advancing over bytes never written");
        _count += count;
    }

    /// <summary>
    /// Forgets out-of-order bytes placed at or beyond <paramref name="offset"/> past the contiguous end (for example
    /// <c>ForgetOutOfOrderFrom(assembler.HighestEnd)</c> after the assembler refused or evicted a range), so an
    /// otherwise empty ring can be released. Only ever shrinks what is held.
    /// </summary>
    public void ForgetOutOfOrderFrom(int offset)
    {
        if (offset < 0) throw new ArgumentOutOfRangeException(nameof(offset));
        long keep = (long)_count + offset;
        if (keep < _extent) _extent = (int)keep;
    }

    /// <summary>Copies up to dest.Length contiguous bytes starting at <paramref name="offset"/>. Returns bytes copied.</summary>
    public int Peek(int offset, Span<byte> dest)
    {
        if (offset < 0) throw new ArgumentOutOfRangeException(nameof(offset));
        if (offset >= _count) return 0;
        int n = Math.Min(dest.Length, _count - offset);
        int start = (_head + offset) & (_len - 1);
        int firstLen = Math.Min(n, _len - start);
        fixed (byte* d = dest)
        {
            Copy(_ptr + start, d, firstLen);
            if (firstLen < n) Copy(_ptr, d + firstLen, n - firstLen); // wraps rarely
        }
        return n;
    }

    /// <summary><see cref="Peek"/> at offset 0 then <see cref="Consume"/> of the bytes copied, in one pass (the
    /// application's read). Returns bytes copied.</summary>
    public int Read(Span<byte> dest)
    {
        int n = Math.Min(dest.Length, _count);
        if (n <= 0) return 0;
        int start = _head;
        int firstLen = Math.Min(n, _len - start);
        fixed (byte* d = dest)
        {
            Copy(_ptr + start, d, firstLen);
            if (firstLen < n) Copy(_ptr, d + firstLen, n - firstLen); // wraps rarely
        }
        _count -= n;
        _extent -= n;
        _head = _extent == 0 ? 0 : (start + n) & (_len - 1);
        return n;
    }

    /// <summary>
    /// <see cref="Peek"/> into unmanaged memory that also returns the bytes' native-order checksum sum
    /// (<see cref="Wire.Checksum.CopyAndSum"/>): the send path copies a segment's payload into the frame and sums it in
    /// one pass. Returns bytes copied.
    /// </summary>
    public int PeekSum(int offset, byte* dest, int length, out ulong sum)
    {
        sum = 0;
        if (offset < 0) throw new ArgumentOutOfRangeException(nameof(offset));
        if (offset >= _count || length <= 0) return 0;
        int n = Math.Min(length, _count - offset);
        int start = (_head + offset) & (_len - 1);
        int firstLen = Math.Min(n, _len - start);
        if (firstLen == n)
        {
            sum = Wire.Checksum.CopyAndSum(_ptr + start, dest, n);
            return n;
        }
        // The range wraps (rare): copy both pieces, then sum the copy (the second piece may start at an odd offset).
        Buffer.MemoryCopy(_ptr + start, dest, firstLen, firstLen);
        Buffer.MemoryCopy(_ptr, dest + firstLen, n - firstLen, n - firstLen);
        sum = Wire.Checksum.SumNative(new ReadOnlySpan<byte>(dest, n));
        return n;
    }

    /// <summary>Drops <paramref name="count"/> bytes from the front (acknowledged, or read by the application).</summary>
    public void Consume(int count)
    {
        if (count < 0 || count > _count) throw new ArgumentOutOfRangeException(nameof(count));
        if (count == 0) return;
        _count -= count;
        _extent -= count;
        // Restart at the block's start when empty so later writes are more often one contiguous span.
        _head = _extent == 0 ? 0 : (_head + count) & (_len - 1); // lengths are powers of two
    }

    /// <summary>
    /// Zero-copy view of up to <paramref name="length"/> contiguous bytes at <paramref name="offset"/>: the bytes are
    /// <paramref name="first"/> followed by <paramref name="second"/> (empty unless the range wraps). Returns the total.
    /// The spans are valid until the next Write/WriteAt (the block may grow), Consume, ReleaseIfEmpty or Clear.
    /// </summary>
    public int GetReadSpans(int offset, int length, out ReadOnlySpan<byte> first, out ReadOnlySpan<byte> second)
    {
        if (offset < 0 || length < 0) throw new ArgumentOutOfRangeException(offset < 0 ? nameof(offset) : nameof(length));
        int n = offset >= _count ? 0 : Math.Min(length, _count - offset);
        GetSpans(offset, n, out first, out second);
        return n;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void GetSpans(int offset, int n, out ReadOnlySpan<byte> first, out ReadOnlySpan<byte> second)
    {
        if (n == 0)
        {
            first = default;
            second = default;
            return;
        }
        int start = (_head + offset) & (_len - 1);
        int firstLen = Math.Min(n, _len - start);
        first = new ReadOnlySpan<byte>(_ptr + start, firstLen);
        second = new ReadOnlySpan<byte>(_ptr, n - firstLen);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void CopyIn(int offset, ReadOnlySpan<byte> data)
    {
        int start = (_head + offset) & (_len - 1);
        int firstLen = Math.Min(data.Length, _len - start);
        fixed (byte* s = data)
        {
            Copy(s, _ptr + start, firstLen);
            if (firstLen < data.Length) Copy(s + firstLen, _ptr, data.Length - firstLen); // wraps rarely
        }
    }

    /// <summary>Copies <paramref name="n"/> bytes between non-overlapping buffers. Up to 64 bytes (a request or a
    /// reply of an RPC) with at most four pairs of overlapping loads and stores, no call; longer copies through the
    /// runtime's memmove.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Copy(byte* src, byte* dst, int n)
    {
        if ((uint)n > 64) { Buffer.MemoryCopy(src, dst, n, n); return; }
        CopySmall(src, dst, n);
    }

    /// <summary>0 to 64 bytes: the first and last 16 (and the second and second-to-last 16 beyond 32) overlap as
    /// needed, so every length is whole loads before any store.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void CopySmall(byte* src, byte* dst, int n)
    {
        if (n >= 16)
        {
            var a = Vector128.Load(src);
            var z = Vector128.Load(src + n - 16);
            if (n > 32)
            {
                var b = Vector128.Load(src + 16);
                var y = Vector128.Load(src + n - 32);
                b.Store(dst + 16);
                y.Store(dst + n - 32);
            }
            a.Store(dst);
            z.Store(dst + n - 16);
        }
        else if (n >= 8)
        {
            ulong a = *(ulong*)src, z = *(ulong*)(src + n - 8);
            *(ulong*)dst = a;
            *(ulong*)(dst + n - 8) = z;
        }
        else if (n >= 4)
        {
            uint a = *(uint*)src, z = *(uint*)(src + n - 4);
            *(uint*)dst = a;
            *(uint*)(dst + n - 4) = z;
        }
        else if (n > 0)
        {
            byte a = src[0], m = src[n >> 1], z = src[n - 1];
            dst[0] = a;
            dst[n >> 1] = m;
            dst[n - 1] = z;
        }
    }
}
