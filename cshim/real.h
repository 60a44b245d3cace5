/*
 * The floor: the real libc functions, for the shim's kernel fast path and for managed code.
 *
 * `ut_real.NAME` always points at something callable: a raw system call fallback until the constructor has
 * resolved the table with dlsym(RTLD_NEXT), then libc's own function. Managed code never calls the exported wrappers
 * (they would route back into the stack); it calls the k_* helpers below, which return -errno instead of setting errno.
 */
#ifndef USERTCP_REAL_H
#define USERTCP_REAL_H

#include "common.h"

struct ut_real_table {
#define UT_X(ret, name, params, args, sysno) ret (*name) params;
#include "intercept.def"
#undef UT_X
};

extern struct ut_real_table ut_real UT_HIDDEN;

/* Resolves the table. Called from the library constructor; safe to call again. A missing required symbol aborts. */
void ut_real_resolve(void) UT_HIDDEN;

/* Helpers for managed code (reached through DirectPInvoke, not exported from the shared object). */
long k_kill_self_sigpipe(void);
long k_fcntl(int fd, int cmd, long arg);
long k_sleep_us(long us);
long k_wait_us(long us, int restartable, int device);
/* real.c: the device's pollable fds and the waits that also end when a frame waits there (device_ready set). */
long k_packet_fds(int *out, int max);
/* Calls fn(fd, arg) for every fd open in this process (from /proc/self/fd, without the directory's own fd). Raw
 * system calls only. Returns 0, or -errno when /proc/self/fd cannot be read. */
int ut_each_open_fd(void (*fn)(int fd, void *arg), void *arg) UT_HIDDEN;
/* A number from a /proc/sys file, or dflt when it cannot be read. */
long k_sysctl_long(const char *path, long dflt);
long k_device_fds_set(const int *fds, int n);
int ut_device_ppoll(const struct timespec *ts, const sigset_t *mask) UT_HIDDEN;
long k_idle_us(long us);
long k_ppoll_dev_us(struct pollfd *fds, unsigned long n, long us, const sigset_t *mask, int *device_ready);
long k_epoll_wait_dev_us(int epfd, struct epoll_event *ev, int max, long us, const sigset_t *mask, int *device_ready);
/* Every signal except the synchronous faults (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP): what library threads and
 * waits block. signals.c. */
void ut_sigset_asynchronous(sigset_t *set) UT_HIDDEN;
long k_wait_begin(void);                 /* signals.c: a blocking wait starts (asynchronous signals only in its sleeps) */
long k_wait_end(void);
const sigset_t *ut_wait_mask(void);      /* the thread's mask outside the current wait, or NULL */ /* signals.c: a blocking call's sleep, with SA_RESTART semantics */
long k_pread(int fd, void *buf, size_t n, long off);
long k_lseek(int fd, long off, int whence);
long k_block_signals(void);
long k_ppoll_us(struct pollfd *fds, unsigned long n, long us, const sigset_t *mask);
long k_epoll_wait_us(int epfd, struct epoll_event *ev, int max, long us, const sigset_t *mask);

#endif
