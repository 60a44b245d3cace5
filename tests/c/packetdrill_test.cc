// The packetdrill entry point (cshim/packetdrill.c, docs/packetdrill.md), driven the way packetdrill drives it:
// dlopen() build/libusertcp.so, call packetdrill_interface_init, make socket calls through the interface and move
// raw IPv4 packets with netdev_send/netdev_receive. The packets are built and checked here, checksums included.
#include "helpers.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/time.h>
#include <sys/uio.h>

#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

// packetdrill's ABI, written out from its packetdrill.h member list (same order, same signatures).
struct packetdrill_interface {
    void *userdata;
    void (*free)(void *userdata);
    int (*socket)(void *userdata, int domain, int type, int protocol);
    int (*bind)(void *userdata, int sockfd, const struct sockaddr *addr, socklen_t addrlen);
    int (*listen)(void *userdata, int sockfd, int backlog);
    int (*accept)(void *userdata, int sockfd, struct sockaddr *addr, socklen_t *addrlen);
    int (*connect)(void *userdata, int sockfd, const struct sockaddr *addr, socklen_t addrlen);
    ssize_t (*read)(void *userdata, int fd, void *buf, size_t count);
    ssize_t (*readv)(void *userdata, int fd, const struct iovec *iov, int iovcnt);
    ssize_t (*recv)(void *userdata, int sockfd, void *buf, size_t len, int flags);
    ssize_t (*recvfrom)(void *userdata, int sockfd, void *buf, size_t len, int flags, struct sockaddr *src_addr,
                        socklen_t *addrlen);
    ssize_t (*recvmsg)(void *userdata, int sockfd, struct msghdr *msg, int flags);
    ssize_t (*write)(void *userdata, int fd, const void *buf, size_t count);
    ssize_t (*writev)(void *userdata, int fd, const struct iovec *iov, int iovcnt);
    ssize_t (*send)(void *userdata, int sockfd, const void *buf, size_t len, int flags);
    ssize_t (*sendto)(void *userdata, int sockfd, const void *buf, size_t len, int flags,
                      const struct sockaddr *dest_addr, socklen_t addrlen);
    ssize_t (*sendmsg)(void *userdata, int sockfd, const struct msghdr *msg, int flags);
    int (*fcntl)(void *userdata, int fd, int cmd, ...);
    int (*ioctl)(void *userdata, int fd, unsigned long request, ...);
    int (*close)(void *userdata, int fd);
    int (*shutdown)(void *userdata, int sockfd, int how);
    int (*getsockopt)(void *userdata, int sockfd, int level, int optname, void *optval, socklen_t *optlen);
    int (*setsockopt)(void *userdata, int sockfd, int level, int optname, const void *optval, socklen_t optlen);
    int (*poll)(void *userdata, struct pollfd *fds, nfds_t nfds, int timeout);
    int (*netdev_send)(void *userdata, const void *buf, size_t count);
    int (*netdev_receive)(void *userdata, void *buf, size_t *count, long long *time_usecs);
    int (*usleep)(void *userdata, useconds_t usec);
    int (*gettimeofday)(void *userdata, struct timeval *tv, struct timezone *tz);
    int (*epoll_create)(void *userdata, int size);
    int (*epoll_ctl)(void *userdata, int epfd, int op, int fd, struct epoll_event *event);
    int (*epoll_wait)(void *userdata, int epfd, struct epoll_event *events, int maxevents, int timeout);
    int (*pipe)(void *userdata, int pipefd[2]);
    int (*splice)(void *userdata, int fd_in, loff_t *off_in, int fd_out, loff_t *off_out, size_t len,
                  unsigned int flags);
};
using init_fn = int (*)(const char *, packetdrill_interface *);

// Non-default addresses, to check that the flags are honoured.
constexpr uint32_t kLocal = 0x0A000001;  // 10.0.0.1
constexpr uint32_t kRemote = 0xC0000202; // 192.0.2.2

packetdrill_interface g_ifc;
bool g_ready;
// A fresh remote port per connection, so that repeated runs (--gtest_repeat) never meet their own TIME-WAIT.
uint16_t g_nextPeerPort = 40000;
uint16_t PeerPort() { return g_nextPeerPort++; }

constexpr uint8_t FIN = 1, SYN = 2, RST = 4, PSH = 8, ACK = 16;

uint32_t Sum(const uint8_t *p, size_t n, uint32_t acc = 0)
{
    for (size_t i = 0; i + 1 < n; i += 2) acc += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (n & 1) acc += (uint32_t)(p[n - 1] << 8);
    return acc;
}

uint16_t Fold(uint32_t acc)
{
    while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
    return (uint16_t)~acc;
}

void Put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8), p[1] = (uint8_t)v; }
void Put32(uint8_t *p, uint32_t v) { Put16(p, (uint16_t)(v >> 16)), Put16(p + 2, (uint16_t)v); }
uint16_t Get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
uint32_t Get32(const uint8_t *p) { return (uint32_t)Get16(p) << 16 | Get16(p + 2); }

uint32_t PseudoSum(uint32_t src, uint32_t dst, size_t tcpLen)
{
    uint8_t ph[12];
    Put32(ph, src), Put32(ph + 4, dst), ph[8] = 0, ph[9] = 6, Put16(ph + 10, (uint16_t)tcpLen);
    return Sum(ph, sizeof ph);
}

// An IPv4/TCP packet from the remote peer to the stack, with correct checksums.
std::vector<uint8_t> Tcp(uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack, uint8_t flags,
                         const std::vector<uint8_t> &options = {}, const std::string &payload = "",
                         uint16_t window = 65535)
{
    size_t optLen = (options.size() + 3) & ~size_t(3);
    size_t tcpLen = 20 + optLen + payload.size();
    std::vector<uint8_t> p(20 + tcpLen, 0);
    uint8_t *ip = p.data(), *t = ip + 20;
    ip[0] = 0x45, Put16(ip + 2, (uint16_t)p.size()), Put16(ip + 4, 0x1234), ip[6] = 0x40 /* DF */, ip[8] = 64, ip[9] = 6;
    Put32(ip + 12, kRemote), Put32(ip + 16, kLocal);
    Put16(ip + 10, Fold(Sum(ip, 20)));
    Put16(t, sport), Put16(t + 2, dport), Put32(t + 4, seq), Put32(t + 8, ack);
    t[12] = (uint8_t)((20 + optLen) / 4 << 4), t[13] = flags, Put16(t + 14, window);
    std::memcpy(t + 20, options.data(), options.size()); // the rest of the padding is zeros (EOL)
    std::memcpy(t + 20 + optLen, payload.data(), payload.size());
    Put16(t + 16, Fold(Sum(t, tcpLen, PseudoSum(kRemote, kLocal, tcpLen))));
    return p;
}

std::vector<uint8_t> TsOption(uint32_t val, uint32_t ecr)
{
    std::vector<uint8_t> o = {1, 1, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0};
    Put32(&o[4], val), Put32(&o[8], ecr);
    return o;
}

struct Segment {
    uint32_t src = 0, dst = 0;
    uint16_t sport = 0, dport = 0;
    uint32_t seq = 0, ack = 0;
    uint8_t flags = 0;
    uint16_t window = 0;
    std::vector<uint8_t> options;
    std::string payload;
    long long timeUs = 0;
    bool ipChecksumOk = false, tcpChecksumOk = false;

    // The value of TCP option `kind` (its bytes after kind and length), or false if absent.
    bool Option(uint8_t kind, std::vector<uint8_t> *value = nullptr) const
    {
        for (size_t i = 0; i < options.size();) {
            uint8_t k = options[i];
            if (k == 0) break;
            if (k == 1) {
                i++;
                continue;
            }
            if (i + 1 >= options.size() || options[i + 1] < 2 || i + options[i + 1] > options.size()) break;
            if (k == kind) {
                if (value) value->assign(options.begin() + i + 2, options.begin() + i + options[i + 1]);
                return true;
            }
            i += options[i + 1];
        }
        return false;
    }
    uint32_t TsVal() const
    {
        std::vector<uint8_t> v;
        return Option(8, &v) && v.size() == 8 ? Get32(&v[0]) : 0;
    }
    bool PureAck() const { return flags == ACK && payload.empty(); }
};

void Inject(const std::vector<uint8_t> &p) { ASSERT_EQ(0, g_ifc.netdev_send(g_ifc.userdata, p.data(), p.size())); }

// The next TCP segment the stack sends within `timeout_ms`; pure ACKs are skipped when skipAcks.
bool Next(Segment &s, bool skipAcks, int timeout_ms = 3000)
{
    struct timeval start, now;
    gettimeofday(&start, nullptr);
    for (;;) {
        uint8_t buf[65536];
        size_t n = sizeof buf;
        long long t = 0;
        int r = g_ifc.netdev_receive(g_ifc.userdata, buf, &n, &t);
        gettimeofday(&now, nullptr);
        long elapsed = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_usec - start.tv_usec) / 1000;
        if (r == 0) {
            EXPECT_GT(n, 0u) << "netdev_receive succeeded without a packet";
            if (n < 40 || (buf[0] >> 4) != 4 || buf[9] != 6) continue;
            size_t ihl = (buf[0] & 15) * 4u, total = Get16(buf + 2);
            if (total > n || ihl < 20 || total < ihl + 20) continue;
            const uint8_t *tcp = buf + ihl;
            size_t tcpLen = total - ihl, doff = (tcp[12] >> 4) * 4u;
            if (doff < 20 || doff > tcpLen) continue;
            s = Segment{};
            s.src = Get32(buf + 12), s.dst = Get32(buf + 16);
            s.ipChecksumOk = Fold(Sum(buf, ihl)) == 0;
            s.tcpChecksumOk = Fold(Sum(tcp, tcpLen, PseudoSum(s.src, s.dst, tcpLen))) == 0;
            s.sport = Get16(tcp), s.dport = Get16(tcp + 2), s.seq = Get32(tcp + 4), s.ack = Get32(tcp + 8);
            s.flags = tcp[13], s.window = Get16(tcp + 14);
            s.options.assign(tcp + 20, tcp + doff);
            s.payload.assign((const char *)tcp + doff, tcpLen - doff);
            s.timeUs = t;
            // The send time is on gettimeofday's clock and not in the future.
            long long nowUs = (long long)now.tv_sec * 1000000 + now.tv_usec;
            EXPECT_LE(t, nowUs + 1000);
            EXPECT_GT(t, nowUs - 10 * 1000000LL);
            if (skipAcks && s.PureAck()) continue;
            return true;
        }
        if (elapsed > timeout_ms) return false;
    }
}

class Packetdrill : public ::testing::Test {
protected:
    static void SetUpTestSuite()
    {
        if (g_ready) return;
        std::string lib = ut::Library();
        void *h = dlopen(lib.c_str(), RTLD_NOW | RTLD_LOCAL);
        ASSERT_NE(h, nullptr) << dlerror();
        auto init = reinterpret_cast<init_fn>(dlsym(h, "packetdrill_interface_init"));
        ASSERT_NE(init, nullptr) << "packetdrill_interface_init is not exported";
        ASSERT_EQ(0, init("--local_ip=10.0.0.1 --unknown_flag=3 --remote_ip=192.0.2.2/24 --bogus", &g_ifc));
        g_ready = true;
        // One stack per process: a second start is refused, and leaves the first one alone.
        packetdrill_interface again;
        EXPECT_EQ(-1, init("", &again));
    }
    void SetUp() override { ASSERT_TRUE(g_ready); }

    int Listener(uint16_t port)
    {
        int fd = g_ifc.socket(g_ifc.userdata, AF_INET, SOCK_STREAM, 0);
        EXPECT_GE(fd, 0) << strerror(errno);
        sockaddr_in a{};
        a.sin_family = AF_INET, a.sin_port = htons(port), a.sin_addr.s_addr = htonl(kLocal);
        EXPECT_EQ(0, g_ifc.bind(g_ifc.userdata, fd, (sockaddr *)&a, sizeof a)) << strerror(errno);
        EXPECT_EQ(0, g_ifc.listen(g_ifc.userdata, fd, 8)) << strerror(errno);
        return fd;
    }
};

TEST_F(Packetdrill, InterfaceIsComplete)
{
    void **slots = reinterpret_cast<void **>(&g_ifc);
    for (size_t i = 0; i < sizeof g_ifc / sizeof(void *); i++) EXPECT_NE(slots[i], nullptr) << "member " << i;
    struct timeval tv{}, real{};
    ASSERT_EQ(0, g_ifc.gettimeofday(g_ifc.userdata, &tv, nullptr));
    gettimeofday(&real, nullptr);
    EXPECT_LE(std::labs(real.tv_sec - tv.tv_sec), 1);
    EXPECT_EQ(0, g_ifc.usleep(g_ifc.userdata, 1000));
}

// The whole life of a passive connection, checked packet by packet.
TEST_F(Packetdrill, PassiveOpenDataAndClose)
{
    const uint16_t port = 8080, peerPort = PeerPort();
    int lfd = Listener(port);
    ASSERT_GE(lfd, 0);

    // accept() blocks on its own thread while this one moves packets, as in packetdrill.
    int cfd = -1;
    sockaddr_in peer{};
    std::thread acceptor([&] {
        socklen_t len = sizeof peer;
        cfd = g_ifc.accept(g_ifc.userdata, lfd, (sockaddr *)&peer, &len);
    });

    // SYN with MSS 1000, SACK permitted, timestamps, window scale 7.
    std::vector<uint8_t> synOpts = {2, 4, 0x03, 0xe8, 4, 2};
    std::vector<uint8_t> ts = TsOption(100, 0);
    synOpts.insert(synOpts.end(), ts.begin() + 2, ts.end()); // kind 8 without the NOPs
    synOpts.insert(synOpts.end(), {1, 3, 3, 7});
    Inject(Tcp(peerPort, port, 1000, 0, SYN, synOpts, "", 29200));

    Segment s;
    ASSERT_TRUE(Next(s, false));
    EXPECT_TRUE(s.ipChecksumOk);
    EXPECT_TRUE(s.tcpChecksumOk);
    EXPECT_EQ(s.src, kLocal);
    EXPECT_EQ(s.dst, kRemote);
    EXPECT_EQ(s.sport, port);
    EXPECT_EQ(s.dport, peerPort);
    EXPECT_EQ(s.flags, SYN | ACK);
    EXPECT_EQ(s.ack, 1001u);
    std::vector<uint8_t> v;
    ASSERT_TRUE(s.Option(2, &v)) << "no MSS";
    EXPECT_EQ(Get16(&v[0]), 1460); // our MTU 1500 less 40
    EXPECT_TRUE(s.Option(4)) << "no SACK permitted";
    ASSERT_TRUE(s.Option(8, &v)) << "no timestamps";
    EXPECT_EQ(Get32(&v[4]), 100u) << "TSecr must echo our TSval";
    ASSERT_TRUE(s.Option(3, &v)) << "no window scale";
    const uint32_t iss = s.seq;
    uint32_t theirTs = s.TsVal();

    Inject(Tcp(peerPort, port, 1001, iss + 1, ACK, TsOption(101, theirTs), "", 229));
    acceptor.join();
    ASSERT_GE(cfd, 0) << strerror(errno);
    EXPECT_EQ(ntohs(peer.sin_port), peerPort);
    EXPECT_EQ(ntohl(peer.sin_addr.s_addr), kRemote);

    // Data in: the application reads what the peer sent.
    Inject(Tcp(peerPort, port, 1001, iss + 1, PSH | ACK, TsOption(102, theirTs), "hello", 229));
    char buf[64];
    ASSERT_EQ(5, g_ifc.read(g_ifc.userdata, cfd, buf, sizeof buf));
    EXPECT_EQ(std::string(buf, 5), "hello");

    // Data out: one segment with the next sequence number, acknowledging what arrived.
    ASSERT_EQ(5, g_ifc.write(g_ifc.userdata, cfd, "world", 5));
    ASSERT_TRUE(Next(s, true));
    EXPECT_TRUE(s.ipChecksumOk);
    EXPECT_TRUE(s.tcpChecksumOk);
    EXPECT_EQ(s.flags & (SYN | FIN | RST | ACK), ACK);
    EXPECT_EQ(s.seq, iss + 1);
    EXPECT_EQ(s.ack, 1006u);
    EXPECT_EQ(s.payload, "world");
    theirTs = s.TsVal();
    Inject(Tcp(peerPort, port, 1006, iss + 6, ACK, TsOption(103, theirTs), "", 229));

    // Close: FIN out; the peer's FIN-ACK gets the last ACK.
    ASSERT_EQ(0, g_ifc.close(g_ifc.userdata, cfd));
    ASSERT_TRUE(Next(s, true));
    EXPECT_TRUE(s.tcpChecksumOk);
    EXPECT_EQ(s.flags & (SYN | FIN | RST | ACK), FIN | ACK);
    EXPECT_EQ(s.seq, iss + 6);
    EXPECT_EQ(s.ack, 1006u);
    theirTs = s.TsVal();
    Inject(Tcp(peerPort, port, 1006, iss + 7, FIN | ACK, TsOption(104, theirTs), "", 229));
    ASSERT_TRUE(Next(s, false));
    EXPECT_TRUE(s.tcpChecksumOk);
    EXPECT_EQ(s.flags, ACK);
    EXPECT_EQ(s.seq, iss + 7);
    EXPECT_EQ(s.ack, 1007u);

    EXPECT_EQ(0, g_ifc.close(g_ifc.userdata, lfd));
}

// Timers run on the real clock while netdev_receive waits: an unanswered SYN-ACK is sent again after the initial RTO
// (RFC 6298 §2.1: 1 s), and the send times say so.
TEST_F(Packetdrill, SynAckRetransmittedOnTheRealClock)
{
    const uint16_t port = 8081, peerPort = PeerPort();
    int lfd = Listener(port);
    ASSERT_GE(lfd, 0);
    Inject(Tcp(peerPort, port, 2000, 0, SYN, {2, 4, 0x05, 0xb4}));
    Segment first, again;
    ASSERT_TRUE(Next(first, false));
    ASSERT_EQ(first.flags, SYN | ACK);
    ASSERT_TRUE(Next(again, false, 5000)) << "the SYN-ACK was not retransmitted";
    EXPECT_EQ(again.flags, SYN | ACK);
    EXPECT_EQ(again.seq, first.seq);
    EXPECT_EQ(again.ack, 2001u);
    long long gap = again.timeUs - first.timeUs;
    EXPECT_GE(gap, 900000) << "retransmitted too early";
    EXPECT_LE(gap, 3100000) << "retransmitted too late";
    // Leave nothing behind: the peer resets the embryonic connection.
    Inject(Tcp(peerPort, port, 2001, 0, RST));
    EXPECT_EQ(0, g_ifc.close(g_ifc.userdata, lfd));
}

// A SYN to a port nobody listens on is answered with RST-ACK (RFC 9293 §3.10.7.1).
TEST_F(Packetdrill, RstToClosedPort)
{
    const uint16_t peerPort = PeerPort();
    Inject(Tcp(peerPort, 9, 5000, 0, SYN));
    Segment s;
    ASSERT_TRUE(Next(s, false));
    EXPECT_TRUE(s.ipChecksumOk);
    EXPECT_TRUE(s.tcpChecksumOk);
    EXPECT_EQ(s.sport, 9);
    EXPECT_EQ(s.dport, peerPort);
    EXPECT_EQ(s.flags, RST | ACK);
    EXPECT_EQ(s.seq, 0u);
    EXPECT_EQ(s.ack, 5001u);
}

// Active open through the interface, with poll() waiting on the user fd, and kernel fds (a pipe, epoll) beside it.
TEST_F(Packetdrill, ActiveOpenPollAndKernelFds)
{
    int fd = g_ifc.socket(g_ifc.userdata, AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    int fl = g_ifc.fcntl(g_ifc.userdata, fd, F_GETFL);
    ASSERT_GE(fl, 0);
    ASSERT_EQ(0, g_ifc.fcntl(g_ifc.userdata, fd, F_SETFL, fl | O_NONBLOCK));
    sockaddr_in a{};
    a.sin_family = AF_INET, a.sin_port = htons(8000), a.sin_addr.s_addr = htonl(kRemote);
    ASSERT_EQ(-1, g_ifc.connect(g_ifc.userdata, fd, (sockaddr *)&a, sizeof a));
    ASSERT_EQ(EINPROGRESS, errno);

    Segment s;
    ASSERT_TRUE(Next(s, false));
    EXPECT_TRUE(s.tcpChecksumOk);
    EXPECT_EQ(s.flags, SYN);
    EXPECT_EQ(s.dport, 8000);
    EXPECT_TRUE(s.Option(2));
    const uint32_t iss = s.seq;
    const uint16_t myPort = s.sport;
    Inject(Tcp(8000, myPort, 7000, iss + 1, SYN | ACK, {2, 4, 0x05, 0xb4}));
    ASSERT_TRUE(Next(s, false));
    EXPECT_EQ(s.flags, ACK);
    EXPECT_EQ(s.ack, 7001u);

    pollfd p{fd, POLLOUT, 0};
    ASSERT_EQ(1, g_ifc.poll(g_ifc.userdata, &p, 1, 1000));
    EXPECT_TRUE(p.revents & POLLOUT);
    int err = -1;
    socklen_t len = sizeof err;
    ASSERT_EQ(0, g_ifc.getsockopt(g_ifc.userdata, fd, SOL_SOCKET, SO_ERROR, &err, &len));
    EXPECT_EQ(0, err);

    // epoll over the user fd: readable once data arrives.
    int ep = g_ifc.epoll_create(g_ifc.userdata, 1);
    ASSERT_GE(ep, 0);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    ASSERT_EQ(0, g_ifc.epoll_ctl(g_ifc.userdata, ep, EPOLL_CTL_ADD, fd, &ev));
    EXPECT_EQ(0, g_ifc.epoll_wait(g_ifc.userdata, ep, &ev, 1, 0));
    Inject(Tcp(8000, myPort, 7001, iss + 1, PSH | ACK, {}, "xyz"));
    ASSERT_EQ(1, g_ifc.epoll_wait(g_ifc.userdata, ep, &ev, 1, 1000));
    EXPECT_EQ(ev.data.fd, fd);
    char buf[8];
    EXPECT_EQ(3, g_ifc.recv(g_ifc.userdata, fd, buf, sizeof buf, 0));

    // A pipe is the kernel's, and the socket calls that take any fd leave it to the kernel.
    int pfd[2];
    ASSERT_EQ(0, g_ifc.pipe(g_ifc.userdata, pfd));
    ASSERT_EQ(2, g_ifc.write(g_ifc.userdata, pfd[1], "ok", 2));
    ASSERT_EQ(2, g_ifc.read(g_ifc.userdata, pfd[0], buf, sizeof buf));
    EXPECT_EQ(0, g_ifc.close(g_ifc.userdata, pfd[0]));
    EXPECT_EQ(0, g_ifc.close(g_ifc.userdata, pfd[1]));
    EXPECT_EQ(0, g_ifc.close(g_ifc.userdata, ep));

    // Abort: SO_LINGER 0 makes close send RST.
    linger lg{1, 0};
    ASSERT_EQ(0, g_ifc.setsockopt(g_ifc.userdata, fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg));
    ASSERT_EQ(0, g_ifc.close(g_ifc.userdata, fd));
    ASSERT_TRUE(Next(s, true));
    EXPECT_TRUE(s.flags & RST);
}

// Sockets made through the interface are user-stack sockets even though USERTCP_IP is not set here.
TEST_F(Packetdrill, SocketsAreUserStackSockets)
{
    using state_fn = int (*)();
    void *h = dlopen(ut::Library().c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
    ASSERT_NE(h, nullptr);
    auto state = reinterpret_cast<state_fn>(dlsym(h, "usertcp_runtime_state"));
    ASSERT_NE(state, nullptr);
    EXPECT_EQ(1, state());
    ASSERT_EQ(nullptr, getenv("USERTCP_IP"));
    int fd = g_ifc.socket(g_ifc.userdata, AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    // The user stack does TCP only.
    EXPECT_EQ(-1, g_ifc.socket(g_ifc.userdata, AF_INET, SOCK_DGRAM, 0));
    EXPECT_EQ(0, g_ifc.close(g_ifc.userdata, fd));
    EXPECT_EQ(-1, g_ifc.close(g_ifc.userdata, fd));
    EXPECT_EQ(EBADF, errno);
}

} // namespace
