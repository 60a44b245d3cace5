using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using System.Text;
using UserTcp.Interpose;
using UserTcp.Stack;
using UserTcp.Stack.Tcp;
using UserTcp.Tests.Tcp;
using Xunit;

namespace UserTcp.Tests.Interpose;

/// <summary>
/// A closing listener's unaccepted connections handed to another member of the group through the shared area
/// (interpose/FlowGroup.HandOff.cs): two server stacks with the same address (two processes on one device), each
/// with its own member of one group simulated in this process over one zeroed area, as the C shim maps it.
/// </summary>
public sealed unsafe class HandOffTests : IDisposable
{
    private readonly byte* _area;
    private readonly HashSet<int> _dead = new();
    private readonly TcpTestNet _net = new(5);
    private readonly TcpLayer _old, _new;
    private readonly FlowGroup _oldMember, _newMember;
    private readonly StackCounters _newCounters = new();

    public HandOffTests()
    {
        _area = (byte*)NativeMemory.AllocZeroed((nuint)FlowGroup.AreaBytes);
        *(ulong*)_area = FlowGroup.Magic;
        *(ulong*)(_area + 8) = 0x1234_5679UL;
        _oldMember = Member(2001);
        _newMember = Member(2002);
        _old = _net.B.Layer;
        _old.Flows = _oldMember;
        _new = new TcpLayer(new TcpConfig { Seed = 33, SynCookies = false }, _net.B, _newCounters, _net.B.Buffers) { Flows = _newMember };
    }

    public void Dispose()
    {
        _net.Dispose();
        NativeMemory.Free(_area);
    }

    private FlowGroup Member(int pid)
    {
        FlowGroup g = FlowGroup.Join(_area, pid, p => !_dead.Contains(p), () => _net.NowUs) ?? throw new InvalidOperationException();
        g.ReleaseDelayUs = 0;
        return g;
    }

    private (TcpListener Old, TcpListener New, TcpConnection Client, TcpTuple Tuple) QueuedConnection(string request)
    {
        TcpListener lo = _old.Listen(80, 16, out _)!;
        _oldMember.ListenerAdded(80);
        TcpListener ln = _new.Listen(80, 16, out _)!;
        _newMember.ListenerAdded(80);
        TcpConnection c = _net.A.Layer.Connect(0, _net.B.Address, 80, _net.NowUs, out _)!;
        c.UserHandle = 1;
        Assert.True(_net.RunUntil(() => lo.PendingAccepts == 1 && c.State == TcpState.Established, 10_000_000));
        if (request.Length > 0)
        {
            c.Send(Encoding.ASCII.GetBytes(request), _net.NowUs, out _);
            Assert.True(_net.RunUntil(() => c.BytesQueuedToSend == 0, 1_000_000));
        }
        var t = new TcpTuple(_net.B.Address, 80, _net.A.Address, c.LocalPort);
        Assert.Equal(FlowOwner.Mine, _oldMember.Lookup(t));
        return (lo, ln, c, t);
    }

    /// <summary>What ListenerGroups.Release does when the old process closes its listener.</summary>
    private int CloseOld(TcpListener lo)
    {
        _oldMember.ListenerRemoved(80);
        int n = _oldMember.ExportOnClose(_old, 80, _net.NowUs);
        _old.CloseListener(lo, _net.NowUs);
        return n;
    }

    [Fact]
    public void AQueuedConnectionMovesToTheMemberThatStillListens()
    {
        var (lo, ln, c, t) = QueuedConnection("GET /a HTTP/1.1\r\n\r\n");
        long rst = _net.B.Counters.TcpRstSent;
        Assert.Equal(1, CloseOld(lo));
        Assert.Equal(rst, _net.B.Counters.TcpRstSent);
        Assert.True(_oldMember.HandOffPending && _newMember.HandOffPending);
        // While it waits, the flow is nobody's to answer: both drop its segments (no reset from the leader).
        Assert.Equal(FlowOwner.Other, _oldMember.Lookup(t));
        Assert.Equal(FlowOwner.Other, _newMember.Lookup(t));
        _net.B.Layer = _new;
        c.Send("x"u8, _net.NowUs, out _); // reaches the new stack before it adopted: dropped, retransmitted later
        _net.RunFor(500);
        Assert.Equal(0, _newCounters.TcpRstSent);
        Assert.True(_newCounters.Drops(DropReason.TcpOtherProcess) > 0);
        // The old process polls first: it has no listener on the port and takes nothing.
        Assert.Equal(0, _oldMember.Adopt(_old, _net.NowUs));
        Assert.Equal(1, _newMember.Adopt(_new, _net.NowUs));
        Assert.False(_newMember.HandOffPending);
        Assert.Equal(0, _newMember.EntriesInUse());
        Assert.Equal(FlowOwner.Mine, _newMember.Lookup(t));
        Assert.Equal(FlowOwner.Other, _oldMember.Lookup(t));
        TcpConnection s = ln.Accept()!;
        s.UserHandle = 2;
        var buf = new byte[256];
        var got = new StringBuilder();
        Assert.True(_net.RunUntil(() =>
        {
            int n;
            while ((n = s.Receive(buf, false, _net.NowUs, out _)) > 0) got.Append(Encoding.ASCII.GetString(buf, 0, n));
            return got.Length >= 20;
        }, 10_000_000), got.ToString());
        Assert.Equal("GET /a HTTP/1.1\r\n\r\nx", got.ToString());
        s.Send("ok"u8, _net.NowUs, out _);
        Assert.True(_net.RunUntil(() => c.BytesReadable == 2, 1_000_000));
        Assert.Equal(TcpState.Established, c.State);
        Assert.Equal(0, _newCounters.TcpRstSent);
    }

    [Fact]
    public void NothingMovesWhenNoOtherMemberHoldsThePort()
    {
        TcpListener lo = _old.Listen(80, 16, out _)!;
        _oldMember.ListenerAdded(80);
        TcpConnection c = _net.A.Layer.Connect(0, _net.B.Address, 80, _net.NowUs, out _)!;
        c.UserHandle = 1;
        Assert.True(_net.RunUntil(() => lo.PendingAccepts == 1, 10_000_000));
        Assert.Equal(0, CloseOld(lo));
        Assert.False(_oldMember.HandOffPending);
        Assert.True(_net.RunUntil(() => c.State == TcpState.Closed, 1_000_000)); // reset, as the kernel does
    }

    [Fact]
    public void AWaitingConnectionExpiresWhenTheLastHolderGoes()
    {
        // nginx -s quit: the workers close their listeners, the master holds it without ever accepting. The queue
        // waits as the kernel's would; when the holder is gone the flow is nobody's and the leader resets the peer.
        var (lo, ln, c, t) = QueuedConnection("");
        _new.CloseListener(ln, _net.NowUs); // the new stack stops listening too, the member still counts ...
        Assert.Equal(1, CloseOld(lo));
        Assert.Equal(0, _newMember.Adopt(_new, _net.NowUs));
        Assert.True(_newMember.HandOffPending);
        Assert.Equal(FlowOwner.Other, _newMember.Lookup(t));
        _newMember.ListenerRemoved(80); // ... until it is counted out: nobody holds port 80 any more
        Assert.Equal(FlowOwner.Nobody, _newMember.Lookup(t));
        _net.NowUs += 200;
        Assert.Equal(0, _newMember.Adopt(_new, _net.NowUs));
        Assert.False(_newMember.HandOffPending);
        Assert.Equal(1, _newMember.HandOffsExpired);
        Assert.Equal(0, _newMember.EntriesInUse());
    }

    [Fact]
    public void AWaitingConnectionExpiresAfterTheLimitOrWhenItsAdopterDies()
    {
        var (lo, _, _, t) = QueuedConnection("");
        Assert.Equal(1, CloseOld(lo));
        _newMember.HandOffLimitUs = _oldMember.HandOffLimitUs = 1_000_000;
        _net.NowUs += 1_000_001;
        Assert.Equal(FlowOwner.Nobody, _oldMember.Lookup(t));
        Assert.Equal(FlowOwner.Mine, _newMember.Claim(t)); // a dead marker's claim is free for the taking
    }

    [Fact]
    public void GracefulQuitResetsWhatOnlyTheMasterHoldsAfterAWhile()
    {
        // nginx -s quit: the master (no stack) holds the port, no worker listens any more. As the kernel keeps the
        // queue until the master closes, the connection waits; nobody will accept it, so after NoAdopterUs the next
        // member to poll resets the peer.
        var (lo, ln, c, t) = QueuedConnection("GET / HTTP/1.1\r\n\r\n");
        *(ulong*)(_area + 1024) = 3000UL << 32 | 80; // the master's held listener
        _new.CloseListener(ln, _net.NowUs);
        _newMember.ListenerRemoved(80);
        Assert.Equal(1, CloseOld(lo));
        Assert.Equal(FlowOwner.Other, _newMember.Lookup(t));
        _net.B.Layer = _new;
        _net.RunFor(1_000_000);
        Assert.Equal(0, _newMember.Adopt(_new, _net.NowUs));
        Assert.True(_newMember.HandOffPending);
        Assert.Equal(TcpState.Established, c.State);
        _net.NowUs += _newMember.NoAdopterUs;
        Assert.Equal(0, _newMember.Adopt(_new, _net.NowUs));
        Assert.False(_newMember.HandOffPending);
        Assert.True(_net.RunUntil(() => c.State == TcpState.Closed, 1_000_000));
        Assert.Equal(SocketError.ConnectionReset, c.TakeError());
    }

    [Fact]
    public void TheLastMemberToExitResetsItsUnadoptedExports()
    {
        var (lo, ln, c, _) = QueuedConnection("");
        *(ulong*)(_area + 1024) = 3000UL << 32 | 80;
        _new.CloseListener(ln, _net.NowUs);
        _newMember.ListenerRemoved(80);
        Assert.Equal(1, CloseOld(lo));
        Assert.Equal(0, _oldMember.ResetOrphanedExports(_old, _net.NowUs)); // a relative still lives
        _dead.Add(2002);
        Assert.Equal(1, _oldMember.ResetOrphanedExports(_old, _net.NowUs));
        Assert.False(_oldMember.HandOffPending);
        Assert.True(_net.RunUntil(() => c.State == TcpState.Closed, 1_000_000));
    }

    [Fact]
    public void AFullHandOffAreaRefusesAndTheConnectionIsReset()
    {
        var (lo, _, c, _) = QueuedConnection("");
        for (int i = 0; i < FlowGroup.HandOffEntries; i++) *(int*)(_area + FlowGroup.AreaBytes - (FlowGroup.HandOffEntries - i) * FlowGroup.HandOffEntryBytes) = 2;
        Assert.Equal(0, CloseOld(lo));
        Assert.True(_net.RunUntil(() => c.State == TcpState.Closed, 1_000_000));
    }
}
