using System;
using System.Collections.Generic;
using UserTcp.Stack;
using UserTcp.Stack.Phy;
using UserTcp.Stack.Tcp;
using UserTcp.Stack.Wire;
using Xunit;

namespace UserTcp.Tests.Tcp;

/// <summary>A segment the stack sent, decoded for assertions.</summary>
internal sealed class Sent
{
    public TcpFlags Flags;
    public uint Seq, Ack;
    public ushort Window;
    public TcpOptions Options;
    public byte[] Payload = Array.Empty<byte>();
    public ushort SrcPort, DstPort;
    public override string ToString() => $"{Flags} seq={Seq} ack={Ack} win={Window} len={Payload.Length}";
}

/// <summary>
/// One TCP layer under test and a scripted peer: the test injects hand-built segments and checks what the layer
/// sends back. Virtual time advances only when the test says so.
/// </summary>
internal sealed unsafe class TcpScript : ITcpTransmit, IDisposable
{
    public static readonly Ipv4Address Us = new(10, 0, 0, 1), Peer = new(10, 0, 0, 9);
    public readonly NativePacketPool Pool = new(256, 2048);
    public readonly BufferPool Buffers = BufferPool.CreateDefault(16L << 20);
    public readonly StackCounters Counters = new();
    public readonly TcpLayer Layer;
    public readonly Queue<Sent> Out = new();
    public long NowUs = 1_000_000;
    public ushort PeerPort = 5000;

    public TcpScript(TcpConfig? config = null)
    {
        Layer = new TcpLayer(config ?? new TcpConfig { Seed = 42 }, this, Counters, Buffers);
    }

    public Ipv4Address LocalAddress => Us;
    public int Mtu => 1500;
    public bool TxChecksumOffload => false;
    public bool TryAllocate(out PacketBuf packet) => Pool.TryRent(out packet);

    public void Send(ref PacketBuf packet, Ipv4Address destination, long nowUs)
    {
        Span<byte> d = packet.Data;
        Assert.Equal(0, Checksum.Fold(Checksum.Add(Checksum.PseudoHeader(Us, destination, 6, d.Length), d)));
        Assert.True(TcpHeaderView.TryParse(d, out var h, out _));
        Assert.True(TcpOptions.TryParse(h.Options, out var o, out _));
        Out.Enqueue(new Sent
        {
            Flags = h.Flags, Seq = h.SequenceNumber, Ack = h.AckNumber, Window = h.Window, Options = o,
            Payload = h.Payload.ToArray(), SrcPort = h.SourcePort, DstPort = h.DestinationPort,
        });
        Pool.Return(ref packet);
    }

    /// <summary>Builds a segment from the peer and feeds it to the layer.</summary>
    public void Inject(TcpFlags flags, uint seq, uint ack, ushort window = 65535, byte[]? payload = null,
        TcpOptions opt = default, ushort dstPort = 80, ushort? srcPort = null)
    {
        payload ??= Array.Empty<byte>();
        int hl = 20 + opt.Length;
        var buf = new byte[hl + payload.Length];
        TcpHeaderView.Emit(buf, srcPort ?? PeerPort, dstPort, seq, ack, flags, window, hl);
        opt.Emit(buf.AsSpan(20));
        payload.CopyTo(buf, hl);
        var h = new TcpHeaderView(buf);
        h.Checksum = Checksum.Fold(Checksum.Add(Checksum.PseudoHeader(Peer, Us, 6, buf.Length), buf));
        Layer.Receive(Peer, Us, buf, PacketOffloads.None, NowUs);
    }

    public Sent Expect(TcpFlags flags)
    {
        Assert.True(Out.Count > 0, $"expected {flags}, nothing was sent");
        Sent s = Out.Dequeue();
        Assert.True(s.Flags == flags, $"expected {flags}, got {s}");
        return s;
    }

    public void ExpectNothing()
    {
        Assert.True(Out.Count == 0, Out.Count == 0 ? "" : $"expected nothing, got {Out.Peek()}");
    }

    /// <summary>Advances virtual time to <paramref name="untilUs"/>, running timers as they come due.</summary>
    public void Advance(long byUs)
    {
        long end = NowUs + byUs;
        while (true)
        {
            long next = Layer.PollAt();
            if (next > end) break;
            NowUs = Math.Max(NowUs, next);
            Layer.PollTimers(NowUs);
        }
        NowUs = end;
        Layer.PollTimers(NowUs);
    }

    public const uint PeerIss = 1_000_000;

    /// <summary>Passive open on port 80 driven by the peer; returns the accepted connection and our ISS.</summary>
    public TcpConnection Established(out uint iss, TcpOptions synOptions = default, ushort window = 65535)
    {
        TcpListener l = Layer.Listen(80, 8, out _)!;
        Inject(TcpFlags.Syn, PeerIss, 0, window, opt: synOptions);
        Sent synAck = Expect(TcpFlags.Syn | TcpFlags.Ack);
        Assert.Equal(PeerIss + 1, synAck.Ack);
        iss = synAck.Seq;
        if (synOptions.HasTimestamps) TsVal = synOptions.TsVal;
        Inject(TcpFlags.Ack, PeerIss + 1, iss + 1, window, opt: AckOptions(synOptions));
        TcpConnection c = l.Accept()!;
        Assert.NotNull(c);
        c.UserHandle = 1;
        Assert.Equal(TcpState.Established, c.State);
        ExpectNothing();
        return c;
    }

    public uint TsVal = 5000;

    /// <summary>Options for a non-SYN segment matching what the SYN negotiated (timestamps only).</summary>
    public TcpOptions AckOptions(TcpOptions syn, uint tsEcr = 0) =>
        syn.HasTimestamps ? new TcpOptions { HasTimestamps = true, TsVal = ++TsVal, TsEcr = tsEcr } : default;

    /// <summary>Active open to the peer; returns the connection in SYN-SENT and our ISS.</summary>
    public TcpConnection SynSent(out uint iss)
    {
        TcpConnection c = Layer.Connect(0, Peer, PeerPort, NowUs, out SocketError e)!;
        Assert.Equal(SocketError.InProgress, e);
        c.UserHandle = 1;
        Sent syn = Expect(TcpFlags.Syn);
        Assert.True(syn.Options.HasMss);
        iss = syn.Seq;
        return c;
    }

    public void Dispose()
    {
        Pool.Dispose();
    }
}
