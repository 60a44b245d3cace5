using System.Collections.Generic;
using UserTcp.Stack;
using UserTcp.Stack.Iface;
using UserTcp.Stack.Phy;
using UserTcp.Stack.Wire;
using Xunit;

namespace UserTcp.Tests.Iface;

public class ArpCacheTests
{
    private sealed class Owner(NativePacketPool pool) : INeighborOwner<Ipv4Address>
    {
        public readonly List<Ipv4Address> Requests = new();
        public readonly List<MacAddress> Sent = new();
        public void SendResolutionRequest(Ipv4Address target, long nowUs) => Requests.Add(target);
        public void SendResolved(ref PacketBuf frame, MacAddress destination) { Sent.Add(destination); pool.Return(ref frame); }
        public void Free(ref PacketBuf frame) => pool.Return(ref frame);
    }

    private static Ipv4Address Ip(byte d) => new(10, 0, 0, d);
    private static MacAddress Mac(byte d) => new(0x02_00_00_00_00_00UL | d);

    [Fact]
    public void EntriesExpireAndAreResolvedAgain()
    {
        using var pool = new NativePacketPool(8, 256);
        var owner = new Owner(pool);
        var cache = new ArpCache(4, 2, lifetimeUs: 1000, retryIntervalUs: 100, maxTries: 3, new StackCounters());
        cache.Insert(Ip(1), Mac(1), 0, owner);
        Assert.True(cache.TryLookup(Ip(1), 999, out MacAddress m));
        Assert.Equal(Mac(1), m);
        Assert.False(cache.TryLookup(Ip(1), 1000, out _));

        pool.TryRent(out PacketBuf p);
        cache.Enqueue(Ip(1), ref p, 1000, owner);
        Assert.Equal(new[] { Ip(1) }, owner.Requests);
        Assert.True(cache.Update(Ip(1), Mac(9), 1001, owner));
        Assert.Equal(new[] { Mac(9) }, owner.Sent);
        Assert.Equal(0, pool.Outstanding);
    }

    [Fact]
    public void FullCacheEvictsTheEntryClosestToExpiryBeforeAnyResolution()
    {
        using var pool = new NativePacketPool(8, 256);
        var owner = new Owner(pool);
        var counters = new StackCounters();
        var cache = new ArpCache(3, 2, lifetimeUs: 1000, retryIntervalUs: 100, maxTries: 3, counters);
        pool.TryRent(out PacketBuf p);
        cache.Enqueue(Ip(1), ref p, 0, owner);      // incomplete, holds a frame
        cache.Insert(Ip(2), Mac(2), 10, owner);     // expires 1010
        cache.Insert(Ip(3), Mac(3), 5, owner);      // expires 1005: the victim
        cache.Insert(Ip(4), Mac(4), 20, owner);
        Assert.False(cache.Contains(Ip(3)));
        Assert.True(cache.Contains(Ip(1)) && cache.Contains(Ip(2)) && cache.Contains(Ip(4)));
        Assert.Equal(1, cache.QueuedFrames);

        // With only incomplete entries left to evict, the one closest to giving up goes and its frames count as failed.
        var small = new ArpCache(1, 2, 1000, 100, 3, counters);
        pool.TryRent(out p);
        small.Enqueue(Ip(5), ref p, 0, owner);
        pool.TryRent(out p);
        small.Enqueue(Ip(6), ref p, 1, owner);
        Assert.Equal(1, counters.Drops(DropReason.ArpResolutionFailed));
        Assert.False(small.Contains(Ip(5)));
        small.Clear(owner);
        cache.Clear(owner);
        Assert.Equal(0, pool.Outstanding);
    }
}
