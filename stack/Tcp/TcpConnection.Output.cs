using System;
using System.Runtime.CompilerServices;
using UserTcp.Stack.Phy;
using UserTcp.Stack.Wire;

namespace UserTcp.Stack.Tcp;

// Send path. Call chain: Output (after input, timers and application calls)
//   -> SendSyn | SendRecovery (RFC 6675 holes) -> SendNewData (window, Nagle, SWS) -> TransmitSegment -> TcpLayer.Transmit
//   -> SendAck when an ACK is owed and nothing else carried it.
public sealed partial class TcpConnection
{
    /// <summary>Sends whatever the state, windows and timers allow. Never allocates.</summary>
    internal void Output(long nowUs)
    {
        switch (State)
        {
            case TcpState.Closed:
            case TcpState.Listen:
                return;
            case TcpState.SynSent:
                if (_sndNxt == _iss) SendSyn(withAck: false, nowUs);
                return;
            case TcpState.SynReceived:
                if (_sndNxt == _iss) SendSyn(withAck: true, nowUs);
                else if (Has(ConnFlags.AckNow)) SendAck(nowUs);
                return;
            case TcpState.TimeWait:
                if (Has(ConnFlags.AckNow)) SendAck(nowUs);
                return;
        }
        bool sent = false;
        if (Has(ConnFlags.InRecovery) && Has(ConnFlags.Sack)) sent = SendRecovery(nowUs);
        // SendNewData has nothing to do unless data waits past SND.NXT or a FIN is queued (the call after input that
        // only brought an ACK or a request): test that here and spare the call.
        if (Has(ConnFlags.FinQueued) || _sndNxt < DataEndSeq()) sent |= SendNewData(nowUs, force: false);
        if (!sent && (Has(ConnFlags.AckNow) || Reached(nowUs, _delAckAt))) SendAck(nowUs);

        // Never leave data without a timer. Bytes in flight: the retransmission timer. Data waiting (or a rewound
        // SND.NXT) with nothing in flight to bring an ACK: the persist timer probes the window (RFC 9293 §3.8.6.1)
        // and, when it fires with room in the window, forces out what Nagle, SWS avoidance or cork held back.
        if (_rtoAt == 0 && State != TcpState.TimeWait)
        {
            if (_sndNxt > _sndUna)
            {
                _rtoAt = DeadlineMs(nowUs + CurrentRtoUs);
                ScheduleTimer();
            }
            else if (DataEndSeq() > _sndNxt || _sndMax > _sndUna)
            {
                Set(ConnFlags.Persist);
                if (_firstLossMs == 0) _firstLossMs = StampMs(nowUs);
                _rtoAt = DeadlineMs(nowUs + CurrentRtoUs);
                ScheduleTimer();
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)] private SeqNumber DataEndSeq() => DataStartSeq() + _snd.Count;

    /// <summary>New data (and retransmission after a timeout, which rewinds SND.NXT), then the FIN.</summary>
    private bool SendNewData(long nowUs, bool force)
    {
        if (State is not (TcpState.Established or TcpState.CloseWait or TcpState.FinWait1 or TcpState.Closing
            or TcpState.LastAck)) return false;
        bool sent = false;
        SeqNumber dataEnd = DataEndSeq();
        bool finQueued = Has(ConnFlags.FinQueued);
        // Nothing queued past SND.NXT and no FIN to send: the loop below would stop at once (the common call after
        // input or an ACK), so skip its window arithmetic.
        if (!finQueued && _sndNxt >= dataEnd) return false;
        // RFC 5681 §4.1: after an idle period longer than the RTO, restart from at most the initial window.
        // (The RTO is never below MinRtoUs: the cheap comparison first spares computing it on a busy connection.)
        if (_sndUna == _sndMax && _lastSendMs != 0 && ElapsedUs(nowUs, _lastSendMs) is long idle
            && idle > _layer.Rto.MinRtoUs && idle > CurrentRtoUs && _sndNxt < dataEnd) _cc.OnIdleRestart(nowUs);
        // With segmentation offload more than one MSS of new data leaves as one large segment: the loop builds it.
        if (!force && !finQueued && _layer.SendFastPath && (_layer.TsoMax == 0 || dataEnd - _sndNxt <= _mss)
            && TrySendRun(nowUs, dataEnd - _sndNxt, out bool run)) return run;
        while (true)
        {
            if (_sndNxt > dataEnd) break;                          // FIN already sent
            int avail = dataEnd - _sndNxt;
            if (avail == 0 && !finQueued) break;                   // all sent: the rest would find len 0
            long inflight = _sndNxt - _sndUna;
            if (Has(ConnFlags.InRecovery) && Has(ConnFlags.Sack)) inflight = Pipe();
            // RFC 3042 Limited Transmit: the first two duplicate ACKs each let one new segment out beyond cwnd, so a
            // small window still produces the third duplicate ACK that fast retransmit needs (instead of a timeout).
            long limited = !Has(ConnFlags.InRecovery) && _dupAcks is 1 or 2 && _sndNxt == _sndMax ? (long)_dupAcks * _mss : 0;
            long usable = Math.Min((long)_sndWnd, _cc.Cwnd + _inflation + limited) - inflight;
            if (!force && Has(ConnFlags.InRecovery) && Has(ConnFlags.Sack))
                usable = Math.Min(usable, (long)_sndWnd - (_sndNxt - _sndUna));
            if (force) usable = Math.Max(usable, Math.Min((long)_sndWnd - (_sndNxt - _sndUna), _mss));
            int mss = CurrentMss();
            bool retransmit = _sndNxt < _sndMax;
            // TSO: new data beyond one MSS goes out as one large segment the device cuts at the MSS. Only for the
            // plain segment (no SACK blocks owed for out-of-order data we hold, no D-SACK owed: TransmitLarge writes
            // timestamps only) outside loss recovery; retransmissions, probes and forced sends stay one MSS. (Not
            // "CurrentMss() == _mss": with a peer MSS well below ours the SACK blocks fit beside it.)
            int cap = mss;
            if (_layer.TsoMax > mss && !retransmit && !force && !Has(ConnFlags.InRecovery)
                && PlainOptions) cap = _layer.TsoMax;
            int len = (int)Math.Min(Math.Min(avail, cap), Math.Max(0, usable));
            if (len > mss && len % mss is int tail && tail != 0
                && (len < avail || (!finQueued && (Cork || !NoDelay)))) len -= tail;
            // (Whole MSS pieces only, unless the short tail is what the MSS-at-a-time loop would send right after
            // them: the end of the data with no Nagle or cork to hold it, or the FIN's segment. Otherwise the tail
            // is left to the next round, where sender SWS avoidance and Nagle decide as for any short segment.)
            bool fin = finQueued && len == avail && _sndNxt + len == _finSeq;
            if (len == 0 && !fin) break;
            if (len > 0 && len < mss && !fin && !retransmit && !force)
            {
                if (len < avail)
                {
                    // Sender SWS avoidance (RFC 9293 §3.8.6.2.1): a window-limited small segment waits unless it is
                    // at least half the largest window the peer ever offered.
                    if (len < _maxSndWnd / 2) break;
                }
                else
                {
                    if (Cork) break;
                    // Nagle (RFC 896, RFC 9293 §3.7.4): one small segment in flight at a time.
                    if (!NoDelay && _sndMax > _sndUna) break;
                }
            }
            if (len > mss)
            {
                int sent1 = TransmitLarge(_sndNxt, len, fin ? TcpFlags.Fin | TcpFlags.Ack : TcpFlags.Ack, nowUs);
                if (sent1 <= 0) break;
                if (sent1 < len) fin = false; // a buffer smaller than promised: the rest waits for the next round
                len = sent1;
            }
            else if (!TransmitSegment(_sndNxt, len, fin ? TcpFlags.Fin : TcpFlags.None, nowUs)) break;
            _lastSendMs = StampMs(nowUs);
            if (retransmit) _layer.Counters.TcpRetransmits++;
            else if (len > 0) TimeSegment(nowUs);
            _sndNxt += len + (fin ? 1 : 0);
            if (_sndNxt > _sndMax) _sndMax = _sndNxt;
            if (_sndNxt >= _sndMax) Clear(ConnFlags.Retransmitting);
            if (_rtoAt == 0 || Has(ConnFlags.Persist))
            {
                Clear(ConnFlags.Persist);
                ArmRto(nowUs);
            }
            sent = true;
            if (fin || force) break;
        }
        return sent;
    }

    /// <summary>
    /// <see cref="Output"/> after the application queued bytes (<see cref="Send"/>), when it is known to come down to
    /// <see cref="TrySendRun"/> sending at least one segment: the caller checked the state (ESTABLISHED or CLOSE-WAIT)
    /// and that no FIN is queued; no recovery (Output's SACK step), no slow-start restart due (the connection sent
    /// within the minimum RTO, or has bytes in flight), no TSO-sized run. Then Output's other steps have nothing to
    /// do: a sent segment carried any ACK owed, and the retransmission timer is armed. Spares Output's and
    /// SendNewData's frames and checks on the send of every reply. False (nothing done) when a condition fails or
    /// nothing could be sent (Nagle, cork, window, no buffer): the caller runs Output, which decides the same way.
    /// </summary>
    private bool TrySendDirect(long nowUs)
    {
        if (!_layer.SendFastPath || (_flags & ConnFlags.InRecovery) != 0) return false;
        int avail = DataEndSeq() - _sndNxt;
        if (_layer.TsoMax != 0 && avail > _mss) return false;
        // SendNewData's idle test (RFC 5681 §4.1): its first comparison, the rest of it left to the full path.
        if (_sndUna == _sndMax && _lastSendMs != 0 && ElapsedUs(nowUs, _lastSendMs) > _layer.Rto.MinRtoUs) return false;
        if (!TrySendRun(nowUs, avail, out bool sent) || !sent) return false;
        _layer.SendDirectCalls++;
        return true;
    }

    /// <summary>
    /// The common send of a request/response exchange, decided in a few comparisons: nothing is being retransmitted
    /// (SND.NXT = SND.MAX, no recovery, no duplicate ACKs, no persist probe), no FIN is queued, no SACK or D-SACK blocks are owed
    /// (every segment is a plain one of up to <c>_mss</c> bytes), and the send window and cwnd take all
    /// <paramref name="avail"/> queued bytes. Then the segments are the ones the loop of <see cref="SendNewData"/>
    /// would send: full ones, and a short tail unless Nagle (something unacknowledged) or cork holds it. False when a
    /// condition fails: the caller runs the full logic (tests compare the two segment by segment).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool TrySendRun(long nowUs, int avail, out bool sent)
    {
        sent = false;
        const ConnFlags unusual = ConnFlags.InRecovery | ConnFlags.Persist | ConnFlags.Retransmitting;
        if ((_flags & unusual) != 0 || _sndNxt != _sndMax || _dupAcks != 0
            || !PlainOptions
            || State is not (TcpState.Established or TcpState.CloseWait)) return false;
        if (avail > Math.Min((long)_sndWnd, _cc.Cwnd + _inflation) - (_sndNxt - _sndUna)) return false;
        int mss = _mss;
        do
        {
            int len = Math.Min(avail, mss);
            // Nagle (RFC 896) and cork hold a short tail, as in the loop.
            if (len < mss && (Cork || (!NoDelay && _sndMax != _sndUna))) break;
            if (!TransmitPlain(_sndNxt, len, TcpFlags.Ack, nowUs)) break; // no buffer: the loop stops here too
            _layer.SendFastPathSegments++;
            _lastSendMs = StampMs(nowUs);
            TimeSegment(nowUs);
            _sndNxt += len;
            _sndMax = _sndNxt;
            if (_rtoAt == 0) ArmRto(nowUs);
            sent = true;
            avail -= len;
        } while (avail > 0);
        return true;
    }

    /// <summary>Times the new segment at SND.NXT for an RTT sample unless one is already being timed (one per RTT,
    /// Karn's rule is the caller's: never a retransmission).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void TimeSegment(long nowUs)
    {
        if (Has(ConnFlags.RttTiming)) return;
        _rttSeq = _sndNxt;
        _rttStartUs = (uint)nowUs;
        Set(ConnFlags.RttTiming);
    }

    /// <summary>(Re)arms the retransmission timer one RTO from now.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void ArmRto(long nowUs)
    {
        _rtoAt = DeadlineMs(nowUs + CurrentRtoUs);
        ScheduleAt(_rtoAt);
    }

    /// <summary>RFC 6675 §4 pipe: bytes believed in the network. Un-SACKed bytes below the highest SACKed byte are
    /// lost unless retransmitted (below HighRxt); bytes above it are in flight.</summary>
    private long Pipe()
    {
        if (_sack == null) return _sndNxt - _sndUna;
        SeqNumber high = _sack.HighestEnd;
        long pipe = Math.Max(0, _sndMax - high);
        // Retransmitted hole bytes: un-SACKed bytes in [SND.UNA, HighRxt).
        SeqNumber rxtEnd = SeqNumber.Min(_highRxt, high);
        if (rxtEnd > _sndUna) pipe += (rxtEnd - _sndUna) - _sack.SackedBetween(_sndUna, rxtEnd);
        return pipe;
    }

    /// <summary>SACK-based loss recovery (RFC 6675 §5 step C): while pipe leaves room in cwnd, retransmit the next
    /// hole above HighRxt; new data follows in SendNewData.</summary>
    private bool SendRecovery(long nowUs)
    {
        bool sent = false;
        while (Pipe() + _mss <= _cc.Cwnd)
        {
            SeqNumber from = SeqNumber.Max(_highRxt, _sndUna);
            if (_sack == null || !_sack.NextHole(from, out SeqNumber start, out int holeLen)) break;
            int len = Math.Min(holeLen, CurrentMss());
            SeqNumber dataEnd = DataEndSeq();
            if (start >= dataEnd) break;
            len = Math.Min(len, dataEnd - start);
            if (!TransmitSegment(start, len, TcpFlags.None, nowUs)) break;
            _layer.Counters.TcpRetransmits++;
            _highRxt = start + len;
            sent = true;
        }
        return sent;
    }

    /// <summary>Retransmits the first unacknowledged segment (fast retransmit, NewReno partial ACK).</summary>
    private void RetransmitHead(long nowUs)
    {
        SeqNumber dataEnd = DataEndSeq();
        int len = Math.Min(CurrentMss(), Math.Max(0, dataEnd - _sndUna));
        bool fin = Has(ConnFlags.FinQueued) && _sndUna + len == _finSeq && _sndMax > _finSeq;
        if (len == 0 && !fin) return;
        if (TransmitSegment(_sndUna, len, fin ? TcpFlags.Fin : TcpFlags.None, nowUs))
        {
            _layer.Counters.TcpRetransmits++;
            _rtoAt = DeadlineMs(nowUs + CurrentRtoUs);
            ScheduleTimer();
        }
    }

    private void SendSyn(bool withAck, long nowUs)
    {
        if (!TransmitSegment(_iss, 0, withAck ? TcpFlags.Syn | TcpFlags.Ack : TcpFlags.Syn, nowUs)) return;
        if (_rtt.Backoff == 0 && !Has(ConnFlags.Retransmitting))
        {
            _rttSeq = _iss;
            _rttStartUs = (uint)nowUs;
            Set(ConnFlags.RttTiming);
        }
        else _layer.Counters.TcpRetransmits++;
        _sndNxt = _iss + 1;
        if (_sndMax < _sndNxt) _sndMax = _sndNxt;
        _rtoAt = DeadlineMs(nowUs + CurrentRtoUs);
        ScheduleTimer();
    }

    /// <summary>A bare ACK for RCV.NXT.</summary>
    internal void SendAck(long nowUs)
    {
        // A pure ACK carries SND.NXT (RFC 9293 §3.10.7.4), or SND.MAX while a timeout has rewound SND.NXT.
        TransmitSegment(_sndMax == _sndNxt ? _sndNxt : _sndMax, 0, TcpFlags.None, nowUs);
    }

    /// <summary>Zero-window or keepalive probe: an ACK one byte below SND.UNA that the peer must answer
    /// (RFC 9293 §3.8.6.1 and §3.8.4; the form Linux uses, which consumes no sequence space).</summary>
    private void SendProbe(long nowUs) => TransmitSegment(_sndUna - 1, 0, TcpFlags.None, nowUs);

    internal void SendRst(SeqNumber seq, SeqNumber ack, bool withAck, long nowUs)
    {
        _layer.SendControl(Tuple, seq, ack, withAck ? TcpFlags.Rst | TcpFlags.Ack : TcpFlags.Rst, nowUs);
        _layer.Counters.TcpRstSent++;
    }

    /// <summary>TSval: a millisecond clock (RFC 7323 §5.4 allows 1 ms..1 s ticks) plus the per-connection offset.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] private uint TsNow(long nowUs) => unchecked((uint)(nowUs / 1000) + _tsOffset);

    /// <summary>The window field for the next segment, and the advertised right edge it implies. (Inlined: the
    /// send paths pass a constant <paramref name="syn"/>.)</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ushort WindowField(bool syn)
    {
        long free = Has(ConnFlags.ReadShutdown) ? _rcv.Capacity : _rcv.Free;
        if (syn)
        {
            long w = Math.Min(free, 65535);
            // In SYN-SENT RCV.NXT is not known yet: the edge is set when the SYN-ACK arrives (InputSynSent). A
            // SYN-ACK is the first advertisement on its side, so it defines the edge.
            if (State != TcpState.SynSent) _rcvAdvEdge = _rcvNxt + (int)w;
            return (ushort)w;
        }
        long cur = Math.Max(0, _rcvAdvEdge - _rcvNxt);
        long win = free;
        // Receiver SWS avoidance (RFC 9293 §3.8.6.2.2): grow the offered window only by a useful amount.
        if (win - cur < Math.Min(_rcv.Capacity / 2, _peerMss)) win = cur;
        if (win < cur) win = cur; // never shrink the window (RFC 9293 §3.8.6.2.2 last paragraph)
        long field = Math.Min(win >> _rcvScale, 65535);
        SeqNumber edge = _rcvNxt + (int)(field << _rcvScale);
        if (edge > _rcvAdvEdge) _rcvAdvEdge = edge;
        return (ushort)field;
    }

    /// <summary>After the application read: send a window update if the window grew by a useful amount
    /// (two segments or half the buffer), so a peer stalled on a small or zero window resumes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void MaybeWindowUpdate(long nowUs)
    {
        if (State is not (TcpState.Established or TcpState.FinWait1 or TcpState.FinWait2)) return;
        long cur = Math.Max(0, _rcvAdvEdge - _rcvNxt);
        long grow = _rcv.Free - cur;
        if (grow >= Math.Min(_rcv.Capacity / 2, 2 * _peerMss))
        {
            Set(ConnFlags.AckNow);
            Output(nowUs);
        }
    }

    /// <summary>Every segment carries SACK blocks while we hold out-of-order data (RFC 2018 §4).</summary>
    [System.Diagnostics.CodeAnalysis.MemberNotNullWhen(true, nameof(_ooo))]
    private bool OwesSackBlocks { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => Has(ConnFlags.Sack) && _ooo is { IsEmpty: false }; }

    /// <summary>A synchronized segment needs no option but timestamps: no SACK blocks and no D-SACK owed (the one-pass
    /// writers, TransmitPlain/TransmitLarge and the short send path, write only those).</summary>
    private bool PlainOptions { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => !OwesSackBlocks && !_layer.HasDuplicateFor(this); }

    /// <summary>Data bytes the next segment may carry. <c>_mss</c> already leaves room for the timestamp option;
    /// while we hold out-of-order data every segment also carries SACK blocks (RFC 2018 §4), up to 4 + 8·n more
    /// option bytes, and those must come out of the data too or the segment exceeds the MTU (RFC 9293 §3.7.1: the
    /// MSS counts data only, options are extra; Linux's tcp_current_mss does the same).</summary>
    private int CurrentMss()
    {
        if (!OwesSackBlocks) return _mss;
        bool ts = Has(ConnFlags.Timestamps);
        int blocks = Math.Min(_ooo.Count, ts ? TcpOptions.MaxSackBlocksWithTimestamps : TcpOptions.MaxSackBlocks);
        int room = _layer.MssForRoute() - (ts ? 12 : 0) - (2 + 2 + 8 * blocks); // NOP NOP kind len, 8 per block
        return Math.Max(Math.Min(_mss, room), 64);
    }

    /// <summary>Builds one segment at <paramref name="seq"/> with <paramref name="len"/> payload bytes from the send
    /// ring and hands it to IP. Every segment but the first SYN carries ACK.</summary>
    private unsafe bool TransmitSegment(SeqNumber seq, int len, TcpFlags extra, long nowUs)
    {
        bool syn = (extra & TcpFlags.Syn) != 0;
        TcpFlags flags = extra;
        if (!(syn && State == TcpState.SynSent)) flags |= TcpFlags.Ack;

        if (!syn && PlainOptions) return TransmitPlain(seq, len, flags, nowUs);
        if (syn && len == 0 && seq == _iss && _layer.SendFastPath) return TransmitSyn(flags, nowUs);
        return TransmitWithOptions(seq, len, flags, syn, nowUs);
    }

    /// <summary>SYN or SYN-ACK written in one pass: the same bytes <see cref="TransmitWithOptions"/> writes through a
    /// <see cref="TcpOptions"/> (MSS; SACK-permitted + timestamps or NOP, NOP, timestamps or NOP, NOP, SACK-permitted;
    /// NOP, window scale), without building one (tests compare the two).</summary>
    private unsafe bool TransmitSyn(TcpFlags flags, long nowUs)
    {
        if (!_layer.TryAllocate(out PacketBuf p)) return false;
        TcpConfig c = _layer.Config;
        bool active = !Has(ConnFlags.Passive) && State == TcpState.SynSent;
        bool ws = active ? c.WindowScaling : Has(ConnFlags.WindowScale);
        bool sack = active ? c.Sack : Has(ConnFlags.Sack);
        bool ts = active ? c.Timestamps : Has(ConnFlags.Timestamps);
        byte* b = p.Buffer + p.Offset;
        byte* o = b + TcpHeaderView.MinLength;
        uint mss = (uint)Math.Min(_layer.MssForRoute(), 65535);
        *(uint*)o = BigEndian((uint)TcpOptions.KindMss << 24 | 4u << 16 | mss);
        o += 4;
        if (ts)
        {
            *(uint*)o = BigEndian(sack ? 0x0402080Au : 0x0101080Au);
            *(uint*)(o + 4) = BigEndian(TsNow(nowUs));
            *(uint*)(o + 8) = BigEndian(active ? 0 : _tsRecent);
            o += 12;
        }
        else if (sack)
        {
            *(uint*)o = BigEndian(0x01010402u);
            o += 4;
        }
        if (ws)
        {
            *(uint*)o = BigEndian(0x01030300u | c.OurWindowScale);
            o += 4;
        }
        int hl = (int)(o - b);
        bool ack = (flags & TcpFlags.Ack) != 0;
        TcpHeaderView.EmitRaw(b, Tuple.LocalPort, Tuple.RemotePort, _iss.Value, ack ? _rcvNxt.Value : 0, flags,
            WindowField(syn: true), hl);
        p.SetLength(hl);
        _layer.Transmit(ref p, Tuple, nowUs);
        if (ack) AckSent();
        return true;
    }

    /// <summary>SYN or SYN-ACK, or a segment carrying SACK blocks: options built as a <see cref="TcpOptions"/>
    /// (a separate method so the common path does not zero its locals).</summary>
    private unsafe bool TransmitWithOptions(SeqNumber seq, int len, TcpFlags flags, bool syn, long nowUs)
    {
        var opt = new TcpOptions();
        TcpConfig c = _layer.Config;
        if (syn)
        {
            opt.HasMss = true;
            opt.Mss = (ushort)Math.Min(_layer.MssForRoute(), 65535);
            bool active = !Has(ConnFlags.Passive) && State == TcpState.SynSent;
            if (active ? c.WindowScaling : Has(ConnFlags.WindowScale)) { opt.HasWindowScale = true; opt.WindowScale = c.OurWindowScale; }
            if (active ? c.Sack : Has(ConnFlags.Sack)) opt.SackPermitted = true;
            if (active ? c.Timestamps : Has(ConnFlags.Timestamps))
            {
                opt.HasTimestamps = true;
                opt.TsVal = TsNow(nowUs);
                opt.TsEcr = active ? 0 : _tsRecent;
            }
        }
        else
        {
            if (Has(ConnFlags.Timestamps))
            {
                opt.HasTimestamps = true;
                opt.TsVal = TsNow(nowUs);
                opt.TsEcr = _tsRecent;
            }
            int blockRoom = opt.HasTimestamps ? TcpOptions.MaxSackBlocksWithTimestamps : TcpOptions.MaxSackBlocks;
            // RFC 2883 §4: a D-SACK block comes first, then the usual blocks.
            if (Has(ConnFlags.Sack) && _layer.TakeDuplicate(this, out SeqNumber dupStart, out SeqNumber dupEnd))
            {
                opt.AddSack(new SackBlock(dupStart.Value, dupEnd.Value));
                blockRoom--;
            }
            if (OwesSackBlocks)
            {
                Span<ByteRange> blocks = stackalloc ByteRange[TcpOptions.MaxSackBlocks];
                int n = _ooo.GetSackBlocks(blocks[..blockRoom]);
                for (int i = 0; i < n; i++)
                    opt.AddSack(new SackBlock((_rcvNxt + blocks[i].Start).Value, (_rcvNxt + blocks[i].End).Value));
            }
        }

        // The segment must fit the route MTU: callers size data by CurrentMss(), which leaves room for these SACK
        // blocks; should it not, the oldest blocks go rather than the whole segment (IP would drop it as too big).
        while (opt.SackCount > 0 && opt.Length + len > _layer.MssForRoute()) opt.SackCount--;
        if (!_layer.TryAllocate(out PacketBuf p)) return false;
        int hl = TcpHeaderView.MinLength + opt.Length;
        var room = new Span<byte>(p.Buffer + p.Offset, p.Capacity - p.Offset);
        if (room.Length < hl + len)
        {
            // A device buffer smaller than MTU should not happen; clamp rather than overrun.
            len = Math.Max(0, room.Length - hl);
        }
        if (len > 0)
        {
            int copied = _snd.Peek(seq - DataStartSeq(), room.Slice(hl, len));
            len = copied;
            if (seq + len == DataEndSeq()) flags |= TcpFlags.Psh;
        }
        ushort window = WindowField(syn);
        TcpHeaderView.Emit(room, Tuple.LocalPort, Tuple.RemotePort, seq.Value, (flags & TcpFlags.Ack) != 0 ? _rcvNxt.Value : 0,
            flags, window, hl);
        opt.Emit(room.Slice(TcpHeaderView.MinLength));
        p.SetLength(hl + len);
        _layer.Transmit(ref p, Tuple, nowUs);
        if (len > 0 && _quickAcks != 0) LeaveQuickAckIfInteractive(nowUs);

        if ((flags & TcpFlags.Ack) != 0) AckSent();
        return true;
    }

    /// <summary>A segment carrying our current ACK left: nothing is owed any more (no delayed ACK, no ACK-now).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void AckSent()
    {
        _unackedBytes = 0;
        Clear(ConnFlags.AckNow);
        _delAckAt = 0;
    }

    /// <summary>The common segment of a synchronized connection: no SYN and no SACK blocks, so the options are
    /// either nothing or NOP, NOP, timestamps (the layout <see cref="TcpOptions.Emit"/> writes for them). Header and
    /// options are written in one pass, without building a <see cref="TcpOptions"/>.</summary>
    private bool TransmitPlain(SeqNumber seq, int len, TcpFlags flags, long nowUs) =>
        TransmitData(seq, len, flags, large: false, nowUs) >= 0;

    /// <summary>
    /// One large segment for the device to cut into <c>_mss</c>-sized ones (TSO, <see cref="PacketBuf.SegmentSize"/>):
    /// the header of <see cref="TransmitPlain"/> (no SACK blocks: the caller checked), the payload copied without a
    /// checksum pass (the device computes each piece's checksum from the pseudo-header sum left in the field), PSH
    /// when it ends the queued data (the device keeps PSH and FIN for the last piece). Returns the payload bytes sent
    /// (fewer than <paramref name="len"/> only if the device's buffer is smaller than it promised), or -1 without a
    /// buffer.
    /// </summary>
    private int TransmitLarge(SeqNumber seq, int len, TcpFlags flags, long nowUs) =>
        TransmitData(seq, len, flags, large: true, nowUs);

    /// <summary><see cref="TransmitPlain"/> (<paramref name="large"/> false: at most one MSS) and
    /// <see cref="TransmitLarge"/> (true: TSO, only used with transmit checksum offload): the payload bytes sent, or
    /// -1 without a buffer. Inlined into both, so each is compiled with its constant <paramref name="large"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private unsafe int TransmitData(SeqNumber seq, int len, TcpFlags flags, bool large, long nowUs)
    {
        if (!_layer.TryAllocate(out PacketBuf p)) return -1;
        bool ts = Has(ConnFlags.Timestamps);
        int hl = ts ? TcpHeaderView.MinLength + 12 : TcpHeaderView.MinLength;
        byte* b = p.Buffer + p.Offset;
        int room = p.Capacity - p.Offset - hl;
        // A device buffer smaller than the MTU (or than it promised for TSO): clamp, to whole MSS pieces if large.
        if (room < len) len = Math.Max(0, large && room >= _mss ? room - room % _mss : room);
        ulong payloadSum = 0; // the payload's checksum sum, taken in the pass that copies it into the frame
        if (len > 0 || large)
        {
            // With checksum offload the device sums the payload: a plain copy (TcpLayer.Transmit ignores payloadSum).
            if (_layer.TxOffload) len = _snd.Peek(seq - DataStartSeq(), new Span<byte>(b + hl, len));
            else len = _snd.PeekSum(seq - DataStartSeq(), b + hl, len, out payloadSum);
            if (seq + len == DataEndSeq()) flags |= TcpFlags.Psh;
            else if (large) flags &= ~TcpFlags.Fin; // cut short: the FIN goes with the last byte, in a later segment
        }
        ushort window = WindowField(syn: false);
        uint ack = _rcvNxt.Value;
        TcpHeaderView.EmitRaw(b, Tuple.LocalPort, Tuple.RemotePort, seq.Value, ack, flags, window, hl);
        // The header's part of the checksum from the values just written (RFC 1071: the sum of its 16-bit words,
        // the checksum word zero) instead of reading the header back: at most 16 words of 0xFFFF, no overflow.
        uint headerSum = (uint)Tuple.LocalPort + Tuple.RemotePort + (seq.Value >> 16) + (seq.Value & 0xFFFF)
            + (ack >> 16) + (ack & 0xFFFF) + ((uint)(hl / 4) << 12 | (byte)flags) + window;
        if (ts)
        {
            uint tsVal = TsNow(nowUs), tsEcr = _tsRecent;
            *(uint*)(b + 20) = BigEndian(0x0101080Au);
            *(uint*)(b + 24) = BigEndian(tsVal);
            *(uint*)(b + 28) = BigEndian(tsEcr);
            headerSum += 0x0101u + 0x080Au + (tsVal >> 16) + (tsVal & 0xFFFF) + (tsEcr >> 16) + (tsEcr & 0xFFFF);
        }
        p.SetLength(hl + len);
        if (large && len > _mss) p.SegmentSize = (ushort)_mss;
        _layer.Transmit(ref p, Tuple, headerSum, payloadSum, nowUs);
        if (len > 0 && _quickAcks != 0) LeaveQuickAckIfInteractive(nowUs);
        AckSent();
        return len;
    }

    /// <summary>
    /// Data sent within the delayed-ACK time of the peer's last segment: the connection is interactive (the
    /// application answers what it receives; Linux's "pingpong" mode), so quick-ACK mode ends and the next requests'
    /// ACKs ride on the replies instead of leaving as segments of their own. Without it a server of many short
    /// request/response connections sent a pure ACK before each of the first 16 replies on every connection.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void LeaveQuickAckIfInteractive(long nowUs)
    {
        if (ElapsedUs(nowUs, _lastRecvMs) <= _layer.Config.DelayedAckUs) _quickAcks = 0;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint BigEndian(uint v) => BitConverter.IsLittleEndian ? System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(v) : v;
}
