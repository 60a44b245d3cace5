using System;
using System.Reflection;
using UserTcp.Interpose;
using Xunit;

namespace UserTcp.Tests.Interpose;

/// <summary>Accept and socket reuse closed sockets' objects (UserSocket.Rent/Recycle): a reused object must be
/// indistinguishable from a new one except for the fields that tell its lives apart.</summary>
public class UserSocketPoolTests
{
    // Kept across lives on purpose: the life counter, a change counter only compared for changes, and the flag of an
    // entry that may still sit on EpollSets' changed-socket list (that entry clears it); the embedded epoll
    // registration's life counter (entries of earlier lives on ready lists are told apart by it).
    private static readonly string[] s_kept = ["Generation", "ReadinessVersion", "DirtyQueued", "Life"];

    private static object NonDefault(Type t) =>
        t == typeof(int) ? 7 : t == typeof(uint) ? 7u : t == typeof(ushort) ? (ushort)7 : t == typeof(byte) ? (byte)7 : t == typeof(long) ? 7L : t == typeof(ulong) ? 7UL :
        t == typeof(bool) ? true : t.IsEnum ? Enum.ToObject(t, 1) :
        t == typeof(SocketOptions) ? SocketOptions.Default with { NoDelay = true } : // records compare by value
        t == typeof(EpollSets.Registration) ? new EpollSets.ExtraRegistration() :
        Activator.CreateInstance(t, nonPublic: true)!;

    [Fact]
    public void ResetAssignsEveryFieldOfANewSocket()
    {
        FieldInfo[] fields = typeof(UserSocket).GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic);
        Assert.True(fields.Length >= 24, "the field list came back short");
        var used = new UserSocket();
        foreach (FieldInfo f in fields)
            if (Array.IndexOf(s_kept, f.Name) < 0) f.SetValue(used, NonDefault(f.FieldType));
        used.Reset();
        var fresh = new UserSocket();
        foreach (FieldInfo f in fields)
        {
            if (Array.IndexOf(s_kept, f.Name) >= 0) continue;
            Assert.True(Equals(f.GetValue(fresh), f.GetValue(used)), $"UserSocket.Reset leaves {f.Name} from the last life");
        }
    }

    [Fact]
    public void RecycleStartsANewLife()
    {
        var s = new UserSocket { Refs = 1, Handle = 3, State = SocketState.Connected };
        int before = s.Generation;
        UserSocket.Recycle(s);
        Assert.Equal(before + 1, s.Generation);
        Assert.Equal(-1, s.Handle);
        Assert.Equal(SocketState.Unconnected, s.State);
        Assert.Same(s, UserSocket.Rent()); // the pool hands back what was recycled last
    }
}
