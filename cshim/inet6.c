/*
 * AF_INET6 sockets (see interpose/Inet6.cs). The user-level stack carries IPv4 only, so an AF_INET6 TCP socket is
 * offloaded as a dual-stack socket (IPV6_V6ONLY 0, Linux's default while net.ipv6.bindv6only is 0) that reaches IPv4
 * peers through IPv4-mapped addresses. When a socket needs IPv6 itself -- IPV6_V6ONLY set to 1, bind to a native
 * IPv6 address, connect to one (or to ::, which Linux takes as ::1) -- it moves to the kernel: a kernel AF_INET6
 * socket with the options set so far (and the port, when bound) takes over its fd number, and the call that needed
 * it runs there. Before the runtime has started the record (fdtab.h) moves; after, managed code's socket does.
 */
#include "inet6.h"
#include "config.h"
#include "fdtab.h"
#include "log.h"
#include "managed.h"
#include "real.h"
#include "runtime.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>

int ut_inet6_offloadable(void)
{
    /* net.ipv6.bindv6only: 1 makes every new AF_INET6 socket IPv6-only, which the stack cannot carry. */
    static int cached = -1;
    int v = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (v >= 0) return v;
    v = k_sysctl_long("/proc/sys/net/ipv6/bindv6only", 0) == 0;
    if (!v) ut_log(UT_LOG_DEBUG, "net.ipv6.bindv6only is set: AF_INET6 sockets stay on the kernel");
    __atomic_store_n(&cached, v, __ATOMIC_RELAXED);
    return v;
}

int ut_inet6_native(const struct sockaddr *addr, socklen_t len, int any_is_native)
{
    if (!addr || len < UT_SIN6_MINLEN || addr->sa_family != AF_INET6) return 0;
    const struct in6_addr *a = &((const struct sockaddr_in6 *)addr)->sin6_addr;
    if (IN6_IS_ADDR_V4MAPPED(a)) return 0;
    return any_is_native || !IN6_IS_ADDR_UNSPECIFIED(a);
}

/* A kernel AF_INET6 TCP socket with opts (level, name, value triples) set and, when port is not 0, bound to
 * [::]:port, put at fd's number in place of the user-stack socket's reservation. */
static long to_kernel(int fd, int nonblock, int port, const int *opts, int nopts)
{
    if (ut_virtual_fds) return -EAFNOSUPPORT; /* a virtual number cannot hold a kernel socket */
    int fdflags = ut_real.fcntl(fd, F_GETFD, 0);
    if (fdflags < 0) return -errno;
    int k = ut_real.socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), IPPROTO_TCP);
    if (k < 0) return -errno;
    for (int i = 0; i < nopts; i++)
        if (ut_real.setsockopt(k, opts[3 * i], opts[3 * i + 1], &opts[3 * i + 2], sizeof(int)) < 0)
            ut_log(UT_LOG_DEBUG, "fd %d: option (%d,%d) not taken over by the kernel socket: errno %d", fd, opts[3 * i],
                   opts[3 * i + 1], errno);
    if (port) {
        struct sockaddr_in6 any = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port)};
        if (ut_real.bind(k, (struct sockaddr *)&any, sizeof any) < 0) {
            long e = -errno;
            ut_real.close(k);
            return e;
        }
    }
    /* The placeholder's dup is replaced atomically: the number is never free for another thread's open(). */
    if (ut_real.dup3(k, fd, (fdflags & FD_CLOEXEC) ? O_CLOEXEC : 0) < 0) {
        long e = -errno;
        ut_real.close(k);
        return e;
    }
    ut_real.close(k);
    ut_bit_set(ut_fd_bits, fd, 0);
    return 0;
}

long k_inet6_to_kernel(int fd, int nonblock, int port, const int *opts, int nopts)
{
    if ((uint32_t)fd >= ut_fd_limit) return -EBADF;
    pthread_mutex_lock(&ut_lock);
    long r = to_kernel(fd, nonblock, port, opts, nopts);
    pthread_mutex_unlock(&ut_lock);
    return r;
}

/* The recorded socket (runtime not started). Caller holds ut_lock. Same results as ut_inet6_divert. */
static long ps_divert(int fd, const char *why, int bound_ok)
{
    struct ut_sock *s = ut_rec_sock(fd);
    if (!s || s->domain != AF_INET6 || s->listening || (s->bound && !bound_ok)) return 1;
    if (s->refs != 1) {
        ut_log(UT_LOG_WARN, "fd %d: an IPv6 socket with more than one fd (%s) cannot move to the kernel", fd, why);
        return -EAFNOSUPPORT;
    }
    int opts[3 * UT_MAX_OPTS], n = 0;
    for (int i = 0; i < s->nopts; i++) {
        if (s->opts[i].len != (int32_t)sizeof(int)) continue; /* strings (TCP_CONGESTION), linger, timeouts */
        opts[3 * n] = s->opts[i].level;
        opts[3 * n + 1] = s->opts[i].name;
        memcpy(&opts[3 * n + 2], s->opts[i].value, sizeof(int));
        n++;
    }
    long r = to_kernel(fd, s->nonblock, s->bound ? ntohs(s->local.sin_port) : 0, opts, n);
    if (r < 0) {
        ut_log(UT_LOG_WARN, "fd %d: an IPv6 socket (%s) could not move to the kernel: errno %ld", fd, why, -r);
        return -EAFNOSUPPORT;
    }
    ut_epreg_drop_fd(fd); /* epoll registrations recorded for the user socket do not carry over (compatibility.md) */
    ut_rec_clear(fd);
    return 0;
}

long ut_inet6_divert(int fd, const char *why, int bound_ok)
{
    long r;
    if (__atomic_load_n(&ut_rt_state, __ATOMIC_ACQUIRE) == UT_RT_NOT_STARTED) {
        pthread_mutex_lock(&ut_lock);
        if (ut_rt_state == UT_RT_NOT_STARTED) {
            r = ps_divert(fd, why, bound_ok);
            pthread_mutex_unlock(&ut_lock);
            if (r == 0) ut_log(UT_LOG_DEBUG, "fd %d: IPv6 socket handed to the kernel (%s): usertcp carries IPv4 only", fd, why);
            return r;
        }
        pthread_mutex_unlock(&ut_lock);
    }
    int e = ut_runtime_ensure();
    if (e) return e;
    return ut_m_inet6_divert(fd, why, bound_ok);
}

long ut_inet6_parse_bind(const struct sockaddr *addr, socklen_t len, uint32_t *ip, uint16_t *port, int *mapped)
{
    if (len < UT_SIN6_MINLEN) return -EINVAL;
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)addr;
    if (a->sin6_family != AF_INET6) return -EAFNOSUPPORT;
    *mapped = IN6_IS_ADDR_V4MAPPED(&a->sin6_addr);
    memcpy(ip, &a->sin6_addr.s6_addr[12], 4);
    /* A native address (the socket could not move to the kernel): never ours, EADDRNOTAVAIL unless bound (EINVAL). */
    if (!*mapped) *ip = IN6_IS_ADDR_UNSPECIFIED(&a->sin6_addr) ? 0 : 0xffffffffu;
    *port = a->sin6_port;
    return 0;
}

long ut_inet6_copy_local(const struct sockaddr_in *local, struct sockaddr *addr, socklen_t *len)
{
    if (!addr || !len) return -EFAULT;
    if ((int)*len < 0) return -EINVAL;
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = local->sin_port};
    if (local->sin_addr.s_addr != 0 || local->sin_zero[0]) {
        a.sin6_addr.s6_addr[10] = a.sin6_addr.s6_addr[11] = 0xff;
        memcpy(&a.sin6_addr.s6_addr[12], &local->sin_addr.s_addr, 4);
    }
    socklen_t n = *len < sizeof a ? *len : sizeof a;
    memcpy(addr, &a, n);
    *len = sizeof a;
    return 0;
}

long ut_inet6_ps_setsockopt(const struct ut_sock *s, int level, int name, const void *val, socklen_t len)
{
    if (level != IPPROTO_IPV6) return 0;
    if (s->domain != AF_INET6) return -ENOPROTOOPT;
    if (len < sizeof(int)) return -EINVAL;
    if (!val) return -EFAULT;
    int v;
    memcpy(&v, val, sizeof v);
    if (name == IPV6_V6ONLY) return s->bound ? -EINVAL : (v ? -EAFNOSUPPORT : 0);
    if (name == IPV6_TCLASS && (v < -1 || v > 0xff)) return -EINVAL;
    return 0;
}
