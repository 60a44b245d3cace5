using System;
using System.Security.Cryptography;
using UserTcp.Stack;
using UserTcp.Stack.Phy;
using UserTcp.Stack.Tcp;
using Xunit;
using Xunit.Abstractions;

namespace UserTcp.Tests.Tcp;

/// <summary>The long profile: 100 MB each way through two NetStacks under faults. Runs only with
/// USERTCP_LONG_TESTS=1 (minutes of CPU); the default profile covers the same paths with 1 MB.</summary>
public class TcpLongTests
{
    private readonly ITestOutputHelper _out;
    public TcpLongTests(ITestOutputHelper output) => _out = output;

    private static bool Enabled => Environment.GetEnvironmentVariable("USERTCP_LONG_TESTS") == "1";

    [Theory]
    [InlineData(0.0, 0.0, 1)]
    [InlineData(1.0, 1.0, 2)]
    [InlineData(5.0, 2.0, 3)]
    [InlineData(10.0, 0.0, 4)]
    public void HundredMegabytesBothWays(double loss, double reorder, int seed)
    {
        if (!Enabled) return;
        var faults = new FaultConfig { DelayUs = 200, LossPercent = loss, ReorderPercent = reorder, DuplicatePercent = loss / 2, CorruptPercent = loss / 5 };
        var tcp = new TcpConfig { Seed = (ulong)seed, SendBufferSize = 1 << 20, ReceiveBufferSize = 1 << 20 };
        using var p = new StackPair(faults, seed, tcp, tcp);
        var (l, c, s) = NetStackTests.Connect(p);
        var data = new byte[100 << 20];
        new Random(seed).NextBytes(data);
        long t0 = p.NowUs;
        byte[] got = NetStackTests.Transfer(p, p.A, c, p.B, s, data, 20_000_000_000);
        Assert.Equal(SHA256.HashData(data), SHA256.HashData(got));
        byte[] back = NetStackTests.Transfer(p, p.B, s, p.A, c, data, 20_000_000_000);
        Assert.Equal(SHA256.HashData(data), SHA256.HashData(back));
        _out.WriteLine($"virtual {(p.NowUs - t0) / 1000} ms, retransmits A {p.A.Counters.TcpRetransmits} B {p.B.Counters.TcpRetransmits}, timeouts A {p.A.Counters.TcpTimeouts}");
        NetStackTests.CloseAndCheckLeaks(p, (p.A, c), (p.B, s), (p.B, l));
    }
}
