using System;
using BenchmarkDotNet.Attributes;
using UserTcp.Bench.Harness;
using UserTcp.Stack.Wire;

namespace UserTcp.Bench.Benchmarks;

/// <summary>Reference point for reading the segment benchmarks: the RFC 1071 sum over one full-sized segment (the
/// work a software checksum adds per segment on receive and on send).</summary>
[Config(typeof(BenchConfig))]
public class ChecksumBenchmarks
{
    private readonly byte[] _segment = new byte[1480];

    [GlobalSetup]
    public void Setup() => new Random(1).NextBytes(_segment);

    [Benchmark]
    public ushort Segment1480() => Checksum.Fold(Checksum.Add(Checksum.PseudoHeader(LayerPair.AddrA, LayerPair.AddrB, 6, _segment.Length), _segment));
}
