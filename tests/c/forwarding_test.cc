// Every intercepted call on KERNEL fds must behave exactly as libc's. This binary runs three times (tests.mk): on the
// kernel, under LD_PRELOAD with no offload configured, and under LD_PRELOAD with offload configured (then without
// the AF_INET TCP cases, which become user-stack sockets). The runtime must never start for kernel fds.
#include "helpers.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

struct Pipe {
    int r = -1, w = -1;
    Pipe() { int p[2]; EXPECT_EQ(pipe(p), 0); r = p[0]; w = p[1]; }
    ~Pipe() { close(r); close(w); }
};

struct UnixPair {
    int a = -1, b = -1;
    explicit UnixPair(int type = SOCK_STREAM) { int s[2]; EXPECT_EQ(socketpair(AF_UNIX, type, 0, s), 0); a = s[0]; b = s[1]; }
    ~UnixPair() { close(a); close(b); }
};

// A connected loopback TCP pair through socket/bind/listen/connect/accept4.
struct TcpPair {
    int listener = -1, client = -1, server = -1;
    TcpPair()
    {
        listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        EXPECT_GE(listener, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        EXPECT_EQ(bind(listener, (sockaddr *)&a, sizeof a), 0);
        EXPECT_EQ(listen(listener, 4), 0);
        socklen_t len = sizeof a;
        EXPECT_EQ(getsockname(listener, (sockaddr *)&a, &len), 0);
        client = socket(AF_INET, SOCK_STREAM, 0);
        EXPECT_EQ(connect(client, (sockaddr *)&a, sizeof a), 0);
        server = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
        EXPECT_GE(server, 0);
    }
    ~TcpPair() { close(client); close(server); close(listener); }
};

} // namespace

TEST(Forwarding, ReadWritePipe)
{
    Pipe p;
    ASSERT_EQ(write(p.w, "hello", 5), 5);
    char buf[8] = {};
    ASSERT_EQ(read(p.r, buf, sizeof buf), 5);
    EXPECT_STREQ(buf, "hello");
}

TEST(Forwarding, ReadvWritev)
{
    Pipe p;
    char a[] = "ab", b[] = "cde";
    iovec out[2] = { { a, 2 }, { b, 3 } };
    ASSERT_EQ(writev(p.w, out, 2), 5);
    char x[3] = {}, y[3] = {};
    iovec in[2] = { { x, 2 }, { y, 3 } };
    ASSERT_EQ(readv(p.r, in, 2), 5);
    EXPECT_EQ(std::string(x, 2), "ab");
    EXPECT_EQ(std::string(y, 3), "cde");
}

TEST(Forwarding, PreadPwriteOnFile)
{
    char path[] = "/tmp/usertcp-fwd-XXXXXX";
    int fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    unlink(path);
    ASSERT_EQ(pwrite(fd, "0123456789", 10, 0), 10);
    ASSERT_EQ(pwrite64(fd, "AB", 2, 4), 2);
    char buf[4] = {};
    ASSERT_EQ(pread(fd, buf, 3, 3), 3);
    EXPECT_EQ(std::string(buf, 3), "3AB");
    ASSERT_EQ(pread64(fd, buf, 2, 8), 2);
    EXPECT_EQ(std::string(buf, 2), "89");
    // ESPIPE on a pipe, from the kernel.
    Pipe p;
    EXPECT_EQ(pread(p.r, buf, 1, 0), -1);
    EXPECT_EQ(errno, ESPIPE);
    close(fd);
}

TEST(Forwarding, SocketpairSendRecvAndMsg)
{
    UnixPair s;
    ASSERT_EQ(send(s.a, "x", 1, 0), 1);
    char c = 0;
    ASSERT_EQ(recv(s.b, &c, 1, 0), 1);
    EXPECT_EQ(c, 'x');
    char data[] = "msg";
    iovec iov = { data, 3 };
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    ASSERT_EQ(sendmsg(s.b, &m, 0), 3);
    char got[4] = {};
    iovec riov = { got, 3 };
    msghdr rm{};
    rm.msg_iov = &riov;
    rm.msg_iovlen = 1;
    ASSERT_EQ(recvmsg(s.a, &rm, 0), 3);
    EXPECT_STREQ(got, "msg");
    // Errors come from the kernel unchanged.
    EXPECT_EQ(recv(s.a, &c, 1, MSG_DONTWAIT), -1);
    EXPECT_EQ(errno, EAGAIN);
}

TEST(Forwarding, UdpSendtoRecvfromMmsg)
{
    int a = socket(AF_INET, SOCK_DGRAM, 0), b = socket(AF_INET, SOCK_DGRAM, 0);
    ASSERT_GE(a, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(bind(b, (sockaddr *)&addr, sizeof addr), 0);
    socklen_t len = sizeof addr;
    ASSERT_EQ(getsockname(b, (sockaddr *)&addr, &len), 0);
    ASSERT_EQ(sendto(a, "dgram", 5, 0, (sockaddr *)&addr, sizeof addr), 5);
    char buf[8] = {};
    sockaddr_in from{};
    socklen_t flen = sizeof from;
    ASSERT_EQ(recvfrom(b, buf, sizeof buf, 0, (sockaddr *)&from, &flen), 5);
    EXPECT_EQ(from.sin_addr.s_addr, htonl(INADDR_LOOPBACK));
    ASSERT_EQ(connect(a, (sockaddr *)&addr, sizeof addr), 0);
    char m1[] = "one", m2[] = "two";
    iovec v[2] = { { m1, 3 }, { m2, 3 } };
    mmsghdr out[2]{};
    out[0].msg_hdr.msg_iov = &v[0];
    out[0].msg_hdr.msg_iovlen = 1;
    out[1].msg_hdr.msg_iov = &v[1];
    out[1].msg_hdr.msg_iovlen = 1;
    ASSERT_EQ(sendmmsg(a, out, 2, 0), 2);
    char r1[4] = {}, r2[4] = {};
    iovec rv[2] = { { r1, 3 }, { r2, 3 } };
    mmsghdr in[2]{};
    in[0].msg_hdr.msg_iov = &rv[0];
    in[0].msg_hdr.msg_iovlen = 1;
    in[1].msg_hdr.msg_iov = &rv[1];
    in[1].msg_hdr.msg_iovlen = 1;
    timespec tmo = { 1, 0 };
    ASSERT_EQ(recvmmsg(b, in, 2, MSG_WAITFORONE, &tmo), 2);
    EXPECT_STREQ(r1, "one");
    EXPECT_STREQ(r2, "two");
    close(a);
    close(b);
}

TEST(ForwardingTcp, LoopbackConnectAcceptSendfileShutdown)
{
    TcpPair t;
    ASSERT_GE(t.server, 0);
    sockaddr_in peer{};
    socklen_t len = sizeof peer;
    ASSERT_EQ(getpeername(t.server, (sockaddr *)&peer, &len), 0);
    EXPECT_EQ(peer.sin_addr.s_addr, htonl(INADDR_LOOPBACK));
    int one = 1, v = 0;
    ASSERT_EQ(setsockopt(t.client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one), 0);
    socklen_t vl = sizeof v;
    ASSERT_EQ(getsockopt(t.client, IPPROTO_TCP, TCP_NODELAY, &v, &vl), 0);
    EXPECT_EQ(v, 1);

    char path[] = "/tmp/usertcp-sf-XXXXXX";
    int f = mkstemp(path);
    ASSERT_GE(f, 0);
    unlink(path);
    ASSERT_EQ(write(f, "sendfile-data", 13), 13);
    off_t off = 0;
    ASSERT_EQ(sendfile(t.server, f, &off, 8), 8);
    EXPECT_EQ(off, 8);
    off64_t off64 = 8;
    ASSERT_EQ(sendfile64(t.server, f, &off64, 5), 5);
    char buf[16] = {};
    size_t got = 0;
    while (got < 13) {
        ssize_t n = recv(t.client, buf + got, sizeof buf - got, 0);
        ASSERT_GT(n, 0);
        got += (size_t)n;
    }
    EXPECT_EQ(std::string(buf, 13), "sendfile-data");
    ASSERT_EQ(shutdown(t.server, SHUT_WR), 0);
    EXPECT_EQ(read(t.client, buf, 1), 0);
    int avail = -1;
    ASSERT_EQ(ioctl(t.client, FIONREAD, &avail), 0);
    EXPECT_EQ(avail, 0);
    close(f);
}

TEST(ForwardingTcp, AcceptWithoutFlags)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(bind(l, (sockaddr *)&a, sizeof a), 0);
    ASSERT_EQ(listen(l, 1), 0);
    socklen_t len = sizeof a;
    getsockname(l, (sockaddr *)&a, &len);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_EQ(connect(c, (sockaddr *)&a, sizeof a), 0);
    sockaddr_in from{};
    socklen_t flen = sizeof from;
    int s = accept(l, (sockaddr *)&from, &flen);
    ASSERT_GE(s, 0);
    EXPECT_EQ(flen, sizeof from);
    close(s);
    close(c);
    close(l);
}

TEST(Forwarding, DupFamilyAndFcntl)
{
    Pipe p;
    int d = dup(p.w);
    ASSERT_GE(d, 0);
    int d2 = dup2(p.w, 100);
    ASSERT_EQ(d2, 100);
    int d3 = dup3(p.w, 101, O_CLOEXEC);
    ASSERT_EQ(d3, 101);
    EXPECT_EQ(fcntl(d3, F_GETFD), FD_CLOEXEC);
    EXPECT_EQ(dup3(p.w, p.w, 0), -1);
    EXPECT_EQ(errno, EINVAL);
    ASSERT_EQ(write(d2, "z", 1), 1);
    char c;
    ASSERT_EQ(read(p.r, &c, 1), 1);
    int fl = fcntl(p.r, F_GETFL);
    ASSERT_EQ(fcntl(p.r, F_SETFL, fl | O_NONBLOCK), 0);
    EXPECT_TRUE(fcntl(p.r, F_GETFL) & O_NONBLOCK);
    EXPECT_EQ(read(p.r, &c, 1), -1);
    EXPECT_EQ(errno, EAGAIN);
    int nb = 0;
    ASSERT_EQ(ioctl(p.r, FIONBIO, &nb), 0);
    EXPECT_FALSE(fcntl(p.r, F_GETFL) & O_NONBLOCK);
    close(d);
    close(d2);
    close(d3);
    EXPECT_EQ(close(d3), -1);
    EXPECT_EQ(errno, EBADF);
    EXPECT_EQ(read(-1, &c, 1), -1);
    EXPECT_EQ(errno, EBADF);
}

TEST(Forwarding, PollPpollSelectPselect)
{
    Pipe p;
    pollfd pf[2] = { { p.r, POLLIN, 0 }, { p.w, POLLOUT, 0 } };
    ASSERT_EQ(poll(pf, 2, 0), 1);
    EXPECT_EQ(pf[1].revents, POLLOUT);
    ASSERT_EQ(write(p.w, "a", 1), 1);
    timespec ts = { 0, 0 };
    ASSERT_EQ(ppoll(pf, 2, &ts, nullptr), 2);
    EXPECT_EQ(pf[0].revents, POLLIN);
    fd_set r;
    FD_ZERO(&r);
    FD_SET(p.r, &r);
    timeval tv = { 0, 0 };
    ASSERT_EQ(select(p.r + 1, &r, nullptr, nullptr, &tv), 1);
    EXPECT_TRUE(FD_ISSET(p.r, &r));
    FD_SET(p.r, &r);
    ASSERT_EQ(pselect(p.r + 1, &r, nullptr, nullptr, &ts, nullptr), 1);
    // A timeout with nothing ready returns 0 after about the time asked.
    pollfd none = { p.w, 0, 0 };
    ASSERT_EQ(poll(&none, 1, 20), 0);
}

TEST(Forwarding, EpollFamily)
{
    Pipe p;
    int e1 = epoll_create(1), e2 = epoll_create1(EPOLL_CLOEXEC);
    ASSERT_GE(e1, 0);
    ASSERT_GE(e2, 0);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = 0x1234567890ULL;
    ASSERT_EQ(epoll_ctl(e1, EPOLL_CTL_ADD, p.r, &ev), 0);
    EXPECT_EQ(epoll_ctl(e1, EPOLL_CTL_ADD, p.r, &ev), -1);
    EXPECT_EQ(errno, EEXIST);
    epoll_event out[4];
    EXPECT_EQ(epoll_wait(e1, out, 4, 0), 0);
    ASSERT_EQ(write(p.w, "a", 1), 1);
    ASSERT_EQ(epoll_wait(e1, out, 4, 0), 1);
    EXPECT_EQ(out[0].data.u64, 0x1234567890ULL);
    ASSERT_EQ(epoll_pwait(e1, out, 4, 0, nullptr), 1);
    timespec ts = { 0, 0 };
    ASSERT_EQ(epoll_pwait2(e1, out, 4, &ts, nullptr), 1);
    ASSERT_EQ(epoll_ctl(e2, EPOLL_CTL_ADD, e1, &ev), 0); // nested epoll
    ASSERT_EQ(epoll_wait(e2, out, 4, 0), 1);
    EXPECT_EQ(epoll_wait(e1, out, 0, 0), -1);
    EXPECT_EQ(errno, EINVAL);
    close(e2);
    close(e1);
}

TEST(Forwarding, ForkVforkDaemon)
{
    Pipe p;
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) _exit(write(p.w, "f", 1) == 1 ? 0 : 1);
    int st;
    ASSERT_EQ(waitpid(pid, &st, 0), pid);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    pid = vfork();
    if (pid == 0) _exit(7);
    ASSERT_EQ(waitpid(pid, &st, 0), pid);
    EXPECT_EQ(WEXITSTATUS(st), 7);
    // daemon() in a child: it forks again and its grandchild writes to the pipe.
    pid = fork();
    if (pid == 0) {
        if (daemon(1, 1) != 0) _exit(2);
        (void)!write(p.w, "d", 1);
        _exit(0);
    }
    ASSERT_EQ(waitpid(pid, &st, 0), pid);
    char buf[2] = {};
    size_t got = 0;
    while (got < 2) { // the daemon's grandchild writes on its own schedule
        ssize_t n = read(p.r, buf + got, 2 - got);
        ASSERT_GT(n, 0);
        got += (size_t)n;
    }
    EXPECT_EQ(std::string(buf, 2), "fd");
}

TEST(Forwarding, Fcntl64AndDoubleUnderscoreAliases)
{
    Pipe p;
    auto fcntl64_fn = reinterpret_cast<int (*)(int, int, ...)>(dlsym(RTLD_DEFAULT, "fcntl64"));
    ASSERT_NE(fcntl64_fn, nullptr);
    EXPECT_EQ(fcntl64_fn(p.r, F_GETFL) & O_ACCMODE, O_RDONLY);
    auto read_alias = reinterpret_cast<ssize_t (*)(int, void *, size_t)>(dlsym(RTLD_DEFAULT, "__read"));
    auto write_alias = reinterpret_cast<ssize_t (*)(int, const void *, size_t)>(dlsym(RTLD_DEFAULT, "__write"));
    ASSERT_NE(read_alias, nullptr);
    ASSERT_EQ(write_alias(p.w, "q", 1), 1);
    char c = 0;
    ASSERT_EQ(read_alias(p.r, &c, 1), 1);
    EXPECT_EQ(c, 'q');
    if (ut::RuntimeState() < 0) return;
    // Under usertcp the aliases must be ours, or a program calling them would bypass the shim.
    for (const char *name : { "__read", "__write", "__close", "__connect", "__send", "__recv", "__poll", "__fcntl",
                              "__dup2", "__select", "fcntl64", "__read_chk", "__recv_chk", "__poll_chk" }) {
        Dl_info info{};
        void *sym = dlsym(RTLD_DEFAULT, name);
        ASSERT_NE(sym, nullptr) << name;
        ASSERT_NE(dladdr(sym, &info), 0) << name;
        EXPECT_NE(strstr(info.dli_fname, "libusertcp"), nullptr) << name << " resolves to " << info.dli_fname;
    }
}

TEST(Forwarding, RuntimeNeverStartsForKernelFds)
{
    // Runs last in this binary (gtest keeps file order): everything above used only kernel fds.
    int state = ut::RuntimeState();
    if (state < 0) GTEST_SKIP() << "not running under libusertcp.so";
    EXPECT_EQ(state, 0);
    EXPECT_EQ(ut::ThreadCount(), 1);
}
