using System;
using System.Security.Cryptography;
using UserTcp.Stack;
using UserTcp.Stack.Tcp;
using Xunit;

namespace UserTcp.Tests.Tcp;

/// <summary>Transfers under seeded faults between two TCP layers; exact bytes, bounded virtual time, no leaks.</summary>
public class TcpFaultMatrixTests
{
    public static TheoryData<string, double, double, double, double, int, int> Cases => new()
    {
        // name, loss, reorder, duplicate, corrupt, buffer size, seed
        { "clean", 0, 0, 0, 0, 256 * 1024, 1 },
        { "loss1", 1, 0, 0, 0, 256 * 1024, 2 },
        { "loss5", 5, 0, 0, 0, 256 * 1024, 3 },
        { "loss10", 10, 0, 0, 0, 256 * 1024, 4 },
        { "reorder", 0, 10, 0, 0, 256 * 1024, 5 },
        { "duplicate", 0, 0, 10, 0, 256 * 1024, 6 },
        { "corrupt", 0, 0, 0, 5, 256 * 1024, 7 },
        { "mixed", 3, 5, 3, 1, 256 * 1024, 8 },
        { "smallwindow", 2, 2, 0, 0, 4096, 9 },
        { "largewindow", 1, 1, 1, 0, 1 << 20, 10 },
        { "nosack-loss5", 5, 2, 0, 0, 256 * 1024, 11 },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void TransferUnderFaults(string name, double loss, double reorder, double dup, double corrupt, int buffer, int seed)
    {
        bool sack = !name.StartsWith("nosack");
        var ca = new TcpConfig { Seed = 100 + (ulong)seed, SendBufferSize = buffer, ReceiveBufferSize = buffer, Sack = sack };
        var cb = new TcpConfig { Seed = 200 + (ulong)seed, SendBufferSize = buffer, ReceiveBufferSize = buffer, Sack = sack };
        using var net = new TcpTestNet(seed, ca, cb);
        var (c, s) = TcpLayerTransferTests.Connect(net);
        net.LossPercent = loss;
        net.ReorderPercent = reorder;
        net.DuplicatePercent = dup;
        net.CorruptPercent = corrupt;
        int size = 1 << 20;
        var data = new byte[size];
        new Random(seed).NextBytes(data);
        var back = new byte[size / 2];
        new Random(seed + 1000).NextBytes(back);
        byte[] got = TcpLayerTransferTests.Transfer(net, c, s, data, 3_000_000_000);
        Assert.Equal(SHA256.HashData(data), SHA256.HashData(got));
        byte[] got2 = TcpLayerTransferTests.Transfer(net, s, c, back, 3_000_000_000);
        Assert.Equal(SHA256.HashData(back), SHA256.HashData(got2));
        c.Close(false, net.NowUs);
        s.Close(false, net.NowUs);
        Assert.True(net.RunUntil(() => net.A.Layer.ConnectionCount == 0 && net.B.Layer.ConnectionCount == 0, 600_000_000),
            $"close did not finish: {c} {s}");
        net.RunFor(1_000_000);
        Assert.Equal(0, net.InFlightCount);
        Assert.Equal(0, net.A.Buffers.OutstandingBlocks);
        Assert.Equal(0, net.B.Buffers.OutstandingBlocks);
        Assert.Equal(0, net.A.Layer.AssemblersInUse);
        Assert.Equal(0, net.B.Layer.AssemblersInUse);
        Assert.Equal(0, net.A.Pool.Outstanding);
        Assert.Equal(0, net.B.Pool.Outstanding);
        if (corrupt > 0) Assert.True(net.A.Counters.Drops(DropReason.TcpBadChecksum) + net.B.Counters.Drops(DropReason.TcpBadChecksum) > 0);
    }
}

public class TcpSequenceWrapTests
{
    [Theory]
    [InlineData(0xFFFF_F000u, true)]
    [InlineData(0x7FFF_FF00u, false)]
    public void TransferAcrossSequenceWrap(uint isn, bool sack)
    {
        var ca = new TcpConfig { Seed = 1, Sack = sack };
        var cb = new TcpConfig { Seed = 2, Sack = sack };
        using var net = new TcpTestNet(12, ca, cb);
        net.A.Layer.Isn.FixedIsnForTests = isn;
        net.B.Layer.Isn.FixedIsnForTests = isn - 100_000;
        var (c, s) = TcpLayerTransferTests.Connect(net);
        net.LossPercent = 3;
        net.ReorderPercent = 3;
        var data = new byte[1 << 20];
        new Random(12).NextBytes(data);
        Assert.Equal(data, TcpLayerTransferTests.Transfer(net, c, s, data, 600_000_000, closeAfter: false));
        Assert.Equal(data, TcpLayerTransferTests.Transfer(net, s, c, data, 600_000_000));
    }
}
