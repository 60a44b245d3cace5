using System.Diagnostics.CodeAnalysis;
using System.Numerics;
using System.Runtime.CompilerServices;

namespace UserTcp.Stack.Tcp;

/// <summary>
/// The layer's 4-tuple → connection table: an intrusive chained hash table. The chain link lives in the
/// connection (<see cref="TcpConnection.NextInTable"/>), so a connection costs its 8-byte link plus 8–16 bytes of
/// bucket array (a power of two, at most one connection per bucket on average) instead of a
/// <c>Dictionary</c> entry (28 bytes + a 4-byte bucket, up to twice that after a resize). No allocation except
/// when the bucket array doubles.
///
/// The bucket of a tuple is a keyed vector multiply-shift hash (Dietzfelbinger; Thorup, "High speed hashing for
/// integers and strings", 2015): with the tuple as three 32-bit words x0..x2 (local address, remote address, the two
/// ports) and four random 64-bit keys, bucket = ((a0·x0 + a1·x1 + a2·x2 + b) mod 2^64) &gt;&gt; (64 − log2 buckets),
/// the top bits of the sum. That family is strongly universal for 32-bit words and outputs up to 32 bits: for any two
/// tuples chosen without knowledge of the keys, the chance they share a bucket is 1/buckets. The remote address and
/// port are the peer's to choose, so an unkeyed mix (the splitmix finaliser used before, public and invertible)
/// let anyone compute tuples that all land in one chain offline; with per-process random keys (TcpConfig.Seed, from
/// a random source in production) they would have to learn the keys first, through timing of a table they only
/// reach over the network. Three multiplies and adds, inlined: about a third of the splitmix finaliser's work.
/// </summary>
internal sealed class ConnectionTable
{
    private TcpConnection?[] _buckets;
    private int _count;
    private int _shift;                         // 64 - log2(_buckets.Length)
    private readonly ulong _a0, _a1, _a2, _b;   // the hash keys

    public ConnectionTable(int expected, ulong seed = 0x5EED_0000_0000_0001UL)
    {
        int size = 16;
        while (size < expected && size < (1 << 30)) size <<= 1;
        _buckets = new TcpConnection?[size];
        _shift = 64 - BitOperations.Log2((uint)size);
        // Keys from the seed (splitmix64 steps; a different stream from the ISN keys').
        ulong s = seed ^ 0xC0FF_EE00_7AB1_E5EDUL;
        _a0 = IsnGenerator.Next(ref s); _a1 = IsnGenerator.Next(ref s); _a2 = IsnGenerator.Next(ref s); _b = IsnGenerator.Next(ref s);
    }

    public int Count => _count;
    /// <summary>Length of the bucket array.</summary>
    public int Buckets => _buckets.Length;
    /// <summary>First connection of bucket <paramref name="i"/> (a full walk, for rare whole-table work).</summary>
    public TcpConnection? Head(int i) => _buckets[i];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Index(in TcpTuple t, ulong a0, ulong a1, ulong a2, ulong b, int shift) =>
        (int)(unchecked(a0 * t.LocalAddress.Value + a1 * t.RemoteAddress.Value
            + a2 * ((uint)t.LocalPort << 16 | t.RemotePort) + b) >> shift);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int Index(in TcpTuple t) => Index(t, _a0, _a1, _a2, _b, _shift);

    /// <summary>The bucket of <paramref name="t"/> (tests: spread and key dependence).</summary>
    internal int BucketOf(in TcpTuple t) => Index(t);

    public bool TryGetValue(in TcpTuple t, [NotNullWhen(true)] out TcpConnection? c)
    {
        for (c = _buckets[Index(t)]; c != null; c = c.NextInTable)
            if (c.Tuple.Equals(t)) return true;
        return false;
    }

    /// <summary>Adds <paramref name="c"/>, taking out the connection that held its tuple, if any (returned): one
    /// bucket computation for what TryGetValue, Remove and Add would do.</summary>
    public TcpConnection? AddOrReplace(TcpConnection c)
    {
        if (_count >= _buckets.Length && _buckets.Length < (1 << 30)) Grow();
        ref TcpConnection? head = ref _buckets[Index(c.Tuple)];
        TcpConnection? old = null;
        for (ref TcpConnection? link = ref head; link != null; link = ref link.NextInTable)
        {
            if (!link.Tuple.Equals(c.Tuple)) continue;
            old = link;
            link = old.NextInTable;
            old.NextInTable = null;
            _count--;
            break;
        }
        c.NextInTable = head;
        head = c;
        _count++;
        return old;
    }

    public bool ContainsKey(in TcpTuple t) => TryGetValue(t, out _);

    /// <summary>Adds a connection whose tuple is not in the table.</summary>
    public void Add(TcpConnection c)
    {
        if (_count >= _buckets.Length && _buckets.Length < (1 << 30)) Grow();
        ref TcpConnection? head = ref _buckets[Index(c.Tuple)];
        c.NextInTable = head;
        head = c;
        _count++;
    }

    /// <summary>Removes this connection (by reference). False when it is not in the table.</summary>
    public bool Remove(TcpConnection c)
    {
        ref TcpConnection? link = ref _buckets[Index(c.Tuple)];
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
        int shift = _shift - 1;
        foreach (TcpConnection? first in _buckets)
        {
            TcpConnection? c = first;
            while (c != null)
            {
                TcpConnection? next = c.NextInTable;
                ref TcpConnection? head = ref bigger[Index(c.Tuple, _a0, _a1, _a2, _b, shift)];
                c.NextInTable = head;
                head = c;
                c = next;
            }
        }
        _buckets = bigger;
        _shift = shift;
    }
}
