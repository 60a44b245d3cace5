// RPC echo server for the A/B benchmarks (scripts/ab.py, workloads W3, W5, W6): one thread, one epoll set,
// non-blocking sockets; every byte read is written back. The same binary runs on the kernel and, under
// LD_PRELOAD=build/libusertcp.so, on usertcp. Usage: rpc_server PORT [NPORTS]
// NPORTS > 1 listens on PORT .. PORT+NPORTS-1 (W5 with 1M connections: one client address reaches one server
// port from at most ~28k-64k ephemeral ports, so many connections need many server ports).
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

// Bytes read but not yet written back (only after a short write; none in the common case, so an idle connection
// costs the server nothing but its socket).
struct pending { size_t len, off; char data[]; };
static struct pending **s_pending;
static size_t s_pending_cap;

static volatile sig_atomic_t s_stop;
static void on_signal(int sig) { (void)sig; s_stop = 1; }

static void close_conn(int ep, int fd) {
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
    if ((size_t)fd < s_pending_cap && s_pending[fd]) { free(s_pending[fd]); s_pending[fd] = NULL; }
    close(fd);
}

static int ensure_slot(int fd) {
    if ((size_t)fd < s_pending_cap) return 0;
    size_t cap = s_pending_cap ? s_pending_cap : 1024;
    while (cap <= (size_t)fd) cap *= 2;
    struct pending **p = realloc(s_pending, cap * sizeof *p);
    if (!p) return -1;
    memset(p + s_pending_cap, 0, (cap - s_pending_cap) * sizeof *p);
    s_pending = p; s_pending_cap = cap;
    return 0;
}

// Write back buffered bytes; returns -1 on error, 0 if all written, 1 if some remain.
static int flush_pending(int fd) {
    struct pending *p = s_pending[fd];
    while (p->off < p->len) {
        ssize_t n = write(fd, p->data + p->off, p->len - p->off);
        if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK ? 1 : -1;
        p->off += (size_t)n;
    }
    free(p); s_pending[fd] = NULL;
    return 0;
}

static void on_readable(int ep, int fd) {
    char buf[16384];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n == 0) { close_conn(ep, fd); return; }
        if (n < 0) { if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) close_conn(ep, fd); return; }
        ssize_t w = write(fd, buf, (size_t)n);
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) { close_conn(ep, fd); return; }
        if (w < 0) w = 0;
        if (w < n) {
            // Keep the rest and stop reading until it is written (back-pressure on the client).
            if (ensure_slot(fd)) { close_conn(ep, fd); return; }
            struct pending *p = malloc(sizeof *p + (size_t)(n - w));
            if (!p) { close_conn(ep, fd); return; }
            p->len = (size_t)(n - w); p->off = 0; memcpy(p->data, buf + w, p->len);
            s_pending[fd] = p;
            struct epoll_event ev = { .events = EPOLLOUT, .data.fd = fd };
            epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
            return;
        }
        if ((size_t)n < sizeof buf) return;
    }
}

int main(int argc, char **argv) {
    if (argc != 2 && argc != 3) { fprintf(stderr, "usage: %s PORT [NPORTS]\n", argv[0]); return 2; }
    int nports = argc == 3 ? atoi(argv[2]) : 1;
    if (nports < 1 || nports > 1024) { fprintf(stderr, "NPORTS must be 1..1024\n"); return 2; }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) { rl.rlim_cur = rl.rlim_max; setrlimit(RLIMIT_NOFILE, &rl); }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = { .sa_handler = on_signal };
    sigaction(SIGTERM, &sa, NULL); sigaction(SIGINT, &sa, NULL);

    int one = 1, ep = epoll_create1(0), max_ls = -1;
    int *lss = calloc((size_t)nports, sizeof *lss);
    for (int i = 0; i < nports; i++) {
        int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        if (ls < 0) { perror("socket"); return 1; }
        setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((unsigned short)(atoi(argv[1]) + i)) };
        if (bind(ls, (struct sockaddr *)&a, sizeof a) < 0) { perror("bind"); return 1; }
        if (listen(ls, 65535) < 0) { perror("listen"); return 1; }
        struct epoll_event ev = { .events = EPOLLIN, .data.fd = ls };
        epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
        lss[i] = ls;
        if (ls > max_ls) max_ls = ls;
    }
    char *is_listener = calloc((size_t)max_ls + 1, 1);
    for (int i = 0; i < nports; i++) is_listener[lss[i]] = 1;
    fprintf(stderr, "rpc_server: listening on port %s (%d ports)\n", argv[1], nports);

    struct epoll_event evs[256];
    while (!s_stop) {
        int n = epoll_wait(ep, evs, 256, 1000);
        if (n < 0) { if (errno == EINTR) continue; perror("epoll_wait"); return 1; }
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd <= max_ls && is_listener[fd]) {
                int ls = fd;
                for (;;) {
                    int c = accept4(ls, NULL, NULL, SOCK_NONBLOCK);
                    if (c < 0) break;
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct epoll_event cev = { .events = EPOLLIN, .data.fd = c };
                    if (epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev) < 0) close(c);
                }
            } else if ((size_t)fd < s_pending_cap && s_pending[fd]) {
                int r = flush_pending(fd);
                if (r < 0) close_conn(ep, fd);
                else if (r == 0) {
                    struct epoll_event cev = { .events = EPOLLIN, .data.fd = fd };
                    epoll_ctl(ep, EPOLL_CTL_MOD, fd, &cev);
                }
            } else {
                on_readable(ep, fd);
            }
        }
    }
    return 0;
}
