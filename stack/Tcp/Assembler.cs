using System;

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
/// <see cref="MaxIntervals"/> disjoint, non-adjacent intervals sorted by offset from RCV.NXT, in fixed arrays.
///
/// Receive path: offset = SEG.SEQ - RCV.NXT; <c>ring.WriteAt(offset, data)</c>; <c>Add(offset, len)</c> (drop the
/// segment if it returns false); <c>n = PopContiguous()</c>; <c>ring.Advance(n)</c>; RCV.NXT += n.
/// It also answers which SACK blocks to advertise (RFC 2018 §4): most recently changed first.
/// </summary>
public sealed class Assembler
{
    private readonly int[] _start;
    private readonly int[] _end;
    private readonly long[] _stamp;   // when the interval last grew or was hit: orders SACK blocks
    private int _count;
    private long _clock;

    public Assembler(int maxIntervals = 32)
    {
        if (maxIntervals <= 0) throw new ArgumentOutOfRangeException(nameof(maxIntervals));
        _start = new int[maxIntervals];
        _end = new int[maxIntervals];
        _stamp = new long[maxIntervals];
    }

    public int MaxIntervals => _start.Length;
    /// <summary>Number of disjoint intervals held.</summary>
    public int Count => _count;
    public bool IsEmpty => _count == 0;
    /// <summary>The i-th interval in offset order.</summary>
    public ByteRange this[int index] => (uint)index < (uint)_count
        ? new ByteRange(_start[index], _end[index])
        : throw new ArgumentOutOfRangeException(nameof(index));
    /// <summary>End of the furthest byte held (0 when empty): how much of the ring the out-of-order data spans.</summary>
    public int HighestEnd => _count == 0 ? 0 : _end[_count - 1];

    /// <summary>Total bytes held in all intervals.</summary>
    public int TotalBytes
    {
        get
        {
            int sum = 0;
            for (int i = 0; i < _count; i++) sum += _end[i] - _start[i];
            return sum;
        }
    }

    /// <summary>
    /// Records that bytes [offset, offset + length) arrived. Bytes before offset 0 (already received) are ignored.
    /// Overlapping or adjacent intervals are merged. Returns false, changing nothing, when the range touches no
    /// interval and the table is full (the caller drops the segment; the peer will retransmit it).
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
        while (i < _count && _end[i] < s) i++;
        int j = i;
        while (j < _count && _start[j] <= e) j++;

        if (j == i)
        {
            if (_count == _start.Length) return false;
            int move = _count - i;
            Array.Copy(_start, i, _start, i + 1, move);
            Array.Copy(_end, i, _end, i + 1, move);
            Array.Copy(_stamp, i, _stamp, i + 1, move);
            _start[i] = s;
            _end[i] = e;
            _count++;
        }
        else
        {
            // Intervals i..j-1 all touch [s, e): fold them into slot i.
            _start[i] = Math.Min(_start[i], s);
            _end[i] = Math.Max(_end[j - 1], e);
            int removed = j - 1 - i;
            if (removed > 0)
            {
                int move = _count - j;
                Array.Copy(_start, j, _start, i + 1, move);
                Array.Copy(_end, j, _end, i + 1, move);
                Array.Copy(_stamp, j, _stamp, i + 1, move);
                _count -= removed;
            }
        }
        _stamp[i] = ++_clock;
        return true;
    }

    /// <summary>
    /// If an interval starts at offset 0, removes it, rebases the rest so offsets stay relative to the new RCV.NXT,
    /// and returns its length (bytes now contiguous). Otherwise returns 0.
    /// </summary>
    public int PopContiguous()
    {
        if (_count == 0 || _start[0] != 0) return 0;
        int n = _end[0];
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
            if (_end[r] <= bytes) continue;
            _start[w] = Math.Max(_start[r] - bytes, 0);
            _end[w] = _end[r] - bytes;
            _stamp[w] = _stamp[r];
            w++;
        }
        _count = w;
    }

    public void Clear() => _count = 0;

    /// <summary>
    /// Fills <paramref name="dest"/> with the SACK blocks to advertise, most recently changed first (RFC 2018 §4: the
    /// first block holds the segment that triggered the ACK, then the most recently reported ones). An interval
    /// starting at offset 0 is not a SACK block (it is acknowledged cumulatively once popped). Returns the number of
    /// blocks written; the caller converts offsets to sequence numbers (RCV.NXT + offset).
    /// </summary>
    public int GetSackBlocks(Span<ByteRange> dest)
    {
        int written = 0;
        long below = long.MaxValue;
        while (written < dest.Length)
        {
            int best = -1;
            for (int i = 0; i < _count; i++)
            {
                if (_start[i] == 0 || _stamp[i] >= below) continue;
                if (best < 0 || _stamp[i] > _stamp[best]) best = i;
            }
            if (best < 0) break;
            dest[written++] = new ByteRange(_start[best], _end[best]);
            below = _stamp[best];
        }
        return written;
    }
}
