using System;
using System.Buffers.Binary;
using UserTcp.Stack.Tcp;

namespace UserTcp.Interpose;

/// <summary>TCP_INFO: Linux's struct tcp_info, with the fields the stack can fill (the rest stay zero).</summary>
internal static class TcpInfo
{
    // Offsets in struct tcp_info (linux/tcp.h).
    private const int State = 0, Options = 5, WScale = 6, Rto = 8, SndMss = 16, RcvMss = 20, Rtt = 68, RttVar = 72,
        SndSsthresh = 76, SndCwnd = 80;
    private const byte OptTimestamps = 1, OptSack = 2, OptWscale = 4;

    /// <summary>Caller holds Engine.Gate.</summary>
    internal static void Fill(UserSocket s, Span<byte> info)
    {
        info[State] = s.State switch { SocketState.Listening => 10, _ => 7 }; // TCP_LISTEN / TCP_CLOSE
        if (s.State != SocketState.Connected || Engine.Stack.GetConnection(s.Handle) is not { } c) return;
        info[State] = (byte)(c.State switch
        {
            TcpState.Established => 1, TcpState.SynSent => 2, TcpState.SynReceived => 3, TcpState.FinWait1 => 4,
            TcpState.FinWait2 => 5,
            // Linux moves TIME_WAIT to a separate mini-socket; the application's socket itself reads TCP_CLOSE.
            TcpState.TimeWait => 7, TcpState.Closed => 7, TcpState.CloseWait => 8,
            TcpState.LastAck => 9, TcpState.Listen => 10, TcpState.Closing => 11, _ => 7,
        });
        byte opts = 0;
        if (c.TimestampsEnabled) opts |= OptTimestamps;
        if (c.SackEnabled) opts |= OptSack;
        if (c.SendWindowScale > 0 || c.ReceiveWindowScale > 0) opts |= OptWscale;
        info[Options] = opts;
        info[WScale] = (byte)((c.SendWindowScale & 0xF) | (c.ReceiveWindowScale & 0xF) << 4);
        int cwndSegments = c.SendMss > 0 ? (int)(c.CongestionWindow / c.SendMss) : 0;
        int ssthresh = c.SendMss > 0 ? (int)Math.Min(c.SlowStartThreshold / c.SendMss, int.MaxValue) : 0;
        BinaryPrimitives.WriteUInt32LittleEndian(info[Rto..], (uint)Math.Min(c.RtoUs, uint.MaxValue));
        BinaryPrimitives.WriteUInt32LittleEndian(info[SndMss..], (uint)c.SendMss);
        BinaryPrimitives.WriteUInt32LittleEndian(info[RcvMss..], (uint)c.SendMss);
        BinaryPrimitives.WriteUInt32LittleEndian(info[Rtt..], (uint)Math.Min(c.SmoothedRttUs, uint.MaxValue));
        BinaryPrimitives.WriteUInt32LittleEndian(info[SndSsthresh..], (uint)ssthresh);
        BinaryPrimitives.WriteUInt32LittleEndian(info[SndCwnd..], (uint)cwndSegments);
    }
}
