using System.Diagnostics.CodeAnalysis;

namespace UserTcp.Stack.Tcp;

/// <summary>
/// The layer's 4-tuple → connection table: an intrusive chained hash table. The chain link lives in the
/// connection (<see cref="TcpConnection.NextInTable"/>), so a connection costs its 8-byte link plus 8–16 bytes of
/// bucket array (a power of two, at most one connection per bucket on average) instead of a
/// <c>Dictionary</c> entry (28 bytes + a 4-byte bucket, up to twice that after a resize). No allocation except
/// when the bucket array doubles.
/// </summary>
internal sealed class ConnectionTable
{
    private TcpConnection?[] _buckets;
    private int _count;

    public ConnectionTable(int expected)
    {
        int size = 16;
        while (size < expected && size < (1 << 30)) size <<= 1;
        _buckets = new TcpConnection?[size];
    }

    public int Count => _count;
    /// <summary>Length of the bucket array.</summary>
    public int Buckets => _buckets.Length;
    /// <summary>First connection of bucket <paramref name="i"/> (a full walk, for rare whole-table work).</summary>
    public TcpConnection? Head(int i) => _buckets[i];

    private static int Index(in TcpTuple t, int length) => t.GetHashCode() & (length - 1);

    public bool TryGetValue(in TcpTuple t, [NotNullWhen(true)] out TcpConnection? c)
    {
        for (c = _buckets[Index(t, _buckets.Length)]; c != null; c = c.NextInTable)
            if (c.Tuple.Equals(t)) return true;
        return false;
    }

    public bool ContainsKey(in TcpTuple t) => TryGetValue(t, out _);

    /// <summary>Adds a connection whose tuple is not in the table.</summary>
    public void Add(TcpConnection c)
    {
        if (_count >= _buckets.Length && _buckets.Length < (1 << 30)) Grow();
        ref TcpConnection? head = ref _buckets[Index(c.Tuple, _buckets.Length)];
        c.NextInTable = head;
        head = c;
        _count++;
    }

    /// <summary>Removes this connection (by reference). False when it is not in the table.</summary>
    public bool Remove(TcpConnection c)
    {
        ref TcpConnection? link = ref _buckets[Index(c.Tuple, _buckets.Length)];
        while (link != null)
        {
            if (ReferenceEquals(link, c))
            {
                link = c.NextInTable;
                c.NextInTable = null;
                _count--;
                return true;
            }
            link = ref link.NextInTable;
        }
        return false;
    }

    private void Grow()
    {
        var bigger = new TcpConnection?[_buckets.Length * 2];
        foreach (TcpConnection? first in _buckets)
        {
            TcpConnection? c = first;
            while (c != null)
            {
                TcpConnection? next = c.NextInTable;
                ref TcpConnection? head = ref bigger[Index(c.Tuple, bigger.Length)];
                c.NextInTable = head;
                head = c;
                c = next;
            }
        }
        _buckets = bigger;
    }
}
