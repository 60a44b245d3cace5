namespace UserTcp.Stack.Tcp;

/// <summary>Connection states (RFC 9293 §3.3.2).</summary>
public enum TcpState : byte
{
    Closed,
    Listen,
    SynSent,
    SynReceived,
    Established,
    FinWait1,
    FinWait2,
    CloseWait,
    Closing,
    LastAck,
    TimeWait,
}

/// <summary>Readiness bits with the values epoll uses, so <c>interpose/</c> passes them through unchanged.</summary>
[System.Flags]
public enum Readiness : uint
{
    None = 0,
    In = 0x001,
    Out = 0x004,
    Err = 0x008,
    Hup = 0x010,
    RdHup = 0x2000,
}
