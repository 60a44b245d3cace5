/*
 * The front door: the libc symbols usertcp exports. Each wrapper decides where a call goes:
 *   - a kernel fd takes the fast path straight to libc (ut_real), never entering managed code;
 *   - a user-stack fd goes to managed code (aot/Exports.cs), starting the runtime in this process on the first
 *     data-path call; configuration calls made before that are recorded in C (prestart.c).
 * Results from managed code are >= 0 or -errno; ut_errno_ret turns them into the libc convention.
 */
#include "common.h"
#include "config.h"
#include "fdtab.h"
#include "inet6.h"
#include "stdstreams.h"
#include "managed.h"
#include "prestart.h"
#include "real.h"
#include "runtime.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <time.h>

/* A data-path call on a user fd: start the runtime if needed, then call managed code. */
#define UT_DATA(call)                                                                                                  \
    do {                                                                                                               \
        int _r = ut_runtime_ensure();                                                                                  \
        if (_r) {                                                                                                      \
            errno = -_r;                                                                                               \
            return -1;                                                                                                 \
        }                                                                                                              \
        return ut_errno_ret(call);                                                                                     \
    } while (0)

#define SA(x) ((x).__sockaddr__)

extern void __chk_fail(void) __attribute__((noreturn));

/* ---- sockets ---------------------------------------------------------------------------------------------------- */

static int offloadable(int domain, int type, int protocol)
{
    return ut_cfg.offload && (domain == AF_INET || (domain == AF_INET6 && ut_inet6_offloadable())) &&
           (type & 0xf) == SOCK_STREAM && (protocol == 0 || protocol == IPPROTO_TCP);
}

UT_EXPORT int socket(int domain, int type, int protocol)
{
    if (UT_LIKELY(!offloadable(domain, type, protocol))) return ut_real.socket(domain, type, protocol);
    return (int)ut_errno_ret(ut_cfg_socket(domain, type, protocol));
}

UT_EXPORT int socketpair(int domain, int type, int protocol, int sv[2])
{
    /* AF_UNIX pairs (and any other kind) are always the kernel's. */
    return ut_real.socketpair(domain, type, protocol, sv);
}

UT_EXPORT int bind(int fd, __CONST_SOCKADDR_ARG addr, socklen_t len)
{
    if (UT_LIKELY(!ut_owned(fd))) return ut_real.bind(fd, addr, len);
    return (int)ut_errno_ret(ut_cfg_bind(fd, SA(addr), len));
}

UT_EXPORT int listen(int fd, int backlog)
{
    if (UT_LIKELY(!ut_owned(fd))) return ut_real.listen(fd, backlog);
    return (int)ut_errno_ret(ut_cfg_listen(fd, backlog));
}

UT_EXPORT int accept4(int fd, __SOCKADDR_ARG addr, socklen_t *len, int flags)
{
    if (UT_LIKELY(!ut_owned(fd))) return ut_real.accept4(fd, addr, len, flags);
    UT_DATA(ut_m_accept4(fd, SA(addr), len, flags));
}

UT_EXPORT int accept(int fd, __SOCKADDR_ARG addr, socklen_t *len)
{
    if (UT_LIKELY(!ut_owned(fd))) return ut_real.accept(fd, addr, len);
    UT_DATA(ut_m_accept4(fd, SA(addr), len, 0));
}

UT_EXPORT int connect(int fd, __CONST_SOCKADDR_ARG addr, socklen_t len)
{
    if (UT_LIKELY(!ut_owned(fd))) return ut_real.connect(fd, addr, len);
    if (UT_UNLIKELY(ut_inet6_native(SA(addr), len, 1))) { /* an IPv6 peer: the socket moves to the kernel (inet6.c) */
        long d = ut_inet6_divert(fd, "connect to an IPv6 address", 1);
        if (d <= 0) return d < 0 ? (int)ut_errno_ret(d) : ut_real.connect(fd, addr, len);
    }
    UT_DATA(ut_m_connect(fd, SA(addr), len));
}

UT_EXPORT int shutdown(int fd, int how)
{
    if (UT_LIKELY(!ut_owned(fd))) return ut_real.shutdown(fd, how);
    UT_DATA(ut_m_shutdown(fd, how));
}

UT_EXPORT int setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
    if (UT_LIKELY(!ut_owned(fd))) return ut_real.setsockopt(fd, level, name, val, len);
    return (int)ut_errno_ret(ut_cfg_setsockopt(fd, level, name, val, len));
}

UT_EXPORT int getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
    if (UT_LIKELY(!ut_owned(fd))) return ut_real.getsockopt(fd, level, name, val, len);
    UT_DATA(ut_m_getsockopt(fd, level, name, val, len));
}

UT_EXPORT int getsockname(int fd, __SOCKADDR_ARG addr, socklen_t *len)
{
    if (UT_LIKELY(!ut_owned(fd))) return ut_real.getsockname(fd, addr, len);
    return (int)ut_errno_ret(ut_cfg_getsockname(fd, SA(addr), len));
}

UT_EXPORT int getpeername(int fd, __SOCKADDR_ARG addr, socklen_t *len)
{
    if (UT_LIKELY(!ut_owned(fd))) return ut_real.getpeername(fd, addr, len);
    UT_DATA(ut_m_getpeername(fd, SA(addr), len));
}

/* ---- data ------------------------------------------------------------------------------------------------------- */

UT_EXPORT ssize_t read(int fd, void *buf, size_t n)
{
    if (UT_LIKELY(!ut_owned(fd))) return ut_real.read(fd, buf, n);
    UT_DATA(ut_m_read(fd, buf, n));
}

UT_EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
    if (UT_LIKELY(!ut_owned(fd))) return ut_real.write(fd, buf, n);
    UT_DATA(ut_m_write(fd, buf, n));
}

UT_EXPORT ssize_t readv(int fd, const struct iovec *iov, int iovcnt)
{
    if (UT_LIKELY(!ut_owned(fd))) return ut_real.readv(fd, iov, iovcnt);
    UT_DATA(ut_m_readv(fd, iov, iovcnt));
}

UT_EXPORT ssize_t writev(int fd, const struct iovec *iov, int iovcnt)
{
    if (UT_LIKELY(!ut_owned(fd))) return ut_real.writev(fd, iov, iovcnt);
    UT_DATA(ut_m_writev(fd, iov, iovcnt));
}

/* Positioned I/O is not defined on sockets: the kernel answers ESPIPE, and so do we. */
#define UT_POSITIONED(name, buftype, offtype)                                                                          \
    UT_EXPORT ssize_t name(int fd, buftype buf, size_t n, offtype off)                                                \
    {                                                                                                                  \
        if (UT_LIKELY(!ut_owned(fd))) return ut_real.name(fd, buf, n, off);                                            \
        errno = ESPIPE;                                                                                                \
        return -1;                                                                                                     \
    }
UT_POSITIONED(pread, void *, off_t)
UT_POSITIONED(pwrite, const void *, off_t)
UT_POSITIONED(pread64, void *, off64_t)
UT_POSITIONED(pwrite64, const void *, off64_t)

UT_EXPORT ssize_t recv(int fd, void *buf, size_t n, int flags)
{
    if (UT_LIKELY(!ut_owned(fd))) return ut_real.recv(fd, buf, n, flags);
    UT_DATA(ut_m_recvfrom(fd, buf, n, flags, NULL, NULL));
}

UT_EXPORT ssize_t send(int fd, const void *buf, size_t n, int flags)
{
    if (UT_LIKELY(!ut_owned(fd))) return ut_real.send(fd, buf, n, flags);
    UT_DATA(ut_m_sendto(fd, buf, n, flags, NULL, 0));
}

UT_EXPORT ssize_t recvfrom(int fd, void *buf, size_t n, int flags, __SOCKADDR_ARG addr, socklen_t *len)
{
    if (UT_LIKELY(!ut_owned(fd))) return ut_real.recvfrom(fd, buf, n, flags, addr, len);
    UT_DATA(ut_m_recvfrom(fd, buf, n, flags, SA(addr), len));
}

UT_EXPORT ssize_t sendto(int fd, const void *buf, size_t n, int flags, __CONST_SOCKADDR_ARG addr, socklen_t len)
{
    if (UT_LIKELY(!ut_owned(fd))) return ut_real.sendto(fd, buf, n, flags, addr, len);
    UT_DATA(ut_m_sendto(fd, buf, n, flags, SA(addr), len));
}

UT_EXPORT ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
    if (UT_LIKELY(!ut_owned(fd))) return ut_real.recvmsg(fd, msg, flags);
    UT_DATA(ut_m_recvmsg(fd, msg, flags));
}

UT_EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
    if (UT_LIKELY(!ut_owned(fd))) return ut_real.sendmsg(fd, msg, flags);
    UT_DATA(ut_m_sendmsg(fd, msg, flags));
}

UT_EXPORT int recvmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags, struct timespec *tmo)
{
    if (UT_LIKELY(!ut_owned(fd))) return ut_real.recvmmsg(fd, vec, vlen, flags, tmo);
    UT_DATA(ut_m_recvmmsg(fd, vec, vlen, flags, tmo));
}

UT_EXPORT int sendmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags)
{
    if (UT_LIKELY(!ut_owned(fd))) return ut_real.sendmmsg(fd, vec, vlen, flags);
    UT_DATA(ut_m_sendmmsg(fd, vec, vlen, flags));
}

/* sendfile: the file is always the kernel's; a user socket as the destination goes to managed code, which reads the
 * file through the real libc. A socket cannot be the source (the kernel says EINVAL too). */
UT_EXPORT ssize_t sendfile64(int out_fd, int in_fd, off64_t *offset, size_t count)
{
    if (UT_LIKELY(!ut_owned(out_fd) && !ut_owned(in_fd))) return ut_real.sendfile64(out_fd, in_fd, offset, count);
    if (ut_owned(in_fd)) {
        errno = EINVAL;
        return -1;
    }
    UT_DATA(ut_m_sendfile(out_fd, in_fd, (int64_t *)offset, count));
}

UT_EXPORT ssize_t sendfile(int out_fd, int in_fd, off_t *offset, size_t count)
{
    if (UT_LIKELY(!ut_owned(out_fd) && !ut_owned(in_fd))) return ut_real.sendfile(out_fd, in_fd, offset, count);
    return sendfile64(out_fd, in_fd, (off64_t *)offset, count);
}

/* ---- descriptors ------------------------------------------------------------------------------------------------ */

UT_EXPORT int close(int fd)
{
    if (UT_LIKELY(!ut_owned(fd))) {
        if (UT_UNLIKELY(ut_epfd_has_user(fd))) ut_cfg_epfd_closed(fd);
        ut_epfd_impure(fd);
        if (UT_UNLIKELY(fd == ut_placeholder)) { /* not the application's fd (e.g. a loop closing every number) */
            errno = EBADF;
            return -1;
        }
        return ut_real.close(fd);
    }
    return (int)ut_errno_ret(ut_cfg_close(fd));
}

UT_EXPORT int dup(int fd)
{
    if (UT_LIKELY(!ut_owned(fd))) return ut_real.dup(fd);
    return (int)ut_errno_ret(ut_cfg_dup(fd, 0, 0));
}

/* dup2/dup3 with a user fd on either side. A kernel fd duplicated onto a user fd closes our socket first, exactly
 * as the kernel closes whatever the target number held. */
static int dup_common(int fd, int fd2, int flags, int is_dup2)
{
    if (fd != fd2) ut_epfd_impure(fd2); /* whatever fd2 becomes, it is not the set created under that number */
    if (UT_UNLIKELY(fd2 == ut_placeholder && fd2 >= 0)) {
        /* The application wants the placeholder's number: it is the application's to take. */
        pthread_mutex_lock(&ut_lock);
        if (fd2 == ut_placeholder) ut_placeholder_move();
        pthread_mutex_unlock(&ut_lock);
    }
    if (UT_LIKELY(!ut_owned(fd) && !ut_owned(fd2) && !ut_epfd_has_user(fd2))) {
        if (UT_UNLIKELY(ut_std_streams_taken != 0) && (unsigned)fd2 <= 2 && fd != fd2 &&
            ut_real.fcntl(fd, F_GETFD, 0) >= 0)
            ut_std_stream_detach(fd2); /* a kernel fd back on 0..2 after a user socket: libc's stream again */
        return is_dup2 ? ut_real.dup2(fd, fd2) : ut_real.dup3(fd, fd2, flags);
    }
    if (ut_owned(fd)) {
        if (fd == fd2) {
            if (!is_dup2) {
                errno = EINVAL;
                return -1;
            }
            return fd2;
        }
        int r = (int)ut_errno_ret(ut_cfg_dup3(fd, fd2, flags));
        if (r >= 0 && (unsigned)fd2 <= 2) ut_std_stream_attach(fd2); /* stdio on 0..2 reaches the socket */
        return r;
    }
    /* fd is a kernel fd (or invalid) and fd2 is ours or an epoll fd with user registrations. */
    if (ut_real.fcntl(fd, F_GETFD, 0) < 0) return -1; /* EBADF: leave fd2 alone, like the kernel */
    if ((unsigned)fd2 <= 2) ut_std_stream_detach(fd2); /* flushed to the socket before it closes */
    if (ut_owned(fd2)) {
        /* Keep the number reserved while our socket closes: dup3 below replaces the placeholder atomically. */
        long r = ut_cfg_close(fd2); /* releases ownership and the kernel reservation */
        if (r < 0 && r != -EBADF) {
            errno = (int)-r;
            return -1;
        }
    } else {
        ut_cfg_epfd_closed(fd2);
    }
    return is_dup2 ? ut_real.dup2(fd, fd2) : ut_real.dup3(fd, fd2, flags);
}

UT_EXPORT int dup2(int fd, int fd2) { return dup_common(fd, fd2, 0, 1); }
UT_EXPORT int dup3(int fd, int fd2, int flags) { return dup_common(fd, fd2, flags, 0); }

UT_EXPORT int fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    long arg = va_arg(ap, long);
    va_end(ap);
    if (UT_LIKELY(!ut_owned(fd))) return ut_real.fcntl(fd, cmd, arg);
    return (int)ut_errno_ret(ut_cfg_fcntl(fd, cmd, arg));
}

UT_EXPORT int fcntl64(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    long arg = va_arg(ap, long);
    va_end(ap);
    if (UT_LIKELY(!ut_owned(fd))) return ut_real.fcntl64(fd, cmd, arg);
    return (int)ut_errno_ret(ut_cfg_fcntl(fd, cmd, arg));
}

UT_EXPORT int ioctl(int fd, unsigned long req, ...)
{
    va_list ap;
    va_start(ap, req);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    if (UT_LIKELY(!ut_owned(fd))) return ut_real.ioctl(fd, req, arg);
    return (int)ut_errno_ret(ut_cfg_ioctl(fd, req, arg));
}

/* close_range and closefrom. The kernel would release the numbers of user fds in the range while the stack still
 * holds their sockets, and close the library's own fds (the placeholder, what the runtime and DPDK opened at start,
 * the log file). Here: user fds in the range close through the user close path (CLOSE_RANGE_CLOEXEC: they get
 * close-on-exec through fcntl); epoll fds with user registrations forget them; the kernel closes the rest, in pieces
 * around the library's fds. CLOSE_RANGE_UNSHARE goes to the kernel unchanged: the caller gets a private copy of the
 * table (normally just before exec), and only that copy loses the fds; the stack's own table is untouched. In a
 * forked copy of a started process everything goes to the kernel (below). */
static int skip_list(int *out, int cap)
{
    int n = 0;
    pthread_mutex_lock(&ut_lock);
    int ph = ut_placeholder, placed = ph < 0;
    for (int i = 0; i < ut_nlib_fds && n < cap - 1; i++) {
        if (!placed && ph < ut_lib_fds[i]) out[n++] = ph, placed = 1;
        if (ut_lib_fds[i] != ph) out[n++] = ut_lib_fds[i];
    }
    if (!placed) out[n++] = ph;
    pthread_mutex_unlock(&ut_lock);
    return n;
}

UT_EXPORT int close_range(unsigned int first, unsigned int last, int flags)
{
    if (UT_LIKELY(ut_fd_limit == 0 && ut_placeholder < 0 && ut_nlib_fds == 0) || (flags & CLOSE_RANGE_UNSHARE))
        return ut_real.close_range(first, last, flags);
    if (first > last || (flags & ~(CLOSE_RANGE_CLOEXEC | CLOSE_RANGE_UNSHARE))) {
        errno = EINVAL;
        return -1;
    }
    int cloexec = (flags & CLOSE_RANGE_CLOEXEC) != 0;
    uint64_t limit = __atomic_load_n(&ut_fd_limit, __ATOMIC_ACQUIRE);
    if (__atomic_load_n(&ut_rt_state, __ATOMIC_ACQUIRE) == UT_RT_FORKED) {
        /* A forked copy of a started process, normally on its way to exec (a subprocess closing what it inherited):
           its user sockets and its copy of the library's fds are of no use here, and closing the copies does not
           touch the parent's. The kernel closes them all; the numbers stop being ours. */
        if (!cloexec)
            for (uint64_t fd = first; fd <= last && fd < limit; fd++) {
                if (!(ut_fd_bits[fd >> 6] | ut_epfd_bits[fd >> 6] | ut_epfd_pure_bits[fd >> 6])) {
                    fd |= 63;
                    continue;
                }
                ut_bit_set(ut_fd_bits, (int)fd, 0);
                ut_bit_set(ut_epfd_bits, (int)fd, 0);
                ut_bit_set(ut_epfd_pure_bits, (int)fd, 0);
            }
        return ut_real.close_range(first, last, flags);
    }
    for (uint64_t fd = first; fd <= last && fd < limit;) {
        if (!(ut_fd_bits[fd >> 6] | ut_epfd_bits[fd >> 6] | ut_epfd_pure_bits[fd >> 6])) {
            fd = (fd | 63) + 1; /* nothing of ours in this word */
            continue;
        }
        if (!cloexec) ut_epfd_impure((int)fd);
        if (ut_owned((int)fd)) {
            if (cloexec) ut_cfg_fcntl((int)fd, F_SETFD, FD_CLOEXEC);
            else ut_cfg_close((int)fd);
        } else if (!cloexec && ut_epfd_has_user((int)fd)) {
            ut_cfg_epfd_closed((int)fd);
        }
        fd++;
    }
    /* close-on-exec on the library's fds does no harm (an exec'd program could not use them). */
    if (cloexec) return ut_real.close_range(first, last, flags);
    int skip[UT_MAX_LIB_FDS + 1];
    int n = skip_list(skip, UT_MAX_LIB_FDS + 1);
    uint64_t lo = first;
    for (int i = 0; i < n; i++) {
        if ((uint64_t)skip[i] < lo) continue;
        if ((uint64_t)skip[i] > last) break;
        if ((uint64_t)skip[i] > lo && ut_real.close_range((unsigned)lo, (unsigned)skip[i] - 1, 0) < 0) return -1;
        lo = (uint64_t)skip[i] + 1;
    }
    if (lo <= last) return ut_real.close_range((unsigned)lo, last, 0);
    return 0;
}

UT_EXPORT void closefrom(int lowfd)
{
    if (lowfd < 0) lowfd = 0;
    if (close_range((unsigned)lowfd, ~0U, 0) == 0) return;
    /* A kernel without close_range: one close per number (close() itself keeps the placeholder). */
    struct rlimit rl;
    long max = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY ? (long)rl.rlim_cur : 65536;
    for (long fd = lowfd; fd < max; fd++)
        if (!ut_lib_fd_is((int)fd)) close((int)fd);
}

/* ---- C stdio ---------------------------------------------------------------------------------------------------- */

/* glibc's FILE functions call the kernel's read/write through internal aliases no preloaded library sees, so a
 * stream libc's fdopen made over a user socket would talk to the placeholder socket. fdopen on a user fd returns a
 * fopencookie stream instead, whose callbacks call the exported read/write/close on the number (the cookie);
 * buffering stays libc's. fileno() answers the fd, as on a kernel stream. */
static ssize_t ck_read(void *c, char *buf, size_t n) { return read((int)(intptr_t)c, buf, n); }

static ssize_t ck_write(void *c, const char *buf, size_t n)
{
    /* Like glibc's own file write: go on after a partial count, stop at the first error (errno kept). libc marks
       the stream in error when the count is short. */
    int fd = (int)(intptr_t)c;
    size_t done = 0;
    while (done < n) {
        ssize_t r = write(fd, buf + done, n - done);
        if (r <= 0) break;
        done += (size_t)r;
    }
    return (ssize_t)done;
}

static int ck_seek(void *c, off64_t *off, int whence)
{
    int fd = (int)(intptr_t)c;
    if (ut_owned(fd)) {
        errno = ESPIPE; /* a socket, as the kernel says */
        return -1;
    }
    off64_t r = lseek64(fd, *off, whence); /* after freopen the number holds a kernel file */
    if (r < 0) return -1;
    *off = r;
    return 0;
}

static int ck_close(void *c) { return close((int)(intptr_t)c); }

UT_EXPORT FILE *fdopen(int fd, const char *mode)
{
    if (UT_LIKELY(!ut_owned(fd))) return ut_real.fdopen(fd, mode);
    /* The mode as glibc's fdopen reads it: r, w or a, then '+' among the next four characters (others ignored). */
    char m[3] = { 0 };
    if (mode[0] != 'r' && mode[0] != 'w' && mode[0] != 'a') {
        errno = EINVAL;
        return NULL;
    }
    m[0] = mode[0];
    for (int i = 1; i < 5 && mode[i]; i++)
        if (mode[i] == '+') {
            m[1] = '+';
            break;
        }
    cookie_io_functions_t io = { .read = ck_read, .write = ck_write, .seek = ck_seek, .close = ck_close };
    FILE *f = fopencookie((void *)(intptr_t)fd, m, io);
    if (f) f->_fileno = fd; /* glibc leaves -2 there (fileno: EBADF); nothing else of a cookie stream reads it */
    return f;
}

/* freopen with a path on a stream whose number is a user socket: libc's freopen keeps the number and moves the new
 * file onto it with its own (unseen) open/dup3/close. Flush through the stream, close the socket through the user
 * path, then let libc reopen: the file lands on the same number, and a cookie stream from fdopen above reaches it
 * through read/write/lseek on that number. */
static int freopen_release(const char *path, FILE *f)
{
    if (!f || !ut_owned(f->_fileno)) return 0;
    /* libc's freopen turns any stream into a plain file stream and sets its wide-character vtable on the way, through
       _wide_data, which a fopencookie stream leaves at (void *)-1 (no wide support): it would crash. NULL tells
       freopen there is none. The reopened stream then does byte I/O like any file stream (wide I/O on it is not
       supported: docs/compatibility.md). */
    if (f->_wide_data == (struct _IO_wide_data *)-1L) f->_wide_data = NULL;
    fflush(f);
    close(f->_fileno);
    if (path) return 0;
    /* Without a path libc would open /proc/self/fd/N (ENXIO for a socket), then close N with its internal close,
       which we would not see. The result the kernel gives: the stream and its socket closed, ENXIO. */
    f->_fileno = -1; /* closed: a later fclose frees the stream without closing the number again */
    errno = ENXIO;
    return -1;
}

UT_EXPORT FILE *freopen(const char *path, const char *mode, FILE *f)
{
    if (UT_UNLIKELY(ut_fd_limit != 0) && freopen_release(path, f)) return NULL;
    return ut_real.freopen(path, mode, f);
}

UT_EXPORT FILE *freopen64(const char *path, const char *mode, FILE *f)
{
    if (UT_UNLIKELY(ut_fd_limit != 0) && freopen_release(path, f)) return NULL;
    return ut_real.freopen64(path, mode, f);
}

/* ---- readiness -------------------------------------------------------------------------------------------------- */

static int any_user_pollfd(const struct pollfd *fds, nfds_t n)
{
    if (UT_LIKELY(ut_fd_limit == 0)) return 0;
    for (nfds_t i = 0; i < n; i++)
        if (ut_owned(fds[i].fd)) return 1;
    return 0;
}

static int ts_to_ms(const struct timespec *ts)
{
    if (!ts) return -1;
    if (ts->tv_sec < 0 || ts->tv_nsec < 0 || ts->tv_nsec >= 1000000000L) return -2;
    long long ms = (long long)ts->tv_sec * 1000 + (ts->tv_nsec + 999999) / 1000000;
    return ms > 0x7fffffff ? 0x7fffffff : (int)ms;
}

UT_EXPORT int poll(struct pollfd *fds, nfds_t n, int timeout)
{
    if (UT_LIKELY(!any_user_pollfd(fds, n))) return ut_real.poll(fds, n, timeout);
    UT_DATA(ut_m_poll(fds, n, timeout, NULL));
}

UT_EXPORT int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *tmo, const sigset_t *mask)
{
    if (UT_LIKELY(!any_user_pollfd(fds, n))) return ut_real.ppoll(fds, n, tmo, mask);
    int ms = ts_to_ms(tmo);
    if (ms == -2) {
        errno = EINVAL;
        return -1;
    }
    UT_DATA(ut_m_poll(fds, n, ms, mask));
}

UT_EXPORT int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen)
{
    if (fdslen / sizeof(*fds) < n) __chk_fail();
    return poll(fds, n, timeout);
}

UT_EXPORT int __ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *tmo, const sigset_t *mask,
                          size_t fdslen)
{
    if (fdslen / sizeof(*fds) < n) __chk_fail();
    return ppoll(fds, n, tmo, mask);
}

static int any_user_fdset(int n, const fd_set *r, const fd_set *w, const fd_set *e)
{
    if (UT_LIKELY(ut_fd_limit == 0)) return 0;
    for (int fd = 0; fd < n && fd < FD_SETSIZE; fd++)
        if (ut_owned(fd) && ((r && FD_ISSET(fd, r)) || (w && FD_ISSET(fd, w)) || (e && FD_ISSET(fd, e)))) return 1;
    return 0;
}

/* select over user fds: translated to poll, which managed code implements over mixed fds. */
static int select_via_poll(int n, fd_set *r, fd_set *w, fd_set *e, int timeout_ms, const sigset_t *mask)
{
    if (n < 0 || n > FD_SETSIZE) {
        errno = EINVAL;
        return -1;
    }
    struct pollfd pfds[FD_SETSIZE];
    int k = 0;
    for (int fd = 0; fd < n; fd++) {
        short ev = 0;
        if (r && FD_ISSET(fd, r)) ev |= POLLIN;
        if (w && FD_ISSET(fd, w)) ev |= POLLOUT;
        if (e && FD_ISSET(fd, e)) ev |= POLLPRI;
        if (ev) pfds[k++] = (struct pollfd){ .fd = fd, .events = ev };
    }
    int rc = ut_runtime_ensure();
    if (rc) {
        errno = -rc;
        return -1;
    }
    long got = ut_m_poll(pfds, (unsigned long)k, timeout_ms, mask);
    if (got < 0) return (int)ut_errno_ret(got);
    for (int i = 0; i < k; i++)
        if (pfds[i].revents & POLLNVAL) {
            errno = EBADF;
            return -1;
        }
    if (r) FD_ZERO(r);
    if (w) FD_ZERO(w);
    if (e) FD_ZERO(e);
    int count = 0;
    for (int i = 0; i < k; i++) {
        short re = pfds[i].revents;
        if (r && (re & (POLLIN | POLLHUP | POLLERR)) && (pfds[i].events & POLLIN)) FD_SET(pfds[i].fd, r), count++;
        if (w && (re & (POLLOUT | POLLERR)) && (pfds[i].events & POLLOUT)) FD_SET(pfds[i].fd, w), count++;
        if (e && (re & POLLPRI) && (pfds[i].events & POLLPRI)) FD_SET(pfds[i].fd, e), count++;
    }
    return count;
}

UT_EXPORT int select(int n, fd_set *r, fd_set *w, fd_set *e, struct timeval *tmo)
{
    if (UT_LIKELY(!any_user_fdset(n, r, w, e))) return ut_real.select(n, r, w, e, tmo);
    int ms = -1;
    if (tmo) {
        if (tmo->tv_sec < 0 || tmo->tv_usec < 0) {
            errno = EINVAL;
            return -1;
        }
        long long v = (long long)tmo->tv_sec * 1000 + (tmo->tv_usec + 999) / 1000;
        ms = v > 0x7fffffff ? 0x7fffffff : (int)v;
    }
    return select_via_poll(n, r, w, e, ms, NULL);
}

UT_EXPORT int pselect(int n, fd_set *r, fd_set *w, fd_set *e, const struct timespec *tmo, const sigset_t *mask)
{
    if (UT_LIKELY(!any_user_fdset(n, r, w, e))) return ut_real.pselect(n, r, w, e, tmo, mask);
    int ms = ts_to_ms(tmo);
    if (ms == -2) {
        errno = EINVAL;
        return -1;
    }
    return select_via_poll(n, r, w, e, ms, mask);
}

/* A new set holds no kernel fd yet (ut_epfd_pure_bits). */
static int epoll_created(int epfd)
{
    if (epfd >= 0 && (unsigned)epfd < ut_fd_limit) ut_bit_set(ut_epfd_pure_bits, epfd, 1);
    return epfd;
}

UT_EXPORT int epoll_create(int size)
{
    return epoll_created(ut_real.epoll_create(size));
}

UT_EXPORT int epoll_create1(int flags)
{
    return epoll_created(ut_real.epoll_create1(flags));
}

UT_EXPORT int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
    if (UT_LIKELY(!ut_owned(fd))) {
        if (UT_UNLIKELY(ut_owned(epfd))) {
            errno = EINVAL; /* a socket is not an epoll fd */
            return -1;
        }
        ut_epfd_impure(epfd); /* a kernel fd in the set: its waits must ask the kernel */
        return ut_real.epoll_ctl(epfd, op, fd, ev);
    }
    return (int)ut_errno_ret(ut_cfg_epoll_ctl(epfd, op, fd, ev));
}

UT_EXPORT int epoll_pwait(int epfd, struct epoll_event *ev, int max, int timeout, const sigset_t *mask)
{
    if (UT_LIKELY(!ut_epfd_has_user(epfd))) return ut_real.epoll_pwait(epfd, ev, max, timeout, mask);
    UT_DATA(ut_m_epoll_wait(epfd, ev, max, timeout, mask));
}

UT_EXPORT int epoll_wait(int epfd, struct epoll_event *ev, int max, int timeout)
{
    if (UT_LIKELY(!ut_epfd_has_user(epfd))) return ut_real.epoll_wait(epfd, ev, max, timeout);
    UT_DATA(ut_m_epoll_wait(epfd, ev, max, timeout, NULL));
}

UT_EXPORT int epoll_pwait2(int epfd, struct epoll_event *ev, int max, const struct timespec *tmo, const sigset_t *mask)
{
    if (UT_LIKELY(!ut_epfd_has_user(epfd))) return ut_real.epoll_pwait2(epfd, ev, max, tmo, mask);
    int ms = ts_to_ms(tmo);
    if (ms == -2) {
        errno = EINVAL;
        return -1;
    }
    UT_DATA(ut_m_epoll_wait(epfd, ev, max, ms, mask));
}

/* ---- processes -------------------------------------------------------------------------------------------------- */

/* fork's bookkeeping is done by pthread_atfork handlers (runtime.c), which also cover daemon() and glibc-internal
 * forks; the exported symbols make sure the handlers run even when a program calls these directly. */
UT_EXPORT pid_t fork(void) { return ut_real.fork(); }

/* vfork's child shares the parent's memory and stack; a wrapper function cannot return into it safely. We give the
 * program a real fork instead, which POSIX allows (vfork's guarantees are a subset of fork's). */
UT_EXPORT pid_t vfork(void) { return ut_real.fork(); }

UT_EXPORT int daemon(int nochdir, int noclose) { return ut_real.daemon(nochdir, noclose); }

/* ---- fortified variants (-D_FORTIFY_SOURCE) ----------------------------------------------------------------------- */

UT_EXPORT ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
    if (UT_LIKELY(!ut_owned(fd))) return ut_real.__read_chk(fd, buf, n, buflen);
    if (n > buflen) __chk_fail();
    UT_DATA(ut_m_read(fd, buf, n));
}

UT_EXPORT ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags)
{
    if (UT_LIKELY(!ut_owned(fd))) return ut_real.__recv_chk(fd, buf, n, buflen, flags);
    if (n > buflen) __chk_fail();
    UT_DATA(ut_m_recvfrom(fd, buf, n, flags, NULL, NULL));
}

UT_EXPORT ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags, __SOCKADDR_ARG addr,
                                 socklen_t *len)
{
    if (UT_LIKELY(!ut_owned(fd))) return ut_real.__recvfrom_chk(fd, buf, n, buflen, flags, addr, len);
    if (n > buflen) __chk_fail();
    UT_DATA(ut_m_recvfrom(fd, buf, n, flags, SA(addr), len));
}

/* ---- glibc's public double-underscore aliases ------------------------------------------------------------------- */

#define UT_ALIAS(name, target) extern __typeof(target) name __attribute__((alias(#target), visibility("default")));
UT_ALIAS(__read, read)
UT_ALIAS(__write, write)
UT_ALIAS(__close, close)
UT_ALIAS(__connect, connect)
UT_ALIAS(__send, send)
UT_ALIAS(__recv, recv)
UT_ALIAS(__poll, poll)
UT_ALIAS(__fcntl, fcntl)
UT_ALIAS(__dup2, dup2)
UT_ALIAS(__select, select)
UT_ALIAS(__fork, fork)
UT_ALIAS(__vfork, vfork)
