using System.Threading;
using System.Threading.Tasks;
using UserTcp.Stack;
using Xunit;

namespace UserTcp.Tests.Tcp;

/// <summary>stack/ChunkedTable.cs: the handle and fd tables' storage.</summary>
public class ChunkedTableTests
{
    private const int C = ChunkedTable<object>.ChunkSize;

    [Fact]
    public void GrowsByWholeChunksAndKeepsEverySlot()
    {
        var t = new ChunkedTable<string>(1);
        Assert.Equal(C, t.Capacity);
        Assert.Equal(1, t.ChunkCount);
        t[0] = "zero";
        t[C - 1] = "last";
        t.EnsureCapacity(C + 1); // one chunk more, not a doubling of slots
        Assert.Equal(2 * C, t.Capacity);
        t.EnsureCapacity(5 * C); // several at once: exactly the chunks asked for
        Assert.Equal(5 * C, t.Capacity);
        Assert.Equal(5, t.ChunkCount);
        t[5 * C - 1] = "end";
        Assert.Equal("zero", t.Get(0));
        Assert.Equal("last", t.Get(C - 1));
        Assert.Equal("end", t.Get(5 * C - 1));
        Assert.Null(t.Get(1));
        Assert.Null(t.Get(-1));
        Assert.Null(t.Get(5 * C));
        Assert.Null(t.Get(int.MaxValue));
        t.EnsureCapacity(3 * C); // never shrinks
        Assert.Equal(5 * C, t.Capacity);
    }

    [Fact]
    public void StoresRacingAGrowthAreKept()
    {
        // One thread stores into existing slots while another grows the table: every store must be visible after
        // (a copying table loses a store that lands in the old array after the copy).
        var t = new ChunkedTable<object>(C);
        var value = new object();
        using var go = new ManualResetEventSlim();
        Task grower = Task.Run(() => { go.Wait(); for (int n = 2; n <= 64; n++) t.EnsureCapacity(n * C); });
        go.Set();
        for (int i = 0; i < C; i++) Volatile.Write(ref t[i], value);
        grower.Wait();
        for (int i = 0; i < C; i++) Assert.Same(value, t.Get(i));
        Assert.Equal(64 * C, t.Capacity);
    }
}
