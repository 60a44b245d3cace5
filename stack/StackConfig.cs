using UserTcp.Stack.Iface;
using UserTcp.Stack.Tcp;

namespace UserTcp.Stack;

/// <summary>Everything one <see cref="NetStack"/> instance is built from.</summary>
public sealed class StackConfig
{
    /// <summary>Address, prefix, gateway and ARP/ICMP settings of the one interface.</summary>
    public InterfaceConfig Interface { get; init; } = new();
    public TcpConfig Tcp { get; init; } = new();
    /// <summary>Upper bound on send/receive ring memory across all connections (bytes).</summary>
    public long BufferPoolBytes { get; init; } = 256L << 20;
    /// <summary>Most sockets (handles) open at once.</summary>
    public int MaxSockets { get; init; } = 65536;
}
