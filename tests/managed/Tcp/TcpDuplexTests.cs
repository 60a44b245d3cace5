using System;
using System.Security.Cryptography;
using UserTcp.Stack;
using UserTcp.Stack.Tcp;
using Xunit;

namespace UserTcp.Tests.Tcp;

/// <summary>Both directions at once (data and ACKs share segments), over random fault mixes, buffer sizes and
/// option sets (SACK, timestamps, window scaling, NewReno/CUBIC). 300 seeds were run once by hand; 30 stay in CI.</summary>
public class TcpDuplexTests
{
    public static TheoryData<int> Seeds() { var d = new TheoryData<int>(); for (int i = 1; i <= 30; i++) d.Add(i); return d; }
    [Theory]
    [MemberData(nameof(Seeds))]
    public void FullDuplexUnderRandomFaults(int seed)
    {
        var rng = new Random(seed);
        int[] sizes = { 4096, 16384, 65536, 262144, 1 << 20 };
        TcpConfig Cfg(ulong s) => new()
        {
            Seed = s,
            SendBufferSize = sizes[rng.Next(sizes.Length)],
            ReceiveBufferSize = sizes[rng.Next(sizes.Length)],
            Sack = rng.Next(3) > 0,
            Timestamps = rng.Next(3) > 0,
            WindowScaling = rng.Next(4) > 0,
            CongestionControl = rng.Next(2) == 0 ? CongestionAlgorithm.Cubic : CongestionAlgorithm.NewReno,
        };
        using var net = new TcpTestNet(seed, Cfg((ulong)seed * 2), Cfg((ulong)seed * 2 + 1));
        net.DelayUs = rng.Next(10, 5000);
        var (c, s) = TcpLayerTransferTests.Connect(net);
        net.LossPercent = rng.NextDouble() * 8;
        net.ReorderPercent = rng.NextDouble() * 8;
        net.DuplicatePercent = rng.NextDouble() * 4;
        net.CorruptPercent = rng.NextDouble() * 2;
        var ab = new byte[rng.Next(100_000, 800_000)];
        var ba = new byte[rng.Next(100_000, 800_000)];
        rng.NextBytes(ab);
        rng.NextBytes(ba);
        var gotAb = new byte[ab.Length];
        var gotBa = new byte[ba.Length];
        int sa = 0, sb = 0, ra = 0, rb = 0;
        bool eofA = false, eofB = false;
        var buf = new byte[8192];
        bool ok = net.RunUntil(() =>
        {
            Pump(c, ab, ref sa, net.NowUs);
            Pump(s, ba, ref sb, net.NowUs);
            eofB |= Drain(s, gotAb, ref rb, buf, net.NowUs);
            eofA |= Drain(c, gotBa, ref ra, buf, net.NowUs);
            return eofA && eofB;
        }, 3_000_000_000);
        Assert.True(ok, $"seed {seed}: a->b {rb}/{ab.Length}, b->a {ra}/{ba.Length}; {c.Describe()} | {s.Describe()}");
        Assert.Equal(SHA256.HashData(ab), SHA256.HashData(gotAb));
        Assert.Equal(SHA256.HashData(ba), SHA256.HashData(gotBa));
        c.Close(false, net.NowUs);
        s.Close(false, net.NowUs);
        net.LossPercent = 0;
        Assert.True(net.RunUntil(() => net.A.Layer.ConnectionCount == 0 && net.B.Layer.ConnectionCount == 0, 600_000_000));
        Assert.Equal(0, net.A.Buffers.OutstandingBlocks);
        Assert.Equal(0, net.B.Buffers.OutstandingBlocks);
    }

    private static void Pump(TcpConnection c, byte[] data, ref int sent, long now)
    {
        while (sent < data.Length)
        {
            int n = c.Send(data.AsSpan(sent, Math.Min(10_000, data.Length - sent)), now, out _);
            if (n == 0) break;
            sent += n;
        }
        if (sent == data.Length && c.State is TcpState.Established or TcpState.CloseWait) c.Shutdown(false, true, now);
    }

    private static bool Drain(TcpConnection c, byte[] into, ref int got, byte[] buf, long now)
    {
        while (true)
        {
            int n = c.Receive(buf, false, now, out SocketError e);
            if (n > 0)
            {
                Assert.True(got + n <= into.Length, "more bytes than were sent");
                buf.AsSpan(0, n).CopyTo(into.AsSpan(got));
                got += n;
                continue;
            }
            return e == SocketError.Success;
        }
    }
}
