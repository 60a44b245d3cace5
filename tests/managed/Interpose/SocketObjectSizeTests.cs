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

    /// <summary>The socket with its embedded first epoll registration (was 72 B + an 80 B registration object, then
    /// 128 B with a separate head of its registration chain).</summary>
    [Fact]
    public void UserSocketWithItsEpollRegistrationIs120Bytes() => Assert.Equal(120, BytesPerObject(() => new UserSocket()));

    [Fact]
    public void ExtraEpollRegistrationIsAtMost80Bytes() =>
        Assert.InRange(BytesPerObject(() => new EpollSets.ExtraRegistration()), 24, 80);
}
