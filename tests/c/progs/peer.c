// The kernel-side peer of tests/c/conn_parity_test.cc. It runs in the client namespace (198.18.0.1, kernel TCP) and
// takes orders over a UNIX control socket, so the control channel never travels over the stack under test.
//
// Each control connection gets its own forked process that owns at most one listener and one data connection and
// executes one command per line, answering "OK ..." or "ERR <errno name/number> ..." on one line when it is done:
//   LISTEN port        listen on 198.18.0.1:port (0: ephemeral)              -> OK <port>
//   RCVBUF n           SO_RCVBUF for the next listener / connect socket       -> OK
//   ACCEPT             accept one connection on the listener                 -> OK <ip>:<port> of the other end
//   CONNECT port       connect to 198.18.0.2:port                             -> OK <local port> | ERR <errno>
//   SEND n             write n bytes of the pattern (byte i = i % 251)        -> OK <n>
//   SENDSLOW n k ms    the same in k pieces, ms apart                         -> OK <n>
//   RECV n             read exactly n bytes                                   -> OK <n> <fnv1a-32 hex>
//   ECHO n             read exactly n bytes and write them back               -> OK <n>
//   DRAIN ms           sleep ms, then read until EOF                          -> OK <n> <fnv1a-32 hex>
//   WAITEOF            read until EOF, counting bytes                         -> OK <n>
//   SLEEP ms           sleep                                                  -> OK
//   SHUTWR             shutdown(SHUT_WR)                                      -> OK
//   CLOSE              close the data connection                              -> OK
//   RESET              SO_LINGER {1, 0} and close: the kernel sends RST       -> OK
// Every data read times out after 5 s so a broken test never leaves a peer hanging. The process ends when its control
// connection closes (closing whatever it holds).
//
// Usage: peer <unix-socket-path>   (serves until killed)
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PEER_IP "198.18.0.1"
#define TEST_IP "198.18.0.2"

static int s_ctl = -1, s_listener = -1, s_data = -1, s_rcvbuf = 0;

static void reply(const char *fmt, ...)
{
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    line[n++] = '\n';
    if (write(s_ctl, line, n) != n) _exit(1);
}

static void timeouts(int fd)
{
    struct timeval tv = { 5, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

static uint32_t fnv(uint32_t h, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
    return h;
}

static void msleep(int ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

static int send_pattern(long n, long from)
{
    unsigned char buf[16384];
    long done = 0;
    while (done < n) {
        long k = n - done < (long)sizeof buf ? n - done : (long)sizeof buf;
        for (long i = 0; i < k; i++) buf[i] = (unsigned char)((from + done + i) % 251);
        ssize_t w = send(s_data, buf, k, MSG_NOSIGNAL);
        if (w <= 0) return -1;
        done += w;
    }
    return 0;
}

static void command(char *line)
{
    char cmd[16] = "";
    long a = 0, b = 0, c = 0;
    int got = sscanf(line, "%15s %ld %ld %ld", cmd, &a, &b, &c);
    if (got < 1) { reply("ERR syntax"); return; }
    if (!strcmp(cmd, "LISTEN")) {
        if (s_listener >= 0) close(s_listener);
        s_listener = socket(AF_INET, SOCK_STREAM, 0);
        int one = 1;
        setsockopt(s_listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (s_rcvbuf) setsockopt(s_listener, SOL_SOCKET, SO_RCVBUF, &s_rcvbuf, sizeof s_rcvbuf);
        struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((uint16_t)a) };
        inet_pton(AF_INET, PEER_IP, &addr.sin_addr);
        socklen_t len = sizeof addr;
        if (bind(s_listener, (struct sockaddr *)&addr, sizeof addr) || listen(s_listener, 8) ||
            getsockname(s_listener, (struct sockaddr *)&addr, &len)) {
            reply("ERR %d", errno);
            return;
        }
        reply("OK %d", ntohs(addr.sin_port));
    } else if (!strcmp(cmd, "RCVBUF")) {
        s_rcvbuf = (int)a;
        reply("OK");
    } else if (!strcmp(cmd, "ACCEPT")) {
        struct sockaddr_in from;
        socklen_t len = sizeof from;
        struct timeval tv = { 5, 0 };
        setsockopt(s_listener, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        if (s_data >= 0) close(s_data);
        s_data = accept(s_listener, (struct sockaddr *)&from, &len);
        if (s_data < 0) { reply("ERR %d", errno); return; }
        timeouts(s_data);
        char ip[32];
        inet_ntop(AF_INET, &from.sin_addr, ip, sizeof ip);
        reply("OK %s:%d", ip, ntohs(from.sin_port));
    } else if (!strcmp(cmd, "CONNECT")) {
        if (s_data >= 0) close(s_data);
        s_data = socket(AF_INET, SOCK_STREAM, 0);
        if (s_rcvbuf) setsockopt(s_data, SOL_SOCKET, SO_RCVBUF, &s_rcvbuf, sizeof s_rcvbuf);
        timeouts(s_data);
        struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((uint16_t)a) };
        inet_pton(AF_INET, TEST_IP, &addr.sin_addr);
        if (connect(s_data, (struct sockaddr *)&addr, sizeof addr)) { reply("ERR %d", errno); return; }
        socklen_t len = sizeof addr;
        getsockname(s_data, (struct sockaddr *)&addr, &len);
        reply("OK %d", ntohs(addr.sin_port));
    } else if (!strcmp(cmd, "SEND") || !strcmp(cmd, "SENDSLOW")) {
        long pieces = !strcmp(cmd, "SENDSLOW") && b > 0 ? b : 1, done = 0;
        for (long i = 0; i < pieces; i++) {
            long k = i == pieces - 1 ? a - done : a / pieces;
            if (i > 0) msleep((int)c);
            if (send_pattern(k, done)) { reply("ERR %d", errno); return; }
            done += k;
        }
        reply("OK %ld", a);
    } else if (!strcmp(cmd, "RECV") || !strcmp(cmd, "ECHO") || !strcmp(cmd, "DRAIN") || !strcmp(cmd, "WAITEOF")) {
        int to_eof = !strcmp(cmd, "DRAIN") || !strcmp(cmd, "WAITEOF");
        if (!strcmp(cmd, "DRAIN")) msleep((int)a);
        long want = to_eof ? -1 : a, done = 0;
        uint32_t h = 2166136261u;
        unsigned char buf[65536];
        unsigned char *echo = !strcmp(cmd, "ECHO") ? malloc(a > 0 ? a : 1) : NULL;
        while (want < 0 || done < want) {
            long room = want < 0 || want - done > (long)sizeof buf ? (long)sizeof buf : want - done;
            ssize_t r = recv(s_data, buf, room, 0);
            if (r < 0) { reply("ERR %d after %ld", errno, done); free(echo); return; }
            if (r == 0) break;
            h = fnv(h, buf, r);
            if (echo) memcpy(echo + done, buf, r);
            done += r;
        }
        if (echo) {
            if (send(s_data, echo, done, MSG_NOSIGNAL) != done) { reply("ERR %d", errno); free(echo); return; }
            free(echo);
        }
        if (!strcmp(cmd, "RECV") || !strcmp(cmd, "DRAIN")) reply("OK %ld %08x", done, h);
        else reply("OK %ld", done);
    } else if (!strcmp(cmd, "SLEEP")) {
        msleep((int)a);
        reply("OK");
    } else if (!strcmp(cmd, "SHUTWR")) {
        reply(shutdown(s_data, SHUT_WR) ? "ERR %d" : "OK", errno);
    } else if (!strcmp(cmd, "CLOSE")) {
        close(s_data);
        s_data = -1;
        reply("OK");
    } else if (!strcmp(cmd, "RESET")) {
        struct linger l = { 1, 0 };
        setsockopt(s_data, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        close(s_data);
        s_data = -1;
        reply("OK");
    } else {
        reply("ERR unknown command %s", cmd);
    }
}

static void serve(void)
{
    char line[256];
    size_t have = 0;
    for (;;) {
        ssize_t r = read(s_ctl, line + have, sizeof line - 1 - have);
        if (r <= 0) _exit(0);
        have += r;
        char *nl;
        while ((nl = memchr(line, '\n', have))) {
            *nl = 0;
            command(line);
            size_t used = nl + 1 - line;
            memmove(line, nl + 1, have - used);
            have -= used;
        }
        if (have == sizeof line - 1) _exit(1);
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) { fprintf(stderr, "usage: peer <unix-socket-path>\n"); return 2; }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGCHLD, SIG_IGN); // children are reaped by the kernel
    struct sockaddr_un un = { .sun_family = AF_UNIX };
    snprintf(un.sun_path, sizeof un.sun_path, "%s", argv[1]);
    unlink(un.sun_path);
    int srv = socket(AF_UNIX, SOCK_STREAM, 0);
    if (srv < 0 || bind(srv, (struct sockaddr *)&un, sizeof un) || listen(srv, 16)) { perror("peer"); return 1; }
    printf("peer ready on %s\n", un.sun_path);
    fflush(stdout);
    for (;;) {
        int c = accept(srv, NULL, NULL);
        if (c < 0) continue;
        if (fork() == 0) {
            close(srv);
            s_ctl = c;
            serve();
        }
        close(c);
    }
}
