// POSIX parity for AF_INET6 TCP sockets: the same expectations on the kernel (the oracle) and on usertcp, where an
// AF_INET6 socket is a dual-stack one carrying IPv4 through IPv4-mapped addresses, and a socket that needs IPv6
// itself (IPV6_V6ONLY 1, a native IPv6 address) moves to the kernel (docs/compatibility.md).
//
// Two kinds of tests, as in socket_parity_test and conn_parity_test:
//   Inet6Parity      needs no peer; scripts/run-c-tests.sh runs it on the kernel and under LD_PRELOAD.
//   Inet6ConnParity  connected sockets against the kernel peer at 198.18.0.1 (tests/c/progs/peer.c); skipped unless
//                    PEER_CTL is set, i.e. run through tests/c/run-conn-parity.sh (UT_CONN_BIN selects this binary).
#include "helpers.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <string>

#include "peer_client.h"

using ut::NowMs;
using ut::Peer;
using ut::Readable;

namespace {

#define EXPECT_FAILS_WITH(call, err)                                                                                   \
    do {                                                                                                               \
        errno = 0;                                                                                                     \
        long _r = (long)(call);                                                                                        \
        int _e = errno;                                                                                                \
        EXPECT_EQ(_r, -1) << #call;                                                                                    \
        EXPECT_EQ(_e, err) << #call << ": " << strerror(_e);                                                           \
    } while (0)

sockaddr_in6 A6(const char *ip, uint16_t port)
{
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_port = htons(port);
    EXPECT_EQ(inet_pton(AF_INET6, ip, &a.sin6_addr), 1) << ip;
    return a;
}

// "[addr]:port", with a note when flowinfo or the scope id is not 0.
std::string Str(const sockaddr_in6 &a)
{
    char ip[64];
    inet_ntop(AF_INET6, &a.sin6_addr, ip, sizeof ip);
    std::string s = "[" + std::string(ip) + "]:" + std::to_string(ntohs(a.sin6_port));
    if (a.sin6_family != AF_INET6) s += " family " + std::to_string(a.sin6_family);
    if (a.sin6_flowinfo) s += " flowinfo " + std::to_string(a.sin6_flowinfo);
    if (a.sin6_scope_id) s += " scope " + std::to_string(a.sin6_scope_id);
    return s;
}

sockaddr_in6 Name(int fd, bool peer = false)
{
    sockaddr_in6 a;
    memset(&a, 0xa5, sizeof a);
    socklen_t len = sizeof a;
    int r = peer ? getpeername(fd, (sockaddr *)&a, &len) : getsockname(fd, (sockaddr *)&a, &len);
    EXPECT_EQ(r, 0) << strerror(errno);
    EXPECT_EQ(len, sizeof a);
    return a;
}

uint16_t Port(int fd) { return ntohs(Name(fd).sin6_port); }

int Tcp6(int flags = 0)
{
    int fd = socket(AF_INET6, SOCK_STREAM | flags, 0);
    EXPECT_GE(fd, 0) << strerror(errno);
    return fd;
}

int GetInt(int fd, int level, int name)
{
    int v = -12345;
    socklen_t len = sizeof v;
    EXPECT_EQ(getsockopt(fd, level, name, &v, &len), 0) << strerror(errno);
    EXPECT_EQ(len, sizeof v);
    return v;
}

int SetInt(int fd, int level, int name, int v) { return setsockopt(fd, level, name, &v, sizeof v); }



// ::1 is usable here (not so in the test network's namespaces). Asked of the kernel directly (raw system calls, never
// the shim), so the answer is the same on the kernel and under usertcp.
bool HaveIpv6Loopback()
{
    int fd = (int)syscall(SYS_socket, AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_in6 lo = A6("::1", 0);
    bool ok = syscall(SYS_bind, fd, &lo, sizeof lo) == 0;
    syscall(SYS_close, fd);
    return ok;
}

} // namespace

// First on purpose: under usertcp nothing here starts the runtime (these are configuration-time calls the shim
// records in C), so the recorded path is what runs, including the move to the kernel of IPv6-only sockets.
TEST(Inet6Parity, ConfigurationTimeDualStackAndIpv6OnlySockets)
{
    int started = ut::RuntimeState();
    int l = Tcp6();
    ASSERT_EQ(SetInt(l, IPPROTO_IPV6, IPV6_V6ONLY, 0), 0) << strerror(errno);
    ASSERT_EQ(SetInt(l, SOL_SOCKET, SO_REUSEADDR, 1), 0);
    sockaddr_in6 any = A6("::", 0);
    ASSERT_EQ(bind(l, (sockaddr *)&any, sizeof any), 0) << strerror(errno);
    EXPECT_EQ(Str(Name(l)), "[::]:" + std::to_string(Port(l)));
    ASSERT_EQ(listen(l, 8), 0);
    uint16_t port = Port(l);

    // The same port, IPv6 only: on the kernel it conflicts with the dual-stack listener (which owns IPv6 too). On
    // usertcp the IPv6-only socket is the kernel's and the user stack's port is not known there: docs/compatibility.md,
    // "Known differences".
    int o = Tcp6();
    ASSERT_EQ(SetInt(o, IPPROTO_IPV6, IPV6_V6ONLY, 1), 0) << strerror(errno);
    sockaddr_in6 same = A6("::", port);
    if (!ut::UnderUsertcp()) EXPECT_FAILS_WITH(bind(o, (sockaddr *)&same, sizeof same), EADDRINUSE);
    close(o);

    // An IPv6-only listener on [::1] and a client connecting to it: on usertcp both move to the kernel.
    if (!HaveIpv6Loopback()) {
        close(l);
        GTEST_SKIP() << "no ::1 here";
    }
    int v6 = Tcp6();
    ASSERT_EQ(SetInt(v6, IPPROTO_IPV6, IPV6_V6ONLY, 1), 0) << strerror(errno);
    sockaddr_in6 lo = A6("::1", 0);
    ASSERT_EQ(bind(v6, (sockaddr *)&lo, sizeof lo), 0) << strerror(errno);
    ASSERT_EQ(listen(v6, 8), 0);
    sockaddr_in6 to = Name(v6);
    EXPECT_EQ(Str(to), "[::1]:" + std::to_string(ntohs(to.sin6_port)));
    int c = Tcp6();
    ASSERT_EQ(connect(c, (sockaddr *)&to, sizeof to), 0) << strerror(errno);
    int s = accept(v6, nullptr, nullptr);
    ASSERT_GE(s, 0) << strerror(errno);
    ASSERT_EQ(write(c, "hi", 2), 2);
    char b[4] = {};
    EXPECT_EQ(read(s, b, sizeof b), 2);
    EXPECT_EQ(Str(Name(s, true)), Str(Name(c)));
    close(s);
    close(c);
    close(v6);
    close(l);
    EXPECT_EQ(ut::RuntimeState(), started); // nothing above needed the runtime
}

TEST(Inet6Parity, CreationAndDefaults)
{
    int fd = Tcp6(SOCK_NONBLOCK | SOCK_CLOEXEC);
    EXPECT_EQ(GetInt(fd, SOL_SOCKET, SO_DOMAIN), AF_INET6);
    EXPECT_EQ(GetInt(fd, SOL_SOCKET, SO_TYPE), SOCK_STREAM);
    EXPECT_EQ(GetInt(fd, SOL_SOCKET, SO_PROTOCOL), IPPROTO_TCP);
    EXPECT_EQ(GetInt(fd, IPPROTO_IPV6, IPV6_V6ONLY), 0); // net.ipv6.bindv6only = 0
    EXPECT_EQ(GetInt(fd, IPPROTO_IPV6, IPV6_TCLASS), 0);
    EXPECT_TRUE(fcntl(fd, F_GETFL) & O_NONBLOCK);
    EXPECT_EQ(Str(Name(fd)), "[::]:0");
    // Truncated: the full length is reported, only what fits is written.
    unsigned char buf[8];
    memset(buf, 0xee, sizeof buf);
    socklen_t len = 4;
    ASSERT_EQ(getsockname(fd, (sockaddr *)buf, &len), 0);
    EXPECT_EQ(len, sizeof(sockaddr_in6));
    EXPECT_EQ(((sockaddr *)buf)->sa_family, AF_INET6);
    EXPECT_EQ(buf[4], 0xee);
    close(fd);
}

TEST(Inet6Parity, Ipv6Options)
{
    int fd = Tcp6();
    EXPECT_EQ(SetInt(fd, IPPROTO_IPV6, IPV6_V6ONLY, 0), 0);
    EXPECT_EQ(GetInt(fd, IPPROTO_IPV6, IPV6_V6ONLY), 0);
    short small = 1;
    EXPECT_FAILS_WITH(setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &small, sizeof small), EINVAL);
    EXPECT_EQ(SetInt(fd, IPPROTO_IPV6, IPV6_TCLASS, 0x28), 0);
    EXPECT_EQ(GetInt(fd, IPPROTO_IPV6, IPV6_TCLASS), 0x28);
    EXPECT_EQ(SetInt(fd, IPPROTO_IPV6, IPV6_TCLASS, -1), 0); // the default
    EXPECT_EQ(GetInt(fd, IPPROTO_IPV6, IPV6_TCLASS), 0);
    EXPECT_FAILS_WITH(SetInt(fd, IPPROTO_IPV6, IPV6_TCLASS, 256), EINVAL);
    EXPECT_FAILS_WITH(SetInt(fd, IPPROTO_IPV6, IPV6_TCLASS, -2), EINVAL);
    // IPv4 options work on a dual-stack socket too.
    EXPECT_EQ(SetInt(fd, IPPROTO_IP, IP_TOS, 0x10), 0);
    EXPECT_EQ(GetInt(fd, IPPROTO_IP, IP_TOS), 0x10);
    // Fixed once bound.
    sockaddr_in6 any = A6("::", 0);
    ASSERT_EQ(bind(fd, (sockaddr *)&any, sizeof any), 0) << strerror(errno);
    EXPECT_FAILS_WITH(SetInt(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1), EINVAL);
    EXPECT_FAILS_WITH(SetInt(fd, IPPROTO_IPV6, IPV6_V6ONLY, 0), EINVAL);
    EXPECT_EQ(GetInt(fd, IPPROTO_IPV6, IPV6_V6ONLY), 0);
    close(fd);
    // The same: a fresh socket's IPV6_V6ONLY 0 accepted while unbound says nothing about a bound one with the same
    // options (usertcp remembers option changes by the options they start from; this one depends on the binding).
    int fresh = Tcp6(), bound = Tcp6();
    EXPECT_EQ(SetInt(fresh, IPPROTO_IPV6, IPV6_V6ONLY, 0), 0);
    ASSERT_EQ(bind(bound, (sockaddr *)&any, sizeof any), 0) << strerror(errno);
    EXPECT_FAILS_WITH(SetInt(bound, IPPROTO_IPV6, IPV6_V6ONLY, 0), EINVAL);
    close(fresh);
    close(bound);

    // IPPROTO_IPV6 on an AF_INET socket: not its level (and getsockopt says so differently).
    int v4 = socket(AF_INET, SOCK_STREAM, 0);
    int v = 0;
    socklen_t len = sizeof v;
    EXPECT_FAILS_WITH(SetInt(v4, IPPROTO_IPV6, IPV6_V6ONLY, 0), ENOPROTOOPT);
    EXPECT_FAILS_WITH(getsockopt(v4, IPPROTO_IPV6, IPV6_V6ONLY, &v, &len), EOPNOTSUPP);
    close(v4);
}

TEST(Inet6Parity, BindRules)
{
    int fd = Tcp6();
    sockaddr_in v4{};
    v4.sin_family = AF_INET;
    EXPECT_FAILS_WITH(bind(fd, (sockaddr *)&v4, sizeof v4), EINVAL); // shorter than a sockaddr_in6
    sockaddr_in6 wrong = A6("::", 0);
    wrong.sin6_family = AF_INET;
    EXPECT_FAILS_WITH(bind(fd, (sockaddr *)&wrong, sizeof wrong), EAFNOSUPPORT);
    sockaddr_in6 any = A6("::", 0);
    EXPECT_FAILS_WITH(bind(fd, (sockaddr *)&any, 23), EINVAL);
    // A mapped address that is not ours (TEST-NET-1).
    sockaddr_in6 far = A6("::ffff:192.0.2.1", 0);
    EXPECT_FAILS_WITH(bind(fd, (sockaddr *)&far, sizeof far), EADDRNOTAVAIL);
    // 24 bytes (no scope id) are enough; port 0 picks an ephemeral port.
    ASSERT_EQ(bind(fd, (sockaddr *)&any, 24), 0) << strerror(errno);
    uint16_t port = Port(fd);
    EXPECT_GE(port, 32768);
    EXPECT_EQ(Str(Name(fd)), "[::]:" + std::to_string(port));
    EXPECT_FAILS_WITH(bind(fd, (sockaddr *)&any, sizeof any), EINVAL); // already bound
    ASSERT_EQ(listen(fd, 4), 0);

    // The dual-stack listener holds the port for IPv4 too.
    int v4s = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in same{};
    same.sin_family = AF_INET;
    same.sin_port = htons(port);
    EXPECT_FAILS_WITH(bind(v4s, (sockaddr *)&same, sizeof same), EADDRINUSE);
    close(v4s);
    int v6s = Tcp6();
    sockaddr_in6 mapped = A6("::ffff:0.0.0.0", port);
    EXPECT_FAILS_WITH(bind(v6s, (sockaddr *)&mapped, sizeof mapped), EADDRINUSE);
    close(v6s);
    close(fd);

    // Bound to the IPv4-mapped unspecified address: it reads back as such.
    fd = Tcp6();
    sockaddr_in6 m0 = A6("::ffff:0.0.0.0", 0);
    ASSERT_EQ(bind(fd, (sockaddr *)&m0, sizeof m0), 0) << strerror(errno);
    EXPECT_EQ(Str(Name(fd)), "[::ffff:0.0.0.0]:" + std::to_string(Port(fd)));
    close(fd);
}

TEST(Inet6Parity, Ipv6OnlySocketLeavesIpv4PortFree)
{
    int v4 = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    ASSERT_EQ(bind(v4, (sockaddr *)&a, sizeof a), 0);
    ASSERT_EQ(listen(v4, 4), 0);
    socklen_t len = sizeof a;
    ASSERT_EQ(getsockname(v4, (sockaddr *)&a, &len), 0);
    uint16_t port = ntohs(a.sin_port);

    // nginx's `listen [::]:80` (ipv6only=on) beside `listen 80`.
    int v6 = Tcp6();
    ASSERT_EQ(SetInt(v6, SOL_SOCKET, SO_REUSEADDR, 1), 0);
    ASSERT_EQ(SetInt(v6, IPPROTO_IPV6, IPV6_V6ONLY, 1), 0) << strerror(errno);
    EXPECT_EQ(GetInt(v6, IPPROTO_IPV6, IPV6_V6ONLY), 1);
    EXPECT_EQ(GetInt(v6, SOL_SOCKET, SO_REUSEADDR), 1); // options set before the move are kept
    EXPECT_EQ(GetInt(v6, SOL_SOCKET, SO_DOMAIN), AF_INET6);
    sockaddr_in6 any = A6("::", port);
    EXPECT_EQ(bind(v6, (sockaddr *)&any, sizeof any), 0) << strerror(errno);
    EXPECT_EQ(listen(v6, 4), 0);
    // A dual-stack socket cannot have the port: IPv4 is taken.
    int d = Tcp6();
    EXPECT_FAILS_WITH(bind(d, (sockaddr *)&any, sizeof any), EADDRINUSE);
    close(d);
    close(v6);
    close(v4);
}

TEST(Inet6Parity, ConnectRules)
{
    int fd = Tcp6();
    sockaddr_in6 to = A6("::ffff:127.0.0.1", 9);
    EXPECT_FAILS_WITH(connect(fd, (sockaddr *)&to, 23), EINVAL);
    sockaddr_in v4{};
    v4.sin_family = AF_INET;
    EXPECT_FAILS_WITH(connect(fd, (sockaddr *)&v4, sizeof v4), EINVAL);
    sockaddr_in6 wrong = to;
    wrong.sin6_family = AF_INET;
    EXPECT_FAILS_WITH(connect(fd, (sockaddr *)&wrong, sizeof wrong), EAFNOSUPPORT);
    close(fd);

    // IPv6-only, connecting to an IPv4-mapped address: there is no IPv4 on this socket.
    fd = Tcp6();
    ASSERT_EQ(SetInt(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1), 0);
    EXPECT_FAILS_WITH(connect(fd, (sockaddr *)&to, sizeof to), ENETUNREACH);
    close(fd);

    // A native IPv6 peer after the runtime has started (getsockopt above starts it under usertcp): the socket
    // moves to the kernel and connects there, to a kernel listener on [::1].
    if (!HaveIpv6Loopback()) GTEST_SKIP() << "no ::1 here";
    int l = Tcp6();
    ASSERT_EQ(SetInt(l, IPPROTO_IPV6, IPV6_V6ONLY, 1), 0);
    sockaddr_in6 lo = A6("::1", 0);
    ASSERT_EQ(bind(l, (sockaddr *)&lo, sizeof lo), 0) << strerror(errno);
    ASSERT_EQ(listen(l, 4), 0);
    sockaddr_in6 target = Name(l);
    fd = Tcp6(SOCK_NONBLOCK);
    ASSERT_EQ(SetInt(fd, IPPROTO_TCP, TCP_NODELAY, 1), 0);
    int r = connect(fd, (sockaddr *)&target, sizeof target);
    EXPECT_TRUE(r == 0 || errno == EINPROGRESS) << strerror(errno);
    pollfd p = { fd, POLLOUT, 0 };
    EXPECT_EQ(poll(&p, 1, 3000), 1);
    EXPECT_EQ(GetInt(fd, SOL_SOCKET, SO_ERROR), 0);
    EXPECT_EQ(GetInt(fd, IPPROTO_TCP, TCP_NODELAY), 1);
    EXPECT_TRUE(fcntl(fd, F_GETFL) & O_NONBLOCK);
    EXPECT_EQ(Str(Name(fd, true)), Str(target));
    int s = accept(l, nullptr, nullptr);
    ASSERT_GE(s, 0);
    EXPECT_EQ(write(s, "x", 1), 1);
    EXPECT_GT(Readable(fd, 3000), 0);
    char c;
    EXPECT_EQ(read(fd, &c, 1), 1);
    close(s);
    close(fd);
    close(l);
}

// ---- connected sockets against the kernel peer (run-conn-parity.sh) --------------------------------------------------

namespace {

constexpr const char *kPeerIp = "198.18.0.1";
constexpr const char *kTestIp = "198.18.0.2";


class Inet6ConnParity : public ::testing::Test {
protected:
    void SetUp() override
    {
        if (!getenv("PEER_CTL")) GTEST_SKIP() << "PEER_CTL unset: run through tests/c/run-conn-parity.sh";
    }
};

std::string Mapped(const char *ip, uint16_t port) { return "[::ffff:" + std::string(ip) + "]:" + std::to_string(port); }

} // namespace

TEST_F(Inet6ConnParity, DualStackListenerAcceptsIpv4)
{
    int l = Tcp6(SOCK_NONBLOCK);
    sockaddr_in6 any = A6("::", 0);
    ASSERT_EQ(bind(l, (sockaddr *)&any, sizeof any), 0) << strerror(errno);
    ASSERT_EQ(listen(l, 8), 0);
    uint16_t port = Port(l);
    EXPECT_EQ(Str(Name(l)), "[::]:" + std::to_string(port));

    Peer p;
    ASSERT_TRUE(p.Ok());
    std::string a = p.Cmd("CONNECT %d", port);
    ASSERT_EQ(a.rfind("OK ", 0), 0u) << a;
    uint16_t peerPort = (uint16_t)atoi(a.c_str() + 3);
    ASSERT_GT(Readable(l, 3000), 0);
    sockaddr_in6 from;
    memset(&from, 0xa5, sizeof from);
    socklen_t len = sizeof from;
    int s = accept4(l, (sockaddr *)&from, &len, SOCK_CLOEXEC);
    ASSERT_GE(s, 0) << strerror(errno);
    EXPECT_EQ(len, sizeof from);
    EXPECT_EQ(Str(from), Mapped(kPeerIp, peerPort));
    EXPECT_EQ(Str(Name(s)), Mapped(kTestIp, port));
    EXPECT_EQ(Str(Name(s, true)), Mapped(kPeerIp, peerPort));
    EXPECT_EQ(GetInt(s, SOL_SOCKET, SO_DOMAIN), AF_INET6);
    EXPECT_EQ(GetInt(s, IPPROTO_IPV6, IPV6_V6ONLY), 0);
    ASSERT_EQ(write(s, "ping", 4), 4);
    EXPECT_EQ(p.Cmd("RECV 4").rfind("OK 4 ", 0), 0u);
    close(s);

    // A short address buffer: truncated, full length reported.
    a = p.Cmd("CONNECT %d", port);
    ASSERT_EQ(a.rfind("OK ", 0), 0u) << a;
    ASSERT_GT(Readable(l, 3000), 0);
    sockaddr_in small;
    memset(&small, 0xa5, sizeof small);
    len = sizeof small;
    s = accept(l, (sockaddr *)&small, &len);
    ASSERT_GE(s, 0) << strerror(errno);
    EXPECT_EQ(len, sizeof(sockaddr_in6));
    EXPECT_EQ(small.sin_family, AF_INET6);
    close(s);
    close(l);
}

TEST_F(Inet6ConnParity, ConnectToMappedAddress)
{
    Peer p;
    ASSERT_TRUE(p.Ok());
    std::string a = p.Cmd("LISTEN 0");
    ASSERT_EQ(a.rfind("OK ", 0), 0u) << a;
    uint16_t port = (uint16_t)atoi(a.c_str() + 3);
    int fd = Tcp6();
    sockaddr_in6 to = A6("::ffff:198.18.0.1", port);
    ASSERT_EQ(connect(fd, (sockaddr *)&to, sizeof to), 0) << strerror(errno);
    sockaddr_in6 local = Name(fd);
    EXPECT_EQ(Str(local), Mapped(kTestIp, ntohs(local.sin6_port)));
    EXPECT_EQ(Str(Name(fd, true)), Mapped(kPeerIp, port));
    a = p.Cmd("ACCEPT");
    EXPECT_EQ(a, "OK " + std::string(kTestIp) + ":" + std::to_string(ntohs(local.sin6_port)));
    EXPECT_FAILS_WITH(connect(fd, (sockaddr *)&to, sizeof to), EISCONN);
    ASSERT_EQ(write(fd, "abc", 3), 3);
    EXPECT_EQ(p.Cmd("RECV 3").rfind("OK 3 ", 0), 0u);
    close(fd);

    // Bound first to [::]:0, then connected: the local address becomes the mapped interface address.
    fd = Tcp6();
    sockaddr_in6 any = A6("::", 0);
    ASSERT_EQ(bind(fd, (sockaddr *)&any, sizeof any), 0);
    uint16_t mine = Port(fd);
    a = p.Cmd("LISTEN 0");
    port = (uint16_t)atoi(a.c_str() + 3);
    to.sin6_port = htons(port);
    ASSERT_EQ(connect(fd, (sockaddr *)&to, sizeof to), 0) << strerror(errno);
    EXPECT_EQ(Str(Name(fd)), Mapped(kTestIp, mine));
    p.Cmd("ACCEPT");
    close(fd);
}

TEST_F(Inet6ConnParity, UnreachableIpv6Peer)
{
    // No IPv6 address or route in the test namespace: the kernel's own answer (raw system calls, never the shim) is
    // the oracle; on usertcp the socket moves to the kernel and gets the same.
    sockaddr_in6 to = A6("2001:db8::1", 80);
    int k = (int)syscall(SYS_socket, AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(k, 0);
    errno = 0;
    long kr = syscall(SYS_connect, k, &to, sizeof to);
    int kernelErrno = errno;
    syscall(SYS_close, k);
    ASSERT_EQ(kr, -1);
    EXPECT_TRUE(kernelErrno == ENETUNREACH || kernelErrno == EADDRNOTAVAIL) << strerror(kernelErrno);
    int fd = Tcp6();
    EXPECT_FAILS_WITH(connect(fd, (sockaddr *)&to, sizeof to), kernelErrno);
    EXPECT_EQ(GetInt(fd, SOL_SOCKET, SO_DOMAIN), AF_INET6);
    close(fd);
}
