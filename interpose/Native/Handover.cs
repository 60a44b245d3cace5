using System.Runtime.InteropServices;

namespace UserTcp.Interpose.Native;

// Mirrors of the C structs handed over when the runtime starts (cshim/config.h, fdtab.h, managed.h).
// Keep these in step with the C definitions: tests/c checks the sizes through usertcp_struct_sizes.

[StructLayout(LayoutKind.Sequential)]
internal unsafe struct ShimConfig
{
    public int Offload;
    public uint Ip;
    public int PrefixLength;
    public uint Gateway;
    public int FdBase;
    public int MaxFds;
    public int LogLevel;
    public int Children;
    public int Stats;
    public fixed byte Dev[512];
    public fixed byte DpdkArgs[1024];
    public fixed byte Mac[32];
    public fixed byte LogFile[256];
    public fixed byte Ip6[16];
    public int Prefix6;
}

[StructLayout(LayoutKind.Sequential)]
internal unsafe struct SockAddrIn
{
    public ushort Family;
    public ushort PortBE;
    public uint AddrBE;
    public ulong Zero;
}

[StructLayout(LayoutKind.Sequential)]
internal unsafe struct RecordedOption
{
    public int Level, Name, Length;
    public fixed byte Value[16];
}

[StructLayout(LayoutKind.Sequential)]
internal unsafe struct RecordedSocket
{
    public int Refs;
    public int Domain, Type, Protocol;
    public int NonBlock;
    public int Bound;
    public SockAddrIn Local;
    public int Listening;
    public int Backlog;
    public int OptionCount;
    public RecordedOption Options0; // followed by 15 more (UT_MAX_OPTS = 16)
}

[StructLayout(LayoutKind.Sequential)]
internal unsafe struct RecordedFd
{
    public int Fd;
    public int Cloexec;
    public RecordedSocket* Socket;
}

[StructLayout(LayoutKind.Sequential)]
internal struct RecordedEpollRegistration
{
    public int Epfd, Fd;
    public uint Events;
    public uint Pad;
    public ulong Data;
}

[StructLayout(LayoutKind.Sequential)]
internal unsafe struct Handover
{
    public ShimConfig* Config;
    public RecordedFd* Fds;
    public int FdCount;
    public int EpollRegistrationCount;
    public RecordedEpollRegistration* EpollRegistrations;
    public byte* Group;
}
