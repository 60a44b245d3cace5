using System;
using System.Runtime.CompilerServices;

namespace UserTcp.Stack.Tcp;

// Timers. The connection is one node (it derives from TimerNode) in the layer's TimerWheel, due at the earliest of
// its deadlines; deadlines that move later (the RTO on every ACK, keepalive on every segment) do not touch the
// wheel: when the node fires early, OnTimer finds nothing due and re-registers at the true deadline.
//
// Deadlines and time stamps are kept as 32-bit milliseconds (the low 32 bits of now / 1000), 4 bytes each instead
// of 8: the wheel's tick is 1 ms, and a deadline d µs fires in tick ceil(d / 1000) either way, so rounding a
// deadline up to the millisecond changes no firing time. Comparisons are modulo 2^32 (like sequence numbers), valid
// while every deadline and stamp lies within 24 days of now: the longest timer is the keepalive idle time and
// TCP_USER_TIMEOUT, both capped there. 0 means "not armed" (a deadline that lands on 0 is moved 1 ms later).
public sealed partial class TcpConnection
{
    /// <summary>The horizon of the 32-bit millisecond clock: 24 days.</summary>
    internal const int MaxSpanMs = 24 * 86400 * 1000;

    /// <summary>The 32-bit deadline for time <paramref name="us"/>, rounded up to the millisecond; never 0.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] private static uint DeadlineMs(long us)
    {
        uint ms = (uint)((Math.Max(us, 0) + 999) / 1000);
        return ms == 0 ? 1 : ms;
    }

    /// <summary>A 32-bit stamp of time <paramref name="us"/> (rounded down); never 0.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] private static uint StampMs(long us)
    {
        uint ms = (uint)(us / 1000);
        return ms == 0 ? 1 : ms;
    }

    /// <summary>Whether the armed deadline <paramref name="atMs"/> has come at <paramref name="nowUs"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] private static bool Reached(long nowUs, uint atMs) => atMs != 0 && (int)((uint)(nowUs / 1000) - atMs) >= 0;

    /// <summary>Time since the stamp <paramref name="stampMs"/>, in µs (millisecond resolution).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] private static long ElapsedUs(long nowUs, uint stampMs) => (long)(int)((uint)(nowUs / 1000) - stampMs) * 1000;

    /// <summary>The full time in µs of a 32-bit deadline, relative to the layer's clock.</summary>
    private long ExpandUs(uint ms)
    {
        long nowMs = _layer.NowUs / 1000;
        return (nowMs + (int)(ms - (uint)nowMs)) * 1000;
    }

    internal long NextDeadline()
    {
        if ((_rtoAt | _delAckAt | _keepAt | _waitAt | _idleAt) == 0) return long.MaxValue;
        // The earliest armed deadline as an offset from now (modulo 2^32, see above), expanded once.
        long nowMs = _layer.NowUs / 1000;
        uint now = (uint)nowMs;
        int best = int.MaxValue;
        if (_rtoAt != 0) best = Math.Min(best, (int)(_rtoAt - now));
        if (_delAckAt != 0) best = Math.Min(best, (int)(_delAckAt - now));
        if (_keepAt != 0) best = Math.Min(best, (int)(_keepAt - now));
        if (_waitAt != 0) best = Math.Min(best, (int)(_waitAt - now));
        if (_idleAt != 0) best = Math.Min(best, (int)(_idleAt - now));
        return (nowMs + best) * 1000;
    }

    /// <summary>Registers the earliest deadline with the layer if it is earlier than the registered one.</summary>
    private void ScheduleTimer()
    {
        long d = NextDeadline();
        if (d == long.MaxValue) return;
        if (!IsScheduled || d < DueUs) _layer.ScheduleTimer(this, d);
    }

    /// <summary>Registers a deadline just armed at <paramref name="atMs"/>. The wheel's due time is never later than
    /// any armed deadline (every arming registers, later moves do not touch the wheel), so only an earlier one needs a
    /// new registration, and the other deadlines need not be looked at.</summary>
    /// <remarks>The common case, a deadline no earlier than the registered one (the RTO re-armed by every send, the
    /// delayed ACK after a request), is decided inline in the 32-bit millisecond domain without the layer's clock:
    /// with d = the deadline in whole ms, d·1000 &lt; DueUs exactly when d &lt; ceil(DueUs / 1000), compared modulo 2^32
    /// (both lie within 24 days of now, see above).</remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void ScheduleAt(uint atMs)
    {
        if (IsScheduled && (int)(atMs - (uint)((DueUs + 999) / 1000)) >= 0) return;
        ScheduleAtSlow(atMs);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ScheduleAtSlow(uint atMs)
    {
        if (!IsScheduled) ScheduleTimer();
        else
        {
            long d = ExpandUs(atMs);
            if (d < DueUs) _layer.ScheduleTimer(this, d);
        }
    }

    private void ArmWait(long dueUs)
    {
        _waitAt = DeadlineMs(dueUs);
        _layer.ScheduleTimer(this, NextDeadline());
    }

    private void ArmKeepalive(long nowUs)
    {
        if (!KeepAlive || _keepAt != 0) return;
        _keepAt = DeadlineMs(nowUs + KeepIdleUs);
        ScheduleTimer();
    }

    /// <summary>Turns keepalive on or off (SO_KEEPALIVE) or changes its timing.</summary>
    public void SetKeepAlive(bool on, long nowUs)
    {
        KeepAlive = on;
        _keepAt = 0;
        if (on && State is TcpState.Established or TcpState.CloseWait or TcpState.FinWait1 or TcpState.FinWait2)
            ArmKeepalive(nowUs);
    }

    /// <summary>Called by the layer when the registered deadline has passed.</summary>
    internal void OnTimer(long nowUs)
    {
        if (Reached(nowUs, _waitAt))
        {
            _waitAt = 0;
            if (State is TcpState.TimeWait or TcpState.FinWait2)
            {
                // TIME-WAIT: 2 MSL passed (RFC 9293 §3.6). FIN-WAIT-2 orphan: the peer never closed (Linux fin_timeout).
                Terminate(State == TcpState.TimeWait ? SocketError.Success : SocketError.TimedOut, nowUs);
                return;
            }
        }
        if (Reached(nowUs, _rtoAt))
        {
            _rtoAt = 0;
            if (Has(ConnFlags.Persist)) OnPersist(nowUs);
            else OnRetransmitTimeout(nowUs);
            if (State == TcpState.Closed) return;
        }
        if (Reached(nowUs, _delAckAt))
        {
            _delAckAt = 0;
            if (_unackedBytes > 0) Set(ConnFlags.AckNow);
        }
        if (Reached(nowUs, _keepAt))
        {
            _keepAt = 0;
            OnKeepalive(nowUs);
            if (State == TcpState.Closed) return;
        }
        if (Reached(nowUs, _idleAt))
        {
            _idleAt = 0;
            ReleaseBuffersIfIdle();
        }
        Output(nowUs);
        ScheduleTimer();
        UpdateReadiness();
    }

    /// <summary>RFC 6298 §5.4–5.7: retransmit the earliest unacknowledged segment, back off the timer, and (RFC 5681
    /// §3.1 eq. 4) collapse cwnd to one segment with ssthresh at half the flight.</summary>
    private void OnRetransmitTimeout(long nowUs)
    {
        TcpConfig c = _layer.Config;
        if (_firstLossMs == 0) _firstLossMs = StampMs(nowUs - CurrentRtoUs);
        // TCP_USER_TIMEOUT: how long transmitted data may stay unacknowledged before the connection is dropped.
        if (UserTimeoutUs > 0 && ElapsedUs(nowUs, _firstLossMs) >= UserTimeoutUs)
        {
            Terminate(SocketError.TimedOut, nowUs);
            return;
        }
        int limit = State switch
        {
            TcpState.SynSent => c.SynRetries,
            TcpState.SynReceived => c.SynAckRetries,
            _ => c.MaxRetries,
        };
        if (_rtt.Backoff >= limit && UserTimeoutUs == 0)
        {
            // Like Linux, a pending soft error (ICMP) is reported instead of a bare ETIMEDOUT.
            Terminate(SoftError != SocketError.Success ? SoftError : SocketError.TimedOut, nowUs);
            return;
        }
        _layer.Counters.TcpTimeouts++;
        _rtt.OnTimeout();
        Clear(ConnFlags.RttTiming); // Karn: no sample from a retransmitted segment
        Set(ConnFlags.Retransmitting);
        if (State is TcpState.SynSent or TcpState.SynReceived)
        {
            _sndNxt = _iss;
            return; // Output resends the SYN / SYN-ACK
        }
        TakeCubicEpoch();
        _cc.OnRetransmitTimeout(nowUs, Math.Max(0, _sndMax - _sndUna));
        _inflation = 0;
        _dupAcks = 0;
        Clear(ConnFlags.InRecovery);
        _recover = _sndMax;
        DropScoreboard();
        _sndNxt = _sndUna; // go back N: resend from the first unacknowledged byte
    }

    /// <summary>Persist timer: force a segment into a window that opened without news reaching us, or probe a zero
    /// window (RFC 9293 §3.8.6.1), backing off like the RTO.</summary>
    private void OnPersist(long nowUs)
    {
        Clear(ConnFlags.Persist);
        if (UserTimeoutUs > 0 && _firstLossMs != 0 && ElapsedUs(nowUs, _firstLossMs) >= UserTimeoutUs)
        {
            Terminate(SocketError.TimedOut, nowUs);
            return;
        }
        if (DataEndSeq() <= _sndNxt && _sndMax <= _sndUna) return; // nothing waiting any more
        bool sent = false;
        if (_sndWnd > (uint)(_sndNxt - _sndUna)) sent = SendNewData(nowUs, force: true);
        if (!sent)
        {
            SendProbe(nowUs);
            _rtt.OnTimeout();
            Set(ConnFlags.Persist);
            _rtoAt = DeadlineMs(nowUs + CurrentRtoUs);
        }
    }

    /// <summary>Keepalive (RFC 9293 §3.8.4, RFC 1122 §4.2.3.6): after the idle time, probe every interval; after the
    /// count of unanswered probes, drop the connection.</summary>
    private void OnKeepalive(long nowUs)
    {
        if (!KeepAlive || State is not (TcpState.Established or TcpState.CloseWait or TcpState.FinWait1 or TcpState.FinWait2))
            return;
        long idle = ElapsedUs(nowUs, _lastRecvMs);
        if (_keepProbes == 0 && idle < KeepIdleUs)
        {
            _keepAt = DeadlineMs(nowUs - idle + KeepIdleUs);
            ScheduleTimer();
            return;
        }
        if (_sndMax != _sndUna || DataEndSeq() > _sndNxt)
        {
            // Data is outstanding: the retransmission timer watches the peer instead (as Linux does).
            _keepAt = DeadlineMs(nowUs + KeepIntervalUs);
            return;
        }
        if (_keepProbes >= KeepCount || (UserTimeoutUs > 0 && _keepProbes > 0 && idle >= UserTimeoutUs))
        {
            Terminate(SocketError.TimedOut, nowUs);
            return;
        }
        SendProbe(nowUs);
        _keepProbes++;
        _keepAt = DeadlineMs(nowUs + KeepIntervalUs);
    }
}
