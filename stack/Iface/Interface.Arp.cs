using UserTcp.Stack.Phy;
using UserTcp.Stack.Wire;

namespace UserTcp.Stack.Iface;

public sealed partial class Interface
{
    /// <summary>Ethernet frames are at least 60 bytes before the FCS (IEEE 802.3 minimum frame size).</summary>
    private const int MinFrameLength = 60;

    /// <summary>
    /// Handles a received ARP packet (RFC 826 "packet reception"): merge the sender's mapping into an existing entry;
    /// if we are the target, add it and answer a request. A gratuitous ARP from a peer (sender = target address)
    /// refreshes the entry we have for it.
    /// </summary>
    private void ReceiveArp(System.Span<byte> payload, long nowUs)
    {
        if (!ArpPacketView.TryParse(payload, out ArpPacketView arp, out DropReason reason))
        {
            _counters.Drop(reason);
            return;
        }
        Ipv4Address senderIp = arp.SenderIp;
        MacAddress senderMac = arp.SenderMac;
        if (senderMac.IsMulticast || senderMac == MacAddress.Zero || senderIp.IsBroadcast || senderIp.IsMulticast)
        {
            _counters.Drop(DropReason.ArpMalformed);
            return;
        }
        // Someone else claiming our address: do not learn it (RFC 5227 §2.4 conflict; we keep our address).
        bool learnable = !senderIp.IsAny && senderIp != _config.Address;
        bool merged = learnable && _arp.Update(senderIp, senderMac, nowUs, this);
        if (merged) ForgetTemplate(); // the MAC may have changed
        if (arp.TargetIp != _config.Address)
        {
            if (!merged) _counters.Drop(DropReason.ArpNotForUs);
            return;
        }
        if (learnable && !merged)
        {
            _arp.Insert(senderIp, senderMac, nowUs, this);
            ForgetTemplate(); // the insert may have evicted the template's entry
        }
        if (arp.Operation == ArpOperation.Request)
            SendArp(ArpOperation.Reply, senderMac, senderMac, senderIp);
    }

    /// <summary>Builds an ARP packet from us and adds it to the transmit batch.</summary>
    private void SendArp(ArpOperation operation, MacAddress ethernetDestination, MacAddress targetMac, Ipv4Address targetIp)
    {
        if (!TryAllocate(out PacketBuf p)) return;
        p.SetLength(MinFrameLength);
        System.Span<byte> frame = p.Data;
        EthernetFrameView eth = EthernetFrameView.Emit(frame, ethernetDestination, MacAddress, EtherType.Arp);
        ArpPacketView.Emit(eth.Payload, operation, MacAddress, _config.Address, targetMac, targetIp);
        frame[(EthernetFrameView.HeaderLength + ArpPacketView.Length)..].Clear(); // padding
        Append(ref p);
    }
}
