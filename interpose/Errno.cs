namespace UserTcp.Interpose;

/// <summary>Linux errno values (x86-64). Results cross the C boundary as -errno; this is the one place they live.</summary>
public static class Errno
{
    public const int EPERM = 1, ENOENT = 2, EINTR = 4, EIO = 5, EBADF = 9, EAGAIN = 11, ENOMEM = 12, EFAULT = 14,
        EEXIST = 17, EINVAL = 22, ENFILE = 23, EMFILE = 24, ENOTTY = 25, ESPIPE = 29, EPIPE = 32, ENOSYS = 38,
        ENOTSOCK = 88, EDESTADDRREQ = 89, EMSGSIZE = 90, EPROTOTYPE = 91, ENOPROTOOPT = 92, EPROTONOSUPPORT = 93,
        EOPNOTSUPP = 95, EAFNOSUPPORT = 97, EADDRINUSE = 98, EADDRNOTAVAIL = 99, ENETDOWN = 100, ENETUNREACH = 101,
        ECONNABORTED = 103, ECONNRESET = 104, ENOBUFS = 105, EISCONN = 106, ENOTCONN = 107, ETIMEDOUT = 110,
        ECONNREFUSED = 111, EHOSTUNREACH = 113, EALREADY = 114, EINPROGRESS = 115, ENODEV = 19;
}

/// <summary>The one mapping from the stack's errors to errno.</summary>
public static class ErrnoMap
{
    public static int From(UserTcp.Stack.SocketError e) => e switch
    {
        UserTcp.Stack.SocketError.Success => 0,
        UserTcp.Stack.SocketError.WouldBlock => Errno.EAGAIN,
        UserTcp.Stack.SocketError.InProgress => Errno.EINPROGRESS,
        UserTcp.Stack.SocketError.Already => Errno.EALREADY,
        UserTcp.Stack.SocketError.IsConnected => Errno.EISCONN,
        UserTcp.Stack.SocketError.NotConnected => Errno.ENOTCONN,
        UserTcp.Stack.SocketError.ConnectionRefused => Errno.ECONNREFUSED,
        UserTcp.Stack.SocketError.ConnectionReset => Errno.ECONNRESET,
        UserTcp.Stack.SocketError.ConnectionAborted => Errno.ECONNABORTED,
        UserTcp.Stack.SocketError.TimedOut => Errno.ETIMEDOUT,
        UserTcp.Stack.SocketError.HostUnreachable => Errno.EHOSTUNREACH,
        UserTcp.Stack.SocketError.NetworkUnreachable => Errno.ENETUNREACH,
        UserTcp.Stack.SocketError.AddressInUse => Errno.EADDRINUSE,
        UserTcp.Stack.SocketError.AddressNotAvailable => Errno.EADDRNOTAVAIL,
        UserTcp.Stack.SocketError.InvalidArgument => Errno.EINVAL,
        UserTcp.Stack.SocketError.BadHandle => Errno.EBADF,
        UserTcp.Stack.SocketError.BrokenPipe => Errno.EPIPE,
        UserTcp.Stack.SocketError.NoBuffers => Errno.ENOBUFS,
        UserTcp.Stack.SocketError.NotSupported => Errno.EOPNOTSUPP,
        UserTcp.Stack.SocketError.ProtocolError => 71, // EPROTO
        _ => Errno.EIO,
    };
}
