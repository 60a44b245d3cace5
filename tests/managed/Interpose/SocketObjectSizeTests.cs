using System;
using UserTcp.Interpose;
using Xunit;

namespace UserTcp.Tests.Interpose;

/// <summary>What the interposition layer keeps per idle socket (issue 6: <= 512 B per idle connection for the whole
/// process). Measured as the runtime allocates them (header and padding included), so a new field that pushes an
/// object past its size class fails here rather than in a million-connection run.</summary>
public class SocketObjectSizeTests
{
    private static long BytesPerObject(Func<object> make)
    {
        const int n = 1000;
        var keep = new object[n];
        make(); // JIT and type initialisation outside the measurement
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < n; i++) keep[i] = make();
        long after = GC.GetAllocatedBytesForCurrentThread();
        GC.KeepAlive(keep);
        return (after - before) / n;
    }

    [Fact]
    public void UserSocketIs72Bytes() => Assert.Equal(72, BytesPerObject(() => new UserSocket()));

    [Fact]
    public void EpollRegistrationIsAtMost80Bytes() =>
        Assert.InRange(BytesPerObject(() => new EpollSets.Registration()), 24, 80);
}
