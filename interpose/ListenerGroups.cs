using System.Collections.Generic;
using UserTcp.Stack;

namespace UserTcp.Interpose;

/// <summary>
/// SO_REUSEPORT listeners on one port in this process: the first one's stack listener accepts for all of them (one
/// shared accept queue, which is what several listeners in one process amount to). The group's stack listener lives
/// until its last member closes. All methods: caller holds Engine.Gate.
/// </summary>
internal static class ListenerGroups
{
    internal sealed class Group
    {
        public int Handle;
        public ushort Port;
        public int Members;
    }

    private static readonly Dictionary<ushort, Group> s_groups = new();

    internal static void Create(UserSocket s)
    {
        var g = new Group { Handle = s.Handle, Port = s.LocalPort, Members = 1 };
        s_groups[s.LocalPort] = g;
        s.Group = g;
    }

    internal static bool TryJoin(UserSocket s)
    {
        if (!s_groups.TryGetValue(s.LocalPort, out Group? g)) return false;
        g.Members++;
        s.Group = g;
        return true;
    }

    /// <summary>Gives up the socket's stack handle (its last fd closed, or shutdown(SHUT_RD) on a listener): a plain
    /// handle is closed; a group member leaves, and the shared listener closes with its last member.
    /// Afterwards s.Handle is -1 and s.Group null.</summary>
    internal static void Release(UserSocket s)
    {
        Group? g = s.Group;
        if (s.State == SocketState.Listening && (g is null || g.Members == 1) && Engine.Group is { } group)
        {
            // The stack listener closes: while another process of the group still holds the port, its unaccepted
            // connections go to that process instead of being reset (FlowGroup.HandOff.cs).
            group.ListenerRemoved(s.LocalPort);
            group.ExportOnClose(Engine.Stack.Tcp, s.LocalPort, Engine.NowUs);
        }
        if (g is null)
        {
            if (s.Handle >= 0) Engine.Stack.Close(s.Handle);
        }
        else
        {
            if (s.Handle != g.Handle && s.Handle >= 0) Engine.Stack.Close(s.Handle);
            if (--g.Members == 0)
            {
                Engine.Stack.Close(g.Handle);
                s_groups.Remove(g.Port);
            }
        }
        s.Group = null;
        s.Handle = -1;
    }
}
