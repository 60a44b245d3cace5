/*
 * Runtime start is deferred until a process needs the data path.
 *
 * Why: a process that forks after the .NET runtime started gets children that hang or abort (the runtime's threads
 * and locks do not survive fork). nginx's master creates listening sockets and then forks workers, so the master must
 * never start the runtime; each worker starts its own on its first data-path call.
 *
 * Start, in order:
 *  1. take ut_lock (configuration calls wait; they will find the runtime started and go to managed code);
 *  2. save the application's SIGPIPE disposition (the runtime sets SIG_IGN) and block asynchronous signals so the
 *     threads the runtime creates never receive the application's signals;
 *  3. call ut_m_init with every recorded socket and epoll registration; free the records;
 *  4. restore the mask and SIGPIPE; publish UT_RT_STARTED.
 * A fork of a started process (pthread_atfork child handler) moves to UT_RT_FORKED: kernel fds keep working, but
 * the first call on a user fd aborts with a message instead of hanging in the runtime.
 */
#include "runtime.h"
#include "config.h"
#include "fdtab.h"
#include "log.h"
#include "managed.h"
#include "real.h"
#include "group.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

int ut_rt_state = UT_RT_NOT_STARTED;
static pid_t started_pid;

int usertcp_runtime_state(void) { return __atomic_load_n(&ut_rt_state, __ATOMIC_ACQUIRE); }

/* Steps 2 and 4 of the start: the runtime's threads inherit a mask that keeps the application's signals away from
 * them, and the application keeps its own SIGPIPE disposition. */
struct start_guard {
    struct sigaction old_pipe;
    sigset_t old_mask;
    int floor_fds[256];       /* /dev/null dups holding the free numbers below ut_fd_floor() while starting */
    int nfloor;
};

/* During step 3 the runtime and DPDK open a few dozen fds (EAL, the memif socket, eventfds, the device lock).
 * With lowest-free numbering they would take numbers the application expects to be free, and a shell's
 * `exec 5<>file` would then replace DPDK's fd under it. While starting, every free number below ut_fd_floor() is
 * held by a dup of /dev/null (F_DUPFD: lowest free, so nothing of the application's is ever replaced, and another
 * thread's open() meanwhile just gets a higher number), so what the start opens lands above the floor. */
static void floor_hold(struct start_guard *g)
{
    g->nfloor = 0;
    int floor = ut_fd_floor();
    int null = (int)syscall(SYS_openat, AT_FDCWD, "/dev/null", O_RDONLY | O_CLOEXEC);
    if (null < 0) return;
    if (null >= floor) {
        ut_real.close(null);
        return;
    }
    g->floor_fds[g->nfloor++] = null;
    while (g->nfloor < (int)(sizeof g->floor_fds / sizeof g->floor_fds[0])) {
        int fd = ut_real.fcntl(null, F_DUPFD_CLOEXEC, 0);
        if (fd < 0) break;
        if (fd >= floor) {
            ut_real.close(fd);
            break;
        }
        g->floor_fds[g->nfloor++] = fd;
    }
}

/* The fds open now in [floor, floor + 4096) (from /proc/self/fd), as a bitmap. The start compares two of these to
 * learn which fds the runtime and DPDK opened, so that close_range and closefrom can leave them alone
 * (ut_lib_fd_add). */
#define SNAP_WORDS 64 /* 4096 numbers above the floor */
struct fd_snap {
    int floor, ok;
    uint64_t bits[SNAP_WORDS];
};

static void snap_fd(int fd, void *arg)
{
    struct fd_snap *s = arg;
    if (fd < s->floor || fd - s->floor >= SNAP_WORDS * 64) return;
    s->bits[(fd - s->floor) / 64] |= 1ULL << ((fd - s->floor) % 64);
}

static void fd_snapshot(struct fd_snap *s)
{
    memset(s, 0, sizeof *s);
    s->floor = ut_fd_floor();
    s->ok = ut_each_open_fd(snap_fd, s) == 0;
}

static void record_lib_fds(const struct fd_snap *before)
{
    struct fd_snap after;
    fd_snapshot(&after);
    if (!before->ok || !after.ok || before->floor != after.floor) return;
    for (int w = 0; w < SNAP_WORDS; w++) {
        uint64_t fresh = after.bits[w] & ~before->bits[w];
        while (fresh) {
            int fd = after.floor + w * 64 + __builtin_ctzll(fresh);
            fresh &= fresh - 1;
            if (!ut_owned(fd)) ut_lib_fd_add(fd);
        }
    }
}

static void floor_release(struct start_guard *g)
{
    for (int i = 0; i < g->nfloor; i++) ut_real.close(g->floor_fds[i]);
    g->nfloor = 0;
}

static void guard_enter(struct start_guard *g)
{
    sigaction(SIGPIPE, NULL, &g->old_pipe);
    sigset_t all;
    ut_sigset_asynchronous(&all);
    pthread_sigmask(SIG_BLOCK, &all, &g->old_mask);
    floor_hold(g);
}

static void guard_leave(struct start_guard *g)
{
    floor_release(g);
    pthread_sigmask(SIG_SETMASK, &g->old_mask, NULL);
    sigaction(SIGPIPE, &g->old_pipe, NULL);
}

int ut_runtime_start_custom(int (*start)(void *arg), void *arg)
{
    if (ut_fd_limit == 0) {
        /* Offload is not configured (no USERTCP_IP): the fd table exists only for this caller's sockets. */
        pthread_mutex_lock(&ut_lock);
        int r = ut_fd_limit == 0 ? ut_fdtab_init() : 0;
        pthread_mutex_unlock(&ut_lock);
        if (r) return r;
    }
    pthread_mutex_lock(&ut_lock);
    int nfds = 0;
    struct ut_fdrec *fds = ut_rec_list(&nfds);
    free(fds);
    if (ut_rt_state != UT_RT_NOT_STARTED || nfds > 0 || ut_nepregs > 0) {
        /* Started already, or user-stack sockets exist that expect the configured device. */
        pthread_mutex_unlock(&ut_lock);
        return -EBUSY;
    }
    struct start_guard g;
    guard_enter(&g);
    static struct fd_snap before;
    fd_snapshot(&before);
    int r = start(arg);
    if (r == 0) record_lib_fds(&before);
    guard_leave(&g);
    if (r == 0) {
        started_pid = getpid();
        __atomic_store_n(&ut_rt_state, UT_RT_STARTED, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&ut_lock);
    return r;
}

int ut_runtime_start_slow(void)
{
    int state = __atomic_load_n(&ut_rt_state, __ATOMIC_ACQUIRE);
    if (state == UT_RT_FORKED)
        ut_die("this process (forked from pid %d after usertcp's runtime started there) used a user-stack socket; "
               "a forked copy cannot run the user-level stack. Fork before the first data-path call (as nginx does), "
               "or exec the child",
               (int)started_pid);

    pthread_mutex_lock(&ut_lock);
    if (ut_rt_state == UT_RT_STARTED) {
        pthread_mutex_unlock(&ut_lock);
        return 0;
    }

    struct start_guard g;
    guard_enter(&g);

    int nfds = 0;
    struct ut_fdrec *fds = ut_rec_list(&nfds);
    int r;
    if (!fds) {
        r = -ENOMEM;
    } else {
        struct ut_handover h = {
            .config = &ut_cfg, .fds = fds, .nfds = nfds, .nepregs = ut_nepregs, .epregs = ut_epregs,
            .group = ut_group,
        };
        static struct fd_snap before; /* under ut_lock */
        fd_snapshot(&before);
        r = ut_m_init(&h);
        if (r == 0) record_lib_fds(&before);
        free(fds);
    }

    guard_leave(&g);

    if (r == 0) {
        ut_rec_free_all();
        started_pid = getpid();
        __atomic_store_n(&ut_rt_state, UT_RT_STARTED, __ATOMIC_RELEASE);
        ut_log(UT_LOG_INFO, "user-level stack started (%d fds handed over)", nfds);
    } else {
        ut_log(UT_LOG_ERROR, "user-level stack failed to start: %s", strerror(-r));
    }
    pthread_mutex_unlock(&ut_lock);
    return r;
}

/* fork: the child of a started process must never enter the runtime. Held across fork so no record is half-made. */
static void atfork_prepare(void) { pthread_mutex_lock(&ut_lock); }
static void atfork_parent(void) { pthread_mutex_unlock(&ut_lock); }
static void atfork_child(void)
{
    if (ut_rt_state == UT_RT_STARTED) ut_rt_state = UT_RT_FORKED;
    else ut_rec_held_inherit();
    pthread_mutex_unlock(&ut_lock);
}

static void at_exit(void)
{
    if (__atomic_load_n(&ut_rt_state, __ATOMIC_ACQUIRE) == UT_RT_STARTED && getpid() == started_pid) ut_m_exit();
}

/* Children started with exec inherit LD_PRELOAD. With USERTCP_CHILDREN=kernel, remove our configuration and our
 * library from the environment so that they run purely on the kernel. */
static void strip_environment(void)
{
    const char *preload = getenv("LD_PRELOAD");
    if (preload) {
        char *copy = strdup(preload), *out = calloc(1, strlen(preload) + 1);
        if (copy && out) {
            for (char *save, *tok = strtok_r(copy, ": ", &save); tok; tok = strtok_r(NULL, ": ", &save)) {
                if (strstr(tok, "libusertcp")) continue;
                if (*out) strcat(out, ":");
                strcat(out, tok);
            }
            if (*out) setenv("LD_PRELOAD", out, 1);
            else unsetenv("LD_PRELOAD");
        }
        free(copy);
        free(out);
    }
    for (;;) {
        char **e = environ;
        while (e && *e && strncmp(*e, "USERTCP_", 8) != 0) e++;
        if (!e || !*e) break;
        char name[128];
        size_t len = strcspn(*e, "=");
        if (len >= sizeof name) break;
        memcpy(name, *e, len);
        name[len] = 0;
        unsetenv(name);
    }
}

__attribute__((constructor(101))) static void usertcp_init(void)
{
    ut_real_resolve();
    if (ut_config_load() != 0) {
        ut_log(UT_LOG_ERROR, "invalid configuration; refusing to run (see docs/configuration.md)");
        _exit(111);
    }
    if (ut_cfg.offload) {
        int r = ut_fdtab_init();
        if (r) ut_die("cannot set up the fd table: %s", strerror(-r));
        ut_group_init();
    }
    ut_check_inherited_fds();
    if (ut_log_fd != 2) ut_lib_fd_add(ut_log_fd); /* USERTCP_LOG_FILE */
    if (ut_cfg.offload) setenv("_USERTCP_EXEC_CHECK", "1", 1); /* for programs this one execs */
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
    atexit(at_exit);
    if (ut_cfg.children == UT_CHILDREN_KERNEL) strip_environment();
}
