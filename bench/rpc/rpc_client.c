// Client for the A/B benchmarks (scripts/ab.py); runs on the kernel in the client namespace.
//
//   rpc_client echo HOST PORT CONNS SECONDS [SIZE [REQUESTS]]
//       Opens CONNS connections, then keeps one SIZE-byte (default 64) request outstanding on each (closed loop)
//       for SECONDS, or until REQUESTS responses arrived (0: no limit; no new request is sent past the limit).
//       Prints one line: conns=.. requests=.. rps=.. p50_us=.. p99_us=.. errors=..
//   rpc_client hold HOST PORT N [NPORTS]
//       Opens N connections (at most 512 connects in flight; any not established within 20 s, or
//       RPC_CONNECT_SECONDS, counts as failed) and keeps them open and idle; with NPORTS > 1 connection i goes
//       to port PORT + i % NPORTS (rpc_server PORT NPORTS). Prints
//       "opened=N failed=F seconds=T rate=R rss0_kb=A rss1_kb=B" (this process's VmRSS before and after). Then reads commands from stdin, one a line:
//         churn S [K]  open and close new connections (K in flight, default and at most 64) for S seconds while
//                   the N stay open;
//                   prints "churn_rate=R failed=F"
//         check     sends one byte on every held connection and waits for its echo; prints "alive=K"
//         ping      one byte on the first held connection, its echo awaited in poll(); prints "ping_us=T"
//         quit (or end of input)  closes everything and exits.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static struct sockaddr_in s_addr;
static int s_port, s_nports = 1;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int start_connect_to(int port);
static int start_connect(void) { return start_connect_to(s_port); }

static int start_connect_to(int port) {
    s_addr.sin_port = htons((unsigned short)port);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&s_addr, sizeof s_addr) < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static int conn_error(int fd) {
    int err = 0; socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) return errno;
    return err;
}

// Opens n connections into fds[]; returns how many succeeded (failed ones are -1).
static int open_many(int *fds, int n, int window, int *failed) {
    int ep = epoll_create1(0), next = 0, inflight = 0, ok = 0;
    *failed = 0;
    struct epoll_event evs[512];
    const char *dl = getenv("RPC_CONNECT_SECONDS");
    uint64_t deadline = now_ns() + (uint64_t)((dl ? atof(dl) : 20.0) * 1e9);  // connects not done by then count as failed
    while ((next < n || inflight > 0) && now_ns() < deadline) {
        while (next < n && inflight < window) {
            int fd = start_connect_to(s_port + next % s_nports);
            fds[next] = fd;
            if (fd < 0) {
                if (*failed == 0) fprintf(stderr, "rpc_client: connection %d: %s\n", next, strerror(errno));
                (*failed)++; next++; continue;
            }
            struct epoll_event ev = { .events = EPOLLOUT, .data.u32 = (uint32_t)next };
            epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
            next++; inflight++;
        }
        int k = epoll_wait(ep, evs, 512, 100);
        for (int i = 0; i < k; i++) {
            int idx = (int)evs[i].data.u32, fd = fds[idx];
            epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
            inflight--;
            if (conn_error(fd) == 0) ok++;
            else { close(fd); fds[idx] = -1; (*failed)++; }
        }
    }
    close(ep);
    return ok;
}

static int cmd_echo(int conns, double seconds, int size, long limit) {
    int *fds = calloc((size_t)conns, sizeof *fds);
    uint64_t *sent_at = calloc((size_t)conns, sizeof *sent_at);
    int *got = calloc((size_t)conns, sizeof *got);
    enum { BUCKETS = 1000000 };  // 1 us buckets up to 1 s, then one overflow bucket
    uint32_t *hist = calloc(BUCKETS + 1, sizeof *hist);
    char *req = malloc((size_t)size), buf[65536];
    memset(req, 'x', (size_t)size);
    int failed, open = open_many(fds, conns, 512, &failed);
    long errors = failed;
    int ep = epoll_create1(0);
    for (int i = 0; i < conns; i++) {
        if (fds[i] < 0) continue;
        struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)i };
        epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
    }
    uint64_t start = now_ns(), end = start + (uint64_t)(seconds * 1e9);
    long sent = 0;
    for (int i = 0; i < conns; i++) {
        if (fds[i] < 0) continue;
        if (limit > 0 && sent == limit) break;
        sent++;
        sent_at[i] = now_ns();
        if (write(fds[i], req, (size_t)size) != size) { errors++; close(fds[i]); fds[i] = -1; }
    }
    long done = 0;
    struct epoll_event evs[512];
    uint64_t t;
    while ((t = now_ns()) < end && (limit <= 0 || done < limit)) {
        int k = epoll_wait(ep, evs, 512, 10);
        for (int i = 0; i < k; i++) {
            int idx = (int)evs[i].data.u32, fd = fds[idx];
            if (fd < 0) continue;
            ssize_t n = read(fd, buf, sizeof buf);
            if (n <= 0) {
                if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
                errors++; close(fd); fds[idx] = -1; continue;
            }
            got[idx] += (int)n;
            if (got[idx] < size) continue;
            got[idx] = 0;
            uint64_t now = now_ns(), us = (now - sent_at[idx]) / 1000;
            hist[us < BUCKETS ? us : BUCKETS]++;
            done++;
            sent_at[idx] = now;
            if (limit > 0 && sent >= limit) continue;
            sent++;
            if (write(fd, req, (size_t)size) != size) { errors++; close(fd); fds[idx] = -1; }
        }
    }
    double secs = (double)(t - start) / 1e9;
    long p50 = -1, p99 = -1, acc = 0;
    for (long b = 0; b <= BUCKETS && done > 0; b++) {
        acc += hist[b];
        if (p50 < 0 && acc * 2 >= done) p50 = b;
        if (p99 < 0 && acc * 100 >= done * 99) { p99 = b; break; }
    }
    printf("conns=%d open=%d requests=%ld rps=%.0f p50_us=%ld p99_us=%ld errors=%ld\n",
           conns, open, done, done / secs, p50, p99, errors);
    return 0;
}

// VmRSS of this process in KiB (0 if unknown).
static long rss_kb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    long kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld", &kb) == 1) break;
    fclose(f);
    return kb;
}

static int cmd_hold(int n) {
    int *fds = calloc((size_t)n, sizeof *fds);
    for (int i = 0; i < n; i++) fds[i] = -1;  // touch the array now: its pages are not the connections' cost
    int failed;
    long rss0 = rss_kb();
    uint64_t t0 = now_ns();
    int ok = open_many(fds, n, 512, &failed);
    double secs = (double)(now_ns() - t0) / 1e9;
    printf("opened=%d failed=%d seconds=%.3f rate=%.0f rss0_kb=%ld rss1_kb=%ld\n", ok, failed, secs, ok / secs, rss0, rss_kb());
    fflush(stdout);
    char line[256];
    while (fgets(line, sizeof line, stdin)) {
        double s;
        int width = 64;
        if (sscanf(line, "churn %lf %d", &s, &width) >= 1) {
            // Short connections: connect, and close as soon as the handshake completed.
            if (width < 1 || width > 64) width = 64;
            int ep = epoll_create1(0), inflight = 0;
            long done = 0, bad = 0;
            struct epoll_event evs[64];
            uint64_t start = now_ns(), end = start + (uint64_t)(s * 1e9), t;
            while ((t = now_ns()) < end) {
                while (inflight < width) {
                    int fd = start_connect();
                    if (fd < 0) { bad++; break; }
                    struct epoll_event ev = { .events = EPOLLOUT, .data.fd = fd };
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
                    inflight++;
                }
                int k = epoll_wait(ep, evs, 64, 10);
                for (int i = 0; i < k; i++) {
                    int fd = evs[i].data.fd;
                    if (conn_error(fd) == 0) done++; else bad++;
                    close(fd); inflight--;
                }
                if (bad > 100000) break;
            }
            close(ep);  // connects still in flight are abandoned (closed with the process)
            printf("churn_rate=%.0f failed=%ld\n", done / ((double)(t - start) / 1e9), bad);
        } else if (strncmp(line, "check", 5) == 0) {
            int alive = 0;
            char c = 'x', r;
            for (int i = 0; i < n; i++) {
                if (fds[i] < 0) continue;
                if (write(fds[i], &c, 1) != 1) continue;
                uint64_t deadline = now_ns() + 1000000000u;
                while (now_ns() < deadline) {
                    ssize_t k = read(fds[i], &r, 1);
                    if (k == 1) { alive++; break; }
                    if (k == 0 || (k < 0 && errno != EAGAIN)) break;
                    usleep(50);
                }
            }
            printf("alive=%d\n", alive);
        } else if (strncmp(line, "ping", 4) == 0) {
            // One byte on the first held connection, its echo awaited in poll(): the round trip after a quiet
            // spell (both ends may be asleep), in microseconds; -1 when it failed or took over 1 s.
            int fd = -1;
            for (int i = 0; i < n && fd < 0; i++) fd = fds[i];
            char c = 'p', r;
            double us = -1;
            uint64_t t = now_ns();
            if (fd >= 0 && write(fd, &c, 1) == 1) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                while (poll(&p, 1, 1000) == 1) {
                    ssize_t k = read(fd, &r, 1);
                    if (k == 1) { us = (double)(now_ns() - t) / 1e3; break; }
                    if (k == 0 || (k < 0 && errno != EAGAIN)) break;
                }
            }
            printf("ping_us=%.0f\n", us);
        } else if (strncmp(line, "quit", 4) == 0) {
            break;
        }
        fflush(stdout);
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 5) { fprintf(stderr, "usage: %s echo HOST PORT CONNS SECONDS [SIZE [REQUESTS]] | hold HOST PORT N\n", argv[0]); return 2; }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) { rl.rlim_cur = rl.rlim_max; setrlimit(RLIMIT_NOFILE, &rl); }
    signal(SIGPIPE, SIG_IGN);
    s_addr.sin_family = AF_INET;
    s_port = atoi(argv[3]);
    s_addr.sin_port = htons((unsigned short)s_port);
    if (inet_pton(AF_INET, argv[2], &s_addr.sin_addr) != 1) { fprintf(stderr, "bad address %s\n", argv[2]); return 2; }
    if (strcmp(argv[1], "echo") == 0)
        return cmd_echo(atoi(argv[4]), atof(argv[5]), argc > 6 ? atoi(argv[6]) : 64, argc > 7 ? atol(argv[7]) : 0);
    if (strcmp(argv[1], "hold") == 0) {
        if (argc > 5) s_nports = atoi(argv[5]);
        if (s_nports < 1) s_nports = 1;
        return cmd_hold(atoi(argv[4]));
    }
    fprintf(stderr, "unknown mode %s\n", argv[1]);
    return 2;
}
