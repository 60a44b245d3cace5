using System;
using System.Runtime.CompilerServices;
using UserTcp.Stack.Wire;

namespace UserTcp.Stack.Tcp;

/// <summary>
/// One TCP connection (RFC 9293): the transmission control block plus its send and receive buffers.
///
/// The type is split by role:
/// - this file: state, the application-facing calls (send, receive, shutdown, close) and readiness;
/// - <c>.Input.cs</c>: SEGMENT ARRIVES (RFC 9293 §3.10.7) with RFC 5961 and RFC 7323 checks, ACK processing and
///   congestion response, data reassembly;
/// - <c>.Output.cs</c>: deciding what to send (window, Nagle, SWS avoidance), building segments and options;
/// - <c>.Timers.cs</c>: retransmission (RFC 6298), persist, delayed ACK, keepalive, TIME_WAIT and FIN_WAIT_2 expiry.
///
/// Sequence space on the send side: [ISS] SYN, then data bytes, then FIN at <see cref="_finSeq"/>. The send ring
/// holds every data byte from SND.UNA (or ISS+1 while the SYN is unacknowledged) to the end of queued data; a byte's
/// ring offset is its sequence number minus the first data sequence still held.
/// Buffers are rented lazily: an idle connection with nothing queued holds no ring block and no assembler.
/// </summary>
public sealed partial class TcpConnection : TimerNode
{
    private readonly TcpLayer _layer;
    internal TcpTuple Tuple;
    internal TcpConnection? NextInTable;    // the layer's ConnectionTable chain
    public TcpState State { get; private set; }

    // --- send sequence variables (RFC 9293 §3.3.1) ---
    private SeqNumber _iss;
    private SeqNumber _sndUna;
    private SeqNumber _sndNxt;
    private SeqNumber _sndMax;      // highest sequence number sent + 1 (SND.NXT rewinds on timeout; this does not)
    private SeqNumber _sndWl1, _sndWl2;
    // _finSeq (sequence number of our FIN once queued): in RareState.
    private uint _sndWnd;           // peer's window, already scaled
    private uint _maxSndWnd;        // largest window the peer offered (SWS avoidance, RFC 5961 §5)
    // MSS values are at most 65495 (16-bit option, MTU-bounded): 16 bits each. Properties keep the methods' field
    // syntax (a million idle connections carry every field).
    private ushort _mssBits, _peerMssBits;
    /// <summary>Payload bytes per segment we send (options excluded).</summary>
    private int _mss { get => _mssBits; set => _mssBits = (ushort)value; }
    private byte _sndScale, _rcvScale;

    // --- receive sequence variables ---
    private SeqNumber _irs;
    private SeqNumber _rcvNxt;
    private SeqNumber _rcvAdvEdge;  // RCV.NXT + RCV.WND as last advertised: never moved left (RFC 9293 §3.8.6.2.2)
    // _peerFinSeq (where the peer's FIN sits once seen; it may arrive out of order): in RareState.
    /// <summary>Segment size the peer sends to us (delayed-ACK accounting).</summary>
    private int _peerMss { get => _peerMssBits; set => _peerMssBits = (ushort)value; }

    // --- option state ---
    private ConnFlags _flags;
    private uint _tsRecent;         // RFC 7323 §4.3 TS.Recent
    private uint _tsRecentSec;      // when TS.Recent was set, in seconds (PAWS 24-day rule)
    private uint _tsOffset;

    // --- RTT and retransmission (RFC 6298) ---
    private RttEstimator _rtt;      // SRTT, RTTVAR, RTO and the backoff (consecutive timeouts without progress)
    private SeqNumber _rttSeq;      // Karn: the one timed segment per RTT
    private uint _rttStartUs;       // low 32 bits of the time the timed segment left (RTTs up to 71 minutes)
    // _firstLossMs (when the current run of timeouts started, for the user timeout; 0 = none): in RareState.

    // --- congestion control (RFC 5681, RFC 6582 NewReno) ---
    private CongestionState _cc;    // owns cwnd and ssthresh (NewReno or CUBIC, per TcpConfig), inline
    private uint _lastSendMs;       // restart after idle (RFC 5681 §4.1); 0 = never sent
    // Loss recovery (_dupAcks, _inflation: NewReno without SACK, RFC 5681 window inflation; _recover; _highRxt:
    // RFC 6675 HighRxt; _sack: the layer's scoreboard while the peer reports SACKed data): in RareState.

    // --- timers: 32-bit milliseconds (see TcpConnection.Timers.cs; 0 = not armed) ---
    private uint _rtoAt;            // retransmission or persist (see ConnFlags.Persist)
    private uint _delAckAt;
    // _keepAt (keepalive deadline) and _keepProbes: in RareState.
    // _waitAt (TIME_WAIT or FIN_WAIT_2 expiry): in RareState.
    private uint _lastRecvMs;
    private uint _idleAt;           // drained ring blocks go back to the pool then (TcpConfig.IdleBufferReleaseUs)
    private int _unackedBytes;      // bytes received since our last ACK
    private byte _quickAcks;        // in-order segments still to be acknowledged at once (Linux quick-ACK mode)
    // The connection is its own node in the layer's TimerWheel (TimerNode base), due at the earliest deadline.

    // --- buffers ---
    private ByteRing _snd;          // inline mutable structs: never copy them
    private ByteRing _rcv;
    // _ooo (the out-of-order assembler, from the layer's pool only while out-of-order data is held): in RareState.

    // --- the socket above ---
    // Listener (passive open until accepted), NextInQueue (the listener's accept queue link), _pendingError and
    // _softError: in RareState.
    internal SocketError PendingError { get => (SocketError)_pendingError; set => _pendingError = (byte)value; }
    /// <summary>ICMP soft errors, reported if the connection later times out.</summary>
    internal SocketError SoftError { get => (SocketError)_softError; set => _softError = (byte)value; }
    public int UserHandle = -1;             // the façade's handle; -1 when orphaned
    /// <summary>Holds a reference on its local port in the layer's port table.</summary>
    internal bool OwnsPort { get => (_socketBits & SocketBits.OwnsPort) != 0; set => SetBit(SocketBits.OwnsPort, value); }
    /// <summary>That port is an ephemeral one other active opens may share.</summary>
    internal bool SharedPort { get => (_socketBits & SocketBits.SharedPort) != 0; set => SetBit(SocketBits.SharedPort, value); }
    private ushort _lastReadinessBits; // Readiness values fit 16 bits (RdHup = 0x2000)
    private Readiness _lastReadiness { get => (Readiness)_lastReadinessBits; set => _lastReadinessBits = (ushort)value; }

    // --- options set by the socket ---
    // The socket's booleans packed in one byte (one byte instead of five per connection).
    [Flags]
    private enum SocketBits : byte { NoDelay = 1, Cork = 2, KeepAlive = 4, OwnsPort = 8, SharedPort = 16 }
    private SocketBits _socketBits;
    private void SetBit(SocketBits bit, bool on) => _socketBits = on ? _socketBits | bit : _socketBits & ~bit;
    public bool NoDelay { get => (_socketBits & SocketBits.NoDelay) != 0; set => SetBit(SocketBits.NoDelay, value); }
    public bool Cork { get => (_socketBits & SocketBits.Cork) != 0; set => SetBit(SocketBits.Cork, value); }
    public bool KeepAlive { get => (_socketBits & SocketBits.KeepAlive) != 0; set => SetBit(SocketBits.KeepAlive, value); }
    // _keepCount, _keepIdleMs, _keepIntervalMs, _userTimeoutMs (kept in ms, as Linux keeps them): in RareState.
    public long KeepIdleUs { get => _keepIdleMs * 1000L; set => _keepIdleMs = OptionMs(value); }
    public long KeepIntervalUs { get => _keepIntervalMs * 1000L; set => _keepIntervalMs = OptionMs(value); }
    /// <summary>TCP_USER_TIMEOUT (0 = off), at most 24 days.</summary>
    public long UserTimeoutUs { get => _userTimeoutMs * 1000L; set => _userTimeoutMs = OptionMs(value); }
    public int KeepCount { get => _keepCount; set => _keepCount = (byte)Math.Clamp(value, 0, 255); }
    /// <summary>Microseconds to whole milliseconds, rounded up, at most 24 days (the 32-bit clock's horizon).</summary>
    internal static int OptionMs(long us) => (int)Math.Clamp((us + 999) / 1000, 0, MaxSpanMs);

    [Flags]
    private enum ConnFlags : ushort
    {
        None = 0,
        Timestamps = 1,
        Sack = 2,
        Passive = 4,
        FinQueued = 8,          // the application shut down writing: FIN follows the queued data
        FinReceived = 16,       // the peer's FIN has been consumed (RCV.NXT is past it)
        PeerFinSeen = 32,       // _peerFinSeq is valid
        ReadShutdown = 64,
        AckNow = 128,
        Persist = 256,          // _rtoAt is the persist timer
        RttTiming = 512,
        InRecovery = 1024,
        InTable = 2048,
        Retransmitting = 4096,  // SND.NXT was rewound by a timeout
        Cookie = 8192,          // created from a SYN cookie
        Freed = 16384,
        WindowScale = 32768,    // both sides sent the window scale option
    }

    /// <summary>
    /// State that an idle or loss-free connection never sets away from its default: loss recovery (duplicate ACKs,
    /// NewReno inflation, the recovery point, HighRxt, the SACK scoreboard, the out-of-order assembler, the start of
    /// a run of timeouts), keepalive (deadline, probes sent), the keepalive/user-timeout settings when they differ
    /// from the layer's defaults, the FIN sequence numbers and TIME_WAIT/FIN_WAIT_2 deadline of a closing
    /// connection, the error bytes, and the accept-queue links of a passive open not yet accepted.
    /// A connection holds none (424 -> 352 B per connection object) until one of these fields is first written with a
    /// value other than its default; it then takes one from the layer's free list (or a new one), keeps it for the
    /// rest of its life (no allocation per loss episode), and gives it back when the connection object is reset for
    /// reuse, or when it is accepted with nothing else set (a passive open takes one for its listener link). The
    /// fields below are properties with the old fields' names, so no method body changed.
    /// </summary>
    internal sealed class RareState
    {
        internal RareState? NextFree;   // the layer's free list (TcpLayer.FreeRareStates)
        internal SackScoreboard? Sack;
        internal Assembler? Ooo;
        internal TcpListener? Listener;
        internal TcpConnection? NextInQueue;
        internal int Inflation, DupAcks, KeepIdleMs, KeepIntervalMs, UserTimeoutMs;
        internal SeqNumber Recover, HighRxt, FinSeq, PeerFinSeq;
        internal uint FirstLossMs, KeepAt, WaitAt;
        internal byte KeepProbes, KeepCount, PendingError, SoftError;
    }

    private RareState? _rare;

    /// <summary>This connection's rare state, taken now if it has none (every field at its default).</summary>
    private RareState Rare => _rare ?? TakeRare();

    [MethodImpl(MethodImplOptions.NoInlining)]
    private RareState TakeRare()
    {
        RareState? r = _layer.FreeRareStates;
        if (r != null) { _layer.FreeRareStates = r.NextFree; r.NextFree = null; }
        else r = new RareState();
        r.Sack = null;
        r.Ooo = null;
        r.Listener = null;
        r.NextInQueue = null;
        r.FinSeq = r.PeerFinSeq = default;
        r.WaitAt = 0;
        r.PendingError = r.SoftError = 0;
        r.Inflation = r.DupAcks = 0;
        r.Recover = _iss;
        r.HighRxt = default;
        r.FirstLossMs = r.KeepAt = 0;
        r.KeepProbes = 0;
        r.KeepIdleMs = _layer.KeepIdleMsDefault;
        r.KeepIntervalMs = _layer.KeepIntervalMsDefault;
        r.KeepCount = DefaultKeepCount;
        r.UserTimeoutMs = 0;
        return _rare = r;
    }

    /// <summary>A passive open holds its rare state (for <see cref="Listener"/>) until accepted: then, if nothing else
    /// in it differs from the defaults, it goes back to the layer, so an accepted idle connection holds none.</summary>
    private void GiveBackRareIfDefault(RareState r)
    {
        if (r.Listener != null || r.NextInQueue != null || r.Sack != null || r.Ooo != null || r.Inflation != 0 || r.DupAcks != 0
            || r.Recover != _iss || r.HighRxt != default || r.FinSeq != default || r.PeerFinSeq != default
            || r.FirstLossMs != 0 || r.KeepAt != 0 || r.WaitAt != 0 || r.KeepProbes != 0 || r.PendingError != 0
            || r.SoftError != 0 || r.KeepIdleMs != _layer.KeepIdleMsDefault
            || r.KeepIntervalMs != _layer.KeepIntervalMsDefault || r.KeepCount != DefaultKeepCount || r.UserTimeoutMs != 0)
            return;
        GiveBackRare(r);
    }

    /// <summary>The connection's rare state back to the layer's free list (TakeRare clears it when it is taken).</summary>
    private void GiveBackRare(RareState r)
    {
        _rare = null;
        r.NextFree = _layer.FreeRareStates;
        _layer.FreeRareStates = r;
    }

    /// <summary>Whether the connection holds a <see cref="RareState"/> (tests, bench/IdleMemory).</summary>
    internal bool HasRareState => _rare != null;

    private byte DefaultKeepCount => (byte)Math.Clamp(_layer.Config.KeepAliveCount, 0, 255);

    // Each reads the default while there is no rare state, and a write of the default then takes none. _recover's
    // default is ISS: every open sets it to ISS right after choosing ISS, which never changes afterwards.
    private int _dupAcks
    {
        get => _rare is { } r ? r.DupAcks : 0;
        set { if (_rare is { } r) r.DupAcks = value; else if (value != 0) TakeRare().DupAcks = value; }
    }
    private int _inflation
    {
        get => _rare is { } r ? r.Inflation : 0;
        set { if (_rare is { } r) r.Inflation = value; else if (value != 0) TakeRare().Inflation = value; }
    }
    private SeqNumber _recover
    {
        get => _rare is { } r ? r.Recover : _iss;
        set { if (_rare is { } r) r.Recover = value; else if (value != _iss) TakeRare().Recover = value; }
    }
    private SeqNumber _highRxt
    {
        get => _rare is { } r ? r.HighRxt : default;
        set { if (_rare is { } r) r.HighRxt = value; else if (value != default) TakeRare().HighRxt = value; }
    }
    private SackScoreboard? _sack
    {
        get => _rare?.Sack;
        set { if (_rare is { } r) r.Sack = value; else if (value != null) TakeRare().Sack = value; }
    }
    private Assembler? _ooo
    {
        get => _rare?.Ooo;
        set { if (_rare is { } r) r.Ooo = value; else if (value != null) TakeRare().Ooo = value; }
    }
    private uint _firstLossMs
    {
        get => _rare is { } r ? r.FirstLossMs : 0;
        set { if (_rare is { } r) r.FirstLossMs = value; else if (value != 0) TakeRare().FirstLossMs = value; }
    }
    private uint _keepAt
    {
        get => _rare is { } r ? r.KeepAt : 0;
        set { if (_rare is { } r) r.KeepAt = value; else if (value != 0) TakeRare().KeepAt = value; }
    }
    private byte _keepProbes
    {
        get => _rare is { } r ? r.KeepProbes : (byte)0;
        set { if (_rare is { } r) r.KeepProbes = value; else if (value != 0) TakeRare().KeepProbes = value; }
    }
    private int _keepIdleMs
    {
        get => _rare is { } r ? r.KeepIdleMs : _layer.KeepIdleMsDefault;
        set { if (_rare is { } r) r.KeepIdleMs = value; else if (value != _layer.KeepIdleMsDefault) TakeRare().KeepIdleMs = value; }
    }
    private int _keepIntervalMs
    {
        get => _rare is { } r ? r.KeepIntervalMs : _layer.KeepIntervalMsDefault;
        set { if (_rare is { } r) r.KeepIntervalMs = value; else if (value != _layer.KeepIntervalMsDefault) TakeRare().KeepIntervalMs = value; }
    }
    private int _userTimeoutMs
    {
        get => _rare is { } r ? r.UserTimeoutMs : 0;
        set { if (_rare is { } r) r.UserTimeoutMs = value; else if (value != 0) TakeRare().UserTimeoutMs = value; }
    }
    private SeqNumber _finSeq
    {
        get => _rare is { } r ? r.FinSeq : default;
        set { if (_rare is { } r) r.FinSeq = value; else if (value != default) TakeRare().FinSeq = value; }
    }
    private SeqNumber _peerFinSeq
    {
        get => _rare is { } r ? r.PeerFinSeq : default;
        set { if (_rare is { } r) r.PeerFinSeq = value; else if (value != default) TakeRare().PeerFinSeq = value; }
    }
    private uint _waitAt
    {
        get => _rare is { } r ? r.WaitAt : 0;
        set { if (_rare is { } r) r.WaitAt = value; else if (value != 0) TakeRare().WaitAt = value; }
    }
    private byte _pendingError
    {
        get => _rare is { } r ? r.PendingError : (byte)0;
        set { if (_rare is { } r) r.PendingError = value; else if (value != 0) TakeRare().PendingError = value; }
    }
    private byte _softError
    {
        get => _rare is { } r ? r.SoftError : (byte)0;
        set { if (_rare is { } r) r.SoftError = value; else if (value != 0) TakeRare().SoftError = value; }
    }
    /// <summary>The listener of a passive open until it is accepted (cleared then, or when the child closes).</summary>
    internal TcpListener? Listener
    {
        get => _rare?.Listener;
        set
        {
            if (_rare is { } r)
            {
                r.Listener = value;
                if (value == null) GiveBackRareIfDefault(r);
            }
            else if (value != null) TakeRare().Listener = value;
        }
    }
    /// <summary>The listener's accept queue link.</summary>
    internal TcpConnection? NextInQueue
    {
        get => _rare?.NextInQueue;
        set { if (_rare is { } r) r.NextInQueue = value; else if (value != null) TakeRare().NextInQueue = value; }
    }
    private byte _keepCount
    {
        get => _rare is { } r ? r.KeepCount : DefaultKeepCount;
        set { if (_rare is { } r) r.KeepCount = value; else if (value != DefaultKeepCount) TakeRare().KeepCount = value; }
    }

    internal TcpConnection(TcpLayer layer, in TcpTuple tuple)
    {
        _layer = layer;
        Reset(tuple);
    }

    /// <summary>
    /// Sets every field to the state of a new connection for <paramref name="tuple"/>: the constructor runs it, and
    /// the layer runs it again when it reuses a released connection from its free list (short connections then
    /// allocate nothing). Every field of this class and of <see cref="TimerNode"/> is assigned here; a test compares
    /// a reused connection with a new one field by field (reflection), so a field added without a line here fails.
    /// </summary>
    internal void Reset(in TcpTuple tuple)
    {
        TcpConfig c = _layer.Config;
        // TimerNode: the wheel has already cancelled the node (Unlink).
        Next = null; Prev = null; Slot = -1; DueUs = 0;
        if (_rare is { } rare)
        {
            // Back to the layer (its scoreboard and assembler are gone: IsClean); its fields read their
            // defaults again.
            rare.Sack = null;
            rare.Ooo = null;
            GiveBackRare(rare);
        }
        // Without a RareState every rare field reads its default (its getter): its writes of defaults here would each
        // be a call that finds no RareState and does nothing, so they are left out (_finSeq, _peerFinSeq,
        // _firstLossMs, _inflation, _dupAcks, _recover, _highRxt, _sack, _keepAt, _waitAt, _keepProbes, _ooo,
        // Listener, NextInQueue, _pendingError, _softError, _keepIdleMs, _keepIntervalMs, KeepCount, _userTimeoutMs;
        // the reflection test of ShortConnectionAllocationTests compares them with a new connection's).
        Tuple = tuple;
        NextInTable = null;
        State = TcpState.Closed;
        _iss = _sndUna = _sndNxt = _sndMax = _sndWl1 = _sndWl2 = default;
        _sndWnd = _maxSndWnd = 0;
        _mss = c.DefaultMss;
        _sndScale = _rcvScale = 0;
        _irs = _rcvNxt = _rcvAdvEdge = default;
        _peerMss = c.DefaultMss;
        _flags = ConnFlags.None;
        _tsRecent = _tsRecentSec = _tsOffset = 0;
        _rtt = new RttEstimator(_layer.Rto);
        _rttSeq = default;
        _rttStartUs = 0;
        GiveBackCubicEpoch();
        _cc = default;
        _lastSendMs = 0;
        _rtoAt = _delAckAt = _lastRecvMs = _idleAt = 0;
        _unackedBytes = 0;
        _quickAcks = 0;
        _snd = new ByteRing(_layer.Buffers, c.SendBufferSize);
        _rcv = new ByteRing(_layer.Buffers, c.ReceiveBufferSize);
        UserHandle = -1;
        _socketBits = 0; // NoDelay, Cork, KeepAlive, OwnsPort, SharedPort
        _lastReadiness = Readiness.None;
    }

    /// <summary>Released to the layer (closed, orphaned, out of the table): set once, cleared when reused. A stale
    /// reference sees it and must not act; <see cref="TcpLayer.Release"/> uses it so a connection is never put on the
    /// free list twice.</summary>
    internal bool IsFreed => Has(ConnFlags.Freed);
    internal void MarkFreed() => Set(ConnFlags.Freed);

    /// <summary>Whether the connection holds nothing a reuse would leak: no ring block, assembler, scoreboard or
    /// timer, and it is in no table or queue.</summary>
    internal bool IsClean => !_snd.HasBlock && !_rcv.HasBlock && _ooo == null && _sack == null && !IsScheduled
        && !InTable && Listener == null && NextInQueue == null && !OwnsPort;

    public TcpTuple Endpoints => Tuple;
    public Ipv4Address LocalAddress => Tuple.LocalAddress;
    public ushort LocalPort => Tuple.LocalPort;
    public Ipv4Address RemoteAddress => Tuple.RemoteAddress;
    public ushort RemotePort => Tuple.RemotePort;
    public int SendMss => _mss;
    public long CongestionWindow => _cc.Cwnd;
    public long SlowStartThreshold => _cc.Ssthresh;
    public CongestionAlgorithm CongestionAlgorithm => _cc.Algorithm;
    public long SmoothedRttUs => _rtt.SrttUs;
    public long RtoUs => _rtt.RtoUs(_layer.Rto);
    private long CurrentRtoUs => _rtt.RtoUs(_layer.Rto);
    public bool TimestampsEnabled => Has(ConnFlags.Timestamps);
    public bool SackEnabled => Has(ConnFlags.Sack);
    public int SendWindowScale => _sndScale;
    public int ReceiveWindowScale => _rcvScale;
    public uint PeerWindow => _sndWnd;
    public int BytesQueuedToSend => _snd.Count;
    public int BytesReadable => _rcv.Count;
    /// <summary>True while the connection holds any buffer memory (ring blocks or an assembler).</summary>
    public bool HoldsBuffers => _snd.HasBlock || _rcv.HasBlock || _ooo != null;
    public int SendBufferSize => _snd.Capacity;
    public int ReceiveBufferSize => _rcv.Capacity;
    public bool IsOrphan => UserHandle < 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)] private bool Has(ConnFlags f) => (_flags & f) != 0;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] private void Set(ConnFlags f) => _flags |= f;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] private void Clear(ConnFlags f) => _flags &= ~f;

    internal bool IsFromCookie => Has(ConnFlags.Cookie);

    internal bool InTable { get => Has(ConnFlags.InTable); set { if (value) Set(ConnFlags.InTable); else Clear(ConnFlags.InTable); } }

    // ------------------------------------------------------------------------------------------------------------
    // Opening
    // ------------------------------------------------------------------------------------------------------------

    /// <summary>Active open: sends a SYN (RFC 9293 §3.10.1).</summary>
    internal void StartConnect(long nowUs)
    {
        _iss = _layer.Isn.Isn(Tuple, nowUs, out _tsOffset);
        _sndUna = _sndNxt = _sndMax = _iss;
        _recover = _iss;
        _mss = _layer.MssForRoute();
        InitCongestion();
        State = TcpState.SynSent;
        _lastRecvMs = (uint)(nowUs / 1000);
        _layer.Counters.TcpActiveOpens++;
        Output(nowUs);
    }

    /// <summary>Passive open from a SYN the listener accepted: replies SYN-ACK (RFC 9293 §3.10.7.2).</summary>
    internal void StartPassive(TcpListener listener, SeqNumber peerIsn, ushort rawWindow, in TcpOptions opt, long nowUs)
    {
        Listener = listener;
        Set(ConnFlags.Passive);
        _iss = _layer.Isn.Isn(Tuple, nowUs, out _tsOffset);
        _sndUna = _sndNxt = _sndMax = _iss;
        _recover = _iss;
        _irs = peerIsn;
        _rcvNxt = peerIsn + 1;
        ApplySynOptions(opt, weOffered: false);
        _tsRecentSec = (uint)(nowUs / 1_000_000);
        _sndWnd = rawWindow; // never scaled in a SYN (RFC 7323 §2.2)
        _maxSndWnd = _sndWnd;
        _sndWl1 = peerIsn;
        _sndWl2 = _iss;
        InitCongestion();
        InheritOptions(listener);
        State = TcpState.SynReceived;
        _lastRecvMs = (uint)(nowUs / 1000);
        // A half-open connection that never completes is dropped after the SYN-ACK retries run out (RTO path).
        Output(nowUs);
    }

    /// <summary>Passive open completed by a valid SYN cookie: the handshake state is rebuilt from the ACK.</summary>
    internal void StartFromCookie(TcpListener listener, SeqNumber iss, SeqNumber peerIsn, int mss, ushort rawWindow, long nowUs)
    {
        Listener = listener;
        Set(ConnFlags.Passive | ConnFlags.Cookie);
        _iss = iss;
        _tsOffset = _layer.Isn.TimestampOffset(Tuple);
        _sndUna = _sndNxt = _sndMax = iss + 1;
        _recover = iss;
        _irs = peerIsn;
        _rcvNxt = peerIsn + 1;
        // The cookie SYN-ACK carried only MSS: no window scaling, SACK or timestamps on this connection.
        _mss = Math.Min(mss, _layer.MssForRoute());
        _peerMss = _mss;
        _sndWnd = rawWindow;
        _maxSndWnd = _sndWnd;
        _sndWl1 = peerIsn + 1;
        _sndWl2 = iss + 1;
        _rcvAdvEdge = _rcvNxt + Math.Min(_rcv.Free, 65535);
        InitCongestion();
        InheritOptions(listener);
        State = TcpState.Established;
        _lastRecvMs = (uint)(nowUs / 1000);
        _layer.Counters.TcpPassiveOpens++;
        EnterQuickAck();
        ArmKeepalive(nowUs);
    }

    /// <summary>Linux starts a connection in quick-ACK mode: the first in-order segments (up to 16, or half the
    /// receive window in segments) are acknowledged at once so the peer's slow start and Nagle are not held back by
    /// the delayed-ACK timer.</summary>
    private void EnterQuickAck() => _quickAcks = (byte)Math.Clamp(_rcv.Capacity / (2 * Math.Max(_peerMss, 1)), 2, 16);

    private void InheritOptions(TcpListener l)
    {
        NoDelay = l.NoDelay;
        KeepAlive = l.KeepAlive;
        _keepIdleMs = l.KeepIdleMs; // already whole milliseconds, as OptionMs gives them
        _keepIntervalMs = l.KeepIntervalMs;
        KeepCount = l.KeepCount;
        _userTimeoutMs = l.UserTimeoutMs;
        if (l.SendBufferSize > 0) _snd.TrySetCapacity(_layer.Buffers, l.SendBufferSize);
        if (l.ReceiveBufferSize > 0) _rcv.TrySetCapacity(_layer.Buffers, l.ReceiveBufferSize);
    }

    private void InitCongestion()
    {
        // RFC 6928 initial window; ssthresh starts "arbitrarily high" (RFC 5681 §3.1). The MSS may still change
        // when the SYN-ACK arrives; the controller recomputes its initial window then.
        GiveBackCubicEpoch();
        _cc = new CongestionState(_layer.Config.CongestionControl, _mss);
        _inflation = 0;
    }

    /// <summary>Before a congestion event is reported: CUBIC's side object from the layer's free list, if the
    /// controller has none yet (so a loss allocates nothing once the list has objects).</summary>
    private void TakeCubicEpoch()
    {
        if (!_cc.WantsEpoch) return;
        CubicEpoch? e = _layer.FreeCubicEpochs;
        if (e != null) _layer.FreeCubicEpochs = e.NextFree;
        else e = new CubicEpoch();
        _cc.AttachEpoch(e);
    }

    /// <summary>The controller's CUBIC side object, if any, back to the layer's free list.</summary>
    private void GiveBackCubicEpoch()
    {
        if (_cc.DetachEpoch() is not { } e) return;
        e.NextFree = _layer.FreeCubicEpochs;
        _layer.FreeCubicEpochs = e;
    }

    /// <summary>Whether the congestion controller holds a CUBIC side object (tests, bench/IdleMemory).</summary>
    internal bool HasCubicEpoch => _cc.HasEpoch;

    /// <summary>The smallest segment size a connection uses, whatever the peer announced.</summary>
    internal const int MinMss = 64;

    /// <summary>Negotiates options from the peer's SYN or SYN-ACK (RFC 7323 §2.2, §3.2; RFC 2018 §2).</summary>
    private void ApplySynOptions(in TcpOptions opt, bool weOffered)
    {
        TcpConfig c = _layer.Config;
        if (c.WindowScaling && opt.HasWindowScale)
        {
            _sndScale = opt.WindowScale;
            _rcvScale = c.OurWindowScale;
            Set(ConnFlags.WindowScale);
        }
        else
        {
            _sndScale = 0;
            _rcvScale = 0;
            // Without scaling we can advertise at most 64 KiB; keep the ring no larger than that is not required
            // (the window is simply clamped), so the ring capacity stays.
        }
        if (c.Timestamps && opt.HasTimestamps)
        {
            Set(ConnFlags.Timestamps);
            _tsRecent = opt.TsVal;
        }
        if (c.Sack && opt.SackPermitted) Set(ConnFlags.Sack);
        int peerMss = opt.HasMss && opt.Mss > 0 ? opt.Mss : c.DefaultMss;
        int ours = _layer.MssForRoute();
        int mss = Math.Min(peerMss, ours);
        // Timestamps take 12 bytes of every segment (Linux reports 1448 on a 1500 MTU for the same reason).
        if (Has(ConnFlags.Timestamps)) mss -= 12;
        _mss = Math.Max(mss, MinMss);
        _peerMss = Math.Max(Math.Min(ours, peerMss) - (Has(ConnFlags.Timestamps) ? 12 : 0), MinMss);
        _ = weOffered;
    }

    // ------------------------------------------------------------------------------------------------------------
    // Application calls
    // ------------------------------------------------------------------------------------------------------------

    /// <summary>Queues bytes for sending. Returns bytes accepted (&gt; 0) or 0 with <paramref name="error"/> set.</summary>
    public int Send(ReadOnlySpan<byte> data, long nowUs, out SocketError error)
    {
        error = SocketError.Success;
        if (PendingError != SocketError.Success)
        {
            error = TakeError();
            return 0;
        }
        switch (State)
        {
            case TcpState.SynSent:
            case TcpState.SynReceived:
                error = SocketError.WouldBlock; // not yet connected: a non-blocking send waits (EAGAIN)
                return 0;
            case TcpState.Established:
            case TcpState.CloseWait:
                if (Has(ConnFlags.FinQueued)) { error = SocketError.BrokenPipe; return 0; }
                break;
            case TcpState.Listen:
                error = SocketError.NotConnected;
                return 0;
            default:
                // CLOSED after a reset or timeout (error already reported), or our FIN sent: EPIPE, as Linux.
                error = SocketError.BrokenPipe;
                return 0;
        }
        if (data.IsEmpty) return 0;
        int n = _snd.Write(_layer.Buffers, data);
        if (n == 0)
        {
            error = SocketError.WouldBlock;
            return 0;
        }
        if (!TrySendDirect(nowUs)) Output(nowUs);
        UpdateReadiness();
        return n;
    }

    /// <summary>Copies received bytes out. Returns bytes (&gt; 0), 0 at end of stream, or 0 with an error
    /// (WouldBlock when nothing is there yet).</summary>
    public int Receive(Span<byte> dest, bool peek, long nowUs, out SocketError error)
    {
        error = SocketError.Success;
        if (_rcv.Count > 0 && !Has(ConnFlags.ReadShutdown))
        {
            if (dest.IsEmpty) return 0;
            if (peek)
            {
                int copied = _rcv.Peek(0, dest);
                UpdateReadiness();
                return copied;
            }
            int n = _rcv.Read(dest); // = Peek(0, dest) then Consume
            if (_rcv.IsDrained) OnBuffersDrained(nowUs);
            MaybeWindowUpdate(nowUs);
            UpdateReadiness();
            return n;
        }
        // The end of the stream comes before a pending error: once the peer's FIN was read, read keeps returning 0
        // and a later reset waits in SO_ERROR (as on Linux, where the FIN marks the socket done first).
        if (Has(ConnFlags.FinReceived) || Has(ConnFlags.ReadShutdown)) return 0;
        if (PendingError != SocketError.Success)
        {
            error = TakeError();
            return 0;
        }
        switch (State)
        {
            case TcpState.Closed:
                // Closed without a FIN or an error: after an orderly shutdown the stream has ended.
                return 0;
            case TcpState.Listen:
                error = SocketError.NotConnected;
                return 0;
            default:
                error = SocketError.WouldBlock;
                return 0;
        }
    }

    /// <summary>SO_ERROR: returns the pending error and clears it.</summary>
    public SocketError TakeError()
    {
        SocketError e = PendingError;
        PendingError = SocketError.Success;
        return e;
    }

    /// <summary>shutdown(2). Writing: queue a FIN after the data (RFC 9293 §3.10.4). Reading: further reads see end
    /// of stream and arriving bytes are discarded (still acknowledged).</summary>
    public SocketError Shutdown(bool read, bool write, long nowUs)
    {
        if (State is TcpState.Closed or TcpState.Listen) return SocketError.NotConnected;
        if (read)
        {
            Set(ConnFlags.ReadShutdown);
            if (_rcv.Count > 0) { _rcv.Consume(_rcv.Count); ReleaseBuffersIfIdle(); }
        }
        if (write) QueueFin(nowUs);
        UpdateReadiness();
        return SocketError.Success;
    }

    private void QueueFin(long nowUs)
    {
        if (Has(ConnFlags.FinQueued)) return;
        switch (State)
        {
            case TcpState.SynSent:
                Terminate(SocketError.Success, nowUs);
                return;
            case TcpState.SynReceived:
            case TcpState.Established:
                Set(ConnFlags.FinQueued);
                _finSeq = DataStartSeq() + _snd.Count;
                if (State == TcpState.Established) State = TcpState.FinWait1;
                // In SYN-RECEIVED the FIN waits until the handshake completes (RFC 9293 §3.10.4).
                break;
            case TcpState.CloseWait:
                Set(ConnFlags.FinQueued);
                _finSeq = DataStartSeq() + _snd.Count;
                State = TcpState.LastAck;
                break;
            default:
                return;
        }
        Output(nowUs);
    }

    /// <summary>close(2). Graceful unless <paramref name="abort"/> (SO_LINGER 0) or unread data is pending, in which
    /// case the connection is reset (RFC 9293 §3.10.4, RFC 2525 §2.17). The connection becomes an orphan and finishes
    /// its close on its own.</summary>
    public void Close(bool abort, long nowUs)
    {
        UserHandle = -1;
        if (State is TcpState.Closed)
        {
            _rcv.Clear(_layer.Buffers);
            _layer.Release(this);
            return;
        }
        bool unread = _rcv.Count > 0 && !Has(ConnFlags.ReadShutdown);
        if (abort || unread)
        {
            Abort(nowUs);
            return;
        }
        if (State is TcpState.SynSent or TcpState.Listen)
        {
            Terminate(SocketError.Success, nowUs);
            return;
        }
        QueueFin(nowUs);
        if (State == TcpState.FinWait2) ArmWait(nowUs + _layer.Config.FinWait2TimeoutUs);
        if (State is TcpState.Closed) _layer.Release(this);
    }

    /// <summary>Sends RST (if synchronized) and frees the connection at once.</summary>
    public void Abort(long nowUs)
    {
        if (State is TcpState.SynReceived or TcpState.Established or TcpState.FinWait1 or TcpState.FinWait2
            or TcpState.CloseWait)
        {
            // RFC 9293 §3.10.5 ABORT: <SEQ=SND.NXT><CTL=RST>.
            SendRst(_sndMax, default, withAck: false, nowUs);
        }
        Terminate(SocketError.ConnectionAborted, nowUs);
    }

    /// <summary>SO_SNDBUF: refused (false) while queued bytes exceed the new size or a larger block would be needed.</summary>
    public bool TrySetSendBufferSize(int bytes) => _snd.TrySetCapacity(_layer.Buffers, bytes);

    /// <summary>SO_RCVBUF: only before the window has been advertised beyond the new size.</summary>
    public bool TrySetReceiveBufferSize(int bytes)
    {
        if (State is not (TcpState.Closed or TcpState.SynSent) && bytes < _rcv.Capacity) return false;
        return _rcv.TrySetCapacity(_layer.Buffers, bytes);
    }

    /// <summary>Sends what Nagle or cork held back once the option changed.</summary>
    public void Flush(long nowUs)
    {
        if (State != TcpState.Closed) Output(nowUs);
    }

    /// <summary>Whether the send buffer has enough room to report EPOLLOUT (as Linux: free space at least half the
    /// bytes queued).</summary>
    private bool Writable { [MethodImpl(MethodImplOptions.AggressiveInlining)] get { int free = _snd.Free; return free > 0 && free >= _snd.Count / 2; } }

    /// <summary>epoll bits, following Linux's tcp_poll: HUP when both directions are shut (or closed), IN|RDHUP once
    /// the receive side is shut (FIN or SHUT_RD), OUT when writable or once the send side is shut (a write then fails
    /// at once instead of blocking), nothing for reading or writing while the handshake is in progress.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Readiness GetReadiness()
    {
        if (State == TcpState.Established && (_flags & (ConnFlags.FinReceived | ConnFlags.ReadShutdown | ConnFlags.FinQueued)) == 0
            && _pendingError == 0)
        {
            // The common case, the general rules below reduced: neither direction shut, no error (inlined into the
            // edge detection that runs after every input, timer and application call).
            return (_rcv.Count > 0 ? Readiness.In : Readiness.None) | (Writable ? Readiness.Out : Readiness.None);
        }
        return GetReadinessGeneral();
    }

    private Readiness GetReadinessGeneral()
    {
        Readiness r = Readiness.None;
        bool closed = State == TcpState.Closed;
        bool rcvShut = closed || Has(ConnFlags.FinReceived) || Has(ConnFlags.ReadShutdown);
        bool sndShut = closed || Has(ConnFlags.FinQueued);
        if (rcvShut && sndShut) r |= Readiness.Hup;
        if (rcvShut) r |= Readiness.In | Readiness.RdHup;
        if (State is not (TcpState.SynSent or TcpState.SynReceived))
        {
            if (_rcv.Count > 0) r |= Readiness.In;
            if (sndShut || Writable) r |= Readiness.Out;
        }
        if (PendingError != SocketError.Success) r |= Readiness.Err;
        return r;
    }

    /// <summary>Tells the façade when readiness changed since the last report (edge detection, no allocation).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void UpdateReadiness()
    {
        // Without a handle (in the accept queue, or orphaned) nothing is reported or remembered, so the first
        // report after accept() carries everything that happened before it.
        if (UserHandle < 0) return;
        Readiness r = GetReadiness();
        if (r != _lastReadiness) ReportReadiness(r);
    }

    private void ReportReadiness(Readiness r)
    {
        _lastReadiness = r;
        _layer.Events?.OnReadinessChanged(this, r);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)] private SeqNumber DataStartSeq() => _sndUna == _iss ? _iss + 1 : _sndUna;

    /// <summary>A ring drained: its block goes back to the pool after <see cref="TcpConfig.IdleBufferReleaseUs"/>
    /// (the idle timer, <see cref="ReleaseBuffersIfIdle"/>) so a busy connection does not rent and return a block
    /// per request; at once when that is 0 or the pool is under pressure. An empty assembler goes back at once.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void OnBuffersDrained(long nowUs)
    {
        if (_idleAt == 0 || _ooo != null) BuffersDrained(nowUs); // else armed already, no assembler to give back
    }

    private void BuffersDrained(long nowUs)
    {
        if (_ooo != null && _ooo.IsEmpty)
        {
            _layer.ReturnAssembler(_ooo);
            _ooo = null;
        }
        if (_idleAt != 0) return; // already armed
        long delay = _layer.Config.IdleBufferReleaseUs;
        if (delay <= 0 || _layer.Buffers.UnderPressure)
        {
            ReleaseBuffersIfIdle();
            return;
        }
        if (!_snd.IsDrained && !_rcv.IsDrained) return;
        _idleAt = DeadlineMs(nowUs + delay);
        ScheduleAt(_idleAt);
    }

    /// <summary>Returns ring blocks (and the assembler) to their pools when they hold nothing.</summary>
    private void ReleaseBuffersIfIdle()
    {
        _snd.ReleaseIfEmpty(_layer.Buffers);
        if (_ooo != null && _ooo.IsEmpty)
        {
            _layer.ReturnAssembler(_ooo);
            _ooo = null;
        }
        _rcv.ReleaseIfEmpty(_layer.Buffers);
    }

    private void DropScoreboard()
    {
        if (_sack == null) return;
        _layer.ReturnScoreboard(_sack);
        _sack = null;
    }

    /// <summary>Moves to CLOSED: drops buffers and timers, leaves the table, records the error for the socket.</summary>
    internal void Terminate(SocketError error, long nowUs)
    {
        if (State == TcpState.Closed && !InTable) return;
        if (error != SocketError.Success && PendingError == SocketError.Success) PendingError = error;
        if (State == TcpState.TimeWait) _layer.TimeWaitCount--;
        State = TcpState.Closed;
        _snd.Clear(_layer.Buffers);
        if (_ooo != null) { _ooo.Clear(); _layer.ReturnAssembler(_ooo); _ooo = null; }
        // Bytes already received stay readable after a reset or timeout (Linux purges only the write queue): the
        // application reads them, then sees the error, then end of stream. Out-of-order bytes are dropped.
        if (IsOrphan) _rcv.Clear(_layer.Buffers);
        else { _rcv.ForgetOutOfOrderFrom(0); _rcv.ReleaseIfEmpty(_layer.Buffers); }
        _rtoAt = _delAckAt = _keepAt = _waitAt = _idleAt = 0;
        DropScoreboard();
        _layer.Unlink(this);
        if (Listener != null) Listener.OnChildClosed(this);
        UpdateReadiness();
        if (UserHandle < 0) _layer.Release(this);
        _ = nowUs;
    }

    /// <summary>ICMP error for this connection (RFC 1122 §4.2.3.9, RFC 5927). Hard errors abort a connection
    /// still in SYN-SENT (port unreachable there means "connection refused"); on a synchronized connection they are
    /// soft: remembered and reported only if the connection later times out. Fragmentation-needed lowers the MSS
    /// (RFC 1191) and resends at once.</summary>
    internal void OnIcmpError(TcpIcmpError kind, SeqNumber seq, int nextHopMtu, long nowUs)
    {
        // RFC 5927 §4.1: the quoted sequence number must be within SND.UNA..SND.MAX, else it is stale or forged.
        if (!(seq >= _sndUna && seq <= _sndMax)) return;
        if (kind == TcpIcmpError.FragmentationNeeded)
        {
            if (nextHopMtu < 68) return;
            int mss = nextHopMtu - 40 - (Has(ConnFlags.Timestamps) ? 12 : 0);
            if (mss < _mss && mss >= 88)
            {
                _mss = mss;
                _cc.Mss = mss;
                if (_sndNxt > _sndUna) { _sndNxt = _sndUna; Set(ConnFlags.Retransmitting); }
                Output(nowUs);
            }
            return;
        }
        SocketError err = kind switch
        {
            TcpIcmpError.PortUnreachable or TcpIcmpError.ProtocolUnreachable => SocketError.ConnectionRefused,
            TcpIcmpError.NetUnreachable => SocketError.NetworkUnreachable,
            TcpIcmpError.HostUnreachable or TcpIcmpError.SourceRouteFailed or TcpIcmpError.AdministrativelyProhibited
                => SocketError.HostUnreachable,
            _ => SocketError.ProtocolError,
        };
        if (State == TcpState.SynSent && kind != TcpIcmpError.Other)
        {
            Terminate(err, nowUs);
            return;
        }
        SoftError = err;
    }

    public override string ToString() => $"{Tuple} {State}";

    /// <summary>Diagnostics: the main sequence variables.</summary>
    public string Describe() =>
        $"{Tuple} {State} iss={_iss} una={_sndUna} nxt={_sndNxt} max={_sndMax} wnd={_sndWnd} cwnd={_cc.Cwnd} irs={_irs} rcvNxt={_rcvNxt} edge={_rcvAdvEdge} queued={_snd.Count} readable={_rcv.Count} rto={_rtoAt} flags={_flags} backoff={_rtt.Backoff}";
}
