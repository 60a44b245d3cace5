using System;
using System.Numerics;
using System.Runtime.CompilerServices;

namespace UserTcp.Stack.Tcp;

/// <summary>
/// SipHash-2-4 over a small fixed input (Aumasson and Bernstein, 2012): the keyed pseudo-random function RFC 6528
/// asks for the ISN and that SYN cookies use. Inputs here are at most four 64-bit words, so there is no byte-stream API.
/// </summary>
internal readonly struct SipHash
{
    private readonly ulong _k0, _k1;

    public SipHash(ulong k0, ulong k1) { _k0 = k0; _k1 = k1; }

    /// <summary>Hash of up to four 64-bit words (<paramref name="count"/> of them are used).</summary>
    public ulong Hash(ulong m0, ulong m1, ulong m2 = 0, int count = 2)
    {
        ulong v0 = _k0 ^ 0x736f6d6570736575UL, v1 = _k1 ^ 0x646f72616e646f6dUL;
        ulong v2 = _k0 ^ 0x6c7967656e657261UL, v3 = _k1 ^ 0x7465646279746573UL;
        Compress(ref v0, ref v1, ref v2, ref v3, m0);
        if (count > 1) Compress(ref v0, ref v1, ref v2, ref v3, m1);
        if (count > 2) Compress(ref v0, ref v1, ref v2, ref v3, m2);
        // Final block: the input length in bytes in the top byte.
        Compress(ref v0, ref v1, ref v2, ref v3, (ulong)(count * 8) << 56);
        v2 ^= 0xff;
        for (int i = 0; i < 4; i++) Round(ref v0, ref v1, ref v2, ref v3);
        return v0 ^ v1 ^ v2 ^ v3;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Compress(ref ulong v0, ref ulong v1, ref ulong v2, ref ulong v3, ulong m)
    {
        v3 ^= m;
        Round(ref v0, ref v1, ref v2, ref v3);
        Round(ref v0, ref v1, ref v2, ref v3);
        v0 ^= m;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Round(ref ulong v0, ref ulong v1, ref ulong v2, ref ulong v3)
    {
        v0 += v1; v1 = BitOperations.RotateLeft(v1, 13); v1 ^= v0; v0 = BitOperations.RotateLeft(v0, 32);
        v2 += v3; v3 = BitOperations.RotateLeft(v3, 16); v3 ^= v2;
        v0 += v3; v3 = BitOperations.RotateLeft(v3, 21); v3 ^= v0;
        v2 += v1; v1 = BitOperations.RotateLeft(v1, 17); v1 ^= v2; v2 = BitOperations.RotateLeft(v2, 32);
    }
}
