// POSIX parity for TCP sockets: the same expectations on the kernel and on usertcp (tests.mk runs this binary both
// ways). Today this covers what needs no peer: creation, options, binding, listening, modes, readiness and the
// errors of a socket that is not connected. Connected sockets are covered by conn_parity_test.cc, which needs the test
// network and a kernel peer (tests/c/run-conn-parity.sh).
#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>
#include "helpers.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

namespace {

int Tcp(int flags = 0)
{
    int fd = socket(AF_INET, SOCK_STREAM | flags, 0);
    EXPECT_GE(fd, 0) << strerror(errno);
    return fd;
}

sockaddr_in Any(uint16_t port = 0)
{
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    return a;
}

int GetInt(int fd, int level, int name)
{
    int v = -12345;
    socklen_t len = sizeof v;
    EXPECT_EQ(getsockopt(fd, level, name, &v, &len), 0) << strerror(errno);
    EXPECT_EQ(len, sizeof v);
    return v;
}

uint16_t LocalPort(int fd)
{
    sockaddr_in a{};
    socklen_t len = sizeof a;
    EXPECT_EQ(getsockname(fd, (sockaddr *)&a, &len), 0);
    return ntohs(a.sin_port);
}

// Errno after a call, read in its own statement (no argument-evaluation-order surprises).
#define EXPECT_FAILS_WITH(call, err)                                                                                   \
    do {                                                                                                               \
        errno = 0;                                                                                                     \
        long _r = (long)(call);                                                                                        \
        int _e = errno;                                                                                                \
        EXPECT_EQ(_r, -1) << #call;                                                                                    \
        EXPECT_EQ(_e, err) << #call << ": " << strerror(_e);                                                           \
    } while (0)

} // namespace

TEST(SocketParity, CreationFlagsAndErrors)
{
    int fd = Tcp(SOCK_NONBLOCK | SOCK_CLOEXEC);
    EXPECT_TRUE(fcntl(fd, F_GETFL) & O_NONBLOCK);
    EXPECT_EQ(fcntl(fd, F_GETFD), FD_CLOEXEC);
    EXPECT_EQ(fcntl(fd, F_GETFL) & O_ACCMODE, O_RDWR);
    struct stat st;
    ASSERT_EQ(fstat(fd, &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    close(fd);
    // POSIX: a new socket gets the lowest free descriptor number, on the kernel and on usertcp alike.
    int probe = dup(0);
    ASSERT_GE(probe, 0);
    close(probe);
    int again = Tcp();
    EXPECT_EQ(again, probe);
    close(again);
    EXPECT_FAILS_WITH(socket(AF_INET, SOCK_STREAM | 0x40000000, 0), EINVAL);
}

TEST(SocketParity, IdentityOptions)
{
    int fd = Tcp();
    EXPECT_EQ(GetInt(fd, SOL_SOCKET, SO_TYPE), SOCK_STREAM);
    EXPECT_EQ(GetInt(fd, SOL_SOCKET, SO_DOMAIN), AF_INET);
    EXPECT_EQ(GetInt(fd, SOL_SOCKET, SO_PROTOCOL), IPPROTO_TCP);
    EXPECT_EQ(GetInt(fd, SOL_SOCKET, SO_ACCEPTCONN), 0);
    EXPECT_EQ(GetInt(fd, SOL_SOCKET, SO_ERROR), 0);
    int one = 1;
    EXPECT_FAILS_WITH(setsockopt(fd, SOL_SOCKET, SO_TYPE, &one, sizeof one), ENOPROTOOPT);
    close(fd);
}

TEST(SocketParity, BooleanAndIntegerOptionsRoundTrip)
{
    int fd = Tcp();
    struct { int level, name; } bools[] = { { SOL_SOCKET, SO_REUSEADDR }, { SOL_SOCKET, SO_REUSEPORT },
                                            { SOL_SOCKET, SO_KEEPALIVE }, { IPPROTO_TCP, TCP_NODELAY },
                                            { IPPROTO_TCP, TCP_CORK } };
    for (auto b : bools) {
        EXPECT_EQ(GetInt(fd, b.level, b.name), 0) << b.level << "/" << b.name;
        int v = 7; // any non-zero value reads back as 1
        ASSERT_EQ(setsockopt(fd, b.level, b.name, &v, sizeof v), 0);
        EXPECT_EQ(GetInt(fd, b.level, b.name), 1) << b.level << "/" << b.name;
    }
    int idle = 30, intvl = 5, cnt = 3, uto = 10000;
    ASSERT_EQ(setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle), 0);
    ASSERT_EQ(setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl), 0);
    ASSERT_EQ(setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt), 0);
    ASSERT_EQ(setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &uto, sizeof uto), 0);
    EXPECT_EQ(GetInt(fd, IPPROTO_TCP, TCP_KEEPIDLE), 30);
    EXPECT_EQ(GetInt(fd, IPPROTO_TCP, TCP_KEEPINTVL), 5);
    EXPECT_EQ(GetInt(fd, IPPROTO_TCP, TCP_KEEPCNT), 3);
    EXPECT_EQ(GetInt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT), 10000);
    int bad = 0;
    EXPECT_FAILS_WITH(setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &bad, sizeof bad), EINVAL);
    bad = 200;
    EXPECT_FAILS_WITH(setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &bad, sizeof bad), EINVAL);
    bad = -1;
    EXPECT_FAILS_WITH(setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &bad, sizeof bad), EINVAL);
    close(fd);
}

TEST(SocketParity, OptionLengthRules)
{
    int fd = Tcp();
    int v = 1;
    EXPECT_FAILS_WITH(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &v, 2), EINVAL);
    EXPECT_FAILS_WITH(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, nullptr, sizeof v), EFAULT);
    EXPECT_FAILS_WITH(setsockopt(fd, SOL_SOCKET, 9999, &v, sizeof v), ENOPROTOOPT);
    EXPECT_FAILS_WITH(setsockopt(fd, IPPROTO_TCP, 9999, &v, sizeof v), ENOPROTOOPT);
    // getsockopt truncates to the caller's length and reports what it wrote.
    ASSERT_EQ(setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &v, sizeof v), 0);
    unsigned char small[2] = { 0xee, 0xee };
    socklen_t len = 2;
    ASSERT_EQ(getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, small, &len), 0);
    EXPECT_EQ(len, 2u);
    EXPECT_EQ(small[0], 1);
    close(fd);
}

TEST(SocketParity, BufferSizesAreDoubledAndClamped)
{
    int fd = Tcp();
    int v = 65536;
    ASSERT_EQ(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof v), 0);
    EXPECT_EQ(GetInt(fd, SOL_SOCKET, SO_RCVBUF), 131072);
    ASSERT_EQ(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof v), 0);
    EXPECT_EQ(GetInt(fd, SOL_SOCKET, SO_SNDBUF), 131072);
    v = 1;
    ASSERT_EQ(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof v), 0);
    EXPECT_EQ(GetInt(fd, SOL_SOCKET, SO_RCVBUF), 2304);
    ASSERT_EQ(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof v), 0);
    EXPECT_EQ(GetInt(fd, SOL_SOCKET, SO_SNDBUF), 4608);
    // Large requests are clamped to this machine's net.core.rmem_max / wmem_max, then doubled (iperf3 -w checks).
    auto sysctl = [](const char *path) {
        long n = 212992;
        if (FILE *f = fopen(path, "r")) {
            if (fscanf(f, "%ld", &n) != 1) n = 212992;
            fclose(f);
        }
        return n;
    };
    long rmax = sysctl("/proc/sys/net/core/rmem_max"), wmax = sysctl("/proc/sys/net/core/wmem_max");
    v = 64 << 20;
    ASSERT_EQ(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof v), 0);
    EXPECT_EQ(GetInt(fd, SOL_SOCKET, SO_RCVBUF), 2 * std::min<long>(v, rmax));
    ASSERT_EQ(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof v), 0);
    EXPECT_EQ(GetInt(fd, SOL_SOCKET, SO_SNDBUF), 2 * std::min<long>(v, wmax));
    close(fd);
}

TEST(SocketParity, LingerAndTimeouts)
{
    int fd = Tcp();
    linger l = { 1, 5 };
    ASSERT_EQ(setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l), 0);
    linger got{};
    socklen_t len = sizeof got;
    ASSERT_EQ(getsockopt(fd, SOL_SOCKET, SO_LINGER, &got, &len), 0);
    EXPECT_EQ(got.l_onoff, 1);
    EXPECT_EQ(got.l_linger, 5);
    EXPECT_FAILS_WITH(setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, 4), EINVAL);
    timeval tv = { 2, 500000 };
    ASSERT_EQ(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
    timeval gtv{};
    len = sizeof gtv;
    ASSERT_EQ(getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &gtv, &len), 0);
    EXPECT_EQ(gtv.tv_sec, 2);
    EXPECT_EQ(gtv.tv_usec, 500000);
    tv.tv_usec = 2000000;
    EXPECT_FAILS_WITH(setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv), EDOM);
    close(fd);
}

TEST(SocketParity, CongestionControlName)
{
    int fd = Tcp();
    char name[16] = {};
    socklen_t len = sizeof name;
    ASSERT_EQ(getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, name, &len), 0);
    EXPECT_GT(strlen(name), 0u); // the default differs between machines (net.ipv4.tcp_congestion_control)
    ASSERT_EQ(setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, "reno", 4), 0);
    len = sizeof name;
    ASSERT_EQ(getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, name, &len), 0);
    EXPECT_STREQ(name, "reno");
    EXPECT_FAILS_WITH(setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, "no-such-algo", 12), ENOENT);
    close(fd);
}

TEST(SocketParity, BindRules)
{
    int a = Tcp();
    sockaddr_in addr = Any();
    ASSERT_EQ(bind(a, (sockaddr *)&addr, sizeof addr), 0);
    uint16_t port = LocalPort(a);
    EXPECT_NE(port, 0);
    EXPECT_FAILS_WITH(bind(a, (sockaddr *)&addr, sizeof addr), EINVAL); // already bound
    int b = Tcp();
    addr = Any(port);
    ASSERT_EQ(listen(a, 1), 0);
    EXPECT_FAILS_WITH(bind(b, (sockaddr *)&addr, sizeof addr), EADDRINUSE);
    EXPECT_FAILS_WITH(bind(b, (sockaddr *)&addr, sizeof addr - 1), EINVAL);
    sockaddr_in6 six{};
    six.sin6_family = AF_INET6;
    EXPECT_FAILS_WITH(bind(b, (sockaddr *)&six, sizeof six), EAFNOSUPPORT);
    EXPECT_FAILS_WITH(bind(b, nullptr, sizeof addr), EFAULT);
    close(a);
    close(b);
}

TEST(SocketParity, ReusePortSharesAPort)
{
    int one = 1;
    int a = Tcp(), b = Tcp();
    ASSERT_EQ(setsockopt(a, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one), 0);
    ASSERT_EQ(setsockopt(b, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one), 0);
    sockaddr_in addr = Any();
    ASSERT_EQ(bind(a, (sockaddr *)&addr, sizeof addr), 0);
    addr = Any(LocalPort(a));
    ASSERT_EQ(bind(b, (sockaddr *)&addr, sizeof addr), 0);
    ASSERT_EQ(listen(a, 8), 0);
    ASSERT_EQ(listen(b, 8), 0);
    close(a);
    close(b);
}

TEST(SocketParity, ListenAutobindsAndAcceptsNothing)
{
    int l = Tcp(SOCK_NONBLOCK);
    ASSERT_EQ(listen(l, 16), 0);
    EXPECT_NE(LocalPort(l), 0);
    EXPECT_EQ(GetInt(l, SOL_SOCKET, SO_ACCEPTCONN), 1);
    EXPECT_FAILS_WITH(accept4(l, nullptr, nullptr, 0), EAGAIN);
    EXPECT_FAILS_WITH(accept4(l, nullptr, nullptr, 0x1), EINVAL);
    int s = Tcp();
    EXPECT_FAILS_WITH(accept(s, nullptr, nullptr), EINVAL); // not listening
    pollfd p = { l, POLLIN | POLLOUT, 0 };
    EXPECT_EQ(poll(&p, 1, 0), 0);
    close(s);
    close(l);
}

TEST(SocketParity, UnconnectedSocketIo)
{
    int fd = Tcp(SOCK_NONBLOCK);
    char buf[4] = {};
    EXPECT_FAILS_WITH(read(fd, buf, sizeof buf), ENOTCONN);
    EXPECT_FAILS_WITH(recv(fd, buf, sizeof buf, 0), ENOTCONN);
    EXPECT_FAILS_WITH(send(fd, buf, sizeof buf, MSG_NOSIGNAL), EPIPE);
    sockaddr_in peer{};
    socklen_t len = sizeof peer;
    EXPECT_FAILS_WITH(getpeername(fd, (sockaddr *)&peer, &len), ENOTCONN);
    EXPECT_FAILS_WITH(shutdown(fd, 7), EINVAL);
    int avail = -1;
    ASSERT_EQ(ioctl(fd, FIONREAD, &avail), 0);
    EXPECT_EQ(avail, 0);
    EXPECT_FAILS_WITH(pread(fd, buf, 1, 0), ESPIPE);
    close(fd);
}

TEST(SocketParity, WriteWithoutConnectionRaisesSigpipe)
{
    int fd = Tcp();
    struct sigaction ign{}, old{};
    ign.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &ign, &old);
    sigset_t pending;
    EXPECT_FAILS_WITH(write(fd, "x", 1), EPIPE);
    sigaction(SIGPIPE, &old, nullptr);
    sigpending(&pending);
    EXPECT_FALSE(sigismember(&pending, SIGPIPE));
    close(fd);
}

TEST(SocketParity, FreshSocketReadiness)
{
    int fd = Tcp();
    pollfd p = { fd, POLLIN | POLLOUT, 0 };
    ASSERT_EQ(poll(&p, 1, 0), 1);
    EXPECT_EQ(p.revents, POLLOUT | POLLHUP);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT;
    ev.data.u64 = 42;
    ASSERT_EQ(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev), 0);
    EXPECT_FAILS_WITH(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev), EEXIST);
    epoll_event out[2];
    ASSERT_EQ(epoll_wait(ep, out, 2, 0), 1);
    EXPECT_EQ(out[0].events, (uint32_t)(EPOLLOUT | EPOLLHUP));
    EXPECT_EQ(out[0].data.u64, 42u);
    // Edge-triggered: reported once, then not again until something changes.
    ev.events = EPOLLIN | EPOLLOUT | EPOLLET;
    ASSERT_EQ(epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev), 0);
    EXPECT_EQ(epoll_wait(ep, out, 2, 0), 1);
    EXPECT_EQ(epoll_wait(ep, out, 2, 0), 0);
    // One-shot: reported once, then disarmed until EPOLL_CTL_MOD.
    ev.events = EPOLLOUT | EPOLLONESHOT;
    ASSERT_EQ(epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev), 0);
    EXPECT_EQ(epoll_wait(ep, out, 2, 0), 1);
    EXPECT_EQ(epoll_wait(ep, out, 2, 0), 0);
    ASSERT_EQ(epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr), 0);
    EXPECT_FAILS_WITH(epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr), ENOENT);
    ASSERT_EQ(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev), 0);
    close(ep);
    // An epoll fd that was in use and is closed now, and one that never existed.
    EXPECT_FAILS_WITH(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev), EBADF);
    EXPECT_FAILS_WITH(epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev), EBADF);
    EXPECT_FAILS_WITH(epoll_ctl(-1, EPOLL_CTL_ADD, fd, &ev), EBADF);
    close(fd);
}

// One socket in two epoll sets, and in one set twice through a dup (Linux keys a registration by file and fd): each
// registration reports on its own, and removing one (or re-adding it) leaves the others as they were. (usertcp: the
// socket's first registration is embedded in the socket object, the others are separate objects.)
TEST(SocketParity, OneSocketInTwoEpollSetsAndTwiceThroughDup)
{
    int fd = Tcp();
    int fd2 = dup(fd);
    ASSERT_GE(fd2, 0);
    int ep1 = epoll_create1(0), ep2 = epoll_create1(0);
    ASSERT_GE(ep1, 0);
    ASSERT_GE(ep2, 0);
    epoll_event ev{};
    ev.events = EPOLLOUT;
    ev.data.u64 = 1;
    ASSERT_EQ(epoll_ctl(ep1, EPOLL_CTL_ADD, fd, &ev), 0);
    ev.data.u64 = 2;
    ASSERT_EQ(epoll_ctl(ep2, EPOLL_CTL_ADD, fd, &ev), 0);
    ev.data.u64 = 3;
    ASSERT_EQ(epoll_ctl(ep1, EPOLL_CTL_ADD, fd2, &ev), 0);
    EXPECT_FAILS_WITH(epoll_ctl(ep1, EPOLL_CTL_ADD, fd2, &ev), EEXIST);
    epoll_event out[4];
    auto datas = [&](int ep) {
        int n = epoll_wait(ep, out, 4, 0);
        std::vector<uint64_t> d;
        for (int i = 0; i < n; i++) d.push_back(out[i].data.u64);
        std::sort(d.begin(), d.end());
        return d;
    };
    EXPECT_EQ(datas(ep1), (std::vector<uint64_t>{1, 3}));
    EXPECT_EQ(datas(ep2), (std::vector<uint64_t>{2}));
    // The first registration removed: the other two still report; added again with new data, it reports that.
    ASSERT_EQ(epoll_ctl(ep1, EPOLL_CTL_DEL, fd, nullptr), 0);
    EXPECT_EQ(datas(ep1), (std::vector<uint64_t>{3}));
    EXPECT_EQ(datas(ep2), (std::vector<uint64_t>{2}));
    ev.data.u64 = 4;
    ASSERT_EQ(epoll_ctl(ep1, EPOLL_CTL_ADD, fd, &ev), 0);
    EXPECT_EQ(datas(ep1), (std::vector<uint64_t>{3, 4}));
    // One-shot on one registration disarms only that one.
    ev.events = EPOLLOUT | EPOLLONESHOT;
    ev.data.u64 = 5;
    ASSERT_EQ(epoll_ctl(ep2, EPOLL_CTL_MOD, fd, &ev), 0);
    EXPECT_EQ(datas(ep2), (std::vector<uint64_t>{5}));
    EXPECT_EQ(datas(ep2), (std::vector<uint64_t>{}));
    EXPECT_EQ(datas(ep1), (std::vector<uint64_t>{3, 4}));
    // Every fd of the socket closed: its registrations are gone from both sets.
    close(fd);
    close(fd2);
    EXPECT_EQ(datas(ep1), (std::vector<uint64_t>{}));
    ev.events = EPOLLOUT;
    EXPECT_FAILS_WITH(epoll_ctl(ep2, EPOLL_CTL_MOD, fd, &ev), EBADF);
    // A new socket (it may reuse the closed one's object and fd number) starts with no registration.
    int fd3 = Tcp();
    EXPECT_EQ(datas(ep1), (std::vector<uint64_t>{}));
    ev.data.u64 = 6;
    ASSERT_EQ(epoll_ctl(ep2, EPOLL_CTL_ADD, fd3, &ev), 0);
    EXPECT_EQ(datas(ep2), (std::vector<uint64_t>{6}));
    close(fd3);
    close(ep1);
    close(ep2);
}

TEST(SocketParity, MixedKernelAndSocketPoll)
{
    int fd = Tcp();
    int p[2];
    ASSERT_EQ(pipe(p), 0);
    ASSERT_EQ(write(p[1], "x", 1), 1);
    pollfd fds[3] = { { p[0], POLLIN, 0 }, { fd, POLLOUT, 0 }, { -1, POLLIN, 0 } };
    ASSERT_EQ(poll(fds, 3, 0), 2);
    EXPECT_EQ(fds[0].revents, POLLIN);
    EXPECT_EQ(fds[1].revents, POLLOUT | POLLHUP);
    EXPECT_EQ(fds[1].fd, fd);
    EXPECT_EQ(fds[2].revents, 0);
    int ep = epoll_create1(0);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = p[0];
    ASSERT_EQ(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev), 0);
    ev.events = EPOLLOUT;
    ev.data.fd = fd;
    ASSERT_EQ(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev), 0);
    epoll_event out[4];
    ASSERT_EQ(epoll_wait(ep, out, 4, 0), 2);
    close(ep);
    close(p[0]);
    close(p[1]);
    close(fd);
}

TEST(SocketParity, DupSharesTheSocket)
{
    int fd = Tcp();
    int d = dup(fd);
    ASSERT_GE(d, 0);
    ASSERT_EQ(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
    EXPECT_TRUE(fcntl(d, F_GETFL) & O_NONBLOCK) << "status flags are shared by dups";
    int c = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    ASSERT_GE(c, 0);
    EXPECT_EQ(fcntl(c, F_GETFD), FD_CLOEXEC);
    EXPECT_EQ(fcntl(d, F_GETFD), 0) << "close-on-exec is per fd";
    int one = 1;
    ASSERT_EQ(setsockopt(d, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one), 0);
    EXPECT_EQ(GetInt(fd, SOL_SOCKET, SO_KEEPALIVE), 1);
    close(fd);
    EXPECT_EQ(GetInt(d, SOL_SOCKET, SO_KEEPALIVE), 1) << "the socket lives while a dup is open";
    int target = d + 100;
    ASSERT_EQ(dup2(d, target), target);
    EXPECT_EQ(GetInt(target, SOL_SOCKET, SO_TYPE), SOCK_STREAM);
    EXPECT_FAILS_WITH(dup3(d, d, 0), EINVAL);
    EXPECT_EQ(dup2(d, d), d);
    close(target);
    close(c);
    close(d);
    EXPECT_FAILS_WITH(close(d), EBADF);
}

TEST(SocketParity, KernelFdDuplicatedOverASocket)
{
    int fd = Tcp();
    int p[2];
    ASSERT_EQ(pipe(p), 0);
    ASSERT_EQ(dup2(p[1], fd), fd);
    ASSERT_EQ(write(fd, "k", 1), 1) << "fd now refers to the pipe";
    char c;
    ASSERT_EQ(read(p[0], &c, 1), 1);
    EXPECT_EQ(c, 'k');
    close(fd);
    close(p[0]);
    close(p[1]);
}

TEST(SocketParity, FionbioAndNonblockingModes)
{
    int fd = Tcp();
    int on = 1;
    ASSERT_EQ(ioctl(fd, FIONBIO, &on), 0);
    EXPECT_TRUE(fcntl(fd, F_GETFL) & O_NONBLOCK);
    on = 0;
    ASSERT_EQ(ioctl(fd, FIONBIO, &on), 0);
    EXPECT_FALSE(fcntl(fd, F_GETFL) & O_NONBLOCK);
    close(fd);
}

// The numbers a program gets are the kernel's lowest-free ones whatever mix of sockets and kernel files it opens and
// closes (usertcp reserves each socket's number in the kernel, so a file opened meanwhile skips it, and gives it back
// at close, so the next file or socket may take it). Started runtime first: the sockets below take the managed path.
TEST(SocketParity, DescriptorNumbersInterleavedWithFilesAreTheKernels)
{
    int warm = Tcp();
    pollfd pf{ warm, POLLIN, 0 };
    ASSERT_EQ(poll(&pf, 1, 0), 1); // a fresh socket reports POLLHUP; on usertcp this starts the stack
    close(warm);
    int base = dup(0);
    ASSERT_GE(base, 0);
    close(base); // base: the lowest free number; everything below it stays open through this test
    auto file = [] { return open("/dev/null", O_RDONLY | O_CLOEXEC); };
    int s0 = Tcp();
    EXPECT_EQ(s0, base);
    int f1 = file();
    EXPECT_EQ(f1, base + 1);
    int s2 = Tcp(SOCK_CLOEXEC);
    EXPECT_EQ(s2, base + 2);
    ASSERT_EQ(close(s0), 0);
    int f0 = file();
    EXPECT_EQ(f0, base) << "a file takes the number a closed socket gave back";
    ASSERT_EQ(close(f1), 0);
    int s1 = Tcp();
    EXPECT_EQ(s1, base + 1) << "a socket takes the number a closed file gave back";
    int p[2];
    ASSERT_EQ(close(f0), 0);
    ASSERT_EQ(pipe(p), 0);
    EXPECT_EQ(p[0], base);
    EXPECT_EQ(p[1], base + 3);
    int d = dup(s2);
    EXPECT_EQ(d, base + 4);
    ASSERT_EQ(close(s1), 0);
    int d2 = fcntl(s2, F_DUPFD, 0);
    EXPECT_EQ(d2, base + 1) << "F_DUPFD: the lowest free number";
    int d3 = fcntl(s2, F_DUPFD_CLOEXEC, base + 2);
    EXPECT_EQ(d3, base + 5) << "F_DUPFD: the lowest free number at or above its argument";
    ASSERT_EQ(close(p[0]), 0);
    ASSERT_EQ(close(d), 0);
    int s3 = Tcp();
    EXPECT_EQ(s3, base);
    int f4 = file();
    EXPECT_EQ(f4, base + 4);
    for (int fd : { s2, p[1], d2, d3, s3, f4 }) EXPECT_EQ(close(fd), 0) << fd;
    int after = dup(0);
    EXPECT_EQ(after, base) << "every number given back";
    close(after);
}

// Sockets opened and closed by several threads at once (usertcp reserves and releases the numbers without a lock):
// no two live sockets ever share a number, and every number is a socket until its close.
TEST(SocketParity, ConcurrentSocketsNeverShareANumber)
{
    constexpr int kThreads = 4, kRounds = 1500, kMax = 4096;
    static std::atomic<int> owner[kMax];
    for (auto &o : owner) o.store(-1);
    std::atomic<int> bad{ 0 };
    std::vector<std::thread> ts;
    for (int t = 0; t < kThreads; t++)
        ts.emplace_back([t, &bad] {
            for (int i = 0; i < kRounds; i++) {
                int fd = socket(AF_INET, SOCK_STREAM | (i & 1 ? SOCK_CLOEXEC : 0), 0);
                if (fd < 0 || fd >= kMax) {
                    bad++;
                    continue;
                }
                int was = -1;
                if (!owner[fd].compare_exchange_strong(was, t)) bad++; // another thread holds this number
                int type = 0;
                socklen_t len = sizeof type;
                if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM) bad++;
                if ((fcntl(fd, F_GETFD) == FD_CLOEXEC) != ((i & 1) != 0)) bad++;
                owner[fd].store(-1);
                if (close(fd) != 0) bad++;
            }
        });
    for (auto &t : ts) t.join();
    EXPECT_EQ(bad.load(), 0);
    int probe = dup(0);
    ASSERT_GE(probe, 0);
    close(probe);
    int again = Tcp();
    EXPECT_EQ(again, probe) << "no number leaked";
    close(again);
}
