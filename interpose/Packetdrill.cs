using System;
using UserTcp.Interpose.Native;
using UserTcp.Stack.Wire;

namespace UserTcp.Interpose;

/// <summary>
/// The managed half of packetdrill's in-process interface (cshim/packetdrill.c, docs/packetdrill.md): the engine runs
/// over a <see cref="PacketdrillDevice"/>, packetdrill's netdev calls inject and collect raw IPv4 packets, and the
/// socket calls are the ordinary user-stack ones. Time is the real clock.
/// </summary>
internal static class Packetdrill
{
    private static PacketdrillDevice? s_device;

    /// <summary>Starts this process's stack at <paramref name="local"/> (host order). The remote address is only
    /// reachable through the device's proxy ARP, so the interface treats every destination as on-link (prefix 0).</summary>
    internal static long Start(uint local, uint remote, int mtu)
    {
        if (s_device is not null || Engine.Stack is not null) return -16; // EBUSY
        if (local == 0 || local == remote || mtu < 576 || mtu > 9000) return -Errno.EINVAL;
        var ip = new Ipv4Address(local);
        var device = new PacketdrillDevice(ip, mtu);
        SocketCalls.LocalInterfaceAddress = local;
        long r = Engine.StartWithDevice(device, $"packetdrill (peer {new Ipv4Address(remote)})", ip, 0, Ipv4Address.Any);
        if (r < 0)
        {
            device.Dispose();
            return r;
        }
        s_device = device;
        return 0;
    }

    /// <summary>netdev_send: one IPv4 packet into the stack, processed before this returns.</summary>
    internal static unsafe long Send(byte* buf, nuint count)
    {
        if (s_device is null) return -Errno.EBADF;
        if (buf == null) return -Errno.EFAULT;
        if (count > int.MaxValue) return -Errno.EINVAL;
        using (Engine.Gate.EnterScope())
        {
            if (!s_device.Inject(new ReadOnlySpan<byte>(buf, (int)count))) return -Errno.EINVAL;
            PollUntilQuiet();
        }
        return 0;
    }

    /// <summary>
    /// netdev_receive: waits up to <paramref name="waitUs"/> for the next packet the stack sends, polling it (so its
    /// timers run) and sleeping in short steps. Returns the packet's length (cut to the buffer), -EAGAIN when none
    /// came.
    /// </summary>
    internal static unsafe long Receive(byte* buf, nuint size, long* timeUs, long waitUs)
    {
        if (s_device is null) return -Errno.EBADF;
        if (buf == null || timeUs == null) return -Errno.EFAULT;
        if (size == 0) return -Errno.EINVAL;
        var into = new Span<byte>(buf, (int)Math.Min(size, (nuint)int.MaxValue));
        long deadline = Engine.NowUs + waitUs;
        long backoff = 0;
        Engine.EnterWait();
        try
        {
            while (true)
            {
                int n;
                long sent;
                using (Engine.Gate.EnterScope())
                {
                    n = s_device.TryTake(into, out sent);
                    if (n == 0)
                    {
                        PollUntilQuiet();
                        n = s_device.TryTake(into, out sent);
                    }
                }
                if (n > 0)
                {
                    *timeUs = sent;
                    return n;
                }
                if (Engine.NowUs >= deadline) return -Errno.EAGAIN;
                // Short steps: packetdrill checks send times against the script to a few milliseconds.
                long sleep = Math.Min(Engine.NextSleepUs(ref backoff, deadline), 200);
                if (sleep > 0) Kernel.SleepUs((nint)sleep);
            }
        }
        finally
        {
            Engine.ExitWait();
        }
    }

    /// <summary>Polls until the device has nothing left for the stack (an ARP answer is taken in the same call that
    /// caused it, so a segment waiting for the peer's address leaves at once). Caller holds Engine.Gate.</summary>
    private static void PollUntilQuiet()
    {
        Engine.PollLocked();
        for (int i = 0; i < 4 && s_device!.HasInbound; i++) Engine.PollLocked();
    }
}
