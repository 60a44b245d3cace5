using System;
using System.Buffers.Binary;
using UserTcp.Stack.Phy;
using UserTcp.Stack.Wire;

namespace UserTcp.Interpose;

/// <summary>
/// The device under packetdrill (docs/packetdrill.md). packetdrill speaks raw IPv4 packets, the stack speaks
/// Ethernet frames: packets injected with <see cref="Inject"/> get an Ethernet header (from a made-up peer MAC to
/// ours) and the stack's frames lose theirs on the way out through <see cref="TryTake"/>. The peer has no ARP of its
/// own, so this device answers the stack's ARP requests itself: every address other than ours is at the peer's MAC
/// (proxy ARP; RFC 826 packet format), and ARP never reaches packetdrill.
///
/// Both directions are bounded rings of fixed slots allocated once; a full ring drops (counted in
/// <see cref="DroppedIn"/>/<see cref="DroppedOut"/>) like a full NIC queue. Not thread-safe: every member is called
/// with Engine.Gate held (the stack's own calls already are).
/// </summary>
internal sealed unsafe class PacketdrillDevice : IDevice, IDisposable
{
    private const int EthHeader = 14, EtherTypeIpv4 = 0x0800, EtherTypeArp = 0x0806;
    private const int RingSlots = 512;

    private readonly NativePacketPool _pool;
    private readonly MacAddress _peerMac;
    private readonly Ipv4Address _local;
    private readonly Ring _in, _out;

    internal PacketdrillDevice(Ipv4Address local, int mtu = 1500)
    {
        _local = local;
        // Locally administered addresses (bit 1 of the first octet): nobody else's, and both stay off any real wire.
        var mac = new MacAddress(0x02_00_00_00_00_00UL | local.Value);
        _peerMac = new MacAddress(0x02_50_44_00_00_01UL);
        Capabilities = new DeviceCapabilities { Mtu = mtu, MacAddress = mac };
        _pool = new NativePacketPool(1024, mtu + EthHeader + Capabilities.Headroom, Capabilities.Headroom);
        _in = new Ring(RingSlots, mtu + EthHeader);
        _out = new Ring(RingSlots, mtu);
    }

    public DeviceCapabilities Capabilities { get; }
    public long DroppedIn { get; private set; }
    public long DroppedOut { get; private set; }
    /// <summary>Frames waiting to be received by the stack (an ARP answer or an injected packet).</summary>
    internal bool HasInbound => _in.Count > 0;

    /// <summary>packetdrill sends an IPv4 packet to the stack. False when it is not IPv4 or does not fit.</summary>
    internal bool Inject(ReadOnlySpan<byte> ipPacket)
    {
        if (ipPacket.Length < 20 || (ipPacket[0] >> 4) != 4 || ipPacket.Length > Capabilities.Mtu) return false;
        Span<byte> slot = _in.Reserve(ipPacket.Length + EthHeader, 0, out bool ok);
        if (!ok)
        {
            DroppedIn++;
            return false;
        }
        WriteEthernet(slot, Capabilities.MacAddress, _peerMac, EtherTypeIpv4);
        ipPacket.CopyTo(slot[EthHeader..]);
        return true;
    }

    /// <summary>The oldest IPv4 packet the stack sent, without its Ethernet header, and when it was sent (µs since
    /// the Unix epoch, gettimeofday's clock). Returns the bytes copied (a packet larger than the buffer is cut
    /// short, as a packet socket does), 0 when none is waiting.</summary>
    internal int TryTake(Span<byte> into, out long sentUs)
    {
        sentUs = 0;
        if (_out.Count == 0) return 0;
        ReadOnlySpan<byte> p = _out.Peek(out sentUs);
        int n = Math.Min(p.Length, into.Length);
        p[..n].CopyTo(into);
        _out.Pop();
        return n;
    }

    public int Receive(Span<PacketBuf> burst)
    {
        int n = 0;
        while (n < burst.Length && _in.Count > 0)
        {
            if (!_pool.TryRent(out burst[n])) break;
            ReadOnlySpan<byte> frame = _in.Peek(out _);
            frame.CopyTo(new Span<byte>(burst[n].Buffer + burst[n].Offset, frame.Length));
            burst[n].Length = frame.Length;
            _in.Pop();
            n++;
        }
        return n;
    }

    public int Allocate(Span<PacketBuf> burst) => _pool.Rent(burst);

    public int Transmit(ReadOnlySpan<PacketBuf> burst)
    {
        long now = WallClockUs();
        foreach (PacketBuf p in burst)
        {
            ReadOnlySpan<byte> frame = p.Data;
            if (frame.Length >= EthHeader)
            {
                int type = BinaryPrimitives.ReadUInt16BigEndian(frame[12..]);
                if (type == EtherTypeIpv4) Emit(frame[EthHeader..], now);
                else if (type == EtherTypeArp) AnswerArp(frame[EthHeader..]);
            }
            PacketBuf copy = p;
            _pool.Return(ref copy);
        }
        return burst.Length;
    }

    public void Free(ref PacketBuf packet) => _pool.Return(ref packet);

    public void Dispose() => _pool.Dispose();

    private void Emit(ReadOnlySpan<byte> ip, long now)
    {
        // The IPv4 total length, not the frame: short frames may carry Ethernet padding.
        if (ip.Length < 20) return;
        int total = BinaryPrimitives.ReadUInt16BigEndian(ip[2..]);
        if (total < 20 || total > ip.Length) total = ip.Length;
        Span<byte> slot = _out.Reserve(total, now, out bool ok);
        if (!ok)
        {
            DroppedOut++;
            return;
        }
        ip[..total].CopyTo(slot);
    }

    /// <summary>A request (RFC 826 opcode 1) for any address but ours is answered with the peer's MAC.</summary>
    private void AnswerArp(ReadOnlySpan<byte> arp)
    {
        if (arp.Length < 28 || BinaryPrimitives.ReadUInt16BigEndian(arp) != 1 ||
            BinaryPrimitives.ReadUInt16BigEndian(arp[2..]) != EtherTypeIpv4 || arp[4] != 6 || arp[5] != 4 ||
            BinaryPrimitives.ReadUInt16BigEndian(arp[6..]) != 1)
            return;
        ReadOnlySpan<byte> senderMac = arp.Slice(8, 6), senderIp = arp.Slice(14, 4), targetIp = arp.Slice(24, 4);
        var target = Ipv4Address.Read(targetIp);
        if (target == _local || target.IsAny || Ipv4Address.Read(senderIp) == target) return; // gratuitous/ours
        Span<byte> slot = _in.Reserve(EthHeader + 28, 0, out bool ok);
        if (!ok)
        {
            DroppedIn++;
            return;
        }
        WriteEthernet(slot, Capabilities.MacAddress, _peerMac, EtherTypeArp);
        Span<byte> r = slot[EthHeader..];
        BinaryPrimitives.WriteUInt16BigEndian(r, 1);
        BinaryPrimitives.WriteUInt16BigEndian(r[2..], EtherTypeIpv4);
        r[4] = 6;
        r[5] = 4;
        BinaryPrimitives.WriteUInt16BigEndian(r[6..], 2); // reply
        _peerMac.Write(r.Slice(8, 6));
        targetIp.CopyTo(r.Slice(14, 4));
        senderMac.CopyTo(r.Slice(18, 6));
        senderIp.CopyTo(r.Slice(24, 4));
    }

    private static void WriteEthernet(Span<byte> frame, MacAddress dst, MacAddress src, int type)
    {
        dst.Write(frame[..6]);
        src.Write(frame.Slice(6, 6));
        BinaryPrimitives.WriteUInt16BigEndian(frame[12..], (ushort)type);
    }

    internal static long WallClockUs() => (DateTime.UtcNow.Ticks - DateTime.UnixEpoch.Ticks) / 10;

    /// <summary>A FIFO of fixed-size slots, each with a length and a timestamp.</summary>
    private sealed class Ring
    {
        private readonly byte[] _data;
        private readonly int[] _length;
        private readonly long[] _time;
        private readonly int _slotSize;
        private int _head;
        internal int Count { get; private set; }

        internal Ring(int slots, int slotSize)
        {
            _slotSize = slotSize;
            _data = new byte[slots * slotSize];
            _length = new int[slots];
            _time = new long[slots];
        }

        internal Span<byte> Reserve(int length, long time, out bool ok)
        {
            ok = Count < _length.Length && length <= _slotSize;
            if (!ok) return default;
            int i = (_head + Count) % _length.Length;
            Count++;
            _length[i] = length;
            _time[i] = time;
            return _data.AsSpan(i * _slotSize, length);
        }

        internal ReadOnlySpan<byte> Peek(out long time)
        {
            time = _time[_head];
            return _data.AsSpan(_head * _slotSize, _length[_head]);
        }

        internal void Pop()
        {
            _head = (_head + 1) % _length.Length;
            Count--;
        }
    }
}
