using System;
using UserTcp.Stack;
using UserTcp.Stack.Tcp;
using UserTcp.Stack.Wire;
using Xunit;

namespace UserTcp.Tests.Tcp;

/// <summary>Untrusted input never throws: random segments (flags, numbers near and far from the windows, options,
/// payloads) thrown at connections in every state, interleaved with application calls and timer runs.</summary>
public class TcpFuzzTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public void RandomSegmentsNeverThrow(int seed)
    {
        var rng = new Random(seed);
        for (int round = 0; round < 60; round++)
        {
            using var t = new TcpScript(new TcpConfig { Seed = (ulong)(seed * 1000 + round), ChallengeAckLimit = 1_000_000 });
            TcpConnection c;
            uint iss;
            int setup = rng.Next(4);
            var synOpt = rng.Next(2) == 0 ? default : new TcpOptions { HasMss = true, Mss = (ushort)rng.Next(0, 9000), HasWindowScale = rng.Next(2) == 0, WindowScale = (byte)rng.Next(15), SackPermitted = rng.Next(2) == 0, HasTimestamps = rng.Next(2) == 0, TsVal = (uint)rng.Next() };
            if (setup == 0) { c = t.SynSent(out iss); }
            else c = t.Established(out iss, synOpt, (ushort)rng.Next(0, 65536));
            if (setup == 2) c.Shutdown(false, true, t.NowUs);
            if (setup == 3) c.Send(new byte[rng.Next(1, 100_000)], t.NowUs, out _);
            uint peerSeq = TcpScript.PeerIss + 1;
            var buf = new byte[4096];
            for (int i = 0; i < 400; i++)
            {
                var flags = (TcpFlags)rng.Next(256);
                if (rng.Next(3) > 0) flags &= ~(TcpFlags.Syn | TcpFlags.Rst);
                uint seq = rng.Next(4) switch
                {
                    0 => (uint)rng.Next(),
                    _ => peerSeq + (uint)rng.Next(-70_000, 70_000),
                };
                uint ack = rng.Next(4) switch
                {
                    0 => (uint)rng.Next(),
                    _ => iss + (uint)rng.Next(-70_000, 120_000),
                };
                var opt = new TcpOptions();
                if (rng.Next(2) == 0) { opt.HasTimestamps = true; opt.TsVal = (uint)rng.Next(); opt.TsEcr = (uint)rng.Next(); }
                int sacks = rng.Next(4);
                for (int k = 0; k < sacks; k++)
                {
                    uint a = iss + (uint)rng.Next(-1000, 200_000);
                    opt.AddSack(new SackBlock(a, a + (uint)rng.Next(-100, 5000)));
                }
                byte[] payload = new byte[rng.Next(3) == 0 ? 0 : rng.Next(0, 1400)];
                rng.NextBytes(payload);
                t.Inject(flags, seq, ack, (ushort)rng.Next(65536), payload, opt, dstPort: c.LocalPort, srcPort: t.PeerPort);
                if (rng.Next(4) == 0 && (flags & TcpFlags.Ack) != 0) peerSeq = seq + (uint)payload.Length;
                switch (rng.Next(8))
                {
                    case 0: c.Receive(buf, rng.Next(2) == 0, t.NowUs, out _); break;
                    case 1: c.Send(new byte[rng.Next(1, 3000)], t.NowUs, out _); break;
                    case 2: t.Advance(rng.Next(1, 3_000_000)); break;
                    case 3: if (rng.Next(20) == 0) c.Shutdown(rng.Next(2) == 0, true, t.NowUs); break;
                }
                t.Out.Clear();
            }
            // Whatever happened, closing must leave no buffers behind once time runs out.
            c.Close(rng.Next(2) == 0, t.NowUs);
            for (int k = 0; k < 50 && t.Layer.ConnectionCount > 0; k++) t.Advance(100_000_000);
            Assert.Equal(0, t.Layer.ConnectionCount);
            Assert.Equal(0, t.Buffers.OutstandingBlocks);
            Assert.Equal(0, t.Layer.AssemblersInUse);
        }
    }
}
