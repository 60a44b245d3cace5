using System;
using UserTcp.Stack;
using UserTcp.Stack.Phy;
using UserTcp.Stack.Tcp;

namespace UserTcp.Bench.Harness;

/// <summary>
/// A sending connection whose peer is played by the benchmark: A's segments go to a recycling sink, and the peer's
/// acknowledgments are one ACK captured from a real receiving layer, replayed with a moving acknowledgment number.
/// Virtual time stands still, so no timer fires and every ACK is a new, in-window, PAWS-valid acknowledgment.
/// </summary>
internal sealed class SenderRig : IDisposable
{
    public readonly LayerPair Net;
    public readonly TcpConnection Client;
    public readonly SegmentTemplate AckSegment;
    public readonly int Mss;
    private uint _ack;          // last acknowledgment number sent to A
    private long _unacked;      // payload bytes A emitted that the benchmark has not acknowledged yet
    private long _seenPayload;  // A.SentPayload already accounted into _unacked
    public PacketOffloads RxFlags = PacketOffloads.RxTcpChecksumGood;

    public SenderRig(TcpConfig senderConfig, TcpConfig receiverConfig, BufferPool? senderBuffers = null, ushort rawWindow = 0)
    {
        Net = new LayerPair(senderConfig, receiverConfig, senderBuffers);
        TcpListener l = Net.B.Layer.Listen(80, 16, out _)!;
        (Client, TcpConnection server) = Net.Connect(l);
        Mss = Client.SendMss;
        // Two full segments; the receiver's last ACK (at once or after its delayed-ACK timer, depending on quick-ACK
        // mode) covers both: capture it.
        var two = new byte[2 * Mss];
        Net.B.CaptureAll = true;
        Client.Send(two, Net.NowUs, out _);
        var sink = new byte[4096];
        while (server.Receive(sink, false, Net.NowUs, out _) > 0) { }
        Net.Settle();
        // The last segment the receiver sent (an ACK or the window update after the read) carries the newest
        // timestamp: replaying anything older would fail PAWS (RFC 7323 §5).
        Net.B.CaptureAll = false;
        AckSegment = new SegmentTemplate(Net.B.Captured);
        if (AckSegment.PayloadLength != 0) throw new InvalidOperationException("captured segment is not a pure ACK");
        if (rawWindow != 0) AckSegment.SetWindow(rawWindow);
        _ack = AckSegment.Ack;

        if (Client.BytesQueuedToSend != 0) throw new InvalidOperationException("setup data not acknowledged");
        Net.A.Discard = Net.B.Discard = true;
        _seenPayload = Net.A.SentPayload;
    }

    /// <summary>Payload bytes emitted by A and not yet acknowledged by <see cref="AckEmitted"/> or <see cref="AckOnce"/>.</summary>
    public long Unacked
    {
        get
        {
            _unacked += Net.A.SentPayload - _seenPayload;
            _seenPayload = Net.A.SentPayload;
            return _unacked;
        }
    }

    /// <summary>Acknowledges everything emitted so far, <paramref name="bytesPerAck"/> per ACK. Returns ACKs fed.</summary>
    public int AckEmitted(int bytesPerAck)
    {
        int acks = 0;
        long left = Unacked;
        while (left > 0)
        {
            int step = (int)Math.Min(bytesPerAck, left);
            AckOnce(step);
            left -= step;
            acks++;
        }
        return acks;
    }

    /// <summary>Feeds one ACK advancing SND.UNA by <paramref name="bytes"/>.</summary>
    public void AckOnce(int bytes)
    {
        _ack += (uint)bytes;
        _unacked -= bytes;
        AckSegment.SetAck(_ack);
        Net.A.Layer.Receive(LayerPair.AddrB, LayerPair.AddrA, AckSegment.Span, RxFlags, Net.NowUs);
    }

    public void Dispose() => Net.Dispose();
}
