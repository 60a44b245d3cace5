using System;
using System.Runtime.InteropServices;

namespace UserTcp.Stack.Phy;

/// <summary>
/// A bounded pool of fixed-size packet buffers in one unmanaged block. Buffers are handed out as
/// <see cref="PacketBuf"/> values whose <see cref="PacketBuf.Handle"/> is the slot index. Renting and returning
/// never allocate (the free list is a preallocated stack of slot indices). Not thread-safe.
/// </summary>
public sealed unsafe class NativePacketPool : IDisposable
{
    private readonly int[] _free;      // stack of free slot indices; _free[0.._freeCount) are free
    private readonly bool[] _rented;   // per slot: currently handed out (catches double returns)
    private byte* _memory;
    private int _freeCount;

    /// <param name="count">Number of buffers.</param>
    /// <param name="bufferSize">Bytes per buffer (headroom included).</param>
    /// <param name="headroom">Offset of the data in a freshly rented buffer.</param>
    public NativePacketPool(int count, int bufferSize, int headroom = 128)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(bufferSize);
        if (headroom < 0 || headroom > bufferSize) throw new ArgumentOutOfRangeException(nameof(headroom));
        Count = count;
        BufferSize = bufferSize;
        Headroom = headroom;
        // Round each slot up to a cache line so buffers never share one.
        SlotSize = (bufferSize + 63) & ~63;
        _memory = (byte*)NativeMemory.AlignedAlloc((nuint)((long)SlotSize * count), 64);
        _free = new int[count];
        _rented = new bool[count];
        for (int i = 0; i < count; i++) _free[i] = count - 1 - i; // slot 0 is handed out first
        _freeCount = count;
    }

    public int Count { get; }
    public int BufferSize { get; }
    public int Headroom { get; }
    private int SlotSize { get; }

    /// <summary>Buffers currently handed out. Zero when every buffer came back (leak check).</summary>
    public int Outstanding => Count - _freeCount;

    /// <summary>Buffers available to rent.</summary>
    public int Available => _freeCount;

    /// <summary>Takes one empty buffer (Offset = Headroom, Length = 0). False when the pool is empty.</summary>
    public bool TryRent(out PacketBuf packet)
    {
        if (_freeCount == 0 || _memory == null)
        {
            packet = default;
            return false;
        }
        int slot = _free[--_freeCount];
        _rented[slot] = true;
        packet = new PacketBuf
        {
            Buffer = _memory + (long)slot * SlotSize,
            Offset = Headroom,
            Length = 0,
            Capacity = BufferSize,
            Handle = slot,
            Offloads = PacketOffloads.None,
        };
        return true;
    }

    /// <summary>Fills up to <c>burst.Length</c> buffers; returns how many.</summary>
    public int Rent(Span<PacketBuf> burst)
    {
        int n = 0;
        while (n < burst.Length && TryRent(out burst[n])) n++;
        return n;
    }

    /// <summary>True when <paramref name="packet"/> is a buffer of this pool that is currently rented.</summary>
    public bool Owns(in PacketBuf packet)
    {
        nint slot = packet.Handle;
        return (ulong)slot < (ulong)Count && _memory != null &&
               packet.Buffer == _memory + (long)slot * SlotSize && _rented[slot];
    }

    /// <summary>Returns a buffer and clears the caller's copy. Returning a buffer twice, or one from elsewhere, is a
    /// programming error and throws (it would corrupt the free list).</summary>
    public void Return(ref PacketBuf packet)
    {
        if (!Owns(packet)) throw new InvalidOperationException("buffer is not rented from this pool (double free?)");
        int slot = (int)packet.Handle;
        _rented[slot] = false;
        _free[_freeCount++] = slot;
        packet = default;
    }

    public void Dispose()
    {
        if (_memory != null)
        {
            NativeMemory.AlignedFree(_memory);
            _memory = null;
        }
    }
}
