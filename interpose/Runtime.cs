using System;
using System.Collections.Generic;
using UserTcp.Interpose.Native;

namespace UserTcp.Interpose;

/// <summary>The managed side of runtime start: take over what the C shim recorded before this process needed us.</summary>
internal static unsafe class Runtime
{
    internal static long Start(Handover* h)
    {
        ShimConfig* cfg = h->Config;
        SocketCalls.LocalInterfaceAddress = cfg->Ip;
        long started = Engine.Start(cfg, h->Group);
        if (started < 0) return started;
        EnableIpv6(cfg);

        var sockets = new Dictionary<nint, UserSocket>();
        for (int i = 0; i < h->FdCount; i++)
        {
            RecordedFd rec = h->Fds[i];
            if (!sockets.TryGetValue((nint)rec.Socket, out UserSocket? s))
            {
                s = Import(rec.Socket, rec.Fd);
                sockets[(nint)rec.Socket] = s;
            }
            s.Refs++;
            FdTable.Set(rec.Fd, s);
        }
        // Listeners reach the stack once every recorded socket is in the table (SO_REUSEPORT groups form here).
        foreach (UserSocket s in sockets.Values)
        {
            if (s.State != SocketState.Listening) continue;
            s.State = SocketState.Unconnected;
            long r = SocketCalls.ListenLocked(s, s.Backlog);
            if (r < 0) Kernel.Log(0, $"a listening socket recorded before start could not listen on port {s.LocalPort}: errno {-r}");
        }
        for (int i = 0; i < h->EpollRegistrationCount; i++)
        {
            RecordedEpollRegistration r = h->EpollRegistrations[i];
            long rc = EpollSets.Control(r.Epfd, 1, r.Fd, r.Events, r.Data);
            if (rc < 0) Kernel.Log(1, $"epoll registration of fd {r.Fd} in {r.Epfd} could not be taken over: errno {-rc}");
        }
        return 0;
    }

    /// <summary>USERTCP_IP6: the interface answers neighbour discovery and ping over IPv6 (no TCP over IPv6 yet).</summary>
    private static void EnableIpv6(ShimConfig* cfg)
    {
        var a = Stack.Wire.Ipv6Address.Read(new ReadOnlySpan<byte>(cfg->Ip6, 16));
        if (a.IsAny) return;
        using (Engine.Gate.EnterScope()) Engine.Stack.Interface.EnableIpv6(a, cfg->Prefix6);
        Kernel.Log(2, $"IPv6 address {a}/{cfg->Prefix6}: neighbour discovery and echo answered; IPv6 sockets stay on the kernel");
    }

    private static UserSocket Import(RecordedSocket* rs, int fd)
    {
        var s = new UserSocket { NonBlocking = rs->NonBlock != 0, Inet6 = rs->Domain == Inet6.AF_INET6 };
        long opened = SocketCalls.OpenHandle(s);
        if (opened < 0) Kernel.Log(0, $"fd {fd}: the stack has no room for a socket recorded before start: errno {-opened}");
        RecordedOption* opts = &rs->Options0;
        for (int i = 0; i < rs->OptionCount; i++)
        {
            long r = SocketCalls.SetOption(s, opts[i].Level, opts[i].Name, opts[i].Value, (uint)opts[i].Length);
            if (r < 0) Kernel.Log(1, $"fd {fd}: option ({opts[i].Level},{opts[i].Name}) recorded before start was refused: errno {-r}");
        }
        if (rs->Bound != 0)
        {
            s.Bound = true;
            s.LocalAddress = System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(rs->Local.AddrBE);
            s.LocalPort = System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(rs->Local.PortBE);
            s.BoundMapped = (rs->Local.Zero & 0xff) != 0; // cshim/inet6.c marks a bind to an IPv4-mapped address
        }
        if (rs->Listening != 0)
        {
            s.State = SocketState.Listening;
            s.Backlog = rs->Backlog;
        }
        return s;
    }
}
