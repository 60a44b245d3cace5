using System;
using System.Runtime.CompilerServices;

namespace UserTcp.Stack.Tcp;

/// <summary>A half-open byte range [Start, End) as offsets from RCV.NXT.</summary>
public readonly record struct ByteRange(int Start, int End)
{
    public int Length => End - Start;
}

/// <summary>
/// Bookkeeping for out-of-order data in the receive window (RFC 9293 §3.10.7.4: segments beyond RCV.NXT are kept
/// for later processing). The bytes themselves live in the receive <see cref="ByteRing"/> at their offset
/// (<see cref="ByteRing.WriteAt"/>); this type only remembers which ranges have arrived, as up to
/// <see cref="MaxIntervals"/> disjoint, non-adjacent intervals sorted by offset from RCV.NXT, in one fixed table.
///
/// Receive path: offset = SEG.SEQ - RCV.NXT; <c>ring.WriteAt(offset, data)</c>; <c>Add(offset, len)</c> (drop the
/// segment if it returns false); <c>n = PopContiguous()</c>; <c>ring.Advance(n)</c>; RCV.NXT += n.
/// It also answers which SACK blocks to advertise (RFC 2018 §4): most recently changed first.
/// </summary>
public sealed class Assembler
{
    // One array of (start, end, stamp) triples in offset order: a single allocation per connection, made when the
    // assembler is created (a connection that never sees reordering can create it lazily). The stamp says when the
    // interval last grew or was hit and orders the SACK blocks.
    private const int Stride = 3;
    private readonly int[] _table;
    private readonly int _max;
    private int _count;
    private int _clock;

    public Assembler(int maxIntervals = 32)
    {
        if (maxIntervals <= 0 || maxIntervals > 1 << 20) throw new ArgumentOutOfRangeException(nameof(maxIntervals));
        _max = maxIntervals;
        _table = new int[maxIntervals * Stride];
    }

    public int MaxIntervals => _max;
    /// <summary>Number of disjoint intervals held.</summary>
    public int Count => _count;
    public bool IsEmpty => _count == 0;
    /// <summary>The i-th interval in offset order.</summary>
    public ByteRange this[int index] => (uint)index < (uint)_count
        ? new ByteRange(Start(index), End(index))
        : throw new ArgumentOutOfRangeException(nameof(index));
    /// <summary>End of the furthest byte held (0 when empty): how much of the ring the out-of-order data spans.</summary>
    public int HighestEnd => _count == 0 ? 0 : End(_count - 1);

    /// <summary>How often the furthest interval was forgotten to make room for a nearer one (see <see cref="Add"/>).</summary>
    public long Evictions { get; private set; }

    /// <summary>Total bytes held in all intervals.</summary>
    public int TotalBytes
    {
        get
        {
            int sum = 0;
            for (int i = 0; i < _count; i++) sum += End(i) - Start(i);
            return sum;
        }
    }

    /// <summary>
    /// Records that bytes [offset, offset + length) arrived. Bytes before offset 0 (already received) are ignored.
    /// Overlapping or adjacent intervals are merged. When the range touches no interval and the table is full:
    /// if it lies beyond every interval, returns false and changes nothing (the caller drops the segment; the peer
    /// will retransmit it); otherwise the furthest interval is forgotten to make room (RFC 2018 §8 lets a receiver
    /// discard data it only SACKed; the sender keeps it until cumulatively acknowledged), so data nearer RCV.NXT,
    /// and above all in-order data at offset 0, always gets in and the connection cannot stall.
    /// </summary>
    public bool Add(int offset, int length)
    {
        if (length <= 0) return true;
        long end = (long)offset + length;
        if (end <= 0) return true;
        if (end > int.MaxValue) return false;
        int s = Math.Max(offset, 0), e = (int)end;

        // First interval that ends at or after s (may touch), then every interval that starts at or before e.
        int i = 0;
        while (i < _count && End(i) < s) i++;
        int j = i;
        while (j < _count && Start(j) <= e) j++;

        if (j == i)
        {
            if (_count == _max)
            {
                if (i == _count) return false;
                _count--; // evict the furthest interval
                Evictions++;
            }
            int move = _count - i;
            Array.Copy(_table, i * Stride, _table, (i + 1) * Stride, move * Stride);
            Start(i) = s;
            End(i) = e;
            _count++;
        }
        else
        {
            // Intervals i..j-1 all touch [s, e): fold them into slot i.
            Start(i) = Math.Min(Start(i), s);
            End(i) = Math.Max(End(j - 1), e);
            int removed = j - 1 - i;
            if (removed > 0)
            {
                int move = _count - j;
                Array.Copy(_table, j * Stride, _table, (i + 1) * Stride, move * Stride);
                _count -= removed;
            }
        }
        Stamp(i) = NextStamp();
        return true;
    }

    /// <summary>
    /// If an interval starts at offset 0, removes it, rebases the rest so offsets stay relative to the new RCV.NXT,
    /// and returns its length (bytes now contiguous). Otherwise returns 0.
    /// </summary>
    public int PopContiguous()
    {
        if (_count == 0 || Start(0) != 0) return 0;
        int n = End(0);
        Shift(n);
        return n;
    }

    /// <summary>
    /// Rebases offsets after RCV.NXT moved forward by <paramref name="bytes"/>: ranges before the new origin are
    /// forgotten, a range straddling it is cut.
    /// </summary>
    public void Shift(int bytes)
    {
        if (bytes < 0) throw new ArgumentOutOfRangeException(nameof(bytes));
        if (bytes == 0) return;
        int w = 0;
        for (int r = 0; r < _count; r++)
        {
            if (End(r) <= bytes) continue;
            Start(w) = Math.Max(Start(r) - bytes, 0);
            End(w) = End(r) - bytes;
            Stamp(w) = Stamp(r);
            w++;
        }
        _count = w;
    }

    public void Clear() => _count = 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ref int Start(int i) => ref _table[i * Stride];
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ref int End(int i) => ref _table[i * Stride + 1];
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ref int Stamp(int i) => ref _table[i * Stride + 2];

    private int NextStamp()
    {
        if (_clock == int.MaxValue)
        {
            // Renumber the stamps 1..Count in the same order (once every 2^31 changes): mark each one negative by
            // rank, oldest first, then flip the signs.
            for (int rank = 1; rank <= _count; rank++)
            {
                int oldest = -1;
                for (int i = 0; i < _count; i++)
                {
                    if (Stamp(i) > 0 && (oldest < 0 || Stamp(i) < Stamp(oldest))) oldest = i;
                }
                if (oldest < 0) break;
                Stamp(oldest) = -rank;
            }
            for (int i = 0; i < _count; i++) Stamp(i) = Math.Abs(Stamp(i));
            _clock = _count;
        }
        return ++_clock;
    }

    /// <summary>Test hook: jump the change clock (to exercise renumbering).</summary>
    internal void SetClock(int value) => _clock = value;

    /// <summary>
    /// Fills <paramref name="dest"/> with the SACK blocks to advertise, most recently changed first (RFC 2018 §4: the
    /// first block holds the segment that triggered the ACK, then the most recently reported ones). An interval
    /// starting at offset 0 is not a SACK block (it is acknowledged cumulatively once popped). Returns the number of
    /// blocks written; the caller converts offsets to sequence numbers (RCV.NXT + offset).
    /// </summary>
    public int GetSackBlocks(Span<ByteRange> dest)
    {
        int written = 0;
        int below = int.MaxValue;
        while (written < dest.Length)
        {
            int best = -1;
            for (int i = 0; i < _count; i++)
            {
                if (Start(i) == 0 || Stamp(i) >= below) continue;
                if (best < 0 || Stamp(i) > Stamp(best)) best = i;
            }
            if (best < 0) break;
            dest[written++] = new ByteRange(Start(best), End(best));
            below = Stamp(best);
        }
        return written;
    }
}
