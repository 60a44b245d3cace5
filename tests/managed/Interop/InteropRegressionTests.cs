using System;
using System.Linq;
using UserTcp.Stack;
using UserTcp.Stack.Tcp;
using UserTcp.Stack.Wire;
using UserTcp.Tests.Tcp;
using Xunit;

namespace UserTcp.Tests.Interop;

/// <summary>
/// Virtual-time reproductions of problems the kernel interop tests found (deterministic, no DPDK needed).
/// </summary>
public sealed class InteropRegressionTests
{
    private const uint P = TcpScript.PeerIss;

    /// <summary>
    /// Found by HalfClose_StackShutsDownFirst_KernelStillSends: the stack had sent its FIN, the kernel sent 1 MB and
    /// its FIN and closed; a late duplicate ACK of ours reached the closed kernel socket, which answered with RST
    /// (seq = our RCV.NXT, so acceptable). In TIME-WAIT that RST ended the connection and threw away the bytes the
    /// application had not read yet: it saw end of stream hundreds of KB early. The stream was complete (FIN
    /// received), so the bytes must stay readable.
    /// </summary>
    [Fact]
    public void RstInTimeWait_KeepsUnreadBytes_ThenEndOfStream()
    {
        using var t = new TcpScript();
        TcpConnection c = t.Established(out uint iss);
        Assert.Equal(SocketError.Success, c.Shutdown(read: false, write: true, t.NowUs));
        t.Expect(TcpFlags.Fin | TcpFlags.Ack);
        t.Inject(TcpFlags.Ack, P + 1, iss + 2);                     // our FIN acknowledged: FIN-WAIT-2
        Assert.Equal(TcpState.FinWait2, c.State);
        byte[] data = Enumerable.Range(0, 3000).Select(i => (byte)i).ToArray();
        t.Inject(TcpFlags.Ack, P + 1, iss + 2, payload: data[..1400]);
        t.Inject(TcpFlags.Ack | TcpFlags.Fin, P + 1 + 1400, iss + 2, payload: data[1400..]);
        Assert.Equal(TcpState.TimeWait, c.State);
        t.Out.Clear();

        t.Inject(TcpFlags.Rst, P + 1 + 3000 + 1, 0);               // the closed peer's answer to a late segment
        Assert.Equal(TcpState.Closed, c.State);

        var got = new byte[4096];
        int n = c.Receive(got, peek: false, t.NowUs, out SocketError e);
        Assert.Equal(SocketError.Success, e);
        Assert.Equal(3000, n);
        Assert.Equal(data, got[..n]);
        Assert.Equal(0, c.Receive(got, peek: false, t.NowUs, out e)); // then end of stream, no error
        Assert.Equal(SocketError.Success, e);
        c.Close(abort: false, t.NowUs);
        Assert.Equal(0, t.Buffers.OutstandingBlocks);
    }

    /// <summary>The same in LAST-ACK (the peer closed first, we shut down after it): unread bytes survive the RST,
    /// and closing the handle with them unread frees the ring.</summary>
    [Fact]
    public void RstInLastAck_KeepsUnreadBytes_CloseFreesThem()
    {
        using var t = new TcpScript();
        TcpConnection c = t.Established(out uint iss);
        t.Inject(TcpFlags.Ack | TcpFlags.Fin, P + 1, iss + 1, payload: new byte[500]);
        Assert.Equal(TcpState.CloseWait, c.State);
        Assert.Equal(SocketError.Success, c.Shutdown(read: false, write: true, t.NowUs));
        Assert.Equal(TcpState.LastAck, c.State);
        t.Inject(TcpFlags.Rst, P + 1 + 500 + 1, 0);
        Assert.Equal(TcpState.Closed, c.State);
        Assert.Equal(500, c.BytesReadable);
        Assert.True(t.Buffers.OutstandingBlocks > 0);
        c.Close(abort: false, t.NowUs);
        Assert.Equal(0, t.Buffers.OutstandingBlocks);
    }

    /// <summary>A reset of a connection whose stream was not complete: the bytes already received are still read
    /// first (Linux's order), then the reset is reported.</summary>
    [Fact]
    public void RstInEstablished_UnreadBytesFirst_ThenReset()
    {
        using var t = new TcpScript();
        TcpConnection c = t.Established(out uint iss);
        t.Inject(TcpFlags.Ack, P + 1, iss + 1, payload: new byte[500]);
        t.Inject(TcpFlags.Rst, P + 1 + 500, 0);
        Assert.Equal(TcpState.Closed, c.State);
        Assert.Equal(500, c.Receive(new byte[1000], peek: false, t.NowUs, out SocketError e));
        Assert.Equal(SocketError.Success, e);
        Assert.Equal(0, c.Receive(new byte[100], peek: false, t.NowUs, out e));
        Assert.Equal(SocketError.ConnectionReset, e);
        c.Close(abort: false, t.NowUs);
        Assert.Equal(0, t.Buffers.OutstandingBlocks);
    }

    /// <summary>
    /// Found by the loss tests against the kernel (counter Ipv4TooBig): while the stack held out-of-order data every
    /// segment carried SACK blocks, but full data segments were still sized by the MSS (1448 with timestamps), so
    /// 20 + 12 + 4 + 8n + 1448 bytes exceeded the 1480 a 1500-byte MTU leaves, and IP dropped every full segment
    /// (retransmissions too) until the holes closed: timeouts, ~1 Mbit/s under 5% loss. Data must shrink by the SACK
    /// option bytes (RFC 9293 §3.7.1), and the blocks must still go out.
    /// </summary>
    [Fact]
    public void SegmentsCarryingSackBlocks_FitTheMtu()
    {
        using var t = new TcpScript();
        var syn = new TcpOptions { HasMss = true, Mss = 1460, SackPermitted = true, HasTimestamps = true, TsVal = 100 };
        TcpConnection c = t.Established(out uint iss, syn);
        Assert.True(c.SackEnabled && c.TimestampsEnabled);
        Assert.Equal(1448, c.SendMss);
        // Two holes in what the peer sends us: out-of-order data we must SACK, with two blocks.
        t.Inject(TcpFlags.Ack, P + 1 + 1000, iss + 1, payload: new byte[500], opt: t.AckOptions(syn, 0));
        t.Inject(TcpFlags.Ack, P + 1 + 3000, iss + 1, payload: new byte[500], opt: t.AckOptions(syn, 0));
        t.Out.Clear();

        c.NoDelay = true; // the 288-byte tail goes out too
        byte[] data = new byte[6000];
        new Random(5).NextBytes(data);
        Assert.Equal(6000, c.Send(data, t.NowUs, out SocketError e));
        Assert.Equal(SocketError.Success, e);
        int total = 0;
        while (t.Out.Count > 0)
        {
            Sent s = t.Out.Dequeue();
            Assert.True(20 + s.Options.Length + s.Payload.Length <= 1480,
                $"segment of {20 + s.Options.Length + s.Payload.Length} bytes over a 1500-byte MTU: {s}");
            if (s.Payload.Length > 0) Assert.Equal(2, s.Options.SackCount);
            Assert.Equal(data.AsSpan(total, s.Payload.Length).ToArray(), s.Payload);
            total += s.Payload.Length;
        }
        Assert.Equal(6000, total);
    }
}
