using System;

namespace UserTcp.Stack.Tcp;

/// <summary>
/// A TCP sequence number: 32-bit modular arithmetic (RFC 9293 §3.4). Never compare raw integers: a &lt; b means b
/// is less than 2^31 ahead of a.
/// </summary>
public readonly record struct SeqNumber(uint Value) : IComparable<SeqNumber>
{
    public static SeqNumber operator +(SeqNumber s, int n) => new(unchecked(s.Value + (uint)n));
    public static SeqNumber operator -(SeqNumber s, int n) => new(unchecked(s.Value - (uint)n));
    /// <summary>Signed distance from <paramref name="b"/> to <paramref name="a"/>.</summary>
    public static int operator -(SeqNumber a, SeqNumber b) => unchecked((int)(a.Value - b.Value));
    public static bool operator <(SeqNumber a, SeqNumber b) => a - b < 0;
    public static bool operator >(SeqNumber a, SeqNumber b) => a - b > 0;
    public static bool operator <=(SeqNumber a, SeqNumber b) => a - b <= 0;
    public static bool operator >=(SeqNumber a, SeqNumber b) => a - b >= 0;

    public static SeqNumber Max(SeqNumber a, SeqNumber b) => a > b ? a : b;
    public static SeqNumber Min(SeqNumber a, SeqNumber b) => a < b ? a : b;

    /// <summary>True when <paramref name="start"/> &lt;= this &lt; <paramref name="end"/> in sequence space.</summary>
    public bool InRange(SeqNumber start, SeqNumber end) => this - start >= 0 && end - this > 0;

    public int CompareTo(SeqNumber other) => (this - other) switch { < 0 => -1, > 0 => 1, _ => 0 };
    public override string ToString() => Value.ToString();
}
