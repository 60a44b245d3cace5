namespace UserTcp.Stack.Tcp;

/// <summary>
/// How many sockets hold each local port (bound, listening, or a connection's own use of its port): one counter
/// per port in a flat array, so taking and giving back a port on every open and close is one indexed add, not a
/// dictionary insert and remove. 256 KiB per stack.
/// </summary>
internal sealed class PortTable
{
    private readonly int[] _entries = new int[65536];

    /// <summary>Ports held by at least one socket.</summary>
    public int Count { get; private set; }

    public bool InUse(ushort port) => _entries[port] != 0;

    /// <summary>Holders of <paramref name="port"/> (0 when free).</summary>
    public int Users(ushort port) => _entries[port];

    /// <summary>Adds a holder; true when the port was free before.</summary>
    public bool Acquire(ushort port)
    {
        if (_entries[port]++ != 0) return false;
        Count++;
        return true;
    }

    /// <summary>Removes a holder; true when the port became free. A port nobody holds stays free.</summary>
    public bool Release(ushort port)
    {
        int n = _entries[port];
        if (n == 0) return false;
        _entries[port] = n - 1;
        if (n != 1) return false;
        Count--;
        return true;
    }
}
