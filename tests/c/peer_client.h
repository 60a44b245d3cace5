// The parity suites' side of tests/c/progs/peer.c: a control connection (a UNIX socket named by PEER_CTL, set by
// tests/c/run-conn-parity.sh) through which a test orders the kernel peer in the client namespace to listen, accept,
// connect, send, receive and close. Shared by conn_parity_test.cc and inet6_parity_test.cc.
#pragma once
#include <gtest/gtest.h>

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <poll.h>
#include <string>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace ut {

inline long NowMs()
{
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

// poll() for POLLIN: the revents, 0 on timeout, -1 on error.
inline int Readable(int fd, int timeout_ms)
{
    pollfd p = { fd, POLLIN, 0 };
    int r = poll(&p, 1, timeout_ms);
    return r > 0 ? p.revents : r;
}

// One control connection to the peer: its own peer process, holding one listener and one data connection.
class Peer {
public:
    Peer()
    {
        const char *path = getenv("PEER_CTL");
        if (!path) return;
        _fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un un{};
        un.sun_family = AF_UNIX;
        snprintf(un.sun_path, sizeof un.sun_path, "%s", path);
        if (connect(_fd, (sockaddr *)&un, sizeof un) != 0) {
            close(_fd);
            _fd = -1;
        }
    }
    ~Peer()
    {
        if (_fd >= 0) close(_fd);
    }
    bool Ok() const { return _fd >= 0; }

    // Sends one command line and returns the answer line ("" after 10 s without one).
    std::string Cmd(const char *fmt, ...) __attribute__((format(printf, 2, 3)))
    {
        char line[256];
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(line, sizeof line - 1, fmt, ap);
        va_end(ap);
        line[n++] = '\n';
        if (write(_fd, line, n) != n) return "";
        return Answer();
    }
    // Sends a command without waiting for its answer (the peer is going to block on our data).
    void Start(const char *cmd)
    {
        std::string s = std::string(cmd) + "\n";
        ssize_t w = write(_fd, s.data(), s.size());
        (void)w;
    }
    std::string Answer(int timeout_ms = 10000)
    {
        std::string got;
        long deadline = NowMs() + timeout_ms;
        for (;;) {
            size_t nl = _buf.find('\n');
            if (nl != std::string::npos) {
                got = _buf.substr(0, nl);
                _buf.erase(0, nl + 1);
                return got;
            }
            pollfd p = { _fd, POLLIN, 0 };
            long left = deadline - NowMs();
            if (left <= 0 || poll(&p, 1, (int)left) <= 0) return "";
            char b[256];
            ssize_t r = read(_fd, b, sizeof b);
            if (r <= 0) return "";
            _buf.append(b, r);
        }
    }
    uint16_t Listen()
    {
        std::string a = Cmd("LISTEN 0");
        EXPECT_EQ(a.rfind("OK ", 0), 0u) << a;
        return a.size() > 3 ? (uint16_t)atoi(a.c_str() + 3) : 0;
    }

private:
    int _fd = -1;
    std::string _buf;
};

} // namespace ut
