using System;
using UserTcp.Stack.Wire;

namespace UserTcp.Stack.Tcp;

/// <summary>A received segment after header and option parsing (valid only during input processing).</summary>
internal ref struct TcpSegment
{
    public SeqNumber Seq;
    public SeqNumber Ack;
    public TcpFlags Flags;
    public ushort Window;   // raw field, unscaled
    public TcpOptions Options;
    public Span<byte> Payload;

    public readonly bool Has(TcpFlags f) => (Flags & f) != 0;
    /// <summary>SEG.LEN: payload plus one for SYN and one for FIN.</summary>
    public readonly int Length => Payload.Length + (Has(TcpFlags.Syn) ? 1 : 0) + (Has(TcpFlags.Fin) ? 1 : 0);
}
