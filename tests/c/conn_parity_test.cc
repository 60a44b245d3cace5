// POSIX parity for CONNECTED TCP sockets: the same binary and the same expectations on the kernel (the oracle) and on
// usertcp. tests/c/run-conn-parity.sh runs it twice in the server namespace of the test network: once with
// 198.18.0.2 configured in the kernel, once under LD_PRELOAD with the user stack owning 198.18.0.2. The other end of
// every connection is tests/c/progs/peer.c, a kernel process at 198.18.0.1 that takes orders over a UNIX socket
// (PEER_CTL), so the control channel never crosses the stack under test.
//
// An expectation that differs on usertcp by design is skipped only in usertcp mode (UsertcpMode()), with a comment
// naming the entry in docs/compatibility.md "Known differences".
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <dirent.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <pthread.h>

#include <algorithm>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "peer_client.h"

using ut::NowMs;
using ut::Peer;
using ut::Readable;

namespace {

constexpr const char *kPeerIp = "198.18.0.1";
constexpr const char *kTestIp = "198.18.0.2";

bool UsertcpMode()
{
    const char *p = getenv("LD_PRELOAD");
    return p && strstr(p, "libusertcp") && getenv("USERTCP_IP");
}


sockaddr_in Addr(const char *ip, uint16_t port)
{
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    inet_pton(AF_INET, ip, &a.sin_addr);
    return a;
}

std::string Str(const sockaddr_in &a)
{
    char ip[32];
    inet_ntop(AF_INET, &a.sin_addr, ip, sizeof ip);
    return std::string(ip) + ":" + std::to_string(ntohs(a.sin_port));
}

sockaddr_in Name(int fd, bool peer)
{
    sockaddr_in a{};
    socklen_t len = sizeof a;
    int r = peer ? getpeername(fd, (sockaddr *)&a, &len) : getsockname(fd, (sockaddr *)&a, &len);
    EXPECT_EQ(r, 0) << strerror(errno);
    EXPECT_EQ(len, sizeof a);
    return a;
}

unsigned char PatternByte(long i) { return (unsigned char)(i % 251); }

uint32_t Fnv(const void *p, size_t n, uint32_t h = 2166136261u)
{
    for (size_t i = 0; i < n; i++) h = (h ^ ((const unsigned char *)p)[i]) * 16777619u;
    return h;
}

std::string Hex(uint32_t h)
{
    char s[16];
    snprintf(s, sizeof s, "%08x", h);
    return s;
}

std::vector<unsigned char> Bytes(size_t n, unsigned seed)
{
    std::vector<unsigned char> v(n);
    for (size_t i = 0; i < n; i++) v[i] = (unsigned char)(i * 7 + seed + (i >> 8));
    return v;
}

// Errno after a call, read in its own statement.
#define EXPECT_FAILS_WITH(call, err)                                                                                   \
    do {                                                                                                               \
        errno = 0;                                                                                                     \
        long _r = (long)(call);                                                                                        \
        int _e = errno;                                                                                                \
        EXPECT_EQ(_r, -1) << #call;                                                                                    \
        EXPECT_EQ(_e, err) << #call << ": " << strerror(_e);                                                           \
    } while (0)


int SoErrorOf(int fd)
{
    int v = -1;
    socklen_t len = sizeof v;
    return getsockopt(fd, SOL_SOCKET, SO_ERROR, &v, &len) == 0 ? v : -1;
}

// A connection from this process (the side under test) to the peer.
struct Conn {
    Peer peer;
    int fd = -1;
    std::string peerSeen; // our address as the peer's accept() reported it

    explicit Conn(int flags = 0, int peerRcvbuf = 0)
    {
        if (!peer.Ok()) return;
        if (peerRcvbuf) peer.Cmd("RCVBUF %d", peerRcvbuf);
        uint16_t port = peer.Listen();
        fd = socket(AF_INET, SOCK_STREAM | flags, 0);
        sockaddr_in to = Addr(kPeerIp, port);
        int r = connect(fd, (sockaddr *)&to, sizeof to);
        if (r != 0 && errno == EINPROGRESS) {
            pollfd p = { fd, POLLOUT, 0 };
            if (poll(&p, 1, 3000) == 1 && SoErrorOf(fd) == 0) r = 0;
        }
        if (r != 0) {
            ADD_FAILURE() << "connect: " << strerror(errno);
            close(fd);
            fd = -1;
            return;
        }
        std::string a = peer.Cmd("ACCEPT");
        if (a.rfind("OK ", 0) == 0) peerSeen = a.substr(3);
        else ADD_FAILURE() << "peer ACCEPT: " << a;
    }
    ~Conn()
    {
        if (fd >= 0) close(fd);
    }
};


// Reads exactly n bytes within a few seconds (the socket may be blocking or not).
std::vector<unsigned char> ReadN(int fd, size_t n)
{
    std::vector<unsigned char> v(n);
    size_t got = 0;
    long deadline = NowMs() + 5000;
    while (got < n && NowMs() < deadline) {
        if (Readable(fd, 200) <= 0) continue;
        ssize_t r = recv(fd, v.data() + got, n - got, MSG_DONTWAIT);
        if (r == 0) break;
        if (r > 0) got += r;
    }
    v.resize(got);
    return v;
}

bool IsPattern(const std::vector<unsigned char> &v, long from = 0)
{
    for (size_t i = 0; i < v.size(); i++)
        if (v[i] != PatternByte(from + (long)i)) return false;
    return true;
}

// Waits until FIONREAD reports at least n bytes (the peer's data may still be on the wire when it answers).
int WaitQueued(int fd, int n)
{
    int q = -1;
    for (long deadline = NowMs() + 3000; NowMs() < deadline;) {
        if (ioctl(fd, FIONREAD, &q) != 0) return -1;
        if (q >= n) return q;
        usleep(5000);
    }
    return q;
}

int TcpState(int fd)
{
    tcp_info ti{};
    socklen_t len = sizeof ti;
    EXPECT_EQ(getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len), 0) << strerror(errno);
    return ti.tcpi_state;
}

int WaitState(int fd, int state)
{
    int s = -1;
    for (long deadline = NowMs() + 3000; NowMs() < deadline; usleep(5000))
        if ((s = TcpState(fd)) == state) break;
    return s;
}

int SoError(int fd)
{
    int v = -1;
    socklen_t len = sizeof v;
    EXPECT_EQ(getsockopt(fd, SOL_SOCKET, SO_ERROR, &v, &len), 0);
    return v;
}

// A closed port on the peer: bind an ephemeral port there and give it back.
uint16_t ClosedPeerPort()
{
    Peer p;
    uint16_t port = p.Listen();
    p.Cmd("LISTEN 0"); // replaces (closes) the first listener
    return port;
}

// The stack still works: a new connection to the peer echoes four bytes.
void ExpectANewConnectionEchoes()
{
    Conn d;
    ASSERT_GE(d.fd, 0);
    d.peer.Start("ECHO 4");
    ASSERT_EQ(write(d.fd, "more", 4), 4);
    EXPECT_EQ(ReadN(d.fd, 4), std::vector<unsigned char>({ 'm', 'o', 'r', 'e' }));
    EXPECT_EQ(d.peer.Answer(), "OK 4");
}

class ConnParity : public ::testing::Test {
protected:
    void SetUp() override
    {
        if (!getenv("PEER_CTL")) GTEST_SKIP() << "PEER_CTL unset: run through tests/c/run-conn-parity.sh";
    }
};

} // namespace

TEST_F(ConnParity, BlockingConnectAndAddresses)
{
    Conn c;
    ASSERT_GE(c.fd, 0);
    sockaddr_in local = Name(c.fd, false), remote = Name(c.fd, true);
    EXPECT_EQ(Str(local).rfind(std::string(kTestIp) + ":", 0), 0u) << Str(local);
    EXPECT_NE(ntohs(local.sin_port), 0);
    EXPECT_EQ(Str(local), c.peerSeen);
    EXPECT_EQ(std::string(inet_ntoa(remote.sin_addr)), kPeerIp);
    EXPECT_EQ(SoError(c.fd), 0);
    EXPECT_EQ(TcpState(c.fd), TCP_ESTABLISHED);
    sockaddr_in again = remote;
    EXPECT_FAILS_WITH(connect(c.fd, (sockaddr *)&again, sizeof again), EISCONN);
    // Truncated address buffers: the call reports the full length and writes only what fits.
    unsigned char small[4] = { 0xee, 0xee, 0xee, 0xee };
    socklen_t len = 2;
    ASSERT_EQ(getpeername(c.fd, (sockaddr *)small, &len), 0);
    EXPECT_EQ(len, sizeof(sockaddr_in));
    EXPECT_EQ(small[0], AF_INET);
    EXPECT_EQ(small[2], 0xee);
}

TEST_F(ConnParity, NonBlockingConnectPollAndEpoll)
{
    Peer p;
    uint16_t port = p.Listen();
    for (int use_epoll = 0; use_epoll < 2; use_epoll++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        sockaddr_in to = Addr(kPeerIp, port);
        EXPECT_FAILS_WITH(connect(fd, (sockaddr *)&to, sizeof to), EINPROGRESS);
        if (use_epoll) {
            int ep = epoll_create1(EPOLL_CLOEXEC);
            epoll_event ev{};
            ev.events = EPOLLOUT;
            ev.data.fd = fd;
            ASSERT_EQ(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev), 0);
            epoll_event out{};
            ASSERT_EQ(epoll_wait(ep, &out, 1, 3000), 1);
            EXPECT_EQ(out.events, (uint32_t)EPOLLOUT);
            EXPECT_EQ(out.data.fd, fd);
            close(ep);
        } else {
            pollfd pf = { fd, POLLOUT | POLLIN, 0 };
            ASSERT_EQ(poll(&pf, 1, 3000), 1);
            EXPECT_EQ(pf.revents, POLLOUT);
        }
        EXPECT_EQ(SoError(fd), 0);
        // Linux: the first connect after the handshake finished reports success, later ones EISCONN.
        EXPECT_EQ(connect(fd, (sockaddr *)&to, sizeof to), 0) << strerror(errno);
        EXPECT_FAILS_WITH(connect(fd, (sockaddr *)&to, sizeof to), EISCONN);
        EXPECT_EQ(TcpState(fd), TCP_ESTABLISHED);
        EXPECT_EQ(p.Cmd("ACCEPT"), "OK " + Str(Name(fd, false)));
        close(fd);
    }
}

TEST_F(ConnParity, ConnectRefused)
{
    uint16_t port = ClosedPeerPort();
    sockaddr_in to = Addr(kPeerIp, port);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    EXPECT_FAILS_WITH(connect(fd, (sockaddr *)&to, sizeof to), ECONNREFUSED);
    EXPECT_EQ(SoError(fd), 0); // the error was reported by connect itself
    close(fd);

    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    EXPECT_FAILS_WITH(connect(fd, (sockaddr *)&to, sizeof to), EINPROGRESS);
    pollfd pf = { fd, POLLOUT | POLLIN, 0 };
    ASSERT_EQ(poll(&pf, 1, 3000), 1);
    EXPECT_TRUE(pf.revents & POLLERR) << pf.revents;
    EXPECT_TRUE(pf.revents & POLLOUT) << pf.revents;
    EXPECT_TRUE(pf.revents & POLLHUP) << pf.revents;
    EXPECT_EQ(SoError(fd), ECONNREFUSED);
    EXPECT_EQ(SoError(fd), 0); // reading SO_ERROR clears it
    EXPECT_EQ(TcpState(fd), TCP_CLOSE);
    close(fd);
}

TEST_F(ConnParity, AcceptFlagsAndPeerAddress)
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    sockaddr_in any = Addr("0.0.0.0", 0);
    ASSERT_EQ(bind(l, (sockaddr *)&any, sizeof any), 0);
    ASSERT_EQ(listen(l, 8), 0);
    uint16_t port = ntohs(Name(l, false).sin_port);
    EXPECT_FAILS_WITH(accept(l, nullptr, nullptr), EAGAIN);

    Peer p;
    ASSERT_TRUE(p.Ok());
    std::string a = p.Cmd("CONNECT %d", port);
    ASSERT_EQ(a.rfind("OK ", 0), 0u) << a;
    uint16_t peerPort = (uint16_t)atoi(a.c_str() + 3);
    ASSERT_GT(Readable(l, 3000), 0);
    sockaddr_in from{};
    socklen_t len = sizeof from;
    int s = accept4(l, (sockaddr *)&from, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    ASSERT_GE(s, 0) << strerror(errno);
    EXPECT_EQ(len, sizeof from);
    EXPECT_EQ(Str(from), std::string(kPeerIp) + ":" + std::to_string(peerPort));
    EXPECT_TRUE(fcntl(s, F_GETFL) & O_NONBLOCK);
    EXPECT_EQ(fcntl(s, F_GETFD), FD_CLOEXEC);
    EXPECT_EQ(Str(Name(s, false)), std::string(kTestIp) + ":" + std::to_string(port));
    EXPECT_EQ(Str(Name(s, true)), Str(from));
    EXPECT_EQ(TcpState(s), TCP_ESTABLISHED);
    // The accepted socket is connected: data flows both ways.
    ASSERT_EQ(write(s, "ping", 4), 4);
    EXPECT_EQ(p.Cmd("RECV 4"), "OK 4 " + Hex(Fnv("ping", 4)));
    close(s);

    // Plain accept: no flags inherited from a non-blocking listener (Linux), NULL address allowed.
    a = p.Cmd("CONNECT %d", port);
    ASSERT_EQ(a.rfind("OK ", 0), 0u) << a;
    ASSERT_GT(Readable(l, 3000), 0);
    s = accept(l, nullptr, nullptr);
    ASSERT_GE(s, 0) << strerror(errno);
    EXPECT_FALSE(fcntl(s, F_GETFL) & O_NONBLOCK);
    EXPECT_EQ(fcntl(s, F_GETFD), 0);
    close(s);
    EXPECT_FAILS_WITH(accept4(l, nullptr, nullptr, 0x40000000), EINVAL);
    close(l);
}

// nginx's pattern per short connection (accept, open the file, close the file, close the connection), and accepts
// interleaved with files and sockets: every number is the kernel's lowest free one (usertcp reserves an accepted
// connection's number in the kernel and gives it back at close).
TEST_F(ConnParity, AcceptedNumbersInterleavedWithFilesAreTheKernels)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in any = Addr("0.0.0.0", 0);
    ASSERT_EQ(bind(l, (sockaddr *)&any, sizeof any), 0);
    ASSERT_EQ(listen(l, 8), 0);
    uint16_t port = ntohs(Name(l, false).sin_port);
    Peer p;
    ASSERT_TRUE(p.Ok());
    auto next = [&] {
        std::string a = p.Cmd("CONNECT %d", port);
        EXPECT_EQ(a.rfind("OK ", 0), 0u) << a;
        EXPECT_GT(Readable(l, 3000), 0);
        return accept4(l, nullptr, nullptr, SOCK_CLOEXEC);
    };
    int base = dup(0);
    ASSERT_GE(base, 0);
    close(base);
    for (int i = 0; i < 3; i++) {
        int c = next();
        EXPECT_EQ(c, base) << "round " << i;
        int f = open("/dev/null", O_RDONLY);
        EXPECT_EQ(f, base + 1) << "round " << i;
        close(f);
        close(c);
    }
    int a0 = next();
    EXPECT_EQ(a0, base);
    int f1 = open("/dev/null", O_RDONLY);
    EXPECT_EQ(f1, base + 1);
    int a2 = next();
    EXPECT_EQ(a2, base + 2);
    ASSERT_EQ(close(a0), 0);
    int f0 = open("/dev/null", O_RDONLY);
    EXPECT_EQ(f0, base) << "a file takes the number a closed connection gave back";
    int s3 = socket(AF_INET, SOCK_STREAM, 0);
    EXPECT_EQ(s3, base + 3);
    ASSERT_EQ(close(f1), 0);
    int a1 = next();
    EXPECT_EQ(a1, base + 1) << "a connection takes the number a closed file gave back";
    int a4 = next();
    EXPECT_EQ(a4, base + 4);
    for (int fd : { f0, a1, a2, s3, a4 }) EXPECT_EQ(close(fd), 0) << fd;
    int after = dup(0);
    EXPECT_EQ(after, base) << "every number given back";
    close(after);
    close(l);
}

TEST_F(ConnParity, ReadWriteRoundTrips)
{
    Conn c;
    ASSERT_GE(c.fd, 0);
    // write / read
    auto d = Bytes(3000, 1);
    c.peer.Start("ECHO 3000");
    ASSERT_EQ(write(c.fd, d.data(), d.size()), (ssize_t)d.size());
    EXPECT_EQ(ReadN(c.fd, d.size()), d);
    EXPECT_EQ(c.peer.Answer(), "OK 3000");
    // writev / readv over uneven pieces
    auto e = Bytes(5000, 2);
    iovec wv[3] = { { e.data(), 1 }, { e.data() + 1, 2999 }, { e.data() + 3000, 2000 } };
    c.peer.Start("ECHO 5000");
    ASSERT_EQ(writev(c.fd, wv, 3), 5000);
    std::vector<unsigned char> back(5000);
    size_t got = 0;
    for (long deadline = NowMs() + 5000; got < back.size() && NowMs() < deadline;) {
        size_t first = got < 10 ? 10 - got : 0;
        iovec rv[2] = { { back.data() + got, first }, { back.data() + got + first, back.size() - got - first } };
        ssize_t r = readv(c.fd, rv, 2);
        if (r <= 0) break;
        got += r;
    }
    EXPECT_EQ(got, back.size());
    EXPECT_EQ(back, e);
    EXPECT_EQ(c.peer.Answer(), "OK 5000");
    // send / recv
    c.peer.Start("ECHO 6");
    ASSERT_EQ(send(c.fd, "hello!", 6, 0), 6);
    char buf[16] = {};
    ASSERT_GT(Readable(c.fd, 3000), 0);
    EXPECT_EQ(recv(c.fd, buf, sizeof buf, 0), 6);
    EXPECT_STREQ(buf, "hello!");
    EXPECT_EQ(c.peer.Answer(), "OK 6");
    // sendmsg / recvmsg: no address for a connected stream, no flags back
    c.peer.Start("ECHO 9");
    char h1[] = "abc", h2[] = "defghi";
    iovec mv[2] = { { h1, 3 }, { h2, 6 } };
    msghdr m{};
    m.msg_iov = mv;
    m.msg_iovlen = 2;
    ASSERT_EQ(sendmsg(c.fd, &m, 0), 9);
    EXPECT_EQ(c.peer.Answer(), "OK 9");
    ASSERT_EQ(WaitQueued(c.fd, 9), 9);
    char r1[4] = {}, r2[16] = {};
    iovec rv[2] = { { r1, 3 }, { r2, sizeof r2 } };
    sockaddr_in from{};
    msghdr rm{};
    rm.msg_name = &from;
    rm.msg_namelen = sizeof from;
    rm.msg_iov = rv;
    rm.msg_iovlen = 2;
    rm.msg_flags = 0x7fff;
    EXPECT_EQ(recvmsg(c.fd, &rm, 0), 9);
    EXPECT_STREQ(r1, "abc");
    EXPECT_STREQ(r2, "defghi");
    EXPECT_EQ(rm.msg_flags, 0);
    EXPECT_EQ(rm.msg_namelen, 0u);
    // sendto with an address on a connected stream: the address is ignored (Linux)
    sockaddr_in elsewhere = Addr("198.18.0.99", 9);
    c.peer.Start("RECV 2");
    EXPECT_EQ(sendto(c.fd, "zz", 2, 0, (sockaddr *)&elsewhere, sizeof elsewhere), 2);
    EXPECT_EQ(c.peer.Answer(), "OK 2 " + Hex(Fnv("zz", 2)));
    // Bulk in both directions: 1 MB each way, content checked by hash.
    std::vector<unsigned char> big = Bytes(1 << 20, 3);
    c.peer.Start("RECV 1048576");
    size_t sent = 0;
    while (sent < big.size()) {
        ssize_t w = write(c.fd, big.data() + sent, big.size() - sent);
        ASSERT_GT(w, 0) << strerror(errno);
        sent += w;
    }
    EXPECT_EQ(c.peer.Answer(), "OK 1048576 " + Hex(Fnv(big.data(), big.size())));
    c.peer.Start("SEND 1048576");
    auto in = ReadN(c.fd, 1 << 20);
    EXPECT_EQ(in.size(), 1u << 20);
    EXPECT_TRUE(IsPattern(in));
    EXPECT_EQ(c.peer.Answer(), "OK 1048576");
}

TEST_F(ConnParity, PeekDontWaitAndFionread)
{
    Conn c;
    ASSERT_GE(c.fd, 0);
    char buf[64];
    int q = -1;
    ASSERT_EQ(ioctl(c.fd, FIONREAD, &q), 0);
    EXPECT_EQ(q, 0);
    EXPECT_FAILS_WITH(recv(c.fd, buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
    EXPECT_EQ(c.peer.Cmd("SEND 10"), "OK 10");
    ASSERT_EQ(WaitQueued(c.fd, 10), 10);
    EXPECT_EQ(recv(c.fd, buf, 4, MSG_PEEK), 4);
    EXPECT_TRUE(IsPattern(std::vector<unsigned char>(buf, buf + 4)));
    EXPECT_EQ(recv(c.fd, buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT), 10);
    ASSERT_EQ(ioctl(c.fd, FIONREAD, &q), 0);
    EXPECT_EQ(q, 10); // peeking consumed nothing
    EXPECT_EQ(recv(c.fd, buf, 3, 0), 3);
    ASSERT_EQ(ioctl(c.fd, FIONREAD, &q), 0);
    EXPECT_EQ(q, 7);
    EXPECT_EQ(recv(c.fd, buf, sizeof buf, MSG_DONTWAIT), 7);
    EXPECT_TRUE(IsPattern(std::vector<unsigned char>(buf, buf + 7), 3));
    EXPECT_FAILS_WITH(recv(c.fd, buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
    // SIOCOUTQ: nothing unacknowledged once the peer has read what we sent.
    c.peer.Start("RECV 5");
    ASSERT_EQ(send(c.fd, "12345", 5, MSG_DONTWAIT), 5);
    EXPECT_EQ(c.peer.Answer(), "OK 5 " + Hex(Fnv("12345", 5)));
    for (long deadline = NowMs() + 2000; NowMs() < deadline; usleep(5000))
        if (ioctl(c.fd, SIOCOUTQ, &q) == 0 && q == 0) break;
    EXPECT_EQ(q, 0);
}

TEST_F(ConnParity, WaitAllGathersSlowPieces)
{
    Conn c;
    ASSERT_GE(c.fd, 0);
    c.peer.Start("SENDSLOW 3000 3 100");
    std::vector<unsigned char> buf(3000);
    long t0 = NowMs();
    EXPECT_EQ(recv(c.fd, buf.data(), buf.size(), MSG_WAITALL), 3000);
    EXPECT_GE(NowMs() - t0, 150);
    EXPECT_TRUE(IsPattern(buf));
    EXPECT_EQ(c.peer.Answer(), "OK 3000");
    // MSG_WAITALL stops early at EOF with what it has.
    EXPECT_EQ(c.peer.Cmd("SEND 100"), "OK 100");
    EXPECT_EQ(c.peer.Cmd("SHUTWR"), "OK");
    EXPECT_EQ(recv(c.fd, buf.data(), buf.size(), MSG_WAITALL), 100);
    EXPECT_EQ(recv(c.fd, buf.data(), buf.size(), MSG_WAITALL), 0);
}

TEST_F(ConnParity, EofAfterPeerShutdownAndRdhup)
{
    Conn c;
    ASSERT_GE(c.fd, 0);
    int ep = epoll_create1(0);
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.fd = c.fd;
    ASSERT_EQ(epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev), 0);
    epoll_event out{};
    EXPECT_EQ(epoll_wait(ep, &out, 1, 50), 0);
    EXPECT_EQ(c.peer.Cmd("SEND 5"), "OK 5");
    EXPECT_EQ(c.peer.Cmd("SHUTWR"), "OK");
    pollfd pf = { c.fd, POLLIN | POLLOUT | POLLRDHUP, 0 };
    for (long deadline = NowMs() + 3000; NowMs() < deadline; usleep(5000)) {
        ASSERT_EQ(poll(&pf, 1, 1000), 1);
        if (pf.revents & POLLRDHUP) break;
    }
    EXPECT_EQ(pf.revents, POLLIN | POLLOUT | POLLRDHUP);
    ASSERT_EQ(epoll_wait(ep, &out, 1, 1000), 1);
    EXPECT_EQ(out.events, (uint32_t)(EPOLLIN | EPOLLRDHUP));
    char buf[16];
    EXPECT_EQ(read(c.fd, buf, sizeof buf), 5);
    EXPECT_EQ(read(c.fd, buf, sizeof buf), 0);
    EXPECT_EQ(read(c.fd, buf, sizeof buf), 0);
    EXPECT_EQ(recv(c.fd, buf, sizeof buf, MSG_DONTWAIT), 0);
    EXPECT_EQ(TcpState(c.fd), TCP_CLOSE_WAIT);
    // Half-closed: we can still send, and our close completes the peer's read to EOF.
    c.peer.Start("WAITEOF");
    ASSERT_EQ(write(c.fd, "tail", 4), 4);
    ASSERT_EQ(shutdown(c.fd, SHUT_WR), 0);
    EXPECT_EQ(c.peer.Answer(), "OK 4");
    EXPECT_FAILS_WITH(send(c.fd, "x", 1, MSG_NOSIGNAL), EPIPE);
    close(ep);
}

TEST_F(ConnParity, OurShutdownStates)
{
    Conn c;
    ASSERT_GE(c.fd, 0);
    ASSERT_EQ(shutdown(c.fd, SHUT_WR), 0);
    EXPECT_EQ(c.peer.Cmd("WAITEOF"), "OK 0");
    EXPECT_EQ(WaitState(c.fd, TCP_FIN_WAIT2), TCP_FIN_WAIT2);
    pollfd pf = { c.fd, POLLIN | POLLOUT | POLLRDHUP, 0 };
    ASSERT_EQ(poll(&pf, 1, 0), 1);
    EXPECT_EQ(pf.revents, POLLOUT); // the write side is shut: still "writable" (a write fails at once)
    // The peer can still talk to us.
    EXPECT_EQ(c.peer.Cmd("SEND 3"), "OK 3");
    EXPECT_EQ(ReadN(c.fd, 3).size(), 3u);
    EXPECT_EQ(c.peer.Cmd("CLOSE"), "OK");
    char b;
    ASSERT_GT(Readable(c.fd, 3000), 0);
    EXPECT_EQ(read(c.fd, &b, 1), 0);
    // Linux hands TIME_WAIT to a separate mini-socket: the application's socket itself is closed.
    EXPECT_EQ(WaitState(c.fd, TCP_CLOSE), TCP_CLOSE);
    EXPECT_FAILS_WITH(shutdown(c.fd, SHUT_RD), ENOTCONN);
}

TEST_F(ConnParity, ResetByPeer)
{
    Conn c;
    ASSERT_GE(c.fd, 0);
    EXPECT_EQ(c.peer.Cmd("RESET"), "OK");
    pollfd pf = { c.fd, POLLIN | POLLOUT | POLLRDHUP, 0 };
    ASSERT_EQ(poll(&pf, 1, 3000), 1);
    for (long deadline = NowMs() + 3000; NowMs() < deadline && !(pf.revents & POLLHUP); usleep(5000))
        poll(&pf, 1, 1000);
    EXPECT_EQ(pf.revents, POLLIN | POLLOUT | POLLRDHUP | POLLERR | POLLHUP);
    char buf[8];
    EXPECT_FAILS_WITH(read(c.fd, buf, sizeof buf), ECONNRESET);
    EXPECT_EQ(read(c.fd, buf, sizeof buf), 0); // the error is reported once
    EXPECT_EQ(SoError(c.fd), 0);
    EXPECT_EQ(TcpState(c.fd), TCP_CLOSE);
    EXPECT_FAILS_WITH(send(c.fd, "x", 1, MSG_NOSIGNAL), EPIPE);
}

TEST_F(ConnParity, ResetReportedThroughSoErrorAndWrite)
{
    Conn c;
    ASSERT_GE(c.fd, 0);
    EXPECT_EQ(c.peer.Cmd("RESET"), "OK");
    for (long deadline = NowMs() + 3000; NowMs() < deadline; usleep(5000))
        if (TcpState(c.fd) == TCP_CLOSE) break;
    EXPECT_EQ(SoError(c.fd), ECONNRESET);
    EXPECT_EQ(SoError(c.fd), 0);
    Conn d;
    ASSERT_GE(d.fd, 0);
    EXPECT_EQ(d.peer.Cmd("RESET"), "OK");
    for (long deadline = NowMs() + 3000; NowMs() < deadline; usleep(5000))
        if (TcpState(d.fd) == TCP_CLOSE) break;
    EXPECT_FAILS_WITH(send(d.fd, "x", 1, MSG_NOSIGNAL), ECONNRESET);
    EXPECT_FAILS_WITH(send(d.fd, "x", 1, MSG_NOSIGNAL), EPIPE);
}

namespace {
volatile sig_atomic_t s_signals;
void CountSignal(int) { s_signals = s_signals + 1; }
} // namespace

TEST_F(ConnParity, EpipeAndSigpipeAfterPeerIsGone)
{
    struct sigaction sa{}, old{};
    sa.sa_handler = CountSignal;
    sigemptyset(&sa.sa_mask);
    ASSERT_EQ(sigaction(SIGPIPE, &sa, &old), 0);
    s_signals = 0;
    Conn c;
    ASSERT_GE(c.fd, 0);
    EXPECT_EQ(c.peer.Cmd("CLOSE"), "OK");
    char b;
    ASSERT_GT(Readable(c.fd, 3000), 0);
    EXPECT_EQ(read(c.fd, &b, 1), 0);
    // The first write after the peer's close is accepted (the peer answers it with RST) ...
    EXPECT_EQ(write(c.fd, "x", 1), 1);
    EXPECT_EQ(WaitState(c.fd, TCP_CLOSE), TCP_CLOSE);
    EXPECT_EQ(s_signals, 0);
    // ... after which every write fails with EPIPE and raises SIGPIPE (Linux records a reset in CLOSE_WAIT as EPIPE).
    EXPECT_FAILS_WITH(write(c.fd, "x", 1), EPIPE);
    EXPECT_EQ(s_signals, 1);
    EXPECT_FAILS_WITH(send(c.fd, "x", 1, 0), EPIPE);
    EXPECT_EQ(s_signals, 2);
    EXPECT_FAILS_WITH(write(c.fd, "x", 1), EPIPE);
    EXPECT_EQ(s_signals, 3);
    // MSG_NOSIGNAL: the same error, no signal.
    EXPECT_FAILS_WITH(send(c.fd, "x", 1, MSG_NOSIGNAL), EPIPE);
    EXPECT_EQ(s_signals, 3);
    // The vector forms with two buffers (usertcp's full path, not the one-buffer fast path): the same.
    char x = 'x', y = 'y';
    iovec two[2] = { { &x, 1 }, { &y, 1 } };
    EXPECT_FAILS_WITH(writev(c.fd, two, 2), EPIPE);
    EXPECT_EQ(s_signals, 4);
    msghdr m{};
    m.msg_iov = two;
    m.msg_iovlen = 2;
    EXPECT_FAILS_WITH(sendmsg(c.fd, &m, MSG_NOSIGNAL), EPIPE);
    EXPECT_EQ(s_signals, 4);
    EXPECT_FAILS_WITH(sendmsg(c.fd, &m, MSG_DONTWAIT), EPIPE);
    EXPECT_EQ(s_signals, 5);
    sigaction(SIGPIPE, &old, nullptr);
}

TEST_F(ConnParity, BackpressureBlocksThenDrains)
{
    Conn c(0, 4096);
    ASSERT_GE(c.fd, 0);
    int small = 8192;
    ASSERT_EQ(setsockopt(c.fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
    // Non-blocking: fill until EAGAIN (the peer reads nothing); bounded.
    std::vector<unsigned char> chunk(4096, 'b');
    long total = 0;
    ssize_t w = 0;
    int again = 0;
    for (long deadline = NowMs() + 5000; NowMs() < deadline && total < (64L << 20);) {
        w = send(c.fd, chunk.data(), chunk.size(), MSG_DONTWAIT);
        if (w < 0) {
            // The window may still open while segments drain into the peer's buffer: settle before concluding.
            if (errno != EAGAIN || ++again == 3) break;
            poll(nullptr, 0, 100);
            continue;
        }
        again = 0;
        total += w;
    }
    ASSERT_EQ(w, -1);
    ASSERT_EQ(errno, EAGAIN);
    ASSERT_GT(total, 0);
    pollfd pf = { c.fd, POLLOUT, 0 };
    EXPECT_EQ(poll(&pf, 1, 200), 0); // not writable while the peer sleeps
    // Blocking: the peer starts reading after 400 ms; our send blocks until then and then completes.
    c.peer.Start("DRAIN 400");
    long t0 = NowMs();
    std::vector<unsigned char> more(64 * 1024, 'c');
    size_t sent = 0;
    while (sent < more.size()) {
        ssize_t r = send(c.fd, more.data() + sent, more.size() - sent, 0);
        ASSERT_GT(r, 0) << strerror(errno);
        sent += r;
    }
    long blocked = NowMs() - t0;
    EXPECT_GE(blocked, 250);
    EXPECT_LT(blocked, 5000);
    total += sent;
    ASSERT_EQ(shutdown(c.fd, SHUT_WR), 0);
    std::string a = c.peer.Answer();
    EXPECT_EQ(a.substr(0, a.find(' ', 3)), "OK " + std::to_string(total));
}

TEST_F(ConnParity, RcvTimeoAndSndTimeo)
{
    Conn c(0, 4096);
    ASSERT_GE(c.fd, 0);
    timeval tv = { 0, 200000 };
    ASSERT_EQ(setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
    char buf[8];
    long t0 = NowMs();
    EXPECT_FAILS_WITH(read(c.fd, buf, sizeof buf), EAGAIN);
    long took = NowMs() - t0;
    EXPECT_GE(took, 150);
    EXPECT_LT(took, 2000);
    // Data that arrives before the timeout is returned (a longer timeout here: on a loaded machine the peer may
    // take more than 200 ms to send its first byte, on either stack).
    timeval longer = { 3, 0 };
    ASSERT_EQ(setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &longer, sizeof longer), 0);
    c.peer.Start("SENDSLOW 2 2 50");
    EXPECT_EQ(recv(c.fd, buf, 1, MSG_WAITALL), 1);
    EXPECT_EQ(c.peer.Answer(), "OK 2");
    // SO_SNDTIMEO: a blocking send into a full window gives up with a partial count or EAGAIN.
    ASSERT_EQ(setsockopt(c.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv), 0);
    std::vector<unsigned char> big(8 << 20, 'd');
    t0 = NowMs();
    ssize_t w = send(c.fd, big.data(), big.size(), 0);
    took = NowMs() - t0;
    EXPECT_GT(w, 0);
    EXPECT_LT(w, (ssize_t)big.size());
    EXPECT_LT(took, 3000);
    t0 = NowMs();
    EXPECT_FAILS_WITH(send(c.fd, big.data(), big.size(), 0), EAGAIN);
    took = NowMs() - t0;
    EXPECT_GE(took, 150);
    EXPECT_LT(took, 2000);
}

TEST_F(ConnParity, BlockingReadInterruptedBySignal)
{
    Conn c;
    ASSERT_GE(c.fd, 0);
    struct sigaction sa{}, old{};
    sa.sa_handler = CountSignal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; // no SA_RESTART: the read must fail with EINTR
    ASSERT_EQ(sigaction(SIGALRM, &sa, &old), 0);
    s_signals = 0;
    itimerval it{};
    it.it_value.tv_usec = 200000;
    ASSERT_EQ(setitimer(ITIMER_REAL, &it, nullptr), 0);
    char buf[8];
    long t0 = NowMs();
    EXPECT_FAILS_WITH(read(c.fd, buf, sizeof buf), EINTR);
    long took = NowMs() - t0;
    EXPECT_EQ(s_signals, 1);
    EXPECT_GE(took, 150);
    EXPECT_LT(took, 3000);
    // The connection is unharmed.
    EXPECT_EQ(c.peer.Cmd("SEND 3"), "OK 3");
    EXPECT_EQ(ReadN(c.fd, 3).size(), 3u);
    sigaction(SIGALRM, &old, nullptr);
    // With SA_RESTART the read is restarted and returns the data that arrives later.
    sa.sa_flags = SA_RESTART;
    ASSERT_EQ(sigaction(SIGALRM, &sa, nullptr), 0);
    ASSERT_EQ(setitimer(ITIMER_REAL, &it, nullptr), 0);
    c.peer.Start("SLEEP 500");
    c.peer.Start("SEND 4");
    EXPECT_EQ(recv(c.fd, buf, 4, MSG_WAITALL), 4);
    EXPECT_EQ(s_signals, 2);
    EXPECT_EQ(c.peer.Answer(), "OK");
    EXPECT_EQ(c.peer.Answer(), "OK 4");
    sigaction(SIGALRM, &old, nullptr);
}

// signal(7), "Interruption of system calls and library functions by signal handlers": with SA_RESTART, blocking
// accept/recv/send on a socket are restarted, unless a timeout is set on the socket (EINTR); poll and epoll_wait are
// never restarted; a call that already transferred data returns that count.
struct SignalScope {
    struct sigaction old_alrm{}, old_usr1{}, old_usr2{};
    SignalScope()
    {
        sigaction(SIGALRM, nullptr, &old_alrm);
        sigaction(SIGUSR1, nullptr, &old_usr1);
        sigaction(SIGUSR2, nullptr, &old_usr2);
        s_signals = 0;
    }
    ~SignalScope()
    {
        itimerval off{};
        setitimer(ITIMER_REAL, &off, nullptr);
        sigaction(SIGALRM, &old_alrm, nullptr);
        sigaction(SIGUSR1, &old_usr1, nullptr);
        sigaction(SIGUSR2, &old_usr2, nullptr);
    }
    static void Install(int sig, int flags)
    {
        struct sigaction sa{};
        sa.sa_handler = CountSignal;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = flags;
        ASSERT_EQ(sigaction(sig, &sa, nullptr), 0);
    }
    static void AlarmIn(long ms)
    {
        itimerval it{};
        it.it_value.tv_sec = ms / 1000;
        it.it_value.tv_usec = (ms % 1000) * 1000;
        ASSERT_EQ(setitimer(ITIMER_REAL, &it, nullptr), 0);
    }
};

// Sends `sig` to the calling thread after `ms` (from another thread: pthread_kill targets exactly this thread).
std::thread SignalMeIn(long ms, int sig)
{
    pthread_t me = pthread_self();
    return std::thread([me, ms, sig] {
        usleep(ms * 1000);
        pthread_kill(me, sig);
    });
}

TEST_F(ConnParity, SaRestartRestartsBlockingAcceptRecvAndSend)
{
    SignalScope scope;
    SignalScope::Install(SIGALRM, SA_RESTART);
    // accept: the peer connects 500 ms in, the signal comes at 200 ms.
    {
        int l = socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in any = Addr("0.0.0.0", 0);
        ASSERT_EQ(bind(l, (sockaddr *)&any, sizeof any), 0);
        ASSERT_EQ(listen(l, 1), 0);
        uint16_t port = ntohs(Name(l, false).sin_port);
        Peer p;
        ASSERT_TRUE(p.Ok());
        p.Start("SLEEP 500");
        p.Start(("CONNECT " + std::to_string(port)).c_str());
        SignalScope::AlarmIn(200);
        long t0 = NowMs();
        int s = accept(l, nullptr, nullptr);
        EXPECT_GE(s, 0) << strerror(errno);
        EXPECT_GE(NowMs() - t0, 400);
        EXPECT_EQ(s_signals, 1);
        EXPECT_EQ(p.Answer(), "OK");
        EXPECT_EQ(p.Answer().rfind("OK ", 0), 0u);
        if (s >= 0) close(s);
        close(l);
    }
    Conn c(0, 4096);
    ASSERT_GE(c.fd, 0);
    // recv: the data arrives 500 ms in.
    c.peer.Start("SLEEP 500");
    c.peer.Start("SEND 3");
    SignalScope::AlarmIn(200);
    char buf[8];
    EXPECT_EQ(recv(c.fd, buf, sizeof buf, 0), 3) << strerror(errno);
    EXPECT_EQ(s_signals, 2);
    EXPECT_EQ(c.peer.Answer(), "OK");
    EXPECT_EQ(c.peer.Answer(), "OK 3");
    // recv MSG_WAITALL that already has part of its data returns the part (no restart once data moved).
    c.peer.Start("SENDSLOW 4 2 600");
    SignalScope::AlarmIn(200);
    EXPECT_EQ(recv(c.fd, buf, 4, MSG_WAITALL), 2);
    EXPECT_EQ(s_signals, 3);
    EXPECT_EQ(c.peer.Answer(), "OK 4");
    EXPECT_EQ(ReadN(c.fd, 2).size(), 2u);
    // send: the window is full and the peer starts reading 500 ms in; the send had sent nothing when the signal came.
    int small = 8192;
    ASSERT_EQ(setsockopt(c.fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
    std::vector<unsigned char> chunk(4096, 'b');
    long total = 0;
    int again = 0;
    for (long deadline = NowMs() + 5000; NowMs() < deadline && total < (64L << 20);) {
        ssize_t w = send(c.fd, chunk.data(), chunk.size(), MSG_DONTWAIT);
        if (w < 0) {
            if (errno != EAGAIN || ++again == 3) break;
            poll(nullptr, 0, 100);
            continue;
        }
        again = 0;
        total += w;
    }
    c.peer.Start("DRAIN 500");
    SignalScope::AlarmIn(200);
    long t0 = NowMs();
    EXPECT_EQ(send(c.fd, chunk.data(), 1000, 0), 1000) << strerror(errno);
    EXPECT_GE(NowMs() - t0, 400);
    EXPECT_EQ(s_signals, 4);
    total += 1000;
    ASSERT_EQ(shutdown(c.fd, SHUT_WR), 0);
    std::string a = c.peer.Answer();
    EXPECT_EQ(a.substr(0, a.find(' ', 3)), "OK " + std::to_string(total));
}

TEST_F(ConnParity, SaRestartKeepsABlockingConnectWaiting)
{
    // A connect whose handshake cannot finish yet (198.18.0.9 does not answer ARP): an SA_RESTART handler at 200 ms
    // lets it go on waiting; a handler without SA_RESTART at 700 ms ends it with EINTR.
    SignalScope scope;
    SignalScope::Install(SIGUSR1, SA_RESTART);
    SignalScope::Install(SIGUSR2, 0);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in to = Addr("198.18.0.9", 9);
    std::thread t1 = SignalMeIn(200, SIGUSR1), t2 = SignalMeIn(700, SIGUSR2);
    long t0 = NowMs();
    EXPECT_FAILS_WITH(connect(fd, (sockaddr *)&to, sizeof to), EINTR);
    long took = NowMs() - t0;
    t1.join();
    t2.join();
    EXPECT_EQ(s_signals, 2);
    EXPECT_GE(took, 600);
    EXPECT_LT(took, 2500);
    close(fd);
}

TEST_F(ConnParity, SaRestartDoesNotRestartTimeoutsOrPollOrEpoll)
{
    SignalScope scope;
    SignalScope::Install(SIGALRM, SA_RESTART);
    Conn c;
    ASSERT_GE(c.fd, 0);
    char buf[8];
    // A receive timeout on the socket: EINTR, not a restart.
    timeval tv = { 2, 0 };
    ASSERT_EQ(setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
    SignalScope::AlarmIn(200);
    long t0 = NowMs();
    EXPECT_FAILS_WITH(read(c.fd, buf, sizeof buf), EINTR);
    EXPECT_LT(NowMs() - t0, 1500);
    EXPECT_EQ(s_signals, 1);
    tv = { 0, 0 };
    ASSERT_EQ(setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
    // poll and epoll_wait over the socket: EINTR.
    SignalScope::AlarmIn(200);
    pollfd pf = { c.fd, POLLIN, 0 };
    EXPECT_FAILS_WITH(poll(&pf, 1, 3000), EINTR);
    EXPECT_EQ(s_signals, 2);
    int ep = epoll_create1(0);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = c.fd;
    ASSERT_EQ(epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev), 0);
    SignalScope::AlarmIn(200);
    EXPECT_FAILS_WITH(epoll_wait(ep, &ev, 1, 3000), EINTR);
    EXPECT_EQ(s_signals, 3);
    close(ep);
    // Still connected and quiet.
    EXPECT_EQ(c.peer.Cmd("SEND 2"), "OK 2");
    EXPECT_EQ(ReadN(c.fd, 2).size(), 2u);
}

// A process-directed signal (kill, alarm) goes to any thread that does not block it. While the application's thread
// waits in a blocking call it blocks its signals except inside its sleeps (cshim/signals.c), so if some other thread
// of the process -- one of the library's, started at load or later -- left them open, the kernel would run the handler
// there and the call would never see it (no EINTR; an epoll_wait(-1) would sleep on). On the kernel the process has
// no thread but the test's; under usertcp every library thread must block the application's signals.
TEST_F(ConnParity, NoOtherThreadTakesTheApplicationsSignals)
{
    SignalScope scope;
    SignalScope::Install(SIGALRM, 0);
    Conn c;
    ASSERT_GE(c.fd, 0);
    // Exercise the calls that wait (a library thread could be started lazily by any of them).
    char buf[8];
    SignalScope::AlarmIn(100);
    EXPECT_FAILS_WITH(read(c.fd, buf, sizeof buf), EINTR);
    int ep = epoll_create1(0);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = c.fd;
    ASSERT_EQ(epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev), 0);
    SignalScope::AlarmIn(100);
    EXPECT_FAILS_WITH(epoll_wait(ep, &ev, 1, 3000), EINTR);
    close(ep);
    EXPECT_EQ(c.peer.Cmd("SEND 2"), "OK 2");
    EXPECT_EQ(ReadN(c.fd, 2).size(), 2u);
    EXPECT_EQ(s_signals, 2);
    const int app[] = { SIGHUP, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGPIPE, SIGALRM, SIGTERM, SIGCHLD, SIGWINCH };
    pid_t me = (pid_t)syscall(SYS_gettid);
    DIR *d = opendir("/proc/self/task");
    ASSERT_NE(d, nullptr);
    int others = 0;
    while (dirent *e = readdir(d)) {
        if (e->d_name[0] == '.' || atoi(e->d_name) == me) continue;
        FILE *f = fopen((std::string("/proc/self/task/") + e->d_name + "/status").c_str(), "r");
        if (!f) continue; /* the thread has just exited */
        char line[256], name[64] = "?";
        unsigned long long blocked = 0;
        bool seen = false;
        while (fgets(line, sizeof line, f)) {
            if (sscanf(line, "Name: %63s", name) == 1) continue;
            if (sscanf(line, "SigBlk: %llx", &blocked) == 1) seen = true;
        }
        fclose(f);
        if (!seen) continue;
        others++;
        for (int sig : app)
            EXPECT_TRUE(blocked >> (sig - 1) & 1) << "thread " << e->d_name << " (" << name << ") leaves " << strsignal(sig)
                                                 << " open: SigBlk " << std::hex << blocked;
    }
    closedir(d);
    if (!UsertcpMode()) EXPECT_EQ(others, 0);
}

TEST_F(ConnParity, RestartingAndInterruptingHandlersTogether)
{
    // SIGUSR1 asks for restart, SIGUSR2 does not: each handler decides for the call it interrupts.
    SignalScope scope;
    SignalScope::Install(SIGUSR1, SA_RESTART);
    SignalScope::Install(SIGUSR2, 0);
    Conn c;
    ASSERT_GE(c.fd, 0);
    char buf[8];
    std::thread t1 = SignalMeIn(150, SIGUSR1), t2 = SignalMeIn(400, SIGUSR2);
    long t0 = NowMs();
    EXPECT_FAILS_WITH(read(c.fd, buf, sizeof buf), EINTR);
    long took = NowMs() - t0;
    t1.join();
    t2.join();
    EXPECT_EQ(s_signals, 2);
    EXPECT_GE(took, 300);
    EXPECT_LT(took, 2000);
    c.peer.Start("SLEEP 500");
    c.peer.Start("SEND 3");
    std::thread t3 = SignalMeIn(200, SIGUSR1);
    EXPECT_EQ(read(c.fd, buf, sizeof buf), 3) << strerror(errno);
    t3.join();
    EXPECT_EQ(s_signals, 3);
    EXPECT_EQ(c.peer.Answer(), "OK");
    EXPECT_EQ(c.peer.Answer(), "OK 3");
}

TEST_F(ConnParity, SendfileFromFile)
{
    Conn c;
    ASSERT_GE(c.fd, 0);
    char path[] = "/tmp/ut-conn-parity-XXXXXX";
    int f = mkstemp(path);
    ASSERT_GE(f, 0);
    unlink(path);
    auto data = Bytes(300000, 9);
    ASSERT_EQ(write(f, data.data(), data.size()), (ssize_t)data.size());
    off_t off = 1000;
    long want = (long)data.size() - 1000;
    c.peer.Start(("RECV " + std::to_string(want)).c_str());
    long sent = 0;
    while (sent < want) {
        ssize_t r = sendfile(c.fd, f, &off, want - sent);
        ASSERT_GT(r, 0) << strerror(errno);
        sent += r;
    }
    EXPECT_EQ(off, (off_t)data.size());
    EXPECT_EQ(lseek(f, 0, SEEK_CUR), (off_t)data.size()); // our write position; sendfile with an offset leaves it
    EXPECT_EQ(c.peer.Answer(), "OK " + std::to_string(want) + " " + Hex(Fnv(data.data() + 1000, want)));
    // Without an offset pointer: the file position is used and advanced.
    ASSERT_EQ(lseek(f, 299990, SEEK_SET), 299990);
    c.peer.Start("RECV 10");
    EXPECT_EQ(sendfile(c.fd, f, nullptr, 100), 10);
    EXPECT_EQ(lseek(f, 0, SEEK_CUR), 300000);
    EXPECT_EQ(c.peer.Answer(), "OK 10 " + Hex(Fnv(data.data() + 299990, 10)));
    close(f);
}

TEST_F(ConnParity, PollAndEpollMixedWithPipe)
{
    Conn c;
    ASSERT_GE(c.fd, 0);
    int pp[2];
    ASSERT_EQ(pipe(pp), 0);
    pollfd pf[2] = { { c.fd, POLLIN, 0 }, { pp[0], POLLIN, 0 } };
    EXPECT_EQ(poll(pf, 2, 50), 0);
    ASSERT_EQ(write(pp[1], "p", 1), 1);
    ASSERT_EQ(poll(pf, 2, 1000), 1);
    EXPECT_EQ(pf[0].revents, 0);
    EXPECT_EQ(pf[1].revents, POLLIN);
    char b;
    ASSERT_EQ(read(pp[0], &b, 1), 1);
    // The user socket wakes a poll that is already sleeping.
    c.peer.Start("SENDSLOW 2 2 200");
    long t0 = NowMs();
    ASSERT_EQ(poll(pf, 2, 3000), 1);
    EXPECT_EQ(pf[0].revents, POLLIN);
    EXPECT_EQ(pf[1].revents, 0);
    EXPECT_LT(NowMs() - t0, 2000);
    EXPECT_EQ(ReadN(c.fd, 2).size(), 2u);
    EXPECT_EQ(c.peer.Answer(), "OK 2");

    int ep = epoll_create1(0);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = 1;
    ASSERT_EQ(epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev), 0);
    ev.data.u32 = 2;
    ASSERT_EQ(epoll_ctl(ep, EPOLL_CTL_ADD, pp[0], &ev), 0);
    epoll_event out[4];
    EXPECT_EQ(epoll_wait(ep, out, 4, 50), 0);
    EXPECT_EQ(c.peer.Cmd("SEND 1"), "OK 1");
    ASSERT_EQ(write(pp[1], "q", 1), 1);
    unsigned seen = 0;
    for (long deadline = NowMs() + 3000; seen != 3 && NowMs() < deadline;) {
        int n = epoll_wait(ep, out, 4, 500);
        for (int i = 0; i < n; i++) {
            EXPECT_EQ(out[i].events, (uint32_t)EPOLLIN);
            seen |= out[i].data.u32;
        }
    }
    EXPECT_EQ(seen, 3u);
    // A pipe written during a wait wakes it while the socket stays quiet.
    ASSERT_EQ(read(pp[0], &b, 1), 1);
    ASSERT_EQ(read(c.fd, &b, 1), 1);
    EXPECT_EQ(epoll_wait(ep, out, 4, 20), 0);
    close(ep);
    close(pp[0]);
    close(pp[1]);
}

// A busy loop over a set whose user socket stays readable (level-triggered, never read) still hears a kernel fd of
// the same set soon after it becomes ready, and hears it on every call while it stays ready. (usertcp asks the
// kernel part of such a set less often while it is quiet: this bounds what that may cost.)
TEST_F(ConnParity, BusyEpollOverAReadySocketStillReportsAKernelFd)
{
    Conn c;
    ASSERT_GE(c.fd, 0);
    int pp[2];
    ASSERT_EQ(pipe(pp), 0);
    int ep = epoll_create1(0);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = 1;
    ASSERT_EQ(epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev), 0);
    ev.data.u32 = 2;
    ASSERT_EQ(epoll_ctl(ep, EPOLL_CTL_ADD, pp[0], &ev), 0);
    EXPECT_EQ(c.peer.Cmd("SEND 1"), "OK 1");
    ASSERT_EQ(WaitQueued(c.fd, 1), 1);
    epoll_event out[4];
    auto wait_mask = [&] {
        unsigned seen = 0;
        int n = epoll_wait(ep, out, 4, 0);
        for (int i = 0; i < n; i++) seen |= out[i].data.u32;
        return seen;
    };
    for (int i = 0; i < 200; i++) ASSERT_EQ(wait_mask(), 1u) << "call " << i; // the socket alone, call after call
    ASSERT_EQ(write(pp[1], "p", 1), 1);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    unsigned seen = 0;
    long calls = 0;
    for (; seen != 3 && calls < 10000000; calls++) seen = wait_mask();
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long us = (t1.tv_sec - t0.tv_sec) * 1000000L + (t1.tv_nsec - t0.tv_nsec) / 1000;
    ASSERT_EQ(seen, 3u) << "the pipe never showed up in " << calls << " calls";
    EXPECT_LT(us, 5000) << "the pipe was reported " << us << " us after it became readable";
    // While the pipe stays readable, every call reports it (as the kernel's level-triggered epoll does).
    for (int i = 0; i < 200; i++) ASSERT_EQ(wait_mask(), 3u) << "call " << i;
    char b;
    ASSERT_EQ(read(pp[0], &b, 1), 1);
    ASSERT_EQ(read(c.fd, &b, 1), 1);
    EXPECT_EQ(epoll_wait(ep, out, 4, 20), 0);
    close(ep);
    close(pp[0]);
    close(pp[1]);
}

TEST_F(ConnParity, EdgeTriggeredReportsNewDataAfterDrain)
{
    Conn c(SOCK_NONBLOCK);
    ASSERT_GE(c.fd, 0);
    int ep = epoll_create1(0);
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLET;
    ev.data.fd = c.fd;
    ASSERT_EQ(epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev), 0);
    epoll_event out{};
    EXPECT_EQ(epoll_wait(ep, &out, 1, 50), 0);
    for (int round = 0; round < 3; round++) {
        EXPECT_EQ(c.peer.Cmd("SEND 10"), "OK 10");
        ASSERT_EQ(epoll_wait(ep, &out, 1, 3000), 1) << "round " << round;
        EXPECT_EQ(out.events, (uint32_t)EPOLLIN);
        ASSERT_EQ(WaitQueued(c.fd, 10), 10);
        // No new edge until something changes, even though data is still there.
        EXPECT_EQ(epoll_wait(ep, &out, 1, 50), 0) << "round " << round;
        char buf[64];
        EXPECT_EQ(read(c.fd, buf, sizeof buf), 10);
        EXPECT_FAILS_WITH(read(c.fd, buf, sizeof buf), EAGAIN);
        EXPECT_EQ(epoll_wait(ep, &out, 1, 50), 0);
    }
    close(ep);
}

TEST_F(ConnParity, ResetAfterPeerFinSeenByReadAndSoError)
{
    Conn c;
    ASSERT_GE(c.fd, 0);
    EXPECT_EQ(c.peer.Cmd("CLOSE"), "OK");
    char b;
    ASSERT_GT(Readable(c.fd, 3000), 0);
    EXPECT_EQ(read(c.fd, &b, 1), 0);
    EXPECT_EQ(send(c.fd, "x", 1, MSG_NOSIGNAL), 1); // answered with RST by the closed peer
    EXPECT_EQ(WaitState(c.fd, TCP_CLOSE), TCP_CLOSE);
    pollfd pf = { c.fd, POLLIN | POLLOUT | POLLRDHUP, 0 };
    ASSERT_EQ(poll(&pf, 1, 0), 1);
    EXPECT_EQ(pf.revents, POLLIN | POLLOUT | POLLRDHUP | POLLERR | POLLHUP);
    // Linux: the stream already ended, so read keeps returning 0 and the reset waits in SO_ERROR, as EPIPE.
    EXPECT_EQ(read(c.fd, &b, 1), 0);
    EXPECT_EQ(SoError(c.fd), EPIPE);
    EXPECT_EQ(SoError(c.fd), 0);
}

TEST_F(ConnParity, DataQueuedBeforeResetStaysReadable)
{
    Conn c;
    ASSERT_GE(c.fd, 0);
    EXPECT_EQ(c.peer.Cmd("SEND 10"), "OK 10");
    ASSERT_EQ(WaitQueued(c.fd, 10), 10);
    EXPECT_EQ(c.peer.Cmd("RESET"), "OK");
    EXPECT_EQ(WaitState(c.fd, TCP_CLOSE), TCP_CLOSE);
    char buf[32];
    EXPECT_EQ(read(c.fd, buf, sizeof buf), 10);
    EXPECT_FAILS_WITH(read(c.fd, buf, sizeof buf), ECONNRESET);
    EXPECT_EQ(read(c.fd, buf, sizeof buf), 0);
}

TEST_F(ConnParity, BlockingAcceptWaitsForThePeer)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in any = Addr("0.0.0.0", 0);
    ASSERT_EQ(bind(l, (sockaddr *)&any, sizeof any), 0);
    ASSERT_EQ(listen(l, 1), 0);
    uint16_t port = ntohs(Name(l, false).sin_port);
    Peer p;
    ASSERT_TRUE(p.Ok());
    p.Start("SLEEP 200");
    p.Start(("CONNECT " + std::to_string(port)).c_str());
    long t0 = NowMs();
    sockaddr_in from{};
    socklen_t len = sizeof from;
    int s = accept(l, (sockaddr *)&from, &len);
    ASSERT_GE(s, 0) << strerror(errno);
    EXPECT_GE(NowMs() - t0, 150);
    EXPECT_EQ(p.Answer(), "OK");
    EXPECT_EQ(p.Answer(), "OK " + std::to_string(ntohs(from.sin_port)));
    // The accepted socket's peer is the peer's connecting socket; a graceful close ends its stream.
    ASSERT_EQ(write(s, "bye", 3), 3);
    p.Start("WAITEOF");
    ASSERT_EQ(close(s), 0);
    EXPECT_EQ(p.Answer(), "OK 3");
    close(l);
}

TEST_F(ConnParity, CloseWithUnreadDataOrLingerZeroResets)
{
    {
        Conn c;
        ASSERT_GE(c.fd, 0);
        EXPECT_EQ(c.peer.Cmd("SEND 10"), "OK 10");
        ASSERT_EQ(WaitQueued(c.fd, 10), 10);
        ASSERT_EQ(close(c.fd), 0); // unread data: RFC 2525 / Linux send RST instead of FIN
        c.fd = -1;
        EXPECT_EQ(c.peer.Cmd("RECV 1"), "ERR 104 after 0");
    }
    {
        Conn c;
        ASSERT_GE(c.fd, 0);
        linger lg = { 1, 0 };
        ASSERT_EQ(setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
        ASSERT_EQ(close(c.fd), 0);
        c.fd = -1;
        EXPECT_EQ(c.peer.Cmd("RECV 1"), "ERR 104 after 0");
    }
}

TEST_F(ConnParity, DupKeepsTheConnectionOpen)
{
    Conn c;
    ASSERT_GE(c.fd, 0);
    int d = dup(c.fd);
    ASSERT_GE(d, 0);
    ASSERT_EQ(close(c.fd), 0);
    c.fd = d; // the connection lives on through the duplicate
    c.peer.Start("ECHO 4");
    ASSERT_EQ(write(d, "dup!", 4), 4);
    EXPECT_EQ(ReadN(d, 4), std::vector<unsigned char>({ 'd', 'u', 'p', '!' }));
    EXPECT_EQ(c.peer.Answer(), "OK 4");
    // shutdown acts on the connection, whichever descriptor names it.
    int e = dup(d);
    ASSERT_EQ(shutdown(e, SHUT_WR), 0);
    EXPECT_EQ(c.peer.Cmd("WAITEOF"), "OK 0");
    close(e);
}

TEST_F(ConnParity, OneShotEpollRearms)
{
    Conn c(SOCK_NONBLOCK);
    ASSERT_GE(c.fd, 0);
    int ep = epoll_create1(0);
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLONESHOT;
    ev.data.fd = c.fd;
    ASSERT_EQ(epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev), 0);
    EXPECT_EQ(c.peer.Cmd("SEND 4"), "OK 4");
    epoll_event out{};
    ASSERT_EQ(epoll_wait(ep, &out, 1, 3000), 1);
    EXPECT_EQ(out.events, (uint32_t)EPOLLIN);
    EXPECT_EQ(c.peer.Cmd("SEND 4"), "OK 4");
    ASSERT_EQ(WaitQueued(c.fd, 8), 8);
    EXPECT_EQ(epoll_wait(ep, &out, 1, 50), 0); // disarmed after one report
    ASSERT_EQ(epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev), 0);
    ASSERT_EQ(epoll_wait(ep, &out, 1, 1000), 1); // re-armed: still readable
    EXPECT_EQ(out.events, (uint32_t)EPOLLIN);
    close(ep);
}

TEST_F(ConnParity, LevelTriggeredEpollReportsEveryReadySocketInTurn)
{
    // More ready sockets than maxevents: the kernel's ready list is FIFO and a level-triggered socket it reported
    // goes back to the tail, so successive waits cover every socket (none starves behind the first ones).
    constexpr int kConns = 6;
    std::vector<std::unique_ptr<Conn>> conns;
    int ep = epoll_create1(0);
    for (int i = 0; i < kConns; i++) {
        conns.push_back(std::make_unique<Conn>(SOCK_NONBLOCK));
        ASSERT_GE(conns.back()->fd, 0);
        ASSERT_EQ(conns.back()->peer.Cmd("SEND 4"), "OK 4");
        ASSERT_EQ(WaitQueued(conns.back()->fd, 4), 4);
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u32 = (uint32_t)i;
        ASSERT_EQ(epoll_ctl(ep, EPOLL_CTL_ADD, conns.back()->fd, &ev), 0);
    }
    std::set<uint32_t> seen;
    for (int round = 0; round < kConns / 2; round++) {
        epoll_event out[2];
        ASSERT_EQ(epoll_wait(ep, out, 2, 1000), 2);
        for (const epoll_event &e : out) seen.insert(e.data.u32);
    }
    EXPECT_EQ(seen.size(), (size_t)kConns) << "some ready sockets were never reported";
    close(ep);
}

// A thread blocked in read on a socket another thread closes must never return the data of a connection accepted
// afterwards (usertcp reuses closed sockets' objects and stack handles: the blocked call must notice the close).
// Linux keeps the old socket alive until the read returns (here: its SO_RCVTIMEO); usertcp ends it with EBADF.
TEST_F(ConnParity, BlockedReaderOfAClosedSocketNeverSeesTheNextConnection)
{
    auto c1 = std::make_unique<Conn>(); // first: the peer knows our address once this is connected
    ASSERT_GE(c1->fd, 0);
    int l = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in any = Addr("0.0.0.0", 0);
    ASSERT_EQ(bind(l, (sockaddr *)&any, sizeof any), 0);
    ASSERT_EQ(listen(l, 8), 0);
    uint16_t port = ntohs(Name(l, false).sin_port);
    // The next connection is established with data queued before it is accepted: it is readable the moment
    // accept hands it out.
    Peer p;
    ASSERT_TRUE(p.Ok());
    std::string a = p.Cmd("CONNECT %d", port);
    ASSERT_EQ(a.rfind("OK ", 0), 0u) << a;
    EXPECT_EQ(p.Cmd("SEND 5"), "OK 5");
    ASSERT_GT(Readable(l, 3000), 0);
    usleep(50000); // the 5 bytes are in

    timeval bound = { 1, 500000 };
    ASSERT_EQ(setsockopt(c1->fd, SOL_SOCKET, SO_RCVTIMEO, &bound, sizeof bound), 0);
    struct Reader {
        int fd;
        ssize_t n = 0;
        static void *Run(void *p)
        {
            auto *r = (Reader *)p;
            char b[64];
            r->n = read(r->fd, b, sizeof b);
            return nullptr;
        }
    } reader{ c1->fd };
    pthread_t t;
    ASSERT_EQ(pthread_create(&t, nullptr, Reader::Run, &reader), 0);
    usleep(100000); // the reader blocks first
    ASSERT_EQ(close(c1->fd), 0);
    c1->fd = -1;
    int s = accept(l, nullptr, nullptr); // may get the closed socket's fd number, object and stack handle
    ASSERT_GE(s, 0) << strerror(errno);
    pthread_join(t, nullptr);
    EXPECT_LE(reader.n, 0) << "the blocked read returned the next connection's data";
    std::vector<unsigned char> got = ReadN(s, 5);
    EXPECT_EQ(got.size(), 5u);
    EXPECT_TRUE(IsPattern(got));
    close(s);
    close(l);
}

// A registration removed by close may still be queued as ready in its epoll set; the registration that an ADD
// makes next (in the same set or another) is reported once, in its own set, and the closed fd never.
TEST_F(ConnParity, EpollRegistrationOfAClosedSocketDoesNotLeakIntoTheNextOne)
{
    int ep1 = epoll_create1(0), ep2 = epoll_create1(0);
    ASSERT_GE(ep1, 0);
    ASSERT_GE(ep2, 0);
    for (int round = 0; round < 2; round++) {
        int ep = round == 0 ? ep1 : ep2; // the next registration in the same set, then in another one
        auto c1 = std::make_unique<Conn>(SOCK_NONBLOCK);
        ASSERT_GE(c1->fd, 0);
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLOUT;
        ev.data.u64 = 1;
        ASSERT_EQ(epoll_ctl(ep1, EPOLL_CTL_ADD, c1->fd, &ev), 0); // ready (writable), not yet waited for
        ASSERT_EQ(close(c1->fd), 0);
        c1->fd = -1;
        Conn c2(SOCK_NONBLOCK);
        ASSERT_GE(c2.fd, 0);
        ev.events = EPOLLIN;
        ev.data.u64 = 2;
        ASSERT_EQ(epoll_ctl(ep, EPOLL_CTL_ADD, c2.fd, &ev), 0);
        EXPECT_EQ(c2.peer.Cmd("SEND 4"), "OK 4");
        ASSERT_EQ(WaitQueued(c2.fd, 4), 4);
        epoll_event out[8];
        int n = epoll_wait(ep, out, 8, 2000);
        ASSERT_EQ(n, 1) << "round " << round;
        EXPECT_EQ(out[0].data.u64, 2u);
        EXPECT_EQ(out[0].events, (uint32_t)EPOLLIN);
        if (ep != ep1) {
            EXPECT_EQ(epoll_wait(ep1, out, 8, 50), 0);
        }
        ASSERT_EQ(epoll_ctl(ep, EPOLL_CTL_DEL, c2.fd, nullptr), 0);
    }
    close(ep1);
    close(ep2);
}

// An epoll set that got kernel fds where this process's epoll_ctl did not add them to that number (dup2 of another
// set onto it, or a forked child adding to the shared set) still reports them next to ready sockets (usertcp skips
// the kernel when a set it created holds user sockets only).
TEST_F(ConnParity, EpollSetsSharedThroughDupOrForkStillReportKernelFds)
{
    Conn c(SOCK_NONBLOCK);
    ASSERT_GE(c.fd, 0);
    int p[2];
    ASSERT_EQ(pipe(p), 0);
    ASSERT_EQ(write(p[1], "x", 1), 1);
    epoll_event ev{};
    epoll_event out[4];

    // dup2: the number of a user-only set now names a set with the pipe in it.
    int ep1 = epoll_create1(0), ep2 = epoll_create1(0);
    ev.events = EPOLLIN;
    ev.data.u64 = 7;
    ASSERT_EQ(epoll_ctl(ep2, EPOLL_CTL_ADD, p[0], &ev), 0);
    ASSERT_EQ(dup2(ep2, ep1), ep1);
    ev.events = EPOLLOUT;
    ev.data.u64 = 9;
    ASSERT_EQ(epoll_ctl(ep1, EPOLL_CTL_ADD, c.fd, &ev), 0);
    int n = epoll_wait(ep1, out, 4, 1000);
    EXPECT_EQ(n, 2) << "dup2";
    close(ep1);
    close(ep2);

    // fork: the child adds the pipe to the set the parent created with a socket in it.
    int ep = epoll_create1(0);
    ev.events = EPOLLOUT;
    ev.data.u64 = 9;
    ASSERT_EQ(epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev), 0);
    ASSERT_EQ(epoll_wait(ep, out, 4, 1000), 1);
    pid_t child = fork();
    if (child == 0) {
        epoll_event cev{};
        cev.events = EPOLLIN;
        cev.data.u64 = 7;
        _exit(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &cev) == 0 ? 0 : 1);
    }
    ASSERT_GT(child, 0);
    int status = -1;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    n = epoll_wait(ep, out, 4, 1000);
    EXPECT_EQ(n, 2) << "fork";
    close(ep);
    close(p[0]);
    close(p[1]);
}

TEST_F(ConnParity, EdgeCasesOfTheDataCalls)
{
    Conn c;
    ASSERT_GE(c.fd, 0);
    char buf[64];
    // Zero-length calls succeed at once and move nothing.
    EXPECT_EQ(send(c.fd, buf, 0, 0), 0);
    EXPECT_EQ(read(c.fd, buf, 0), 0);
    // recv (unlike read) with length 0 goes into TCP: with nothing queued it would block, so MSG_DONTWAIT says EAGAIN.
    EXPECT_FAILS_WITH(recv(c.fd, buf, 0, MSG_DONTWAIT), EAGAIN);
    EXPECT_EQ(writev(c.fd, nullptr, 0), 0);
    iovec big[1025];
    for (auto &v : big) v = { buf, 1 };
    EXPECT_FAILS_WITH(writev(c.fd, big, 1025), EINVAL);
    EXPECT_FAILS_WITH(readv(c.fd, big, 1025), EINVAL);
    // MSG_TRUNC on TCP: the bytes are discarded and counted.
    EXPECT_EQ(c.peer.Cmd("SEND 20"), "OK 20");
    ASSERT_EQ(WaitQueued(c.fd, 20), 20);
    int q = -1;
    ASSERT_EQ(ioctl(c.fd, SIOCINQ, &q), 0);
    EXPECT_EQ(q, 20);
    EXPECT_EQ(recv(c.fd, nullptr, 5, MSG_TRUNC), 5);
    EXPECT_EQ(recv(c.fd, buf, 1, 0), 1);
    EXPECT_EQ((unsigned char)buf[0], PatternByte(5));
    // recvmmsg/sendmmsg work on streams too.
    char a1[8] = {}, a2[8] = {};
    iovec v1 = { a1, 7 }, v2 = { a2, 7 };
    mmsghdr mm[2]{};
    mm[0].msg_hdr.msg_iov = &v1;
    mm[0].msg_hdr.msg_iovlen = 1;
    mm[1].msg_hdr.msg_iov = &v2;
    mm[1].msg_hdr.msg_iovlen = 1;
    EXPECT_EQ(recvmmsg(c.fd, mm, 2, MSG_DONTWAIT, nullptr), 2);
    EXPECT_EQ(mm[0].msg_len, 7u);
    EXPECT_EQ(mm[1].msg_len, 7u);
    EXPECT_EQ((unsigned char)a2[6], PatternByte(19));
    c.peer.Start("RECV 6");
    char s1[] = "abc", s2[] = "def";
    iovec w1 = { s1, 3 }, w2 = { s2, 3 };
    mmsghdr sm[2]{};
    sm[0].msg_hdr.msg_iov = &w1;
    sm[0].msg_hdr.msg_iovlen = 1;
    sm[1].msg_hdr.msg_iov = &w2;
    sm[1].msg_hdr.msg_iovlen = 1;
    EXPECT_EQ(sendmmsg(c.fd, sm, 2, 0), 2);
    EXPECT_EQ(sm[1].msg_len, 3u);
    EXPECT_EQ(c.peer.Answer(), "OK 6 " + Hex(Fnv("abcdef", 6)));
    // TCP_INFO on a live connection: the MSS and a measured round trip.
    tcp_info ti{};
    socklen_t len = sizeof ti;
    ASSERT_EQ(getsockopt(c.fd, IPPROTO_TCP, TCP_INFO, &ti, &len), 0);
    EXPECT_EQ(ti.tcpi_snd_mss, 1448u); // 1500 - 20 - 20 - 12 (timestamps)
    EXPECT_GT(ti.tcpi_rtt, 0u);
    EXPECT_TRUE(ti.tcpi_options & TCPI_OPT_TIMESTAMPS);
    EXPECT_TRUE(ti.tcpi_options & TCPI_OPT_SACK);
    EXPECT_TRUE(ti.tcpi_options & TCPI_OPT_WSCALE);
    // shutdown(SHUT_RD): reads end at once, poll says so.
    ASSERT_EQ(shutdown(c.fd, SHUT_RD), 0);
    EXPECT_EQ(recv(c.fd, buf, sizeof buf, 0), 0);
    pollfd pf = { c.fd, POLLIN | POLLOUT | POLLRDHUP, 0 };
    ASSERT_EQ(poll(&pf, 1, 0), 1);
    EXPECT_EQ(pf.revents, POLLIN | POLLOUT | POLLRDHUP);
}

TEST_F(ConnParity, OneBufferVectorCallsAndTheirEdges)
{
    // readv/writev/recvmsg/sendmsg with a single iovec (what nginx's writev of a response header is), which usertcp
    // sends down the read/write fast paths: the same answers as the kernel, flags included.
    Conn c;
    ASSERT_GE(c.fd, 0);
    char buf[64] = {};
    iovec one = { buf, sizeof buf };
    msghdr m{};
    m.msg_iov = &one;
    m.msg_iovlen = 1;
    // Nothing queued: a non-blocking try says EAGAIN through every entry.
    EXPECT_FAILS_WITH(recvmsg(c.fd, &m, MSG_DONTWAIT), EAGAIN);
    ASSERT_EQ(fcntl(c.fd, F_SETFL, fcntl(c.fd, F_GETFL) | O_NONBLOCK), 0);
    EXPECT_FAILS_WITH(readv(c.fd, &one, 1), EAGAIN);
    ASSERT_EQ(fcntl(c.fd, F_SETFL, fcntl(c.fd, F_GETFL) & ~O_NONBLOCK), 0);
    // A zero-length iovec: readv and writev return 0 at once.
    iovec none = { buf, 0 };
    EXPECT_EQ(readv(c.fd, &none, 1), 0);
    EXPECT_EQ(writev(c.fd, &none, 1), 0);
    // Data both ways through single-iovec writev and sendmsg.
    char w[] = "single-iovec";
    iovec wv = { w, 12 };
    c.peer.Start("RECV 12");
    EXPECT_EQ(writev(c.fd, &wv, 1), 12);
    EXPECT_EQ(c.peer.Answer(), "OK 12 " + Hex(Fnv(w, 12)));
    msghdr sm{};
    sm.msg_iov = &wv;
    sm.msg_iovlen = 1;
    c.peer.Start("RECV 12");
    EXPECT_EQ(sendmsg(c.fd, &sm, MSG_NOSIGNAL), 12);
    EXPECT_EQ(c.peer.Answer(), "OK 12 " + Hex(Fnv(w, 12)));
    EXPECT_EQ(c.peer.Cmd("SEND 30"), "OK 30");
    ASSERT_EQ(WaitQueued(c.fd, 30), 30);
    // MSG_PEEK through recvmsg leaves the bytes; readv then takes part, recvmsg the rest.
    one.iov_len = 10;
    m.msg_flags = 0x7fff;
    EXPECT_EQ(recvmsg(c.fd, &m, MSG_PEEK), 10);
    EXPECT_EQ(m.msg_flags, 0);
    EXPECT_TRUE(IsPattern(std::vector<unsigned char>(buf, buf + 10)));
    EXPECT_EQ(readv(c.fd, &one, 1), 10);
    EXPECT_TRUE(IsPattern(std::vector<unsigned char>(buf, buf + 10)));
    one.iov_len = sizeof buf;
    EXPECT_EQ(recvmsg(c.fd, &m, 0), 20);
    EXPECT_TRUE(IsPattern(std::vector<unsigned char>(buf, buf + 20), 10));
    // A closed descriptor is EBADF, whatever the buffer.
    int fd = dup(c.fd);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(close(fd), 0);
    iovec null_base = { nullptr, 10 };
    EXPECT_FAILS_WITH(readv(fd, &null_base, 1), EBADF);
    EXPECT_FAILS_WITH(writev(fd, &null_base, 1), EBADF);
    EXPECT_FAILS_WITH(read(fd, nullptr, 10), EBADF);
}

TEST_F(ConnParity, NullBufferReadsAnswerLikeLinux)
{
    // A read into a null buffer: Linux looks at the queue before it copies, so an empty socket answers as it would
    // with a good buffer (EAGAIN, a receive timeout, the end of stream) and only queued bytes make it EFAULT (and
    // stay queued). A vector read with a null buffer after a good one: the same, by whether the queued bytes reach it.
    Conn c;
    ASSERT_GE(c.fd, 0);
    iovec null_one = { nullptr, 10 };
    msghdr m{};
    m.msg_iov = &null_one;
    m.msg_iovlen = 1;
    EXPECT_FAILS_WITH(recv(c.fd, nullptr, 10, MSG_DONTWAIT), EAGAIN);
    EXPECT_FAILS_WITH(recvmsg(c.fd, &m, MSG_DONTWAIT), EAGAIN);
    timeval bound = { 0, 100000 };
    ASSERT_EQ(setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &bound, sizeof bound), 0);
    long t0 = NowMs();
    EXPECT_FAILS_WITH(read(c.fd, nullptr, 10), EAGAIN); // blocking: waits out the timeout first
    EXPECT_GE(NowMs() - t0, 80);
    ASSERT_EQ(fcntl(c.fd, F_SETFL, fcntl(c.fd, F_GETFL) | O_NONBLOCK), 0);
    EXPECT_FAILS_WITH(read(c.fd, nullptr, 10), EAGAIN);
    EXPECT_FAILS_WITH(readv(c.fd, &null_one, 1), EAGAIN);
    char buf[64] = {};
    iovec two[2] = { { buf, 4 }, { nullptr, 10 } };
    EXPECT_FAILS_WITH(readv(c.fd, two, 2), EAGAIN);
    // Bytes queued: EFAULT, and nothing is taken.
    EXPECT_EQ(c.peer.Cmd("SEND 30"), "OK 30");
    ASSERT_EQ(WaitQueued(c.fd, 30), 30);
    EXPECT_FAILS_WITH(read(c.fd, nullptr, 10), EFAULT);
    EXPECT_FAILS_WITH(recv(c.fd, nullptr, 10, MSG_PEEK), EFAULT);
    EXPECT_FAILS_WITH(readv(c.fd, &null_one, 1), EFAULT);
    EXPECT_FAILS_WITH(recvmsg(c.fd, &m, 0), EFAULT);
    // A null second buffer the queued bytes reach: EFAULT too (Linux copies a queued segment in one piece and
    // takes none of it when the copy faults).
    EXPECT_FAILS_WITH(readv(c.fd, two, 2), EFAULT);
    EXPECT_EQ(WaitQueued(c.fd, 30), 30);
    EXPECT_EQ(read(c.fd, buf, 27), 27);
    EXPECT_TRUE(IsPattern(std::vector<unsigned char>(buf, buf + 27)));
    // Fewer queued than the first buffer holds: the null one is never reached.
    EXPECT_EQ(readv(c.fd, two, 2), 3);
    EXPECT_TRUE(IsPattern(std::vector<unsigned char>(buf, buf + 3), 27));
    // Zero bytes asked for: 0 whatever the buffer.
    EXPECT_EQ(read(c.fd, nullptr, 0), 0);
    // The end of stream: 0, as with a buffer.
    EXPECT_EQ(c.peer.Cmd("SHUTWR"), "OK");
    pollfd pf = { c.fd, POLLIN, 0 };
    ASSERT_EQ(poll(&pf, 1, 3000), 1);
    EXPECT_EQ(read(c.fd, nullptr, 10), 0);
    EXPECT_EQ(recv(c.fd, nullptr, 10, 0), 0);
}

TEST_F(ConnParity, BlockedReaderThreadAndWriterThread)
{
    Conn c;
    ASSERT_GE(c.fd, 0);
    // One thread waits in a blocking read while another writes on the same socket (a full-duplex client's shape).
    timeval bound = { 5, 0 }; // a broken wake-up fails the test instead of hanging it
    ASSERT_EQ(setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &bound, sizeof bound), 0);
    struct Reader {
        int fd;
        std::vector<unsigned char> got;
        static void *Run(void *p)
        {
            auto *r = (Reader *)p;
            r->got.resize(8);
            size_t have = 0;
            while (have < 8) {
                ssize_t n = read(r->fd, r->got.data() + have, 8 - have);
                if (n <= 0) break;
                have += n;
            }
            r->got.resize(have);
            return nullptr;
        }
    } reader{ c.fd, {} };
    pthread_t t;
    ASSERT_EQ(pthread_create(&t, nullptr, Reader::Run, &reader), 0);
    usleep(100000); // let the reader block first
    c.peer.Start("ECHO 8");
    ASSERT_EQ(write(c.fd, "duplex!!", 8), 8);
    EXPECT_EQ(c.peer.Answer(), "OK 8");
    pthread_join(t, nullptr);
    EXPECT_EQ(std::string(reader.got.begin(), reader.got.end()), "duplex!!");
}

// C stdio over a connected socket: fdopen, formatted output, line input, block I/O, fclose closing the socket.
TEST_F(ConnParity, StdioStreamFromFdopen)
{
    Conn c;
    ASSERT_GE(c.fd, 0);
    errno = 0;
    EXPECT_EQ(fdopen(c.fd, "x"), nullptr);
    EXPECT_EQ(errno, EINVAL);
    FILE *f = fdopen(c.fd, "r+");
    ASSERT_NE(f, nullptr) << strerror(errno);
    EXPECT_EQ(fileno(f), c.fd);
    c.peer.Start("ECHO 12");
    EXPECT_EQ(fprintf(f, "hello %05d\n", 42), 12);
    EXPECT_EQ(fflush(f), 0) << strerror(errno);
    char line[64] = "";
    ASSERT_NE(fgets(line, sizeof line, f), nullptr) << strerror(errno);
    EXPECT_STREQ(line, "hello 00042\n");
    EXPECT_EQ(c.peer.Answer(), "OK 12");
    // Block input: what the peer sends arrives through fread, across several refills of the stream's buffer.
    EXPECT_EQ(c.peer.Cmd("SEND 20000"), "OK 20000");
    std::vector<unsigned char> in(20000);
    EXPECT_EQ(fread(in.data(), 1, in.size(), f), in.size());
    EXPECT_TRUE(IsPattern(in));
    // Block output larger than the buffer, then fclose: flushes, closes the socket (the peer sees EOF).
    EXPECT_EQ(fflush(f), 0);
    std::vector<unsigned char> out = Bytes(30000, 3);
    c.peer.Start("RECV 30000");
    EXPECT_EQ(fwrite(out.data(), 1, out.size(), f), out.size());
    EXPECT_EQ(fflush(f), 0) << strerror(errno);
    EXPECT_EQ(c.peer.Answer(), "OK 30000 " + Hex(Fnv(out.data(), out.size())));
    EXPECT_GE(fputs("tail", f), 0);
    int fd = c.fd;
    c.fd = -1;
    EXPECT_EQ(fclose(f), 0);
    EXPECT_FAILS_WITH(fcntl(fd, F_GETFD), EBADF);
    EXPECT_EQ(c.peer.Cmd("WAITEOF"), "OK 4");
}

// A write-only stream refuses input; a read-only one refuses output; both close their own descriptor.
TEST_F(ConnParity, StdioStreamModes)
{
    Conn c;
    ASSERT_GE(c.fd, 0);
    int rfd = dup(c.fd);
    ASSERT_GE(rfd, 0);
    FILE *w = fdopen(c.fd, "w"), *r = fdopen(rfd, "r");
    ASSERT_NE(w, nullptr);
    ASSERT_NE(r, nullptr);
    c.fd = -1;
    EXPECT_EQ(fgetc(w), EOF);
    EXPECT_TRUE(ferror(w));
    clearerr(w);
    EXPECT_EQ(fputc('x', r), EOF);
    EXPECT_TRUE(ferror(r));
    c.peer.Start("ECHO 3");
    EXPECT_GE(fputs("abc", w), 0);
    EXPECT_EQ(fclose(w), 0); // the socket stays open through rfd
    EXPECT_EQ(fgetc(r), 'a');
    EXPECT_EQ(fgetc(r), 'b');
    EXPECT_EQ(fgetc(r), 'c');
    EXPECT_EQ(c.peer.Answer(), "OK 3");
    EXPECT_EQ(c.peer.Cmd("SHUTWR"), "OK");
    EXPECT_EQ(fgetc(r), EOF);
    EXPECT_TRUE(feof(r));
    EXPECT_EQ(fclose(r), 0);
    EXPECT_FAILS_WITH(fcntl(rfd, F_GETFD), EBADF);
}

// freopen with a path on a socket stream: the socket closes and the file takes its number.
TEST_F(ConnParity, FreopenReplacesTheSocketWithAFile)
{
    Conn c;
    ASSERT_GE(c.fd, 0);
    FILE *f = fdopen(c.fd, "r+");
    ASSERT_NE(f, nullptr);
    int fd = c.fd;
    c.fd = -1;
    char path[] = "/tmp/usertcp-freopen-XXXXXX";
    int t = mkstemp(path);
    ASSERT_GE(t, 0);
    close(t);
    EXPECT_GE(fputs("to the peer", f), 0);
    ASSERT_EQ(freopen(path, "w+", f), f) << strerror(errno);
    EXPECT_EQ(fileno(f), fd);
    EXPECT_EQ(c.peer.Cmd("WAITEOF"), "OK 11"); // flushed, then closed
    EXPECT_GE(fputs("into the file\n", f), 0);
    EXPECT_EQ(fseek(f, 0, SEEK_SET), 0);
    char line[64] = "";
    ASSERT_NE(fgets(line, sizeof line, f), nullptr);
    EXPECT_STREQ(line, "into the file\n");
    EXPECT_EQ(fclose(f), 0);
    unlink(path);
}

// close_range over a range holding a socket and files closes them all; the stack goes on serving new connections.
TEST_F(ConnParity, CloseRangeClosesSocketsAndFiles)
{
    Conn c;
    ASSERT_GE(c.fd, 0);
    int a = open("/dev/null", O_RDONLY), b = open("/dev/null", O_RDONLY);
    ASSERT_GE(a, 0);
    ASSERT_GE(b, 0);
    int lo = std::min({ c.fd, a, b }), hi = std::max({ c.fd, a, b });
    // CLOEXEC first: every fd stays open and gets close-on-exec.
    ASSERT_EQ(close_range(lo, hi, CLOSE_RANGE_CLOEXEC), 0) << strerror(errno);
    for (int fd : { c.fd, a, b }) EXPECT_EQ(fcntl(fd, F_GETFD), FD_CLOEXEC) << fd;
    EXPECT_FAILS_WITH(close_range(hi, lo, 0), EINVAL);
    ASSERT_EQ(close_range(lo, hi, 0), 0) << strerror(errno);
    for (int fd : { c.fd, a, b }) EXPECT_FAILS_WITH(fcntl(fd, F_GETFD), EBADF);
    c.fd = -1;
    EXPECT_EQ(c.peer.Cmd("WAITEOF"), "OK 0");
    ExpectANewConnectionEchoes();
}

// closefrom over everything from the application's newest fds up: the same, and the stack's own fds survive it.
TEST_F(ConnParity, ClosefromLeavesTheStackWorking)
{
    Conn c;
    ASSERT_GE(c.fd, 0);
    int a = open("/dev/null", O_RDONLY);
    ASSERT_GE(a, 0);
    int lo = std::min(c.fd, a);
    closefrom(lo);
    EXPECT_FAILS_WITH(fcntl(c.fd, F_GETFD), EBADF);
    EXPECT_FAILS_WITH(fcntl(a, F_GETFD), EBADF);
    c.fd = -1;
    EXPECT_EQ(c.peer.Cmd("WAITEOF"), "OK 0");
    for (int i = 0; i < 2; i++) ExpectANewConnectionEchoes();
}

// freopen without a path reopens /proc/self/fd/N, which a socket refuses: ENXIO, and the socket is closed.
TEST_F(ConnParity, FreopenWithoutAPathFailsOnASocket)
{
    Conn c;
    ASSERT_GE(c.fd, 0);
    FILE *f = fdopen(c.fd, "r+");
    ASSERT_NE(f, nullptr);
    int fd = c.fd;
    c.fd = -1;
    EXPECT_GE(fputs("bye", f), 0);
    errno = 0;
    EXPECT_EQ(freopen(nullptr, "r", f), nullptr);
    EXPECT_EQ(errno, ENXIO);
    EXPECT_FAILS_WITH(fcntl(fd, F_GETFD), EBADF);
    EXPECT_EQ(c.peer.Cmd("WAITEOF"), "OK 3");
}

// A child forked with a connection open closes everything it inherited (what a subprocess does before exec): its
// copies close, the parent's connection goes on.
TEST_F(ConnParity, ClosefromInAForkedChildLeavesTheParentsConnection)
{
    Conn c;
    ASSERT_GE(c.fd, 0);
    c.peer.Start("ECHO 2");
    ASSERT_EQ(write(c.fd, "p1", 2), 2);
    EXPECT_EQ(ReadN(c.fd, 2), std::vector<unsigned char>({ 'p', '1' }));
    EXPECT_EQ(c.peer.Answer(), "OK 2");
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        closefrom(3);
        _exit(fcntl(c.fd, F_GETFD) == -1 && errno == EBADF ? 0 : 1);
    }
    int status = -1;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
    c.peer.Start("ECHO 2");
    ASSERT_EQ(write(c.fd, "p2", 2), 2);
    EXPECT_EQ(ReadN(c.fd, 2), std::vector<unsigned char>({ 'p', '2' }));
    EXPECT_EQ(c.peer.Answer(), "OK 2");
}

// A socket duplicated onto 0, 1 and 2 (inetd-style servers, bash's `echo >&3`): printf, fputs and fgets on libc's
// own stdin/stdout/stderr reach the connection, output buffered before the dup2 goes out through it, stderr stays
// unbuffered, and putting the saved fds back returns the streams to them.
TEST_F(ConnParity, StandardStreamsOnADuplicatedSocket)
{
    Conn c;
    ASSERT_GE(c.fd, 0);
    fflush(stdout);
    fflush(stderr);
    int out = dup(1), in = dup(0), err = dup(2);
    ASSERT_GE(out, 0);
    ASSERT_GE(in, 0);
    ASSERT_GE(err, 0);
    bool stdoutLineBuffered = isatty(out);
    c.peer.Start("ECHO 18");
    fputs("early ", stdout); // still in stdout's buffer when the number changes hands
    ASSERT_EQ(dup2(c.fd, 1), 1);
    ASSERT_EQ(dup2(c.fd, 0), 0);
    int printed = printf("hello %05d\n", 42);
    int flushed = fflush(stdout);
    int fileno1 = fileno(stdout);
    char line[64] = "";
    // A stdin that does not reach the socket would block: an alarm ends the read (EINTR) instead of the test run.
    struct sigaction sa{}, old{};
    sa.sa_handler = [](int) {};
    sigaction(SIGALRM, &sa, &old);
    alarm(5);
    char *got = fgets(line, sizeof line, stdin);
    alarm(0);
    sigaction(SIGALRM, &old, nullptr);
    // Restore before any assertion can print.
    dup2(out, 1);
    dup2(in, 0);
    EXPECT_EQ(printed, 12);
    EXPECT_EQ(flushed, 0);
    EXPECT_EQ(fileno1, 1);
    ASSERT_NE(got, nullptr);
    EXPECT_STREQ(line, stdoutLineBuffered ? "hello 00042\n" : "early hello 00042\n");
    std::string echoed = c.peer.Answer();
    if (!stdoutLineBuffered) EXPECT_EQ(echoed, "OK 18");

    // stderr: unbuffered, so the bytes leave with the call.
    c.peer.Start("RECV 5");
    ASSERT_EQ(dup2(c.fd, 2), 2);
    int put = fputs("oops!", stderr);
    dup2(err, 2);
    EXPECT_GE(put, 0);
    EXPECT_EQ(c.peer.Answer(), "OK 5 " + Hex(Fnv((const unsigned char *)"oops!", 5)));

    // Back on the saved fds: stdout writes to them again (the peer sees nothing more).
    EXPECT_EQ(fileno(stdout), 1);
    EXPECT_GE(fputs("", stdout), 0);
    EXPECT_EQ(fflush(stdout), 0);
    close(out);
    close(in);
    close(err);
    int fd = c.fd;
    c.fd = -1;
    close(fd);
    EXPECT_EQ(c.peer.Cmd("WAITEOF"), "OK 0");
}

// iperf3's server (and others) listen again on the port of a connection they accepted and still hold, after closing
// the first listener: with SO_REUSEADDR on both, and the accepted socket inheriting the listener's SO_REUSEADDR (Linux
// copies the listener's socket), the bind succeeds. Without SO_REUSEADDR on the new socket it is EADDRINUSE.
TEST_F(ConnParity, ListenAgainOnThePortOfAnAcceptedConnection)
{
    int one = 1;
    int l = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_EQ(setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one), 0);
    sockaddr_in any = Addr("0.0.0.0", 0);
    ASSERT_EQ(bind(l, (sockaddr *)&any, sizeof any), 0);
    ASSERT_EQ(listen(l, 8), 0);
    uint16_t port = ntohs(Name(l, false).sin_port);
    Peer p;
    ASSERT_TRUE(p.Ok());
    std::string a = p.Cmd("CONNECT %d", port);
    ASSERT_EQ(a.rfind("OK ", 0), 0u) << a;
    int s = accept(l, nullptr, nullptr);
    ASSERT_GE(s, 0) << strerror(errno);
    int v = 0;
    socklen_t vl = sizeof v;
    EXPECT_EQ(getsockopt(s, SOL_SOCKET, SO_REUSEADDR, &v, &vl), 0);
    EXPECT_EQ(v, 1); // inherited
    close(l);

    sockaddr_in same = Addr("0.0.0.0", port);
    int plain = socket(AF_INET, SOCK_STREAM, 0);
    EXPECT_FAILS_WITH(bind(plain, (sockaddr *)&same, sizeof same), EADDRINUSE);
    close(plain);
    int l2 = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_EQ(setsockopt(l2, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one), 0);
    EXPECT_EQ(bind(l2, (sockaddr *)&same, sizeof same), 0) << strerror(errno);
    EXPECT_EQ(listen(l2, 8), 0) << strerror(errno);
    // The old connection still works, and the new listener accepts.
    ASSERT_EQ(write(s, "ping", 4), 4);
    EXPECT_EQ(p.Cmd("RECV 4"), "OK 4 " + Hex(Fnv("ping", 4)));
    Peer p2;
    a = p2.Cmd("CONNECT %d", port);
    ASSERT_EQ(a.rfind("OK ", 0), 0u) << a;
    ASSERT_GT(Readable(l2, 3000), 0);
    int s2 = accept(l2, nullptr, nullptr);
    EXPECT_GE(s2, 0) << strerror(errno);
    if (s2 >= 0) close(s2);
    close(s);
    close(l2);
}
