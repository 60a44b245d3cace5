/*
 * Which file descriptors belong to the user-level stack.
 *
 * Every user-stack fd is *reserved* in the kernel: the number is a real kernel fd (a dup of one shared placeholder
 * socket), so the kernel can never hand the same number to a file. A bitmap says exactly which numbers are ours;
 * anything else goes to libc. The check is one bounds test and one bit test, and it is the only thing a kernel fd pays.
 *
 * Before the managed runtime starts, configuration-time calls on user fds (socket, setsockopt, bind, listen, fcntl,
 * ioctl FIONBIO, getsockname, epoll_ctl, close, dup) are recorded here (struct ut_sock, struct ut_epreg) and handed
 * to managed code when it starts (runtime.c). After that, managed code owns the socket state and changes ownership
 * through k_fd_alloc / k_fd_alloc_at / k_fd_release.
 */
#ifndef USERTCP_FDTAB_H
#define USERTCP_FDTAB_H

#include "common.h"
#include <netinet/in.h>
#include <pthread.h>

extern uint32_t ut_fd_limit UT_HIDDEN;           /* fds >= this are never ours (0 while offload is off) */
extern uint64_t *ut_fd_bits UT_HIDDEN;           /* ownership bitmap, ut_fd_limit bits */
extern uint64_t *ut_epfd_bits UT_HIDDEN;         /* kernel epoll fds that have user fds registered */
/* Epoll fds created by epoll_create* in this process that no kernel fd was ever added to (epoll_ctl on a kernel fd,
 * close, dup2/dup3 onto the number, close_range and fork clear the bit: unknown sets count as holding kernel fds).
 * An epoll_wait on such a set that already has user events ready asks the kernel nothing. */
extern uint64_t *ut_epfd_pure_bits UT_HIDDEN;
extern pthread_mutex_t ut_lock UT_HIDDEN;        /* guards every change of ownership and the records */

static inline int ut_bit(const uint64_t *bits, int fd)
{
    return (int)((__atomic_load_n(&bits[(unsigned)fd >> 6], __ATOMIC_RELAXED) >> ((unsigned)fd & 63)) & 1);
}

/* The fast-path test: is this fd a user-stack fd? */
static inline int ut_owned(int fd) { return UT_UNLIKELY((unsigned)fd < ut_fd_limit) && ut_bit(ut_fd_bits, fd); }

/* Does this kernel epoll fd have user fds registered? */
static inline int ut_epfd_has_user(int epfd) { return (unsigned)epfd < ut_fd_limit && ut_bit(ut_epfd_bits, epfd); }

void ut_bit_set(uint64_t *bits, int fd, int on) UT_HIDDEN;

/* The number no longer names an epoll set created here with user fds only (see ut_epfd_pure_bits). */
static inline void ut_epfd_impure(int fd)
{
    if ((unsigned)fd < ut_fd_limit && ut_bit(ut_epfd_pure_bits, fd)) ut_bit_set(ut_epfd_pure_bits, fd, 0);
}

#define UT_MAX_OPTS 16
struct ut_sockopt {
    int32_t level, name, len;
    unsigned char value[16];
};

/* One socket (an open file description) created before the runtime started. Mirrored in interpose/Native. */
struct ut_sock {
    int32_t refs;             /* fds referring to it (dup) */
    int32_t domain, type, protocol;
    int32_t nonblock;         /* O_NONBLOCK, shared by dups like the kernel's file status flags */
    int32_t bound;
    struct sockaddr_in local; /* network byte order, as the application gave it */
    int32_t listening;
    int32_t backlog;
    int32_t nopts;
    struct ut_sockopt opts[UT_MAX_OPTS];
};

/* A user fd registered with a kernel epoll fd before the runtime started. */
struct ut_epreg {
    int32_t epfd, fd;
    uint32_t events;
    uint32_t pad;
    uint64_t data;
};

/* A recorded fd: which socket it refers to and its per-fd flag. */
struct ut_fdrec {
    int32_t fd;
    int32_t cloexec;
    struct ut_sock *sock;
};

/* SO_SNDBUF set on the placeholder socket, so that an exec'd program can recognise inherited user-stack fds (the
 * kernel doubles it: 2 * this value reads back). An odd size no program asks for. */
#define UT_PLACEHOLDER_SNDBUF 4099
void ut_check_inherited_fds(void) UT_HIDDEN;

/* Sets up the tables (constructor, when offload is configured). */
int ut_fdtab_init(void) UT_HIDDEN;

/* Reserves a kernel fd number >= minfd (or exactly `at` when at >= 0) and marks it ours. Caller holds ut_lock.
 * Returns the fd or -errno. */
int ut_fd_reserve(int minfd, int at, int cloexec) UT_HIDDEN;
/* The placeholder every reservation is a dup of, or -1 until the first one. The library keeps it (and, while the
 * runtime starts, everything the runtime and DPDK open) at or above ut_fd_floor(), out of the numbers applications
 * expect to be theirs. An application that closes the placeholder's number gets EBADF (it never opened it); one
 * that dup2s onto it gets the number and the placeholder moves (ut_placeholder_move). */
extern int ut_placeholder UT_HIDDEN;
int ut_fd_floor(void) UT_HIDDEN;
int ut_placeholder_move(void) UT_HIDDEN;
/* The library's own kernel fds besides the placeholder: what the runtime and DPDK opened while the stack started
 * (recorded by runtime.c), and the log file. close_range/closefrom skip them (and the placeholder). */
#define UT_MAX_LIB_FDS 256
extern int ut_lib_fds[UT_MAX_LIB_FDS] UT_HIDDEN; /* sorted */
extern int ut_nlib_fds UT_HIDDEN;
void ut_lib_fd_add(int fd) UT_HIDDEN;
int ut_lib_fd_is(int fd) UT_HIDDEN;
/* Clears ownership, then closes the kernel reservation. Caller holds ut_lock. */
void ut_fd_unreserve(int fd) UT_HIDDEN;

/* Pre-start records. All callers hold ut_lock. */
struct ut_sock *ut_rec_sock(int fd) UT_HIDDEN;
void ut_rec_held_inherit(void) UT_HIDDEN;
int ut_rec_cloexec(int fd) UT_HIDDEN;
void ut_rec_set(int fd, struct ut_sock *s, int cloexec) UT_HIDDEN;
void ut_rec_clear(int fd) UT_HIDDEN;

/* Recorded epoll registrations. */
extern struct ut_epreg *ut_epregs UT_HIDDEN;
extern int ut_nepregs UT_HIDDEN;
int ut_epreg_find(int epfd, int fd) UT_HIDDEN;
int ut_epreg_add(int epfd, int fd, uint32_t events, uint64_t data) UT_HIDDEN;
void ut_epreg_remove_at(int i) UT_HIDDEN;
void ut_epreg_drop_fd(int fd) UT_HIDDEN;
void ut_epreg_drop_epfd(int epfd) UT_HIDDEN;

/* Lists every recorded fd (for the hand-over). Returns a malloc'd array; *n receives the count. */
struct ut_fdrec *ut_rec_list(int *n) UT_HIDDEN;
/* Frees every record after the hand-over (the sockets now live in managed code). */
void ut_rec_free_all(void) UT_HIDDEN;

/* Helpers for managed code (DirectPInvoke). Each takes ut_lock. */
long k_fd_alloc(int minfd, int cloexec);
long k_fd_alloc_at(int fd, int cloexec);
long k_fd_release(int fd);
long k_epfd_mark(int epfd, int on);
long k_thread_self(void); /* no lock */

#endif
