using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using UserTcp.Stack.Phy;
using UserTcp.Stack.Wire;

namespace UserTcp.Stack.Tcp;

/// <summary>What TCP needs from IPv4 below it (implemented over the interface by <see cref="NetStack"/>, and by
/// test harnesses directly).</summary>
public interface ITcpTransmit
{
    Ipv4Address LocalAddress { get; }
    /// <summary>IP MTU of the route (header included).</summary>
    int Mtu { get; }
    /// <summary>True when the device fills the TCP checksum (the pseudo-header sum goes in the field).</summary>
    bool TxChecksumOffload { get; }
    /// <summary>An empty buffer with headroom for the IP and link headers; the segment is written at its Data.</summary>
    bool TryAllocate(out PacketBuf packet);
    /// <summary>Sends the segment in <paramref name="packet"/> (ownership passes on) to <paramref name="destination"/>.</summary>
    void Send(ref PacketBuf packet, Ipv4Address destination, long nowUs);
    /// <summary>TCP segmentation offload: the most payload bytes one segment with <see cref="PacketBuf.SegmentSize"/>
    /// set may carry (buffers from <see cref="TryAllocate"/> hold it); 0 = none. Read once, when the layer is built;
    /// only used together with <see cref="TxChecksumOffload"/>.</summary>
    int TsoMaxBytes => 0;
}

/// <summary>Callbacks to the socket layer. Invoked synchronously during input, timers or application calls; they
/// must not call back into the stack re-entrantly except to read state.</summary>
public interface ITcpEvents
{
    void OnReadinessChanged(TcpConnection connection, Readiness readiness);
    void OnAcceptReady(TcpListener listener);
    /// <summary>An orphaned or closed connection left the stack for good.</summary>
    void OnReleased(TcpConnection connection);
}

/// <summary>ICMP errors as TCP sees them (RFC 5927, RFC 1122 §4.2.3.9).</summary>
public enum TcpIcmpError
{
    NetUnreachable,
    HostUnreachable,
    ProtocolUnreachable,
    PortUnreachable,
    /// <summary>Fragmentation needed and DF set (RFC 1191): carries the next-hop MTU.</summary>
    FragmentationNeeded,
    SourceRouteFailed,
    AdministrativelyProhibited,
    Other,
}

/// <summary>
/// The TCP layer of one stack: demultiplexing by 4-tuple, listeners, ports, ISNs and SYN cookies, stateless replies
/// (RST, cookie SYN-ACK), and the timer heap. One thread drives it.
/// </summary>
public sealed partial class TcpLayer : ITimerHandler
{
    private readonly ConnectionTable _table;
    private readonly Dictionary<ushort, TcpListener> _listeners = new();
    private readonly PortTable _portUsers = new();
    private readonly Stack<Assembler> _assemblers = new();
    private readonly Stack<SackScoreboard> _scoreboards = new();
    private readonly TimerWheel _wheel;
    private TcpConnection? _freeHead;   // released connections kept for reuse, linked through NextInTable
    private int _freeCount;
    private int _nextEphemeral;
    private int _freeEphemeral;     // ephemeral-range ports no socket holds
    private int[]? _connectUsers;   // per port: active opens holding it as an ephemeral (shareable) port
    private long _challengeSecond = -1;
    private int _challengeCount;
    private readonly ITcpTransmit _tx;

    internal readonly IsnGenerator Isn;
    /// <summary>The keepalive times of <see cref="Config"/> in the connection's whole milliseconds (each new
    /// connection starts from them).</summary>
    internal readonly int KeepIdleMsDefault, KeepIntervalMsDefault;
    /// <summary>Rare-state objects given back by reset connections (TcpConnection.RareState; a chain through NextFree).</summary>
    internal TcpConnection.RareState? FreeRareStates;
    /// <summary>CUBIC side objects given back by reset connections (<see cref="CubicEpoch"/>; a chain through NextFree).</summary>
    internal CubicEpoch? FreeCubicEpochs;
    public TcpConfig Config { get; }
    /// <summary>Set when several processes share the device: flows are claimed through it (null: all are ours).</summary>
    public IFlowOwnership? Flows { get; set; }
    public StackCounters Counters { get; }
    public BufferPool Buffers { get; }
    /// <summary>RTO limits from <see cref="Config"/>, shared by the connections' <see cref="RttEstimator"/>s.</summary>
    public RtoPolicy Rto { get; }
    public ITcpEvents? Events { get; set; }
    /// <summary>The time of the latest call that passed one in: used by application calls that carry no clock.</summary>
    public long NowUs { get; private set; }
    public int ConnectionCount => _table.Count;
    /// <summary>Connections in TIME_WAIT now (bounded by <see cref="TcpConfig.MaxTimeWait"/>).</summary>
    public int TimeWaitCount { get; internal set; }
    public int AssemblersInUse { get; private set; }

    public TcpLayer(TcpConfig config, ITcpTransmit tx, StackCounters counters, BufferPool buffers)
    {
        Config = config;
        Rto = RtoPolicy.From(config);
        _tx = tx;
        Counters = counters;
        Buffers = buffers;
        Isn = new IsnGenerator(config.Seed);
        KeepIdleMsDefault = TcpConnection.OptionMs(config.KeepAliveIdleUs);
        KeepIntervalMsDefault = TcpConnection.OptionMs(config.KeepAliveIntervalUs);
        _table = new ConnectionTable(config.ExpectedConnections, config.Seed);
        _wheel = new TimerWheel(tickUs: 1000);
        _nextEphemeral = config.EphemeralPortFirst + (int)(config.Seed % (ulong)(config.EphemeralPortLast - config.EphemeralPortFirst + 1));
        _freeEphemeral = config.EphemeralPortLast - config.EphemeralPortFirst + 1;
        // A large segment is one IPv4 packet until the device cuts it: at most 65,535 bytes with the IPv4 header and
        // the largest TCP header.
        TxOffload = tx.TxChecksumOffload;
        TsoMax = TxOffload ? Math.Clamp(tx.TsoMaxBytes, 0, 65535 - 20 - 60) : 0;
    }

    public Ipv4Address LocalAddress => _tx.LocalAddress;

    /// <summary>The most new data one segment may carry when the device segments it (TSO); 0 = the device does not,
    /// every segment is at most one MSS.</summary>
    internal readonly int TsoMax;

    /// <summary>The device fills the TCP checksum (<see cref="ITcpTransmit.TxChecksumOffload"/>, fixed for the
    /// device's lifetime): segments carry only the pseudo-header sum, and their payload is copied without summing it.</summary>
    internal readonly bool TxOffload;

    /// <summary>MSS we announce and the ceiling for what we send: MTU minus 40 bytes of IPv4 and TCP headers.</summary>
    internal int MssForRoute() => Math.Max(_tx.Mtu - 40, 88);

    // --------------------------------------------------------------------------------------------------------
    // Ports
    // --------------------------------------------------------------------------------------------------------

    /// <summary>True when some socket holds <paramref name="port"/> (bound, listening or connected).</summary>
    public bool PortInUse(ushort port) => _portUsers.InUse(port);

    public bool IsListening(ushort port) => _listeners.ContainsKey(port);

    internal void AcquirePort(ushort port)
    {
        if (_portUsers.Acquire(port) && IsEphemeral(port)) _freeEphemeral--;
    }

    internal void ReleasePort(ushort port)
    {
        if (_portUsers.Release(port) && IsEphemeral(port)) _freeEphemeral++;
    }

    private bool IsEphemeral(ushort port) => port >= Config.EphemeralPortFirst && port <= Config.EphemeralPortLast;

    /// <summary>Picks a free ephemeral port (RFC 6056 style sequential scan from a seeded start). 0 when none.</summary>
    public ushort AllocateEphemeralPort()
    {
        if (_freeEphemeral <= 0) return 0; // every port is held: no scan (it would cost one lookup per port)
        int first = Config.EphemeralPortFirst, last = Config.EphemeralPortLast, span = last - first + 1;
        for (int i = 0; i < span; i++)
        {
            int p = _nextEphemeral;
            _nextEphemeral = p == last ? first : p + 1;
            if (!_portUsers.InUse((ushort)p)) return (ushort)p;
        }
        return 0;
    }

    /// <summary>
    /// Once no ephemeral port is free, an active open shares one with other active opens, as Linux does for
    /// connect() without bind(): a port whose holders are all ephemeral connections, with a 4-tuple not in use
    /// (so one local address reaches each remote address and port from the whole ephemeral range). 0 when none.
    /// </summary>
    private ushort ShareEphemeralPort(Ipv4Address remote, ushort remotePort)
    {
        int first = Config.EphemeralPortFirst, last = Config.EphemeralPortLast, span = last - first + 1;
        int[] connectUsers = _connectUsers ??= new int[65536];
        for (int i = 0; i < span; i++)
        {
            int p = _nextEphemeral;
            _nextEphemeral = p == last ? first : p + 1;
            int users = _portUsers.Users((ushort)p);
            if (users == 0 || users != connectUsers[p]) continue;
            // A tuple in TIME-WAIT may be taken over (Connect ends the old one first), as Linux does on loopback.
            if (_table.TryGetValue(new TcpTuple(_tx.LocalAddress, (ushort)p, remote, remotePort), out TcpConnection? c)
                && c.State != TcpState.TimeWait) continue;
            return (ushort)p;
        }
        return 0;
    }

    private ushort EphemeralForConnect(Ipv4Address remote, ushort remotePort)
    {
        ushort p = AllocateEphemeralPort();
        return p != 0 ? p : ShareEphemeralPort(remote, remotePort);
    }

    // --------------------------------------------------------------------------------------------------------
    // Opening
    // --------------------------------------------------------------------------------------------------------

    /// <summary>Active open from <paramref name="localPort"/> (already acquired by the caller, or 0 for ephemeral).</summary>
    public TcpConnection? Connect(ushort localPort, Ipv4Address remote, ushort remotePort, long nowUs, out SocketError error,
        Action<TcpConnection>? configure = null) =>
        Connect(localPort, remote, remotePort, nowUs, out error, configure, static (c, f) => f?.Invoke(c));

    /// <summary>Active open; <paramref name="configure"/> runs on the new connection before its SYN leaves, with
    /// <paramref name="state"/> (a static lambda and a struct state allocate nothing, unlike a capturing closure).</summary>
    public TcpConnection? Connect<TState>(ushort localPort, Ipv4Address remote, ushort remotePort, long nowUs,
        out SocketError error, TState state, Action<TcpConnection, TState> configure)
    {
        NowUs = nowUs;
        bool acquired = false;
        if (localPort == 0)
        {
            localPort = EphemeralForConnect(remote, remotePort);
            if (localPort == 0) { error = SocketError.AddressNotAvailable; return null; }
            AcquirePort(localPort);
            acquired = true;
        }
        var tuple = new TcpTuple(_tx.LocalAddress, localPort, remote, remotePort);
        // Sharing the device with other processes: the tuple must be ours alone, or their stacks would take our
        // SYN-ACK for a stray. An ephemeral port someone else holds with this peer: try the next one.
        for (int tries = 0; Flows is { } flows && flows.Claim(tuple) != FlowOwner.Mine; tries++)
        {
            if (!acquired || tries > 64) { if (acquired) ReleasePort(localPort); error = SocketError.AddressInUse; return null; }
            ReleasePort(localPort);
            localPort = EphemeralForConnect(remote, remotePort);
            if (localPort == 0) { error = SocketError.AddressNotAvailable; return null; }
            AcquirePort(localPort);
            tuple = new TcpTuple(_tx.LocalAddress, localPort, remote, remotePort);
        }
        if (_table.TryGetValue(tuple, out TcpConnection? existing))
        {
            if (existing.State != TcpState.TimeWait)
            {
                if (acquired) ReleasePort(localPort);
                error = SocketError.AddressInUse;
                return null;
            }
            existing.Terminate(SocketError.Success, nowUs); // reuse a TIME-WAIT tuple for our own new connection
        }
        var c = NewConnection(tuple);
        if (!acquired) AcquirePort(localPort);
        c.OwnsPort = true;
        if (acquired)
        {
            // An ephemeral port chosen here: other active opens may share it (ShareEphemeralPort).
            (_connectUsers ??= new int[65536])[localPort]++;
            c.SharedPort = true;
        }
        configure(c, state);
        Link(c);
        c.StartConnect(nowUs);
        error = c.State == TcpState.Closed ? c.TakeError() : SocketError.InProgress;
        return c;
    }

    public TcpListener? Listen(ushort port, int backlog, out SocketError error)
    {
        if (_listeners.TryGetValue(port, out TcpListener? l))
        {
            error = SocketError.AddressInUse;
            return null;
        }
        l = new TcpListener(this, _tx.LocalAddress, port, backlog);
        _listeners[port] = l;
        error = SocketError.Success;
        return l;
    }

    public void CloseListener(TcpListener l, long nowUs)
    {
        NowUs = nowUs;
        if (_listeners.TryGetValue(l.Port, out TcpListener? cur) && cur == l) _listeners.Remove(l.Port);
        l.CloseAll(nowUs);
    }

    private void Link(TcpConnection c)
    {
        if (_table.AddOrReplace(c) is { } old) old.InTable = false;
        c.InTable = true;
    }

    /// <summary>A passive open's connection (a listener's child, adopted or rebuilt from a cookie): it holds a use of
    /// the listener's port and is in the table.</summary>
    private TcpConnection NewLinkedChild(in TcpTuple tuple)
    {
        var c = NewConnection(tuple);
        AcquirePort(tuple.LocalPort);
        c.OwnsPort = true;
        Link(c);
        return c;
    }

    /// <summary>Removes a closed connection from the table and the timer heap.</summary>
    internal void Unlink(TcpConnection c)
    {
        if (c.InTable)
        {
            _table.Remove(c);
            c.InTable = false;
            Flows?.Release(c.Tuple);
        }
        _wheel.Cancel(c);
        if (c.OwnsPort)
        {
            c.OwnsPort = false;
            ReleasePort(c.Tuple.LocalPort);
            if (c.SharedPort) { c.SharedPort = false; _connectUsers![c.Tuple.LocalPort]--; }
        }
    }

    /// <summary>An orphaned connection is done: nothing refers to it any more. It goes on the free list (bounded
    /// by <see cref="TcpConfig.ConnectionPoolSize"/>) and a later open reuses it, so short connections allocate
    /// nothing in steady state. Released once only: a second call (e.g. close() after the connection already
    /// finished on its own) finds it marked freed.</summary>
    internal void Release(TcpConnection c)
    {
        if (c.InTable || c.IsFreed) return; // still finishing its close, or already released
        c.MarkFreed();
        Events?.OnReleased(c);
        if (_freeCount >= Config.ConnectionPoolSize || !c.IsClean) return; // the GC takes it
        c.NextInTable = _freeHead; // the free list reuses the table's chain link (a freed connection is in no table)
        _freeHead = c;
        _freeCount++;
    }

    /// <summary>Connections kept for reuse (bounded by <see cref="TcpConfig.ConnectionPoolSize"/>).</summary>
    public int PooledConnections => _freeCount;

    /// <summary>A connection object for a new open: a released one, reset, or a new one.</summary>
    internal TcpConnection NewConnection(in TcpTuple tuple)
    {
        TcpConnection? c = _freeHead;
        if (c == null) return new TcpConnection(this, tuple);
        _freeHead = c.NextInTable;
        _freeCount--;
        c.Reset(tuple);
        return c;
    }

    internal Assembler? RentAssembler()
    {
        AssemblersInUse++;
        return _assemblers.Count > 0 ? _assemblers.Pop() : new Assembler(16);
    }

    internal void ReturnAssembler(Assembler a)
    {
        a.Clear();
        AssemblersInUse--;
        _assemblers.Push(a);
    }

    /// <summary>SACK scoreboards in use (held by connections whose peer reported SACKed data).</summary>
    public int ScoreboardsInUse { get; private set; }

    internal SackScoreboard RentScoreboard()
    {
        ScoreboardsInUse++;
        return _scoreboards.Count > 0 ? _scoreboards.Pop() : new SackScoreboard();
    }

    internal void ReturnScoreboard(SackScoreboard s)
    {
        s.Clear();
        ScoreboardsInUse--;
        _scoreboards.Push(s);
    }

    /// <summary>RFC 5961 §7: at most <see cref="TcpConfig.ChallengeAckLimit"/> challenge ACKs per second.</summary>
    internal bool AllowChallengeAck(long nowUs)
    {
        long sec = nowUs / 1_000_000;
        if (sec != _challengeSecond)
        {
            _challengeSecond = sec;
            _challengeCount = 0;
        }
        return ++_challengeCount <= Config.ChallengeAckLimit;
    }

    // --------------------------------------------------------------------------------------------------------
    // Receive
    // --------------------------------------------------------------------------------------------------------

    /// <summary>A TCP segment from IPv4 (<paramref name="segment"/> is header and payload, IP header stripped).</summary>
    public void Receive(Ipv4Address source, Ipv4Address destination, Span<byte> segment, PacketOffloads rxFlags, long nowUs)
    {
        NowUs = nowUs;
        Counters.TcpSegmentsIn++;
        _dsackOwner = null; // a D-SACK is reported by the ACK of the segment that carried the duplicate, or not at all
        if ((rxFlags & PacketOffloads.RxTcpChecksumGood) == 0 && !Checksum.TransportSumsToOnes(source, destination, 6, segment))
        {
            Counters.Drop(DropReason.TcpBadChecksum);
            return;
        }
        // The fixed header in four loads, with TcpHeaderView.TryParse's checks in its order (RFC 9293 §3.1).
        if (segment.Length < TcpHeaderView.MinLength)
        {
            Counters.Drop(DropReason.TcpTruncated);
            return;
        }
        ref byte b = ref MemoryMarshal.GetReference(segment);
        uint ports = BigEndian(Unsafe.ReadUnaligned<uint>(ref b));
        uint offsetFlagsWindow = BigEndian(Unsafe.ReadUnaligned<uint>(ref Unsafe.Add(ref b, 12)));
        int hl = (int)(offsetFlagsWindow >> 28) * 4;
        if (hl < TcpHeaderView.MinLength || hl > segment.Length)
        {
            Counters.Drop(hl < TcpHeaderView.MinLength ? DropReason.TcpBadHeaderLength : DropReason.TcpTruncated);
            return;
        }
        TcpSegment seg;
        // Parsed straight into the segment (no copy of the options value).
        if (!TcpOptions.TryParse(segment[TcpHeaderView.MinLength..hl], out seg.Options, out DropReason reason))
        {
            Counters.Drop(reason);
            return;
        }
        ushort sourcePort = (ushort)(ports >> 16), destinationPort = (ushort)ports;
        if (source.IsBroadcast || source.IsMulticast || destination.IsBroadcast || destination.IsMulticast
            || sourcePort == 0 || destinationPort == 0)
        {
            Counters.Drop(DropReason.TcpBadFlags);
            return;
        }
        seg.Seq = new SeqNumber(BigEndian(Unsafe.ReadUnaligned<uint>(ref Unsafe.Add(ref b, 4))));
        seg.Ack = new SeqNumber(BigEndian(Unsafe.ReadUnaligned<uint>(ref Unsafe.Add(ref b, 8))));
        seg.Flags = (TcpFlags)(byte)(offsetFlagsWindow >> 16);
        seg.Window = (ushort)offsetFlagsWindow;
        seg.Payload = segment[hl..];
        // SYN+FIN or SYN+RST are never legitimate (a scan or an attack): drop like Linux does.
        if (seg.Has(TcpFlags.Syn) && seg.Has(TcpFlags.Fin | TcpFlags.Rst))
        {
            Counters.Drop(DropReason.TcpBadFlags);
            return;
        }
        var tuple = new TcpTuple(destination, destinationPort, source, sourcePort);
        if (_table.TryGetValue(tuple, out TcpConnection? c))
        {
            if (c.State == TcpState.TimeWait && seg.Has(TcpFlags.Syn) && !seg.Has(TcpFlags.Ack)
                && Flows is { } group && group.Lookup(tuple) == FlowOwner.Other)
            {
                // TIME_WAIT gave up its flow claim; another process of the group took this SYN: the tuple is theirs.
                c.Terminate(SocketError.Success, nowUs);
                Counters.Drop(DropReason.TcpOtherProcess);
                return;
            }
            if (c.State == TcpState.TimeWait && seg.Has(TcpFlags.Syn) && !seg.Has(TcpFlags.Ack)
                && c.TimeWaitAcceptsSyn(ref seg) && _listeners.ContainsKey(tuple.LocalPort))
            {
                // RFC 6191: a new incarnation may take over a TIME-WAIT tuple when its SYN is provably newer.
                c.Terminate(SocketError.Success, nowUs);
            }
            else
            {
                c.OnSegment(ref seg, nowUs);
                return;
            }
        }
        bool listening = _listeners.TryGetValue(tuple.LocalPort, out TcpListener? l) && !l.Closed
            && (l.Address.IsAny || l.Address == destination);
        if (Flows is { } flows)
        {
            // Several processes see this segment: a SYN to our listener claims the flow; anything else belongs to
            // whoever claimed it, and a segment nobody owns is answered by the group's leader alone.
            bool syn = seg.Has(TcpFlags.Syn) && !seg.Has(TcpFlags.Ack);
            FlowOwner owner = syn && listening ? flows.Claim(tuple) : flows.Lookup(tuple);
            if (owner == FlowOwner.NoRoom)
            {
                Counters.Drop(DropReason.TcpFlowTableFull);
                return;
            }
            if (owner == FlowOwner.Other || (owner == FlowOwner.Nobody && (!flows.IsLeader
                || (syn && flows.GroupListens(tuple.LocalPort)))))
            {
                Counters.Drop(DropReason.TcpOtherProcess);
                return;
            }
        }
        if (listening)
        {
            OnListenSegment(l!, tuple, ref seg, nowUs);
            return;
        }
        Counters.Drop(DropReason.TcpNoSocket);
        ReplyReset(tuple, ref seg, nowUs);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint BigEndian(uint v) => BitConverter.IsLittleEndian ? BinaryPrimitives.ReverseEndianness(v) : v;

    /// <summary>RFC 9293 §3.10.7.1: a segment for no connection is answered with a reset (unless it is one).</summary>
    private void ReplyReset(in TcpTuple tuple, ref TcpSegment seg, long nowUs)
    {
        if (seg.Has(TcpFlags.Rst)) return;
        if (seg.Has(TcpFlags.Ack)) SendControl(tuple, seg.Ack, default, TcpFlags.Rst, nowUs);
        else SendControl(tuple, default, seg.Seq + seg.Length, TcpFlags.Rst | TcpFlags.Ack, nowUs);
        Counters.TcpRstSent++;
    }

    /// <summary>RFC 9293 §3.10.7.2, LISTEN; plus SYN cookies for the ACK that completes a cookie handshake.</summary>
    private void OnListenSegment(TcpListener l, in TcpTuple tuple, ref TcpSegment seg, long nowUs)
    {
        if (seg.Has(TcpFlags.Rst)) return;
        if (seg.Has(TcpFlags.Ack))
        {
            if (!seg.Has(TcpFlags.Syn) && Config.SynCookies
                && Isn.CheckCookie(tuple, seg.Seq - 1, (seg.Ack - 1).Value, nowUs, out int mss))
            {
                if (!l.CanAcceptMore)
                {
                    Counters.Drop(DropReason.TcpBacklogFull);
                    return;
                }
                Counters.TcpSynCookiesAccepted++;
                var c = NewLinkedChild(tuple);
                c.StartFromCookie(l, seg.Ack - 1, seg.Seq - 1, mss, seg.Window, nowUs);
                l.OnChildEstablished(c);
                if (!seg.Payload.IsEmpty || seg.Has(TcpFlags.Fin)) c.OnSegment(ref seg, nowUs);
                else c.UpdateReadiness();
                return;
            }
            if (!seg.Has(TcpFlags.Syn)) Counters.Drop(DropReason.TcpBadSynCookie);
            SendControl(tuple, seg.Ack, default, TcpFlags.Rst, nowUs);
            Counters.TcpRstSent++;
            return;
        }
        if (!seg.Has(TcpFlags.Syn))
        {
            Counters.Drop(DropReason.TcpBadFlags);
            return;
        }
        if (!l.CanAcceptMore)
        {
            // Accept queue full: drop the SYN; the peer retries (Linux behaviour).
            Counters.Drop(DropReason.TcpBacklogFull);
            return;
        }
        if (l.SynQueueFull || _table.Count >= int.MaxValue)
        {
            if (!Config.SynCookies)
            {
                Counters.Drop(DropReason.TcpBacklogFull);
                return;
            }
            // SYN flood defence: answer statelessly; the state comes back in the ACK (RFC 4987 §3.6).
            int peerMss = seg.Options.HasMss && seg.Options.Mss > 0 ? seg.Options.Mss : Config.DefaultMss;
            int mss = Math.Min(peerMss, MssForRoute());
            uint cookie = Isn.MakeCookie(tuple, seg.Seq, mss, nowUs);
            SendControl(tuple, new SeqNumber(cookie), seg.Seq + 1, TcpFlags.Syn | TcpFlags.Ack, nowUs, mssOption: mss);
            Counters.TcpSynCookiesSent++;
            return;
        }
        var conn = NewLinkedChild(tuple);
        l.OnChildCreated();
        conn.StartPassive(l, seg.Seq, seg.Window, seg.Options, nowUs);
    }

    /// <summary>ICMP error about a segment we sent (<paramref name="original"/>: its IP header and at least 8 bytes
    /// of TCP header). RFC 5927 §4.1: ignore it unless the quoted sequence number is in flight.</summary>
    public void ReceiveIcmpError(TcpIcmpError kind, ReadOnlySpan<byte> original, int nextHopMtu, long nowUs)
    {
        NowUs = nowUs;
        if (original.Length < 20) return;
        int ihl = (original[0] & 0xF) * 4;
        if (ihl < 20 || original.Length < ihl + 8 || original[9] != 6) return;
        Ipv4Address src = Ipv4Address.Read(original[12..]), dst = Ipv4Address.Read(original[16..]);
        ReadOnlySpan<byte> t = original[ihl..];
        var tuple = new TcpTuple(src, (ushort)(t[0] << 8 | t[1]), dst, (ushort)(t[2] << 8 | t[3]));
        if (!_table.TryGetValue(tuple, out TcpConnection? c)) return;
        var seq = new SeqNumber((uint)(t[4] << 24 | t[5] << 16 | t[6] << 8 | t[7]));
        c.OnIcmpError(kind, seq, nextHopMtu, nowUs);
    }

    // --------------------------------------------------------------------------------------------------------
    // Transmit
    // --------------------------------------------------------------------------------------------------------

    /// <summary>Whether connections may take the short send paths (<c>TcpConnection.TrySendRun</c>, <c>TransmitSyn</c>). Tests turn it
    /// off to check that the full send logic produces the same segments.</summary>
    internal bool SendFastPath = true;
    /// <summary>Segments sent by that path (tests check it was taken).</summary>
    internal long SendFastPathSegments;
    /// <summary>Sends that went from <see cref="TcpConnection.Send"/> straight to the short send path, without
    /// <see cref="TcpConnection.Output"/> (counted once per send; their segments count in SendFastPathSegments).</summary>
    internal long SendDirectCalls;
    /// <summary>Whether segments may take the receive side's short paths (header prediction,
    /// <c>TcpConnection.InputPredicted</c>). Tests turn it off to check that the full input logic gives the same result.</summary>
    internal bool ReceiveFastPath = true;
    /// <summary>Segments handled by that path (tests check it was taken).</summary>
    internal long ReceiveFastPathSegments;
    /// <summary>Of those: the ACKs that completed a passive open, FINs taken in ESTABLISHED, and the ACKs that ended
    /// an orphan in LAST-ACK (tests check each was taken).</summary>
    internal long ReceiveFastPathHandshakeAcks, ReceiveFastPathFins, ReceiveFastPathLastAcks, ReceiveFastPathTimeWaits;

    internal bool TryAllocate(out PacketBuf p)
    {
        if (_tx.TryAllocate(out p)) return true;
        Counters.Drop(DropReason.TxNoBuffer);
        return false;
    }

    /// <summary>Fills the checksum (or its pseudo-header part for offload) and passes the segment to IP.</summary>
    internal void Transmit(ref PacketBuf p, in TcpTuple t, long nowUs)
    {
        Span<byte> seg = p.Data;
        uint pseudo = Checksum.PseudoHeader(t.LocalAddress, t.RemoteAddress, 6, seg.Length);
        var h = new TcpHeaderView(seg);
        if (TxOffload)
        {
            p.Offloads |= PacketOffloads.TxTcpChecksum;
            h.Checksum = Checksum.FoldUncomplemented(pseudo);
        }
        else h.Checksum = Checksum.Fold(Checksum.Add(pseudo, seg));
        Counters.TcpSegmentsOut++;
        _tx.Send(ref p, t.RemoteAddress, nowUs);
    }

    /// <summary><see cref="Transmit(ref PacketBuf, in TcpTuple, long)"/> for a segment whose checksum parts the
    /// caller has: <paramref name="headerSum"/>, the sum of its header's 16-bit words as values (the checksum word
    /// zero), and <paramref name="payloadSum"/>, its payload summed while it was copied in (native order, from
    /// <see cref="Checksum.CopyAndSum"/>). Nothing is read back.</summary>
    internal void Transmit(ref PacketBuf p, in TcpTuple t, uint headerSum, ulong payloadSum, long nowUs)
    {
        Span<byte> seg = p.Data;
        uint pseudo = Checksum.PseudoHeader(t.LocalAddress, t.RemoteAddress, 6, seg.Length);
        var h = new TcpHeaderView(seg);
        if (TxOffload)
        {
            p.Offloads |= PacketOffloads.TxTcpChecksum;
            h.Checksum = Checksum.FoldUncomplemented(pseudo);
        }
        else Unsafe.WriteUnaligned(ref seg[16], Checksum.FieldNative(pseudo + headerSum, payloadSum)); // both far below 2^32
        Counters.TcpSegmentsOut++;
        _tx.Send(ref p, t.RemoteAddress, nowUs);
    }

    /// <summary>A stateless control segment (RST, RST+ACK, cookie SYN-ACK).</summary>
    internal unsafe void SendControl(in TcpTuple t, SeqNumber seq, SeqNumber ack, TcpFlags flags, long nowUs, int mssOption = 0)
    {
        if (!TryAllocate(out PacketBuf p)) return;
        var room = new Span<byte>(p.Buffer + p.Offset, p.Capacity - p.Offset);
        int hl = mssOption > 0 ? 24 : 20;
        TcpHeaderView.Emit(room, t.LocalPort, t.RemotePort, seq.Value, (flags & TcpFlags.Ack) != 0 ? ack.Value : 0, flags,
            (flags & TcpFlags.Syn) != 0 ? (ushort)Math.Min(Config.ReceiveBufferSize, 65535) : (ushort)0, hl);
        if (mssOption > 0)
        {
            var o = new TcpOptions { HasMss = true, Mss = (ushort)mssOption };
            o.Emit(room[20..]);
        }
        p.SetLength(hl);
        Transmit(ref p, t, nowUs);
    }

    // --------------------------------------------------------------------------------------------------------
    // Timers: one TimerWheel node per connection (the connection itself), due at its earliest deadline.
    // --------------------------------------------------------------------------------------------------------

    /// <summary>Earliest time any connection needs its timer run (<see cref="long.MaxValue"/> when none). May be up
    /// to one wheel tick (1 ms) after the exact deadline, never before it.</summary>
    public long PollAt() => _wheel.Count == 0 ? long.MaxValue : _wheel.NextDue();

    public void PollTimers(long nowUs)
    {
        NowUs = nowUs;
        _wheel.Advance(nowUs, this);
    }

    void ITimerHandler.OnTimer(TimerNode node, long nowUs)
    {
        var c = (TcpConnection)node;
        c.OnTimer(nowUs);
        // OnTimer re-registers itself when deadlines remain; catch a case it did not.
        if (!c.IsScheduled && c.InTable)
        {
            long d = c.NextDeadline();
            if (d != long.MaxValue) ScheduleTimer(c, Math.Max(d, nowUs + 1));
        }
    }

    internal void ScheduleTimer(TcpConnection c, long dueUs)
    {
        if (!c.InTable) return;
        _wheel.Schedule(c, dueUs);
    }

    /// <summary>Looks a connection up by its tuple (tests, diagnostics).</summary>
    public TcpConnection? Find(in TcpTuple t) => _table.TryGetValue(t, out TcpConnection? c) ? c : null;

    // --------------------------------------------------------------------------------------------------------
    // ACKs per receive burst. Between BeginReceiveBurst and EndReceiveBurst (one device burst, at most 64 frames) the
    // ACK that in-order data owes after every second full-sized segment is sent once, at the end of the burst, for
    // all the segments of the connection in it: a bulk receiver then sends one ACK per burst instead of one per two
    // segments, as Linux's does with GRO or backlog coalescing (stretch ACKs; RFC 5681 §4.2's "at least every second
    // full-sized segment" is a SHOULD). Every other ACK (out-of-order data, duplicates, quick-ACK mode, window
    // probes) still leaves at once. Outside a burst (segments handed in one by one) nothing changes.
    // --------------------------------------------------------------------------------------------------------

    // --------------------------------------------------------------------------------------------------------
    // D-SACK (RFC 2883): the duplicate a connection just received, reported by the ACK it sends at once. Kept here,
    // not per connection: the ACK leaves in the Output that follows the segment's input, and any other connection's
    // input or segment forgets it.
    // --------------------------------------------------------------------------------------------------------

    private TcpConnection? _dsackOwner;
    private SeqNumber _dsackStart, _dsackEnd;

    internal void NoteDuplicate(TcpConnection c, SeqNumber start, SeqNumber end)
    {
        _dsackOwner = c;
        _dsackStart = start;
        _dsackEnd = end;
    }

    /// <summary>The D-SACK block <paramref name="c"/>'s next segment should carry first, once.</summary>
    internal bool TakeDuplicate(TcpConnection c, out SeqNumber start, out SeqNumber end)
    {
        start = _dsackStart;
        end = _dsackEnd;
        if (_dsackOwner != c) return false;
        _dsackOwner = null;
        return true;
    }

    internal bool HasDuplicateFor(TcpConnection c) => _dsackOwner == c;

    private readonly TcpConnection?[] _burstAcks = new TcpConnection?[64];
    private int _burstAckCount = -1; // -1: not inside a receive burst

    /// <summary>A receive burst begins: the every-second-segment ACKs wait for <see cref="EndReceiveBurst"/>.</summary>
    public void BeginReceiveBurst() => _burstAckCount = 0;

    /// <summary>The burst is over: the connections that owe an ACK for in-order data send it now (one each).</summary>
    public void EndReceiveBurst(long nowUs)
    {
        int n = _burstAckCount;
        _burstAckCount = -1;
        for (int i = 0; i < n; i++)
        {
            TcpConnection c = _burstAcks[i]!;
            _burstAcks[i] = null;
            c.SendBurstAck(nowUs);
        }
    }

    /// <summary>In-order data owes an ACK: false outside a burst (the caller acknowledges at once), true when it
    /// will be sent at the end of the burst.</summary>
    internal bool DeferAckToBurstEnd(TcpConnection c)
    {
        int n = _burstAckCount;
        if (n < 0) return false;
        if (n > 0 && _burstAcks[n - 1] == c) return true; // consecutive segments of one flow: listed already
        if (n == _burstAcks.Length) return false;
        _burstAcks[n] = c;
        _burstAckCount = n + 1;
        return true;
    }
}
