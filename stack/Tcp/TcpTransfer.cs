using System;
using System.Runtime.InteropServices;
using UserTcp.Stack.Wire;

namespace UserTcp.Stack.Tcp;

/// <summary>
/// The state of a passive connection that has not been accepted yet (SYN-RECEIVED, or ESTABLISHED/CLOSE-WAIT in an
/// accept queue), as one stack hands it to another: enough to continue the byte stream and the options negotiated
/// in the handshake. Blittable, fixed size (it is copied into memory shared between processes). What is left out
/// starts afresh in the importer: RTT estimate, congestion window (the initial window: nothing was sent yet), timers,
/// out-of-order data (the peer retransmits it). Received, acknowledged, unread bytes travel beside it.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
public struct TcpTransferState
{
    public const uint CurrentVersion = 1;
    public uint Version;
    public uint LocalAddress, RemoteAddress;
    public ushort LocalPort, RemotePort;
    public uint State;                 // TcpState
    public uint Iss, Irs;
    public uint SndUna, SndNxt, SndMax, SndWl1, SndWl2;
    public uint SndWnd, MaxSndWnd;     // scaled
    public uint RcvNxt, RcvAdvEdge, PeerFinSeq;
    public uint TsRecent, TsRecentSec, TsOffset;
    public int Mss, PeerMss;
    public byte SndScale, RcvScale;
    public ushort Options;             // TransferOptions
    public int DataLength;             // received, unread bytes that follow the state

    public TcpTuple Tuple => new(new Ipv4Address(LocalAddress), LocalPort, new Ipv4Address(RemoteAddress), RemotePort);
}

[Flags]
public enum TransferOptions : ushort
{
    None = 0,
    Timestamps = 1,
    Sack = 2,
    WindowScale = 4,
    FinReceived = 8,
    PeerFinSeen = 16,
}

/// <summary>Takes connections a closing listener exports (<see cref="TcpLayer.ExportChildren"/>). Returns false
/// when it cannot take this one: the connection is then reset, as a close of a listener does.</summary>
public interface ITcpHandOffSink
{
    bool Offer(in TcpTransferState state, ReadOnlySpan<byte> first, ReadOnlySpan<byte> second);
}

public sealed partial class TcpConnection
{
    /// <summary>Captures this unaccepted passive connection; false for a state that cannot move (a SYN-cookie
    /// child, anything past CLOSE-WAIT, bytes queued to send).</summary>
    internal bool TryExport(out TcpTransferState st)
    {
        st = default;
        if (State is not (TcpState.SynReceived or TcpState.Established or TcpState.CloseWait)) return false;
        if (Has(ConnFlags.Cookie) || Has(ConnFlags.FinQueued) || Has(ConnFlags.ReadShutdown) || _snd.Count > 0
            || PendingError != SocketError.Success)
            return false;
        st.Version = TcpTransferState.CurrentVersion;
        st.LocalAddress = Tuple.LocalAddress.Value;
        st.RemoteAddress = Tuple.RemoteAddress.Value;
        st.LocalPort = Tuple.LocalPort;
        st.RemotePort = Tuple.RemotePort;
        st.State = (uint)State;
        st.Iss = _iss.Value; st.Irs = _irs.Value;
        st.SndUna = _sndUna.Value; st.SndNxt = _sndNxt.Value; st.SndMax = _sndMax.Value;
        st.SndWl1 = _sndWl1.Value; st.SndWl2 = _sndWl2.Value;
        st.SndWnd = _sndWnd; st.MaxSndWnd = _maxSndWnd;
        st.RcvNxt = _rcvNxt.Value; st.RcvAdvEdge = _rcvAdvEdge.Value; st.PeerFinSeq = _peerFinSeq.Value;
        st.TsRecent = _tsRecent; st.TsRecentSec = _tsRecentSec; st.TsOffset = _tsOffset;
        st.Mss = _mss; st.PeerMss = _peerMss;
        st.SndScale = _sndScale; st.RcvScale = _rcvScale;
        TransferOptions o = TransferOptions.None;
        if (Has(ConnFlags.Timestamps)) o |= TransferOptions.Timestamps;
        if (Has(ConnFlags.Sack)) o |= TransferOptions.Sack;
        if (Has(ConnFlags.WindowScale)) o |= TransferOptions.WindowScale;
        if (Has(ConnFlags.FinReceived)) o |= TransferOptions.FinReceived;
        if (Has(ConnFlags.PeerFinSeen)) o |= TransferOptions.PeerFinSeen;
        st.Options = (ushort)o;
        st.DataLength = _rcv.Count;
        return true;
    }

    /// <summary>The received, unread bytes (valid until the connection changes).</summary>
    internal void ExportData(out ReadOnlySpan<byte> first, out ReadOnlySpan<byte> second) =>
        _rcv.GetReadSpans(0, _rcv.Count, out first, out second);

    /// <summary>Continues an exported connection in this stack as a child of <paramref name="l"/> (the caller linked
    /// it into the table). SYN-RECEIVED resends its SYN-ACK; an established one is queued for accept() and sends an
    /// ACK at once (for bytes the exporter may not have acknowledged yet, and so the peer hears from the new owner).
    /// False when the unread bytes do not fit the receive buffer.</summary>
    internal bool Import(TcpListener l, in TcpTransferState st, ReadOnlySpan<byte> data, long nowUs)
    {
        InheritOptions(l);
        if (!data.IsEmpty && _rcv.Write(_layer.Buffers, data) != data.Length) return false;
        Listener = l;
        Set(ConnFlags.Passive);
        _iss = new SeqNumber(st.Iss); _irs = new SeqNumber(st.Irs);
        _sndUna = new SeqNumber(st.SndUna); _sndNxt = new SeqNumber(st.SndNxt); _sndMax = new SeqNumber(st.SndMax);
        _sndWl1 = new SeqNumber(st.SndWl1); _sndWl2 = new SeqNumber(st.SndWl2);
        _recover = _iss;
        _sndWnd = st.SndWnd; _maxSndWnd = st.MaxSndWnd;
        _rcvNxt = new SeqNumber(st.RcvNxt); _rcvAdvEdge = new SeqNumber(st.RcvAdvEdge);
        _peerFinSeq = new SeqNumber(st.PeerFinSeq);
        _tsRecent = st.TsRecent; _tsRecentSec = st.TsRecentSec; _tsOffset = st.TsOffset;
        _mss = Math.Clamp(st.Mss, MinMss, 65495); _peerMss = Math.Clamp(st.PeerMss, MinMss, 65495);
        _sndScale = (byte)Math.Min((int)st.SndScale, 14); _rcvScale = (byte)Math.Min((int)st.RcvScale, 14);
        var o = (TransferOptions)st.Options;
        if ((o & TransferOptions.Timestamps) != 0) Set(ConnFlags.Timestamps);
        if ((o & TransferOptions.Sack) != 0) Set(ConnFlags.Sack);
        if ((o & TransferOptions.WindowScale) != 0) Set(ConnFlags.WindowScale);
        if ((o & TransferOptions.FinReceived) != 0) Set(ConnFlags.FinReceived);
        if ((o & TransferOptions.PeerFinSeen) != 0) Set(ConnFlags.PeerFinSeen);
        InitCongestion();
        _lastRecvMs = StampMs(nowUs);
        l.OnChildCreated();
        if ((TcpState)st.State == TcpState.SynReceived)
        {
            State = TcpState.SynReceived;
            _sndNxt = _iss; // resend the SYN-ACK (the exporter's may have been lost with its process)
            Output(nowUs);
            return true;
        }
        State = (TcpState)st.State;
        EnterQuickAck();
        ArmKeepalive(nowUs);
        l.OnChildEstablished(this);
        Set(ConnFlags.AckNow);
        Output(nowUs);
        return true;
    }
}

public sealed partial class TcpLayer
{
    /// <summary>
    /// A listener is about to close while other processes still hold it (nginx's old worker on reload): offers each
    /// of its unaccepted children (queued and half-open) to <paramref name="sink"/>, and drops every one it takes
    /// from this stack without a word to the peer (no RST: the connection lives on elsewhere, and its flow claim
    /// moved with it). The children the sink refuses stay, and the close resets them as before. Returns how many moved.
    /// </summary>
    public int ExportChildren(ushort port, ITcpHandOffSink sink, long nowUs)
    {
        if (!_listeners.TryGetValue(port, out TcpListener? l)) return 0;
        NowUs = nowUs;
        int moved = 0;
        // Queued ones first (oldest first, the order accept() would take them), then the half-open ones.
        for (TcpConnection? c = l.QueueHead; c != null;)
        {
            TcpConnection? next = c.NextInQueue;
            if (TryHandOff(c, sink, nowUs)) moved++;
            c = next;
        }
        if (l.HalfOpen > 0)
        {
            _exportScratch.Clear();
            for (int b = 0; b < _table.Buckets; b++)
                for (TcpConnection? c = _table.Head(b); c != null; c = c.NextInTable)
                    if (c.Listener == l && c.State == TcpState.SynReceived) _exportScratch.Add(c);
            foreach (TcpConnection c in _exportScratch) if (TryHandOff(c, sink, nowUs)) moved++;
            _exportScratch.Clear();
        }
        return moved;
    }

    private readonly System.Collections.Generic.List<TcpConnection> _exportScratch = new();

    private bool TryHandOff(TcpConnection c, ITcpHandOffSink sink, long nowUs)
    {
        if (!c.TryExport(out TcpTransferState st)) return false;
        c.ExportData(out ReadOnlySpan<byte> first, out ReadOnlySpan<byte> second);
        if (!sink.Offer(st, first, second)) return false;
        // Out of the table first, so its flow claim (now the adopter's) is not released, then closed silently.
        if (c.InTable)
        {
            _table.Remove(c);
            c.InTable = false;
        }
        c.UserHandle = -1;
        c.Terminate(SocketError.Success, nowUs);
        return true;
    }

    /// <summary>Resets the peer of an exported connection nobody adopted (RFC 9293 §3.10.5 ABORT: &lt;SEQ=SND.NXT&gt;&lt;CTL=RST&gt;),
    /// as the close of its listener would have done; any process on the same address can send it.</summary>
    public void ResetExported(in TcpTransferState st, long nowUs)
    {
        NowUs = nowUs;
        SendControl(st.Tuple, new SeqNumber(st.SndMax), default, TcpFlags.Rst, nowUs);
        Counters.TcpRstSent++;
    }

    /// <summary>Continues a connection another stack exported as a child of this stack's listener on its port.
    /// Null when nothing listens there, the tuple is in use here, or the state is unusable; the caller then gives
    /// up the flow (its peer is reset).</summary>
    public TcpConnection? ImportChild(in TcpTransferState st, ReadOnlySpan<byte> data, long nowUs)
    {
        NowUs = nowUs;
        if (st.Version != TcpTransferState.CurrentVersion
            || (TcpState)st.State is not (TcpState.SynReceived or TcpState.Established or TcpState.CloseWait)
            || data.Length != st.DataLength)
            return null;
        TcpTuple tuple = st.Tuple;
        if (!_listeners.TryGetValue(tuple.LocalPort, out TcpListener? l) || l.Closed
            || !(l.Address.IsAny || l.Address == tuple.LocalAddress) || _table.ContainsKey(tuple))
            return null;
        var c = NewLinkedChild(tuple);
        if (!c.Import(l, st, data, nowUs))
        {
            c.UserHandle = -1;
            c.Abort(nowUs);
            return null;
        }
        return c;
    }
}
