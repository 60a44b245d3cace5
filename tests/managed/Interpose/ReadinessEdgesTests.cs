using UserTcp.Interpose;
using UserTcp.Stack.Tcp;
using Xunit;

namespace UserTcp.Tests.Interpose;

/// <summary>
/// Engine.Edges, the per-handle readiness table behind edge-triggered epoll, in mapped memory: counts, last
/// readiness and the dirty list (each handle once per round), kept across growth past the reserved handles.
/// </summary>
public class ReadinessEdgesTests
{
    [Fact]
    public void ReportsCountAndListEachHandleOncePerRound()
    {
        var e = new Engine.Edges(8);
        Assert.False(e.TryGet(3, out _));
        e.OnReadinessChanged(3, Readiness.In);
        e.OnReadinessChanged(5, Readiness.Out);
        e.OnReadinessChanged(3, Readiness.In | Readiness.Out);
        Assert.Equal(2, e.Count(3));
        Assert.Equal(1, e.Count(5));
        Assert.Equal(0, e.Count(4));
        Assert.True(e.TryGet(3, out Readiness r));
        Assert.Equal(Readiness.In | Readiness.Out, r);
        Assert.Equal(new[] { 3, 5 }, e.TakeDirty().ToArray());
        Assert.Equal(0, e.TakeDirty().Length);
        e.OnReadinessChanged(5, Readiness.Out | Readiness.In);
        Assert.Equal(new[] { 5 }, e.TakeDirty().ToArray());
        // Forget: the readiness is no longer trusted until the next report; the count stays.
        e.Forget(3);
        Assert.False(e.TryGet(3, out _));
        Assert.Equal(2, e.Count(3));
        // Out of range: nothing known, nothing counted.
        Assert.Equal(0, e.Count(-1));
        Assert.False(e.TryGet(1 << 30, out _));
    }

    [Fact]
    public void GrowsPastTheReservedHandlesKeepingWhatWasRecorded()
    {
        var e = new Engine.Edges(4);
        Assert.Equal(4, e.Capacity);
        e.OnReadinessChanged(1, Readiness.In);
        e.OnReadinessChanged(2, Readiness.Out);
        _ = e.TakeDirty();
        e.OnReadinessChanged(2, Readiness.In); // dirty before the growth
        for (int h = 3; h < 5000; h++) e.OnReadinessChanged(h, Readiness.Out);
        Assert.True(e.Capacity >= 5000);
        Assert.Equal(1, e.Count(1));
        Assert.Equal(2, e.Count(2));
        Assert.True(e.TryGet(1, out Readiness r1));
        Assert.Equal(Readiness.In, r1);
        int[] dirty = e.TakeDirty().ToArray();
        Assert.Equal(4998, dirty.Length); // 2, then 3 .. 4999: each once
        Assert.Equal(2, dirty[0]);
        Assert.Equal(4999, dirty[^1]);
        e.OnReadinessChanged(2, Readiness.In | Readiness.Out); // the dirty mark was cleared by TakeDirty
        Assert.Equal(new[] { 2 }, e.TakeDirty().ToArray());
    }

    [Fact]
    public void AReportThatOnlyTakesBitsAwayIsRecordedAndCountedButNotListed()
    {
        var e = new Engine.Edges(8);
        e.OnReadinessChanged(3, Readiness.In | Readiness.Out);
        Assert.Equal(new[] { 3 }, e.TakeDirty().ToArray());
        // The application's read drained it: In goes, nothing comes.
        e.OnReadinessChanged(3, Readiness.Out);
        Assert.Equal(0, e.TakeDirty().Length);
        Assert.True(e.TryGet(3, out Readiness r));
        Assert.Equal(Readiness.Out, r);
        Assert.Equal(2, e.Count(3)); // the edge-triggered key still moves
        // The same readiness again (more data on top of data): listed, an edge for edge-triggered registrations.
        e.OnReadinessChanged(3, Readiness.Out);
        Assert.Equal(new[] { 3 }, e.TakeDirty().ToArray());
        // One bit lost and another gained: listed.
        e.OnReadinessChanged(3, Readiness.In);
        Assert.Equal(new[] { 3 }, e.TakeDirty().ToArray());
        // Already listed: a loss keeps it listed, once, with the latest readiness.
        e.OnReadinessChanged(3, Readiness.In | Readiness.Hup);
        e.OnReadinessChanged(3, Readiness.None);
        Assert.Equal(new[] { 3 }, e.TakeDirty().ToArray());
        Assert.True(e.TryGet(3, out r));
        Assert.Equal(Readiness.None, r);
        // After Forget nothing is known: the next report is listed whatever it says.
        e.OnReadinessChanged(4, Readiness.In);
        _ = e.TakeDirty();
        e.Forget(4);
        e.OnReadinessChanged(4, Readiness.None);
        Assert.Equal(new[] { 4 }, e.TakeDirty().ToArray());
    }
}
