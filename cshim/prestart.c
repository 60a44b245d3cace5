/* Recording configuration-time calls before the runtime starts. See prestart.h. */
#include "prestart.h"
#include "group.h"
#include "inet6.h"
#include "config.h"
#include "fdtab.h"
#include "log.h"
#include "managed.h"
#include "real.h"
#include "runtime.h"

#include <fcntl.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

long k_sockopt_minlen(int level, int name)
{
    if (level == SOL_SOCKET) {
        switch (name) {
        case SO_REUSEADDR: case SO_REUSEPORT: case SO_KEEPALIVE: case SO_RCVBUF: case SO_SNDBUF: case SO_RCVLOWAT:
        case SO_OOBINLINE: case SO_PRIORITY: case SO_ERROR: case SO_TYPE: case SO_DOMAIN: case SO_PROTOCOL:
        case SO_ACCEPTCONN: case SO_BROADCAST: case SO_DONTROUTE: case SO_SNDBUFFORCE: case SO_RCVBUFFORCE:
            return sizeof(int);
        case SO_LINGER: return sizeof(struct linger);
        case SO_RCVTIMEO: case SO_SNDTIMEO: return sizeof(struct timeval);
        default: return -ENOPROTOOPT;
        }
    }
    if (level == IPPROTO_TCP) {
        switch (name) {
        case TCP_NODELAY: case TCP_CORK: case TCP_KEEPIDLE: case TCP_KEEPINTVL: case TCP_KEEPCNT: case TCP_USER_TIMEOUT:
        case TCP_DEFER_ACCEPT: case TCP_QUICKACK: case TCP_MAXSEG: case TCP_SYNCNT: case TCP_LINGER2:
        case TCP_WINDOW_CLAMP:
            return sizeof(int);
        case TCP_INFO: return 0;
        case TCP_CONGESTION: return 1;
        case TCP_FASTOPEN: case TCP_FASTOPEN_CONNECT: return -EOPNOTSUPP;
        default: return -ENOPROTOOPT;
        }
    }
    if (level == IPPROTO_IP) {
        switch (name) {
        case IP_TOS: case IP_TTL: case IP_BIND_ADDRESS_NO_PORT: case IP_FREEBIND: case IP_RECVERR:
            return sizeof(int);
        default: return -ENOPROTOOPT;
        }
    }
    if (level == IPPROTO_IPV6) return name == IPV6_V6ONLY || name == IPV6_TCLASS ? (long)sizeof(int) : -ENOPROTOOPT;
    return -ENOPROTOOPT;
}

/* Runs `managed` if the runtime has started (or starts it when `start` is set), else `prestart` under ut_lock. */
#define UT_ROUTE(managed, prestart)                                                                                    \
    do {                                                                                                               \
        if (__atomic_load_n(&ut_rt_state, __ATOMIC_ACQUIRE) == UT_RT_NOT_STARTED) {                                   \
            pthread_mutex_lock(&ut_lock);                                                                              \
            if (ut_rt_state == UT_RT_NOT_STARTED) {                                                                    \
                long _v = (prestart);                                                                                  \
                pthread_mutex_unlock(&ut_lock);                                                                        \
                return _v;                                                                                             \
            }                                                                                                          \
            pthread_mutex_unlock(&ut_lock);                                                                            \
        }                                                                                                              \
        int _r = ut_runtime_ensure();                                                                                  \
        if (_r) return _r;                                                                                             \
        return (managed);                                                                                              \
    } while (0)

static long ps_socket(int domain, int type, int protocol)
{
    struct ut_sock *s = calloc(1, sizeof *s);
    if (!s) return -ENOMEM;
    int fd = ut_fd_reserve(0, -1, (type & SOCK_CLOEXEC) != 0);
    if (fd < 0) {
        free(s);
        return fd;
    }
    s->refs = 1;
    s->domain = domain;
    s->type = type & 0xf;
    s->protocol = protocol ? protocol : IPPROTO_TCP;
    s->nonblock = (type & SOCK_NONBLOCK) != 0;
    s->local.sin_family = AF_INET;
    ut_rec_set(fd, s, (type & SOCK_CLOEXEC) != 0);
    return fd;
}

long ut_cfg_socket(int domain, int type, int protocol)
{
    if (type & ~(0xf | SOCK_NONBLOCK | SOCK_CLOEXEC)) return -EINVAL;
    UT_ROUTE(ut_m_socket(domain, type, protocol), ps_socket(domain, type, protocol));
}

static long ps_setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
    long v6 = ut_inet6_ps_setsockopt(ut_rec_sock(fd), level, name, val, len);
    if (v6) return v6;
    long min = k_sockopt_minlen(level, name);
    if (min < 0) return min;
    if (level == SOL_SOCKET && (name == SO_ERROR || name == SO_TYPE || name == SO_DOMAIN || name == SO_PROTOCOL ||
                                name == SO_ACCEPTCONN))
        return -ENOPROTOOPT;
    if ((long)len < min) return -EINVAL;
    if (len && !val) return -EFAULT;
    struct ut_sock *s = ut_rec_sock(fd);
    if (len > sizeof s->opts[0].value) len = sizeof s->opts[0].value; /* strings (TCP_CONGESTION) are short */
    int i;
    for (i = 0; i < s->nopts; i++)
        if (s->opts[i].level == level && s->opts[i].name == name) break;
    if (i == UT_MAX_OPTS) return -ENOBUFS;
    if (i == s->nopts) s->nopts++;
    s->opts[i].level = level;
    s->opts[i].name = name;
    s->opts[i].len = (int32_t)len;
    memcpy(s->opts[i].value, val, len);
    return 0;
}

long ut_cfg_setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
    if (UT_UNLIKELY(level == IPPROTO_IPV6 && name == IPV6_V6ONLY && len >= sizeof(int) && val && *(const int *)val)) {
        long d = ut_inet6_divert(fd, "IPV6_V6ONLY set", 0);
        if (d <= 0) return d < 0 ? d : (ut_real.setsockopt(fd, level, name, val, len) < 0 ? -errno : 0);
    }
    UT_ROUTE(ut_m_setsockopt(fd, level, name, val, len), ps_setsockopt(fd, level, name, val, len));
}

static int opt_int(const struct ut_sock *s, int level, int name)
{
    for (int i = 0; i < s->nopts; i++)
        if (s->opts[i].level == level && s->opts[i].name == name) {
            int v;
            memcpy(&v, s->opts[i].value, sizeof v);
            return v;
        }
    return 0;
}

/* Linux's default ephemeral range (net.ipv4.ip_local_port_range). */
#define EPHEMERAL_LO 32768
#define EPHEMERAL_HI 60999

static int port_conflicts(const struct ut_sock *me, uint32_t addr, uint16_t port)
{
    int n = 0;
    struct ut_fdrec *list = ut_rec_list(&n);
    int conflict = 0;
    for (int i = 0; list && i < n && !conflict; i++) {
        const struct ut_sock *o = list[i].sock;
        if (o == me || !o->bound || o->local.sin_port != port) continue;
        uint32_t oaddr = o->local.sin_addr.s_addr;
        if (oaddr != addr && oaddr != INADDR_ANY && addr != INADDR_ANY) continue;
        if (opt_int(me, SOL_SOCKET, SO_REUSEPORT) && opt_int(o, SOL_SOCKET, SO_REUSEPORT)) continue;
        if (opt_int(me, SOL_SOCKET, SO_REUSEADDR) && opt_int(o, SOL_SOCKET, SO_REUSEADDR) && !o->listening) continue;
        conflict = 1;
    }
    free(list);
    return conflict;
}

static long autobind(struct ut_sock *s, uint32_t addr)
{
    static uint32_t next;
    for (int tries = 0; tries <= EPHEMERAL_HI - EPHEMERAL_LO; tries++) {
        uint16_t port = htons((uint16_t)(EPHEMERAL_LO + (next++ % (EPHEMERAL_HI - EPHEMERAL_LO + 1))));
        if (!port_conflicts(s, addr, port)) {
            s->local.sin_addr.s_addr = addr;
            s->local.sin_port = port;
            s->bound = 1;
            return 0;
        }
    }
    return -EADDRINUSE;
}

static long ps_bind(int fd, const struct sockaddr *addr, socklen_t len)
{
    struct ut_sock *s = ut_rec_sock(fd);
    if (!addr) return -EFAULT;
    uint32_t a;
    uint16_t port;
    int mapped = 0;
    if (s->domain == AF_INET6) {
        long r = ut_inet6_parse_bind(addr, len, &a, &port, &mapped);
        if (r) return r;
    } else {
        if (len < sizeof(struct sockaddr_in)) return -EINVAL;
        const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
        if (in->sin_family != AF_INET) return -EAFNOSUPPORT;
        a = in->sin_addr.s_addr;
        port = in->sin_port;
    }
    if (s->bound) return -EINVAL;
    if (a != INADDR_ANY && ntohl(a) != ut_cfg.ip) return -EADDRNOTAVAIL;
    long r = 0;
    if (port == 0) r = autobind(s, a);
    else if (port_conflicts(s, a, port)) r = -EADDRINUSE;
    else {
        s->local.sin_addr.s_addr = a;
        s->local.sin_port = port;
        s->bound = 1;
    }
    /* AF_INET6 bound to an IPv4-mapped address: getsockname says ::ffff:a.b.c.d even for 0.0.0.0 (read by
       ut_inet6_copy_local and, after start, interpose/Runtime.cs). */
    if (r == 0) s->local.sin_zero[0] = (unsigned char)mapped;
    return r;
}

long ut_cfg_bind(int fd, const struct sockaddr *addr, socklen_t len)
{
    if (UT_UNLIKELY(ut_inet6_native(addr, len, 0))) {
        long d = ut_inet6_divert(fd, "bind to an IPv6 address", 0);
        if (d <= 0) return d < 0 ? d : (ut_real.bind(fd, addr, len) < 0 ? -errno : 0);
    }
    UT_ROUTE(ut_m_bind(fd, addr, len), ps_bind(fd, addr, len));
}

static long ps_listen(int fd, int backlog)
{
    struct ut_sock *s = ut_rec_sock(fd);
    if (!s->bound) {
        long r = autobind(s, INADDR_ANY);
        if (r) return r;
    }
    if ((unsigned)backlog > 4096) backlog = 4096; /* net.core.somaxconn */
    s->backlog = backlog;
    if (!s->listening) ut_group_held_add(s->local.sin_port);
    s->listening = 1;
    return 0;
}

long ut_cfg_listen(int fd, int backlog) { UT_ROUTE(ut_m_listen(fd, backlog), ps_listen(fd, backlog)); }

static long copy_sockaddr(const struct sockaddr_in *src, struct sockaddr *addr, socklen_t *len)
{
    if (!addr || !len) return -EFAULT;
    if ((int)*len < 0) return -EINVAL;
    socklen_t n = *len < sizeof *src ? *len : sizeof *src;
    memcpy(addr, src, n);
    *len = sizeof *src;
    return 0;
}

static long ps_getsockname(int fd, struct sockaddr *addr, socklen_t *len)
{
    const struct ut_sock *s = ut_rec_sock(fd);
    if (s->domain == AF_INET6) return ut_inet6_copy_local(&s->local, addr, len);
    return copy_sockaddr(&s->local, addr, len);
}

long ut_cfg_getsockname(int fd, struct sockaddr *addr, socklen_t *len)
{
    UT_ROUTE(ut_m_getsockname(fd, addr, len), ps_getsockname(fd, addr, len));
}

static long ps_dup(int fd, int minfd, int cloexec)
{
    struct ut_sock *s = ut_rec_sock(fd);
    int nfd = ut_fd_reserve(minfd, -1, cloexec);
    if (nfd < 0) return nfd;
    s->refs++;
    ut_rec_set(nfd, s, cloexec);
    return nfd;
}

static long ps_close(int fd)
{
    ut_epreg_drop_fd(fd);
    ut_rec_clear(fd);
    ut_fd_unreserve(fd);
    return 0;
}

static long ps_fcntl(int fd, int cmd, long arg)
{
    struct ut_sock *s = ut_rec_sock(fd);
    switch (cmd) {
    case F_GETFL: return O_RDWR | (s->nonblock ? O_NONBLOCK : 0);
    case F_SETFL: s->nonblock = (arg & O_NONBLOCK) != 0; return 0;
    case F_GETFD: return ut_rec_cloexec(fd) ? FD_CLOEXEC : 0;
    case F_SETFD: {
        int cloexec = (arg & FD_CLOEXEC) != 0;
        if (ut_real.fcntl(fd, F_SETFD, cloexec ? FD_CLOEXEC : 0) < 0) return -errno;
        ut_rec_set(fd, s, cloexec);
        return 0;
    }
    case F_DUPFD:
    case F_DUPFD_CLOEXEC:
        if (arg < 0) return -EINVAL;
        return ps_dup(fd, (int)arg, cmd == F_DUPFD_CLOEXEC);
    default: return -EINVAL;
    }
}

long ut_cfg_fcntl(int fd, int cmd, long arg)
{
    /* Only the commands above are configuration; anything else (locks, F_GETOWN, ...) needs the runtime. */
    int config = cmd == F_GETFL || cmd == F_SETFL || cmd == F_GETFD || cmd == F_SETFD || cmd == F_DUPFD ||
                 cmd == F_DUPFD_CLOEXEC;
    if (!config) {
        int r = ut_runtime_ensure();
        return r ? r : ut_m_fcntl(fd, cmd, arg);
    }
    UT_ROUTE(ut_m_fcntl(fd, cmd, arg), ps_fcntl(fd, cmd, arg));
}

static long ps_fionbio(int fd, void *arg)
{
    if (!arg) return -EFAULT;
    ut_rec_sock(fd)->nonblock = *(int *)arg != 0;
    return 0;
}

long ut_cfg_ioctl(int fd, unsigned long req, void *arg)
{
    if (req != FIONBIO) {
        int r = ut_runtime_ensure();
        return r ? r : ut_m_ioctl(fd, req, arg);
    }
    UT_ROUTE(ut_m_ioctl(fd, req, arg), ps_fionbio(fd, arg));
}

long ut_cfg_close(int fd) { UT_ROUTE(ut_m_close(fd), ps_close(fd)); }

long ut_cfg_dup(int fd, int minfd, int cloexec) { UT_ROUTE(ut_m_dup(fd, minfd, cloexec), ps_dup(fd, minfd, cloexec)); }

static long ps_dup3(int fd, int fd2, int flags)
{
    if (fd == fd2) return flags ? -EINVAL : fd2; /* dup3 refuses equal fds; dup2 returns fd2 (checked by caller) */
    if ((unsigned)fd2 >= ut_fd_limit) return -EBADF;
    struct ut_sock *s = ut_rec_sock(fd);
    if (ut_owned(fd2)) {
        ut_epreg_drop_fd(fd2);
        ut_rec_clear(fd2);
        ut_bit_set(ut_fd_bits, fd2, 0);
    } else if (ut_epfd_has_user(fd2)) {
        ut_epreg_drop_epfd(fd2);
    }
    int nfd = ut_fd_reserve(0, fd2, (flags & O_CLOEXEC) != 0);
    if (nfd < 0) return nfd;
    s->refs++;
    ut_rec_set(nfd, s, (flags & O_CLOEXEC) != 0);
    return nfd;
}

long ut_cfg_dup3(int fd, int fd2, int flags)
{
    if (flags & ~O_CLOEXEC) return -EINVAL;
    UT_ROUTE(ut_m_dup3(fd, fd2, flags), ps_dup3(fd, fd2, flags));
}

static long ps_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
    /* Like the kernel: epfd must be an open fd (EBADF) before anything else is checked. */
    if (ut_real.fcntl(epfd, F_GETFD, 0) < 0) return -EBADF;
    if (epfd == fd) return -EINVAL;
    int i = ut_epreg_find(epfd, fd);
    switch (op) {
    case EPOLL_CTL_ADD:
        if (!ev) return -EFAULT;
        if (i >= 0) return -EEXIST;
        return ut_epreg_add(epfd, fd, ev->events, ev->data.u64);
    case EPOLL_CTL_MOD:
        if (!ev) return -EFAULT;
        if (i < 0) return -ENOENT;
        ut_epregs[i].events = ev->events;
        ut_epregs[i].data = ev->data.u64;
        return 0;
    case EPOLL_CTL_DEL:
        if (i < 0) return -ENOENT;
        ut_epreg_remove_at(i);
        return 0;
    default: return -EINVAL;
    }
}

long ut_cfg_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
    UT_ROUTE(ut_m_epoll_ctl(epfd, op, fd, ev), ps_epoll_ctl(epfd, op, fd, ev));
}

void ut_cfg_epfd_closed(int epfd)
{
    if (__atomic_load_n(&ut_rt_state, __ATOMIC_ACQUIRE) == UT_RT_NOT_STARTED) {
        pthread_mutex_lock(&ut_lock);
        if (ut_rt_state == UT_RT_NOT_STARTED) {
            ut_epreg_drop_epfd(epfd);
            pthread_mutex_unlock(&ut_lock);
            return;
        }
        pthread_mutex_unlock(&ut_lock);
    }
    if (ut_rt_state == UT_RT_STARTED) ut_m_epoll_close(epfd);
    ut_bit_set(ut_epfd_bits, epfd, 0);
}
