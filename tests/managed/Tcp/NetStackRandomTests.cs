using System;
using System.Security.Cryptography;
using UserTcp.Stack;
using UserTcp.Stack.Phy;
using UserTcp.Stack.Tcp;
using Xunit;

namespace UserTcp.Tests.Tcp;

/// <summary>Whole-stack (Ethernet, ARP, IPv4, TCP) runs over random fault mixes, several connections at once
/// (80 seeds were run once by hand; 8 stay in CI).</summary>
public class NetStackRandomTests
{
    public static TheoryData<int> Seeds() { var d = new TheoryData<int>(); for (int i = 1; i <= 8; i++) d.Add(i); return d; }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void SeveralConnectionsUnderRandomFaults(int seed)
    {
        var rng = new Random(seed);
        var faults = new FaultConfig
        {
            DelayUs = rng.Next(20, 3000),
            LossPercent = rng.NextDouble() * 6,
            ReorderPercent = rng.NextDouble() * 6,
            DuplicatePercent = rng.NextDouble() * 3,
            CorruptPercent = rng.NextDouble() * 2,
        };
        using var p = new StackPair(faults, seed, new TcpConfig { Seed = (ulong)seed }, new TcpConfig { Seed = (ulong)seed + 99 });
        p.B.Open(out int l);
        p.B.Bind(l, default, 9000);
        p.B.Listen(l, 16);
        const int n = 4;
        var client = new int[n];
        var server = new int[n];
        var data = new byte[n][];
        var got = new byte[n][];
        var sent = new int[n];
        var recvd = new int[n];
        var done = new bool[n];
        for (int i = 0; i < n; i++)
        {
            p.A.Open(out client[i]);
            Assert.Equal(SocketError.InProgress, p.A.Connect(client[i], StackPair.AddrB, 9000));
            data[i] = new byte[rng.Next(50_000, 400_000)];
            rng.NextBytes(data[i]);
            got[i] = new byte[data[i].Length];
            server[i] = -1;
        }
        int accepted = 0;
        var buf = new byte[16384];
        var peers = new ushort[n];
        bool ok = p.RunUntil(() =>
        {
            while (accepted < n && p.B.Accept(l, out int h, out _, out ushort port) == SocketError.Success)
            {
                // Match the accepted socket to its client by port.
                for (int i = 0; i < n; i++)
                {
                    p.A.GetLocalEndpoint(client[i], out _, out ushort lp);
                    if (lp == port) server[i] = h;
                }
                accepted++;
            }
            bool all = true;
            for (int i = 0; i < n; i++)
            {
                while (sent[i] < data[i].Length)
                {
                    int k = p.A.Send(client[i], data[i].AsSpan(sent[i], Math.Min(8192, data[i].Length - sent[i])), out _);
                    if (k == 0) break;
                    sent[i] += k;
                    if (sent[i] == data[i].Length) p.A.Shutdown(client[i], ShutdownHow.Write);
                }
                if (server[i] >= 0 && !done[i])
                {
                    while (true)
                    {
                        int k = p.B.Receive(server[i], buf, false, out SocketError e);
                        if (k > 0) { buf.AsSpan(0, k).CopyTo(got[i].AsSpan(recvd[i])); recvd[i] += k; continue; }
                        if (e == SocketError.Success) done[i] = true;
                        break;
                    }
                }
                all &= done[i];
            }
            return all;
        }, 2_000_000_000);
        Assert.True(ok, $"seed {seed}: received {string.Join(",", recvd)} of {string.Join(",", Array.ConvertAll(data, d => d.Length))}");
        for (int i = 0; i < n; i++) Assert.Equal(SHA256.HashData(data[i]), SHA256.HashData(got[i]));
        var handles = new (NetStack, int)[2 * n + 1];
        for (int i = 0; i < n; i++) { handles[2 * i] = (p.A, client[i]); handles[2 * i + 1] = (p.B, server[i]); }
        handles[2 * n] = (p.B, l);
        NetStackTests.CloseAndCheckLeaks(p, handles);
    }
}
