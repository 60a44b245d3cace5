using System;
using System.Runtime.CompilerServices;

namespace UserTcp.Stack.Tcp;

/// <summary>
/// The sender's record of what the peer reported with SACK (RFC 6675 §3 "scoreboard"): up to
/// <see cref="Capacity"/> disjoint, sorted ranges above SND.UNA. A connection holds one only while the peer reports
/// SACKed data (taken from the layer's pool, returned when SND.UNA passes everything reported), so an idle
/// connection does not carry its 68 bytes. When a report does not fit, the lowest ranges are kept (they matter for
/// the next retransmission) and the rest dropped, which only makes the sender more conservative.
/// </summary>
internal sealed class SackScoreboard
{
    public const int Capacity = 8;

    [InlineArray(Capacity)]
    private struct Starts { private SeqNumber _e; }
    [InlineArray(Capacity)]
    private struct Ends { private SeqNumber _e; }

    private Starts _start;
    private Ends _end;
    private int _count;

    public int Count => _count;
    public bool IsEmpty => _count == 0;
    public SeqNumber Start(int i) => _start[i];
    public SeqNumber End(int i) => _end[i];
    /// <summary>Right edge of the highest SACKed range (RFC 6675 HighACK's counterpart), valid when not empty.</summary>
    public SeqNumber HighestEnd => _end[_count - 1];

    public void Clear() => _count = 0;

    /// <summary>Merges a reported block [start, end) if it lies within (una, max].</summary>
    public void Add(SeqNumber start, SeqNumber end, SeqNumber una, SeqNumber max)
    {
        if (end <= start || end <= una || end > max) return; // D-SACK, stale or bogus (RFC 2883 §4; RFC 6675 §5)
        if (start < una) start = una;
        int i = 0;
        while (i < _count && _end[i] < start) i++;
        int j = i;
        while (j < _count && _start[j] <= end) j++;
        if (j == i)
        {
            if (_count == Capacity)
            {
                if (i == Capacity) return;     // above everything held: drop the new one
                _count--;                       // drop the highest range to make room
            }
            for (int k = _count; k > i; k--) { _start[k] = _start[k - 1]; _end[k] = _end[k - 1]; }
            _start[i] = start;
            _end[i] = end;
            _count++;
            return;
        }
        _start[i] = SeqNumber.Min(_start[i], start);
        _end[i] = SeqNumber.Max(_end[j - 1], end);
        int removed = j - 1 - i;
        if (removed > 0)
        {
            for (int k = i + 1; k + removed < _count; k++) { _start[k] = _start[k + removed]; _end[k] = _end[k + removed]; }
            _count -= removed;
        }
    }

    /// <summary>Forgets everything below the new SND.UNA.</summary>
    public void Advance(SeqNumber una)
    {
        int w = 0;
        for (int r = 0; r < _count; r++)
        {
            if (_end[r] <= una) continue;
            _start[w] = SeqNumber.Max(_start[r], una);
            _end[w] = _end[r];
            w++;
        }
        _count = w;
    }

    /// <summary>Bytes SACKed in [from, to).</summary>
    public int SackedBetween(SeqNumber from, SeqNumber to)
    {
        int n = 0;
        for (int i = 0; i < _count; i++)
        {
            SeqNumber s = SeqNumber.Max(_start[i], from), e = SeqNumber.Min(_end[i], to);
            if (e > s) n += e - s;
        }
        return n;
    }

    public bool IsSacked(SeqNumber seq)
    {
        for (int i = 0; i < _count; i++)
            if (seq.InRange(_start[i], _end[i])) return true;
        return false;
    }

    /// <summary>First un-SACKed byte at or after <paramref name="from"/> and the length of the hole there (bounded by
    /// the next SACKed range). Returns false when no hole lies below the highest SACKed byte.</summary>
    public bool NextHole(SeqNumber from, out SeqNumber start, out int length)
    {
        start = from;
        length = 0;
        for (int i = 0; i < _count; i++)
        {
            if (_end[i] <= start) continue;
            if (_start[i] <= start) { start = _end[i]; continue; }
            length = _start[i] - start;
            return true;
        }
        return false;
    }
}
