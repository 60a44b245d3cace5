using System;
using UserTcp.Stack.Phy;
using UserTcp.Stack.Wire;

namespace UserTcp.Stack.Iface;

/// <summary>
/// One Ethernet interface with one IPv4 address over one <see cref="IDevice"/>: ARP, IPv4 in and out, ICMP echo and
/// errors, and dispatch of TCP to an <see cref="IIpv4Transport"/>. Sans-I/O and single-threaded like the rest of the
/// stack; time comes in as <c>nowUs</c>.
/// </summary>
/// <remarks>
/// Driving it: <see cref="PollReceive"/> while frames arrive, <see cref="PollTimers"/> at <see cref="PollAt"/>, and
/// <see cref="Flush"/> after sending outside those calls (both polls flush on their own). Transmitted frames collect
/// in a batch of up to <see cref="DeviceCapabilities.MaxBurst"/> and leave in one <see cref="IDevice.Transmit"/>.
/// Files: this one holds state and the transmit path, <c>Interface.Receive.cs</c> the receive path,
/// <c>Interface.Arp.cs</c> ARP packets.
/// </remarks>
public sealed partial class Interface : INeighborOwner<Ipv4Address>, IDisposable
{
    /// <summary>Answer ICMP echo requests. Off in all but one process of a group sharing a device (one reply, not N).</summary>
    public bool AnswerEcho { get; set; } = true;

    private const int MaxBurst = 64;
    /// <summary>Room in front of a transport segment: Ethernet + IPv4 without options.</summary>
    public const int HeaderRoom = EthernetFrameView.HeaderLength + Ipv4HeaderView.MinHeaderLength;

    private readonly IDevice _device;
    private readonly InterfaceConfig _config;
    private readonly StackCounters _counters;
    private readonly ArpCache _arp;
    private readonly PacketBuf[] _txBatch;
    /// <summary>Frames one <see cref="PollReceive"/> takes at most; fewer means the device had no more.</summary>
    public int ReceiveBurst => _txBatch.Length;
    private readonly PacketBuf[] _spare;   // buffers allocated from the device in bulk, handed out one by one
    private int _txCount;
    private bool _txRefused; // the last flush left frames the device refused
    private long _lastPollUs; // the time of the last PollReceive/PollTimers (Flush itself takes no time)
    private long _txRetryUs;  // back-off between retries of refused frames: 1 µs doubling to MaxTxRetryUs
    private long _txRetryAt;

    /// <summary>Longest wait between retries of frames the device keeps refusing (a memif link that is down, a ring
    /// that stays full): the caller's wait sleeps instead of spinning, and a recovered device is used within 1 ms.</summary>
    public const long MaxTxRetryUs = 1_000;
    private int _spareCount;
    private ushort _nextId;
    private TokenBucket _icmpErrors;
    private bool _started;

    public Interface(IDevice device, InterfaceConfig config, StackCounters counters)
    {
        _device = device;
        _config = config;
        _counters = counters;
        if (config.PrefixLength is < 0 or > 32) throw new ArgumentOutOfRangeException(nameof(config), "prefix length");
        if (device.Capabilities.Headroom < HeaderRoom) throw new ArgumentException("device headroom too small for Ethernet + IPv4");
        int burst = Math.Clamp(device.Capabilities.MaxBurst, 1, MaxBurst);
        _txBatch = new PacketBuf[burst];
        _spare = new PacketBuf[burst];
        _arp = new ArpCache(config.ArpCacheCapacity, config.ArpQueuePerEntry, config.ArpEntryLifetimeUs,
            config.ArpRetryIntervalUs, config.ArpMaxTries, counters);
        _icmpErrors = new TokenBucket(config.IcmpErrorBurst, config.IcmpErrorIntervalUs);
        _mtu = device.Capabilities.Mtu;                    // capabilities are fixed for the device's lifetime
        _txIpv4Offload = device.Capabilities.TxIpv4Checksum;
    }

    /// <summary>Where TCP segments and ICMP errors about TCP go. Without one they are dropped.</summary>
    public IIpv4Transport? Transport { get; set; }

    public Ipv4Address Address => _config.Address;
    public int PrefixLength => _config.PrefixLength;
    public Ipv4Address Gateway => _config.Gateway;
    public MacAddress MacAddress => _device.Capabilities.MacAddress;
    /// <summary>IP MTU: the largest IPv4 packet we send or expect (the TCP MSS is this minus 40).</summary>
    public int Mtu => _device.Capabilities.Mtu;
    /// <summary>The device's capabilities (a transport checks <see cref="DeviceCapabilities.TxTcpChecksum"/>).</summary>
    public DeviceCapabilities Capabilities => _device.Capabilities;
    /// <summary>ICMP errors not sent because of the rate limit.</summary>
    public long IcmpErrorsRateLimited { get; private set; }
    /// <summary>Address resolutions that failed after all retries.</summary>
    public long ArpFailures => _arp.Failures;
    /// <summary>Frames waiting for ARP resolution.</summary>
    public int ArpQueuedFrames => _arp.QueuedFrames;

    /// <summary>True when <paramref name="destination"/> is in our subnet.</summary>
    public bool IsOnLink(Ipv4Address destination) => destination.InSubnet(_config.Address, _config.PrefixLength);

    /// <summary>Announces our address (gratuitous ARP, RFC 5227 §3). Called by the first poll if not called before.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public void Start(long nowUs)
    {
        if (!_started) StartOnce();
        _ = nowUs;
    }

    private void StartOnce()
    {
        _started = true;
        if (_config.GratuitousArpOnStart) SendArp(ArpOperation.Request, MacAddress.Broadcast, MacAddress.Zero, _config.Address);
        Flush();
    }

    /// <summary>
    /// An empty buffer for a transport segment: write the segment at the front of <see cref="PacketBuf.Data"/> and
    /// set the length (at most <see cref="Mtu"/> − 20); the headroom in front takes the IPv4 and Ethernet headers.
    /// False (and <see cref="DropReason.TxNoBuffer"/> counted) when the device is out of buffers.
    /// </summary>
    public bool TryAllocate(out PacketBuf packet)
    {
        if (_spareCount == 0)
        {
            _spareCount = _device.Allocate(_spare);
            if (_spareCount == 0)
            {
                packet = default;
                return !_counters.Drop(DropReason.TxNoBuffer);
            }
        }
        packet = _spare[--_spareCount];
        _spare[_spareCount] = default;
        return true;
    }

    /// <summary>Returns a buffer from <see cref="TryAllocate"/> that will not be sent after all.</summary>
    public void Free(ref PacketBuf packet)
    {
        _device.Free(ref packet);
        packet = default;
    }

    /// <summary>
    /// Sends the transport segment in <paramref name="packet"/> (from <see cref="TryAllocate"/>) to
    /// <paramref name="destination"/>: prepends IPv4 (DF, TTL 64, the checksum or the offload flag) and Ethernet, then
    /// batches it, or queues it behind ARP resolution. Takes the buffer in every case (<paramref name="packet"/> is
    /// cleared); failures are counted (<see cref="DropReason.Ipv4NoRoute"/>, <see cref="DropReason.Ipv4TooBig"/>,
    /// <see cref="DropReason.ArpQueueFull"/>). <see cref="PacketBuf.Offloads"/> the transport set are kept.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public void SendIpv4(ref PacketBuf packet, Ipv4Address destination, byte protocol, long nowUs)
    {
        Start(nowUs);
        // The common case: the same destination as the last resolved send, its ARP entry still trusted. Routing and
        // the neighbour lookup were done then; the headers come from the template built with them.
        if (destination.Value == _hdrDestination && nowUs < _hdrExpiresUs
            && (packet.Length + Ipv4HeaderView.MinHeaderLength <= _mtu || IsLargeSegment(packet)) && packet.Headroom >= HeaderRoom)
        {
            EmitFromTemplate(ref packet, protocol);
            Append(ref packet);
            return;
        }
        SendIpv4Routed(ref packet, destination, protocol, nowUs);
    }

    /// <summary>A TCP segment the device will cut at <see cref="PacketBuf.SegmentSize"/> (TSO): one IPv4 packet of up
    /// to 65,535 bytes here, pieces of at most the MTU on the wire.</summary>
    private bool IsLargeSegment(in PacketBuf packet) =>
        packet.SegmentSize != 0 && Capabilities.TsoMaxBytes > 0
        && packet.Length + Ipv4HeaderView.MinHeaderLength <= 65535 && packet.SegmentSize + 40 <= _mtu;

    private void SendIpv4Routed(ref PacketBuf packet, Ipv4Address destination, byte protocol, long nowUs)
    {
        int total = packet.Length + Ipv4HeaderView.MinHeaderLength;
        if ((total > Mtu && !IsLargeSegment(packet)) || packet.Headroom < HeaderRoom)
        {
            DropTx(ref packet, DropReason.Ipv4TooBig);
            return;
        }
        Ipv4Address nextHop;
        if (destination == _config.Address || destination.IsLoopback || destination.IsAny)
        {
            DropTx(ref packet, DropReason.Ipv4NoRoute); // no loopback path on a physical interface
            return;
        }
        if (destination.IsBroadcast || IsOnLink(destination)) nextHop = destination;
        else if (!_config.Gateway.IsAny) nextHop = _config.Gateway;
        else
        {
            DropTx(ref packet, DropReason.Ipv4NoRoute);
            return;
        }

        // The link destination first, so the Ethernet header is written once (zero while ARP resolves it).
        MacAddress mac = MacAddress.Broadcast;
        long expiresUs = 0;
        bool resolved = nextHop.IsBroadcast || _arp.TryLookup(nextHop, nowUs, out mac, out expiresUs);
        if (resolved && !nextHop.IsBroadcast)
        {
            // Remember this destination's headers for the sends that follow (the template path above).
            BuildTemplate(destination, mac, expiresUs);
            EmitFromTemplate(ref packet, protocol);
            Append(ref packet);
            return;
        }
        bool offload = Capabilities.TxIpv4Checksum;
        packet.Prepend(Ipv4HeaderView.MinHeaderLength);
        // RFC 6864 §4.1: with DF set the ID only has to be unique enough for duplicate detection; a counter will do.
        Ipv4HeaderView.Emit(packet.Data, _config.Address, destination, protocol, total, _nextId++, fillChecksum: !offload);
        if (offload) packet.Offloads |= PacketOffloads.TxIpv4Checksum;
        EthernetFrameView.Emit(packet.Prepend(EthernetFrameView.HeaderLength), resolved ? mac : MacAddress.Zero, MacAddress,
            EtherType.Ipv4);

        if (resolved) Append(ref packet);
        else
        {
            ForgetTemplate(); // resolution may evict an entry (the template's among them)
            _arp.Enqueue(nextHop, ref packet, nowUs, this);
        }
    }

    // --- The next-hop template: Ethernet + IPv4 headers of the last resolved destination ---
    // Frame bytes 0..15 (destination and source MAC, EtherType, IPv4 version/IHL and TOS) and 26..33 (source and
    // destination address) are constant per destination; 16..19 (total length, ID), 20..23 (flags, TTL, protocol)
    // and 24..25 (checksum) are written per packet, the checksum from the constant words' sum plus the variable ones.
    private uint _hdrDestination;      // destination address value the template is for
    private long _hdrExpiresUs = long.MinValue; // the ARP entry's expiry; long.MinValue = no template
    private ulong _hdr0, _hdr8, _hdr26;
    private uint _hdrSum;              // sum of the constant IPv4 header words (version/IHL/TOS, flags, TTL, addresses)
    private readonly int _mtu;
    private readonly bool _txIpv4Offload;

    private const int FrameHeaderLength = EthernetFrameView.HeaderLength + Ipv4HeaderView.MinHeaderLength; // 34

    /// <summary>Forgets the template (the neighbour it was built from changed or may be gone).</summary>
    private void ForgetTemplate()
    {
        _hdrDestination = 0;
        _hdrExpiresUs = long.MinValue;
    }

    private unsafe void BuildTemplate(Ipv4Address destination, MacAddress mac, long expiresUs)
    {
        byte* t = stackalloc byte[FrameHeaderLength];
        var frame = new Span<byte>(t, FrameHeaderLength);
        EthernetFrameView.Emit(frame, mac, MacAddress, EtherType.Ipv4);
        Ipv4HeaderView.Emit(frame[EthernetFrameView.HeaderLength..], _config.Address, destination, 0,
            Ipv4HeaderView.MinHeaderLength, 0, fillChecksum: false);
        _hdr0 = *(ulong*)t;
        _hdr8 = *(ulong*)(t + 8);
        _hdr26 = *(ulong*)(t + 26);
        // The header's constant words (version/IHL, DF, TTL) plus both addresses: at most 7 * 0xFFFF.
        _hdrSum = 0x4500u + 0x4000u + ((uint)Ipv4HeaderView.DefaultTtl << 8)
            + Checksum.PseudoHeader(_config.Address, destination, 0, 0);
        _hdrDestination = destination.Value;
        _hdrExpiresUs = expiresUs;
    }

    /// <summary>Prepends Ethernet and IPv4 from the template (room and length were checked by the caller).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private unsafe void EmitFromTemplate(ref PacketBuf packet, byte protocol)
    {
        int total = packet.Length + Ipv4HeaderView.MinHeaderLength;
        packet.Offset -= FrameHeaderLength;
        packet.Length += FrameHeaderLength;
        byte* f = packet.Buffer + packet.Offset;
        // RFC 6864 §4.1: with DF set the ID only has to be unique enough for duplicate detection; a counter will do.
        ushort id = _nextId++;
        *(ulong*)f = _hdr0;
        *(ulong*)(f + 8) = _hdr8;
        *(uint*)(f + 16) = BigEndian((uint)total << 16 | id);
        *(uint*)(f + 20) = BigEndian(0x4000_0000u | (uint)Ipv4HeaderView.DefaultTtl << 8 | protocol);
        *(ulong*)(f + 26) = _hdr26;
        ushort checksum = 0;
        if (_txIpv4Offload) packet.Offloads |= PacketOffloads.TxIpv4Checksum;
        else checksum = Checksum.Fold(_hdrSum + (uint)total + id + protocol);
        *(ushort*)(f + 24) = BitConverter.IsLittleEndian ? System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(checksum) : checksum;
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private static uint BigEndian(uint v) => BitConverter.IsLittleEndian ? System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(v) : v;

    /// <summary>Transmits the batch in one burst. Frames the device refuses are freed and counted
    /// (<see cref="DropReason.TxRingFull"/>).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public void Flush()
    {
        if (_txCount != 0) FlushBatch(); // most calls find nothing batched: no call for them
    }

    private void FlushBatch()
    {
        PacketBuf[] batch = _txBatch;
        int count = _txCount;
        int taken = _device.Transmit(batch.AsSpan(0, count));
        // Slots at and past _txCount are never read (Append writes a slot before counting it, Dispose frees only the
        // counted ones): the taken frames' slots are not cleared.
        long bytes = 0;
        for (int i = 0; i < taken; i++) bytes += batch[i].Length;
        _counters.TxPackets += taken;
        _counters.TxBytes += bytes;
        // Frames the device refused (a full ring) stay queued, in order, for the next flush: dropping them would turn
        // a moment of back-pressure into retransmission timeouts. Only a frame that finds the queue still full is
        // dropped (Append).
        int left = count - taken;
        if (taken > 0 && left > 0) Array.Copy(batch, taken, batch, 0, left);
        _txCount = left;
        _txRefused = left > 0;
        if (left == 0) _txRetryUs = 0;
        else
        {
            _txRetryUs = taken > 0 || _txRetryUs == 0 ? 1 : Math.Min(_txRetryUs * 2, MaxTxRetryUs);
            _txRetryAt = _lastPollUs + _txRetryUs;
        }
    }

    /// <summary>When <see cref="PollTimers"/> next has work (ARP retries, frames the device refused); long.MaxValue if
    /// none. Refused frames are retried at once while the device takes some, then with a doubling back-off.</summary>
    public long PollAt() => Math.Min(_txRefused ? Math.Min(_txRetryAt, _arp.NextTimerUs) : _arp.NextTimerUs, NdTimerUs);

    /// <summary>Runs due ARP retries and failures, then flushes.</summary>
    public void PollTimers(long nowUs)
    {
        _lastPollUs = nowUs;
        Start(nowUs);
        _arp.PollTimers(nowUs, this);
        _nd?.PollTimers(nowUs, this);
        Flush();
    }

    /// <summary>Returns every buffer the interface holds (batch, spares, ARP queues) to the device.</summary>
    public void Dispose()
    {
        for (int i = 0; i < _txCount; i++) _device.Free(ref _txBatch[i]);
        _txCount = 0;
        for (int i = 0; i < _spareCount; i++) _device.Free(ref _spare[i]);
        _spareCount = 0;
        _arp.Clear(this);
        ForgetTemplate();
        _nd?.Clear(this);
    }

    /// <summary>Adds a finished frame to the transmit batch, flushing first when it is full.</summary>
    private void Append(ref PacketBuf frame)
    {
        if (_txCount == _txBatch.Length) Flush();
        if (_txCount == _txBatch.Length)
        {
            _counters.Drop(DropReason.TxRingFull);
            _device.Free(ref frame);
            return;
        }
        _txBatch[_txCount++] = frame;
        frame = default;
    }

    private void DropTx(ref PacketBuf packet, DropReason reason)
    {
        _counters.Drop(reason);
        _device.Free(ref packet);
        packet = default;
    }

    void INeighborOwner<Ipv4Address>.SendResolutionRequest(Ipv4Address target, long nowUs) =>
        SendArp(ArpOperation.Request, MacAddress.Broadcast, MacAddress.Zero, target);

    void INeighborOwner<Ipv4Address>.SendResolved(ref PacketBuf frame, MacAddress destination) =>
        SendResolvedFrame(ref frame, destination);

    /// <summary>A frame that waited for its next hop's MAC (either address family): address it and batch it.</summary>
    private void SendResolvedFrame(ref PacketBuf frame, MacAddress destination)
    {
        new EthernetFrameView(frame.Data).Destination = destination;
        Append(ref frame);
    }
}
