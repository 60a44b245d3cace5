/* The floor: the real libc table and the k_* helpers managed code uses. See real.h. */
#include "real.h"
#include "log.h"

#include <fcntl.h>
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>
#include <pthread.h>

#define UT_SYSCALL_ARGS(...) __VA_OPT__(, ) __VA_ARGS__

/* Raw system call fallbacks used until dlsym has resolved libc (sysno -1: no single system call; fail with ENOSYS). */
#define UT_X(ret, name, params, args, sysno)                                                                           \
    static ret fallback_##name params                                                                                  \
    {                                                                                                                  \
        if ((sysno) < 0) {                                                                                             \
            errno = ENOSYS;                                                                                            \
            return (ret)-1;                                                                                            \
        }                                                                                                              \
        return (ret)syscall((sysno)UT_SYSCALL_ARGS args);                                                              \
    }
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include "intercept.def"
#pragma GCC diagnostic pop
#undef UT_X

struct ut_real_table ut_real = {
#define UT_X(ret, name, params, args, sysno) .name = fallback_##name,
#include "intercept.def"
#undef UT_X
};

/* Symbols that may legitimately be absent from an older libc; the fallback stays in place for them. */
static int optional_symbol(const char *name)
{
    static const char *const optional[] = { "epoll_pwait2", "__ppoll_chk", "__poll_chk", "close_range", NULL };
    for (const char *const *p = optional; *p; p++)
        if (__builtin_strcmp(*p, name) == 0) return 1;
    return 0;
}

void ut_real_resolve(void)
{
    void *p;
#define UT_X(ret, name, params, args, sysno)                                                                           \
    p = dlsym(RTLD_NEXT, #name);                                                                                       \
    if (p) {                                                                                                           \
        __atomic_store_n((void **)&ut_real.name, p, __ATOMIC_RELEASE);                                                 \
    } else if (!optional_symbol(#name)) {                                                                              \
        ut_die("cannot find libc's '%s' with dlsym(RTLD_NEXT): %s", #name, dlerror());                                 \
    }
#include "intercept.def"
#undef UT_X
}

static inline long neg_errno(long r) { return r < 0 ? -errno : r; }

long k_kill_self_sigpipe(void) { return neg_errno(kill(getpid(), SIGPIPE)); }
long k_fcntl(int fd, int cmd, long arg) { return neg_errno(ut_real.fcntl(fd, cmd, arg)); }
long k_sleep_us(long us)
{
    struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };
    /* ppoll with no fds: sleeps, and returns EINTR when a signal handler ran (what blocking socket calls report). */
    return neg_errno(ut_real.ppoll(NULL, 0, &ts, NULL));
}
long k_pread(int fd, void *buf, size_t n, long off) { return neg_errno(ut_real.pread64(fd, buf, n, off)); }
long k_lseek(int fd, long off, int whence) { return neg_errno(lseek(fd, off, whence)); }
/* A number from a /proc/sys file (e.g. /proc/sys/net/core/rmem_max), or dflt when it cannot be read. */
long k_sysctl_long(const char *path, long dflt)
{
    int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return dflt;
    char buf[32];
    ssize_t n = ut_real.read(fd, buf, sizeof buf - 1);
    ut_real.close(fd);
    if (n <= 0) return dflt;
    buf[n] = 0;
    char *end;
    long v = strtol(buf, &end, 10);
    return end == buf ? dflt : v;
}
long k_block_signals(void)
{
    sigset_t all;
    ut_sigset_asynchronous(&all);
    return -pthread_sigmask(SIG_BLOCK, &all, NULL);
}
long k_ppoll_us(struct pollfd *fds, unsigned long n, long us, const sigset_t *mask)
{
    if (!mask) mask = ut_wait_mask(); /* inside a wait, signals get in only here */
    struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };
    return neg_errno(ut_real.ppoll(fds, n, us < 0 ? NULL : &ts, mask));
}
long k_epoll_wait_us(int epfd, struct epoll_event *ev, int max, long us, const sigset_t *mask)
{
    if (!mask) mask = ut_wait_mask();
    struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };
    int r = ut_real.epoll_pwait2(epfd, ev, max, us < 0 ? NULL : &ts, mask);
    if (r < 0 && errno == ENOSYS) /* an older kernel: millisecond resolution, rounded up */
        r = ut_real.epoll_pwait(epfd, ev, max, us < 0 ? -1 : (int)((us + 999) / 1000), mask);
    return neg_errno(r);
}

/*
 * The device's pollable fds (DPDK af_packet: one PACKET_RX_RING socket per queue). poll() on such a socket reports
 * POLLIN while a frame waits in the ring for user space, so the waits below sleep until a packet or their timeout
 * instead of waking on a schedule. Set after the port started (k_device_fds_set); for memif, the receive ring's
 * eventfd, set again whenever the link comes (back) up (interpose/Engine.cs ArmRxInterrupt); none for ring.
 */
#include <dirent.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/socket.h>

#define UT_MAX_DEVICE_FDS 8
static int g_device_fds[UT_MAX_DEVICE_FDS];
static int g_device_nfds;

int ut_each_open_fd(void (*fn)(int fd, void *arg), void *arg)
{
    int dir = (int)syscall(SYS_openat, AT_FDCWD, "/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) return -errno;
    char buf[4096];
    for (;;) {
        long got = syscall(SYS_getdents64, dir, buf, sizeof buf);
        if (got <= 0) break;
        for (long off = 0; off < got;) {
            struct dirent64 *d = (struct dirent64 *)(buf + off);
            off += d->d_reclen;
            if (d->d_name[0] < '0' || d->d_name[0] > '9') continue;
            int fd = atoi(d->d_name);
            if (fd != dir) fn(fd, arg);
        }
    }
    syscall(SYS_close, dir);
    return 0;
}

struct packet_fds {
    int *out;
    int max, n;
};

static void packet_fd(int fd, void *arg)
{
    struct packet_fds *p = arg;
    int domain = 0;
    socklen_t len = sizeof domain;
    if (p->n < p->max && syscall(SYS_getsockopt, fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) == 0 && domain == AF_PACKET)
        p->out[p->n++] = fd;
}

long k_packet_fds(int *out, int max)
{
    struct packet_fds p = { out, max, 0 };
    int r = ut_each_open_fd(packet_fd, &p);
    return r < 0 ? r : p.n;
}

long k_device_fds_set(const int *fds, int n)
{
    if (n > UT_MAX_DEVICE_FDS) n = UT_MAX_DEVICE_FDS;
    for (int i = 0; i < n; i++) g_device_fds[i] = fds[i];
    __atomic_store_n(&g_device_nfds, n, __ATOMIC_RELEASE);
    return n;
}

/* Appends the device's fds (POLLIN) to set[from..]; returns the new count. */
static int add_device_fds(struct pollfd *set, int from)
{
    int n = __atomic_load_n(&g_device_nfds, __ATOMIC_ACQUIRE);
    for (int i = 0; i < n; i++) set[from + i] = (struct pollfd){ .fd = g_device_fds[i], .events = POLLIN };
    return from + n;
}

static int any_ready(const struct pollfd *set, int from, int to)
{
    for (int i = from; i < to; i++)
        if (set[i].revents) return 1;
    return 0;
}

int ut_device_ppoll(const struct timespec *ts, const sigset_t *mask)
{
    struct pollfd set[UT_MAX_DEVICE_FDS];
    int n = add_device_fds(set, 0);
    int r = ut_real.ppoll(n ? set : NULL, (nfds_t)n, ts, mask);
    return r > 0 ? 1 : r;
}

long k_idle_us(long us)
{
    struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };
    return neg_errno(ut_device_ppoll(&ts, NULL));
}

long k_ppoll_dev_us(struct pollfd *fds, unsigned long n, long us, const sigset_t *mask, int *device_ready)
{
    *device_ready = 0;
    struct pollfd set[64 + UT_MAX_DEVICE_FDS];
    int ndev = __atomic_load_n(&g_device_nfds, __ATOMIC_ACQUIRE);
    if (n > 64 || ndev == 0) return k_ppoll_us(fds, n, us, mask);
    if (!mask) mask = ut_wait_mask();
    for (unsigned long i = 0; i < n; i++) set[i] = fds[i];
    int total = add_device_fds(set, (int)n);
    struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };
    int r = ut_real.ppoll(set, (nfds_t)total, us < 0 ? NULL : &ts, mask);
    if (r < 0) return -errno;
    int app = 0;
    for (unsigned long i = 0; i < n; i++) {
        fds[i].revents = set[i].revents;
        if (set[i].revents) app++;
    }
    *device_ready = any_ready(set, (int)n, total);
    return app;
}

long k_epoll_wait_dev_us(int epfd, struct epoll_event *ev, int max, long us, const sigset_t *mask, int *device_ready)
{
    *device_ready = 0;
    if (__atomic_load_n(&g_device_nfds, __ATOMIC_ACQUIRE) == 0) return k_epoll_wait_us(epfd, ev, max, us, mask);
    if (!mask) mask = ut_wait_mask();
    struct pollfd set[1 + UT_MAX_DEVICE_FDS];
    set[0] = (struct pollfd){ .fd = epfd, .events = POLLIN };
    int total = add_device_fds(set, 1);
    struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };
    int r = ut_real.ppoll(set, (nfds_t)total, us < 0 ? NULL : &ts, mask);
    if (r < 0) return -errno;
    *device_ready = any_ready(set, 1, total);
    if (!set[0].revents) return 0;
    return k_epoll_wait_us(epfd, ev, max, 0, mask); /* the app's events, collected without waiting */
}
