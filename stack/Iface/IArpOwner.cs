using UserTcp.Stack.Phy;
using UserTcp.Stack.Wire;

namespace UserTcp.Stack.Iface;

/// <summary>What an <see cref="ArpCache"/> needs from its interface: send requests, release queued frames.</summary>
internal interface IArpOwner
{
    /// <summary>Broadcast an ARP request for <paramref name="target"/>.</summary>
    void SendArpRequest(Ipv4Address target, long nowUs);

    /// <summary>A queued frame whose next hop resolved to <paramref name="destination"/>: fill it in and send.
    /// The owner takes the buffer.</summary>
    void SendResolved(ref PacketBuf frame, MacAddress destination);

    /// <summary>Return a dropped frame to the device.</summary>
    void Free(ref PacketBuf frame);
}
