namespace UserTcp.Stack;

/// <summary>Errors the façade returns. <c>interpose/</c> maps them to errno in one place; the comments name the errno
/// each one stands for.</summary>
public enum SocketError
{
    Success = 0,
    /// <summary>EAGAIN/EWOULDBLOCK: nothing to read, no room to write, no connection to accept.</summary>
    WouldBlock,
    /// <summary>EINPROGRESS: a non-blocking connect started.</summary>
    InProgress,
    /// <summary>EALREADY: a connect is already in progress.</summary>
    Already,
    /// <summary>EISCONN.</summary>
    IsConnected,
    /// <summary>ENOTCONN.</summary>
    NotConnected,
    /// <summary>ECONNREFUSED: RST answering our SYN, or ICMP port unreachable.</summary>
    ConnectionRefused,
    /// <summary>ECONNRESET: RST on a synchronized connection.</summary>
    ConnectionReset,
    /// <summary>ECONNABORTED: the connection was aborted locally (e.g. before accept completed).</summary>
    ConnectionAborted,
    /// <summary>ETIMEDOUT: retransmissions, keepalive probes or the user timeout ran out.</summary>
    TimedOut,
    /// <summary>EHOSTUNREACH / ENETUNREACH from ICMP (hard error on SYN_SENT, soft otherwise).</summary>
    HostUnreachable,
    NetworkUnreachable,
    /// <summary>EADDRINUSE.</summary>
    AddressInUse,
    /// <summary>EADDRNOTAVAIL: not a local address, or no free ephemeral port.</summary>
    AddressNotAvailable,
    /// <summary>EINVAL: wrong state for the call (listen on a connected socket, bind twice, ...).</summary>
    InvalidArgument,
    /// <summary>EBADF: no such handle.</summary>
    BadHandle,
    /// <summary>EPIPE: send after the write side was shut down or the connection closed.</summary>
    BrokenPipe,
    /// <summary>ENOBUFS / EMFILE: a bounded table or pool is exhausted.</summary>
    NoBuffers,
    /// <summary>EOPNOTSUPP: option or operation not supported.</summary>
    NotSupported,
    /// <summary>EMSGSIZE / EPROTO from ICMP errors (soft).</summary>
    ProtocolError,
}
