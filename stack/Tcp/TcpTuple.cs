using System;
using UserTcp.Stack.Wire;

namespace UserTcp.Stack.Tcp;

/// <summary>The 4-tuple naming a connection, from the local side. A value key: lookups in the connection table
/// allocate nothing.</summary>
public readonly struct TcpTuple : IEquatable<TcpTuple>
{
    public readonly Ipv4Address LocalAddress;
    public readonly Ipv4Address RemoteAddress;
    public readonly ushort LocalPort;
    public readonly ushort RemotePort;

    public TcpTuple(Ipv4Address localAddress, ushort localPort, Ipv4Address remoteAddress, ushort remotePort)
    {
        LocalAddress = localAddress; LocalPort = localPort; RemoteAddress = remoteAddress; RemotePort = remotePort;
    }

    public bool Equals(TcpTuple o) => LocalAddress.Value == o.LocalAddress.Value && RemoteAddress.Value == o.RemoteAddress.Value
        && LocalPort == o.LocalPort && RemotePort == o.RemotePort;
    public override bool Equals(object? obj) => obj is TcpTuple t && Equals(t);

    public override int GetHashCode()
    {
        // A cheap 64-bit mix (splitmix finaliser). Remote ports are attacker-chosen, so a plain xor would let a
        // flood land in one bucket; the mix spreads them.
        ulong x = ((ulong)LocalAddress.Value << 32 | RemoteAddress.Value) ^ ((ulong)LocalPort << 16 | RemotePort) * 0x9E3779B97F4A7C15UL;
        x ^= x >> 30; x *= 0xBF58476D1CE4E5B9UL; x ^= x >> 27; x *= 0x94D049BB133111EBUL; x ^= x >> 31;
        return (int)x ^ (int)(x >> 32);
    }

    public override string ToString() => $"{LocalAddress}:{LocalPort}<->{RemoteAddress}:{RemotePort}";
}

/// <summary>
/// Initial sequence numbers (RFC 6528 §3): ISN = M + F(localip, localport, remoteip, remoteport, secret), with M a
/// clock ticking every 4 µs and F a keyed PRF (SipHash). The secret comes from the stack's seed so tests are
/// reproducible; production seeds it from a random source.
/// </summary>
internal sealed class IsnGenerator
{
    private readonly SipHash _isnKey;
    private readonly SipHash _cookieKey;

    public IsnGenerator(ulong seed)
    {
        // Derive independent keys from one seed (splitmix64 steps).
        ulong s = seed;
        _isnKey = new SipHash(Next(ref s), Next(ref s));
        _cookieKey = new SipHash(Next(ref s), Next(ref s));
    }

    /// <summary>One splitmix64 step: key material from a seed (also the connection table's hash keys).</summary>
    internal static ulong Next(ref ulong s)
    {
        ulong z = s += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    private static ulong Word0(in TcpTuple t) => (ulong)t.LocalAddress.Value << 32 | t.RemoteAddress.Value;
    private static ulong Word1(in TcpTuple t) => (ulong)t.LocalPort << 16 | t.RemotePort;

    /// <summary>Tests only: a fixed ISN (e.g. just below 2^32 to exercise sequence wrap-around).</summary>
    internal uint? FixedIsnForTests;

    public SeqNumber Isn(in TcpTuple t, long nowUs) => Isn(t, nowUs, out _);

    /// <summary>The ISN and the timestamp offset of a new connection from one keyed hash of the tuple: its low 32
    /// bits are F of RFC 6528 (the ISN adds the 4 µs clock), its high 32 bits the offset. Both only need to be
    /// unpredictable per 4-tuple to anyone without the key (RFC 6528 §3, RFC 7323 §7.1); halves of one SipHash
    /// output are independent of each other for such an observer, so seeing TSval (and so the offset) tells
    /// nothing about the ISN's secret part. One hash per open instead of two.</summary>
    public SeqNumber Isn(in TcpTuple t, long nowUs, out uint timestampOffset)
    {
        ulong h = _isnKey.Hash(Word0(t), Word1(t));
        timestampOffset = (uint)(h >> 32);
        return FixedIsnForTests is uint fixedIsn ? new SeqNumber(fixedIsn) : new(unchecked((uint)h + (uint)(nowUs / 4)));
    }

    /// <summary>Per-connection timestamp offset (Linux randomises TSval per connection the same way), so TSval
    /// leaks neither uptime nor the other connections' clocks: the offset <see cref="Isn(in TcpTuple, long, out uint)"/>
    /// gives, for a connection that takes its ISS from elsewhere (a SYN cookie).</summary>
    public uint TimestampOffset(in TcpTuple t) => (uint)(_isnKey.Hash(Word0(t), Word1(t)) >> 32);

    // SYN cookies: ISS = [count mod 32 : 5][MSS index : 3][hash : 24]. The count advances every 64 s; a cookie is
    // accepted for the current and the previous count (so for 64..128 s). The hash covers the tuple, the peer's ISN
    // and the full count, so a cookie cannot be forged without the key nor replayed on another tuple.
    public const long CookiePeriodUs = 64_000_000;
    private static readonly ushort[] s_cookieMss = { 536, 1220, 1360, 1400, 1440, 1452, 1460, 8960 };

    public uint MakeCookie(in TcpTuple t, SeqNumber peerIsn, int mss, long nowUs)
    {
        ulong count = (ulong)(nowUs / CookiePeriodUs);
        int idx = 0;
        for (int i = s_cookieMss.Length - 1; i >= 0; i--)
            if (s_cookieMss[i] <= mss) { idx = i; break; }
        uint h = (uint)_cookieKey.Hash(Word0(t), Word1(t) << 32 | peerIsn.Value, count, 3) & 0xFFFFFF;
        return (uint)(count & 31) << 27 | (uint)idx << 24 | h;
    }

    /// <summary>Checks a cookie (the ACK number minus one) and returns the MSS it encodes.</summary>
    public bool CheckCookie(in TcpTuple t, SeqNumber peerIsn, uint cookie, long nowUs, out int mss)
    {
        mss = 0;
        ulong now = (ulong)(nowUs / CookiePeriodUs);
        for (ulong age = 0; age < 2 && age <= now; age++)
        {
            ulong count = now - age;
            if ((cookie >> 27) != (uint)(count & 31)) continue;
            uint h = (uint)_cookieKey.Hash(Word0(t), Word1(t) << 32 | peerIsn.Value, count, 3) & 0xFFFFFF;
            if ((cookie & 0xFFFFFF) != h) continue;
            mss = s_cookieMss[(cookie >> 24) & 7];
            return true;
        }
        return false;
    }
}
