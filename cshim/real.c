/* The floor: the real libc table and the k_* helpers managed code uses. See real.h. */
#include "real.h"
#include "log.h"

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
