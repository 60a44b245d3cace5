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
}
