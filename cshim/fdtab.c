#include "fdtab.h"
#include "config.h"
#include "group.h"
#include "log.h"
#include "real.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>

uint32_t ut_fd_limit;
uint64_t *ut_fd_bits;
uint64_t *ut_epfd_bits;
uint64_t *ut_epfd_pure_bits;
static size_t bitmap_bytes;
pthread_mutex_t ut_lock = PTHREAD_MUTEX_INITIALIZER;

int ut_placeholder = -1;          /* the kernel socket every reservation is a dup of (kept above ut_fd_floor()) */
static struct ut_fdrec *records;  /* indexed by fd; lazily backed pages */
struct ut_epreg *ut_epregs;
int ut_nepregs;
static int epregs_cap;

static int placeholder_move_locked(void);
/* k_fd_alloc's path without ut_lock (below): threads inside it, and a flag that sends them to the locked path while
 * the placeholder moves (Dekker: each side stores, then reads the other's word, both sequentially consistent). */
static int fast_users;
static int fast_closed;

static void *map_zeroed(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* Virtual fds (USERTCP_VIRTUAL_FDS=1). By default every user-stack fd is a kernel dup of a placeholder socket, so
 * the kernel never hands its number to anything else and a stray syscall on it sees "a socket"; the price is one
 * kernel file per socket and RLIMIT_NOFILE as the ceiling (a container without CAP_SYS_RESOURCE cannot raise its
 * hard limit: 20000 here). In virtual mode fd_base moves to or above the hard limit, numbers are taken from the
 * bitmap alone (lowest free first, as POSIX wants) and nothing reaches the kernel: the kernel cannot give out a
 * number that high, so the two never collide. Limits: a syscall the shim does not wrap (fstat, a raw syscall())
 * fails with EBADF on such an fd, and dup2() onto a number below fd_base is refused. Meant for servers and load
 * generators that hold very many connections (W5: 1M per process). */
static uint32_t lo_word;          /* virtual mode: every bitmap word below this one is full */

static void epfd_forget_pure(void)
{
    if (ut_epfd_pure_bits) memset(ut_epfd_pure_bits, 0, bitmap_bytes);
}

/* The child of a fork has only the forking thread: nobody is inside fast_reserve there. */
static void fork_child(void)
{
    epfd_forget_pure();
    __atomic_store_n(&fast_users, 0, __ATOMIC_RELAXED);
}

int ut_fdtab_init(void)
{
    if (ut_virtual_fds) {
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max != RLIM_INFINITY && (rlim_t)ut_cfg.fd_base < rl.rlim_max)
            ut_cfg.fd_base = (int32_t)((rl.rlim_max + 63) & ~(rlim_t)63);
        else if (ut_cfg.fd_base < (1 << 20))
            ut_cfg.fd_base = 1 << 20; /* no finite hard limit: above the kernel's fs.nr_open default */
        lo_word = (uint32_t)ut_cfg.fd_base / 64;
    }
    uint32_t limit = (uint32_t)ut_cfg.fd_base + (uint32_t)ut_cfg.max_fds;
    size_t words = (limit + 63) / 64;
    ut_fd_bits = map_zeroed(words * 8);
    ut_epfd_bits = map_zeroed(words * 8);
    ut_epfd_pure_bits = map_zeroed(words * 8);
    bitmap_bytes = words * 8;
    records = map_zeroed((size_t)limit * sizeof *records);
    if (!ut_fd_bits || !ut_epfd_bits || !ut_epfd_pure_bits || !records) return -ENOMEM;
    /* A forked child shares its parent's epoll sets: either side may add kernel fds the other does not see. */
    pthread_atfork(NULL, epfd_forget_pure, fork_child);
    __atomic_store_n(&ut_fd_limit, limit, __ATOMIC_RELEASE);
    return 0;
}

void ut_bit_set(uint64_t *bits, int fd, int on)
{
    uint64_t mask = 1ULL << ((unsigned)fd & 63);
    if (on) __atomic_fetch_or(&bits[(unsigned)fd >> 6], mask, __ATOMIC_RELEASE);
    else __atomic_fetch_and(&bits[(unsigned)fd >> 6], ~mask, __ATOMIC_RELEASE);
}

/* The kernel needs RLIMIT_NOFILE above every number we reserve. Raise the soft limit (never the hard one). */
static rlim_t nofile_seen; /* a soft limit seen (or set) before: numbers below it need no system call */

static int ensure_nofile(int fd)
{
    /* One getrlimit per new socket was a system call per connection. A program that lowers its limit later gets
       EMFILE from F_DUPFD instead, the same answer. Caller holds ut_lock. */
    if ((rlim_t)fd < nofile_seen) return 0;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl)) return -errno;
    if ((rlim_t)fd < rl.rlim_cur) {
        __atomic_store_n(&nofile_seen, rl.rlim_cur, __ATOMIC_RELAXED);
        return 0;
    }
    rlim_t want = (rlim_t)ut_cfg.fd_base + (rlim_t)ut_cfg.max_fds;
    if (want <= (rlim_t)fd) want = (rlim_t)fd + 1;
    if (want > rl.rlim_max) want = rl.rlim_max;
    if (want <= (rlim_t)fd) return -EMFILE;
    ut_log(UT_LOG_INFO, "raising RLIMIT_NOFILE soft limit from %lu to %lu for user-stack fds", (unsigned long)rl.rlim_cur,
           (unsigned long)want);
    rl.rlim_cur = want;
    if (setrlimit(RLIMIT_NOFILE, &rl)) return -errno;
    __atomic_store_n(&nofile_seen, want, __ATOMIC_RELAXED);
    return 0;
}

int ut_fd_floor(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur == RLIM_INFINITY) return 256;
    rlim_t floor = rl.rlim_cur / 4;
    return floor > 256 ? 256 : (int)floor;
}


static void fast_path_close(void)
{
    __atomic_store_n(&fast_closed, 1, __ATOMIC_SEQ_CST);
    while (__atomic_load_n(&fast_users, __ATOMIC_SEQ_CST) != 0) __builtin_ia32_pause();
}

static void fast_path_open(void) { __atomic_store_n(&fast_closed, 0, __ATOMIC_RELEASE); }

int ut_placeholder_move(void)
{
    if (ut_placeholder < 0) return 0;
    /* No lock-free reservation may dup the old number once it is the application's. */
    fast_path_close();
    int r = placeholder_move_locked();
    fast_path_open();
    return r;
}

static int placeholder_move_locked(void)
{
    int floor = ut_fd_floor();
    int at = ut_placeholder + 1 < floor ? floor : ut_placeholder + 1;
    int high = ut_real.fcntl(ut_placeholder, F_DUPFD_CLOEXEC, at);
    if (high < 0) {
        /* No number left above it: let the next reservation make a new one. */
        ut_real.close(ut_placeholder);
        __atomic_store_n(&ut_placeholder, -1, __ATOMIC_RELAXED);
        return 0;
    }
    ut_real.close(ut_placeholder);
    __atomic_store_n(&ut_placeholder, high, __ATOMIC_RELAXED);
    return 0;
}

static int virtual_reserve(int minfd, int at)
{
    if (at >= 0) {
        if (at < ut_cfg.fd_base || (uint32_t)at >= ut_fd_limit) return -EBADF;
        ut_bit_set(ut_fd_bits, at, 1);
        return at;
    }
    uint32_t start = (uint32_t)(minfd < ut_cfg.fd_base ? ut_cfg.fd_base : minfd);
    uint32_t words = (ut_fd_limit + 63) / 64;
    uint32_t w = start / 64;
    if (w < lo_word) { w = lo_word; start = w * 64; }
    for (; w < words; w++) {
        uint64_t free_bits = ~ut_fd_bits[w];
        if (w == start / 64) free_bits &= ~0ULL << (start & 63);
        if (!free_bits) {
            if (w == lo_word && start <= w * 64) lo_word = w + 1;
            continue;
        }
        int fd = (int)(w * 64 + (uint32_t)__builtin_ctzll(free_bits));
        if ((uint32_t)fd >= ut_fd_limit) break;
        ut_bit_set(ut_fd_bits, fd, 1);
        return fd;
    }
    return -EMFILE;
}

int ut_fd_reserve(int minfd, int at, int cloexec)
{
    if (ut_virtual_fds) (void)cloexec;
    else if (ut_placeholder < 0) {
        /* An unbound, never-connected TCP socket: fstat() on a user fd says "socket", as programs expect. */
        int low = (int)syscall(SYS_socket, AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (low < 0) return -errno;
        /* A mark a program exec'd from this one can recognise (see ut_check_inherited_fds). */
        int mark = UT_PLACEHOLDER_SNDBUF;
        (void)syscall(SYS_setsockopt, low, SOL_SOCKET, SO_SNDBUF, &mark, sizeof mark);
        /* Out of the application's way: it owns the low numbers (a shell's `exec 3<>...` expects 3 to be its own). */
        int high = ut_real.fcntl(low, F_DUPFD_CLOEXEC, ut_fd_floor());
        if (high >= 0) {
            ut_real.close(low);
            low = high;
        }
        __atomic_store_n(&ut_placeholder, low, __ATOMIC_RELEASE);
    }
    if (ut_virtual_fds) return virtual_reserve(minfd, at);
    int placeholder = ut_placeholder;
    int fd;
    if (at >= 0) {
        if ((uint32_t)at >= ut_fd_limit) return -EBADF;
        int r = ensure_nofile(at);
        if (r) return r;
        fd = ut_real.dup3(placeholder, at, cloexec ? O_CLOEXEC : 0);
        if (fd < 0) return -errno;
    } else {
        if (minfd < ut_cfg.fd_base) minfd = ut_cfg.fd_base;
        int r = ensure_nofile(minfd);
        if (r) return r;
        fd = ut_real.fcntl(placeholder, cloexec ? F_DUPFD_CLOEXEC : F_DUPFD, minfd);
        if (fd < 0) return errno == EINVAL ? -EMFILE : -errno;
        if ((uint32_t)fd >= ut_fd_limit) {
            ut_real.close(fd);
            return -EMFILE;
        }
    }
    ut_bit_set(ut_fd_bits, fd, 1);
    return fd;
}

void ut_fd_unreserve(int fd)
{
    /* Ownership first: once the kernel number is closed it may be reused at once by another thread's open(). */
    ut_bit_set(ut_fd_bits, fd, 0);
    if (ut_virtual_fds) {
        if ((uint32_t)fd / 64 < lo_word) lo_word = (uint32_t)fd / 64;
        return;
    }
    ut_real.close(fd);
}

int ut_lib_fds[UT_MAX_LIB_FDS];
int ut_nlib_fds;

void ut_lib_fd_add(int fd)
{
    if (fd < 0 || ut_lib_fd_is(fd)) return;
    if (ut_nlib_fds == UT_MAX_LIB_FDS) {
        ut_log(UT_LOG_WARN, "more than %d library fds; fd %d is not protected from close_range", UT_MAX_LIB_FDS, fd);
        return;
    }
    int i = ut_nlib_fds++;
    while (i > 0 && ut_lib_fds[i - 1] > fd) {
        ut_lib_fds[i] = ut_lib_fds[i - 1];
        i--;
    }
    ut_lib_fds[i] = fd;
}

int ut_lib_fd_is(int fd)
{
    for (int i = 0; i < ut_nlib_fds; i++)
        if (ut_lib_fds[i] == fd) return 1;
    return 0;
}

struct ut_sock *ut_rec_sock(int fd) { return records[fd].sock; }
int ut_rec_cloexec(int fd) { return records[fd].cloexec; }

void ut_rec_set(int fd, struct ut_sock *s, int cloexec)
{
    records[fd].fd = fd;
    records[fd].sock = s;
    records[fd].cloexec = cloexec;
}

void ut_rec_clear(int fd)
{
    struct ut_sock *s = records[fd].sock;
    records[fd].sock = NULL;
    if (s && --s->refs == 0) {
        /* Its listener record goes (closed, or handed to this process's own stack, which counts its listeners). */
        if (s->listening) ut_group_held_remove(s->local.sin_port);
        free(s);
    }
}

int ut_epreg_find(int epfd, int fd)
{
    for (int i = 0; i < ut_nepregs; i++)
        if (ut_epregs[i].epfd == epfd && ut_epregs[i].fd == fd) return i;
    return -1;
}

int ut_epreg_add(int epfd, int fd, uint32_t events, uint64_t data)
{
    if (ut_nepregs == epregs_cap) {
        int cap = epregs_cap ? epregs_cap * 2 : 16;
        struct ut_epreg *p = realloc(ut_epregs, (size_t)cap * sizeof *p);
        if (!p) return -ENOMEM;
        ut_epregs = p;
        epregs_cap = cap;
    }
    ut_epregs[ut_nepregs++] = (struct ut_epreg){ .epfd = epfd, .fd = fd, .events = events, .data = data };
    ut_bit_set(ut_epfd_bits, epfd, 1);
    return 0;
}

void ut_epreg_remove_at(int i) { ut_epregs[i] = ut_epregs[--ut_nepregs]; }

void ut_epreg_drop_fd(int fd)
{
    for (int i = ut_nepregs - 1; i >= 0; i--)
        if (ut_epregs[i].fd == fd) ut_epreg_remove_at(i);
}

void ut_epreg_drop_epfd(int epfd)
{
    for (int i = ut_nepregs - 1; i >= 0; i--)
        if (ut_epregs[i].epfd == epfd) ut_epreg_remove_at(i);
    ut_bit_set(ut_epfd_bits, epfd, 0);
}

struct ut_fdrec *ut_rec_list(int *n)
{
    int count = 0;
    for (uint32_t fd = 0; fd < ut_fd_limit; fd += 64) {
        uint64_t w = ut_fd_bits[fd / 64];
        count += __builtin_popcountll(w);
    }
    struct ut_fdrec *list = malloc((size_t)(count ? count : 1) * sizeof *list);
    if (!list) return NULL;
    int k = 0;
    for (uint32_t word = 0; word < (ut_fd_limit + 63) / 64; word++) {
        uint64_t w = ut_fd_bits[word];
        while (w) {
            int fd = (int)(word * 64 + (uint32_t)__builtin_ctzll(w));
            w &= w - 1;
            if (records[fd].sock) list[k++] = records[fd];
        }
    }
    *n = k;
    return list;
}

/* A forked child holds its parent's listening sockets too (nginx: the daemon child, then each worker): record them
 * under its own pid, so they count while it lives even after the parent exits. */
void ut_rec_held_inherit(void)
{
    if (!records) return;
    for (uint32_t word = 0; word < (ut_fd_limit + 63) / 64; word++) {
        uint64_t w = ut_fd_bits[word];
        while (w) {
            int fd = (int)(word * 64 + (uint32_t)__builtin_ctzll(w));
            w &= w - 1;
            if (records[fd].sock && records[fd].sock->listening) ut_group_held_add(records[fd].sock->local.sin_port);
        }
    }
}

void ut_rec_free_all(void)
{
    for (uint32_t word = 0; word < (ut_fd_limit + 63) / 64; word++) {
        uint64_t w = ut_fd_bits[word];
        while (w) {
            int fd = (int)(word * 64 + (uint32_t)__builtin_ctzll(w));
            w &= w - 1;
            if (records[fd].sock) ut_rec_clear(fd);
        }
    }
    free(ut_epregs);
    ut_epregs = NULL;
    ut_nepregs = epregs_cap = 0;
}

/* One reservation per socket and accepted connection, and one release per close: the common case takes no lock and
 * calls the kernel directly (not through libc's wrappers: close is a cancellation point there, and a cancellation
 * inside managed code could not unwind). The kernel's F_DUPFD gives the lowest free number >= minfd, exactly what
 * the application would have got from the kernel, and close gives it back at once: nothing is kept in stock, since a
 * number kept would change what the next open() of the application returns. */
static long fast_reserve(int minfd, int cloexec)
{
    long fd = -EAGAIN;
    __atomic_fetch_add(&fast_users, 1, __ATOMIC_SEQ_CST);
    if (!__atomic_load_n(&fast_closed, __ATOMIC_SEQ_CST)) {
        int ph = __atomic_load_n(&ut_placeholder, __ATOMIC_ACQUIRE);
        if (ph >= 0 && (rlim_t)minfd < __atomic_load_n(&nofile_seen, __ATOMIC_RELAXED)) {
            fd = syscall(SYS_fcntl, ph, cloexec ? F_DUPFD_CLOEXEC : F_DUPFD, minfd);
            if (fd < 0) fd = errno == EINVAL ? -EMFILE : -errno;
        }
    }
    __atomic_fetch_sub(&fast_users, 1, __ATOMIC_RELEASE);
    return fd;
}

long k_fd_alloc(int minfd, int cloexec)
{
    if (!ut_virtual_fds) {
        long fd = fast_reserve(minfd < ut_cfg.fd_base ? ut_cfg.fd_base : minfd, cloexec);
        if (fd >= 0 && (uint32_t)fd < ut_fd_limit) {
            ut_bit_set(ut_fd_bits, (int)fd, 1);
            return fd;
        }
        if (fd >= 0) {
            syscall(SYS_close, (int)fd);
            return -EMFILE;
        }
        if (fd != -EAGAIN) return fd;
    }
    pthread_mutex_lock(&ut_lock);
    long r = ut_fd_reserve(minfd, -1, cloexec);
    pthread_mutex_unlock(&ut_lock);
    return r;
}

long k_fd_alloc_at(int fd, int cloexec)
{
    pthread_mutex_lock(&ut_lock);
    long r = ut_fd_reserve(0, fd, cloexec);
    pthread_mutex_unlock(&ut_lock);
    return r;
}

long k_fd_release(int fd)
{
    if ((uint32_t)fd >= ut_fd_limit) return -EBADF;
    if (!ut_virtual_fds) {
        /* Ownership first, as ut_fd_unreserve: once the number is closed another thread's open() may get it. */
        ut_bit_set(ut_fd_bits, fd, 0);
        syscall(SYS_close, fd);
        return 0;
    }
    pthread_mutex_lock(&ut_lock);
    ut_fd_unreserve(fd);
    pthread_mutex_unlock(&ut_lock);
    return 0;
}


/* The calling thread's id for the stack's lock (interpose/StackLock.cs): never 0 for a live thread. */
long k_thread_self(void) { return (long)pthread_self(); }

/* 1 when epfd is an epoll set created here that holds no kernel fds (ut_epfd_pure_bits). */
long k_epfd_pure(int epfd)
{
    return (uint32_t)epfd < ut_fd_limit && ut_bit(ut_epfd_pure_bits, epfd);
}

long k_epfd_mark(int epfd, int on)
{
    if ((uint32_t)epfd >= ut_fd_limit) return -EBADF;
    ut_bit_set(ut_epfd_bits, epfd, on);
    return 0;
}

/*
 * exec keeps fds without close-on-exec, and a user-stack socket cannot cross it: the new program's stack (if any)
 * knows nothing of the connection, and the fd is only our placeholder. A process with offload configured leaves
 * _USERTCP_EXEC_CHECK in the environment; a program started from it looks for inherited placeholders (an unbound TCP
 * socket carrying our send-buffer mark) and says loudly which fds they are. They stay open (closing fds behind a
 * program's back is worse) and fail every call: reads ENOTCONN, writes EPIPE.
 */
static void check_inherited_fd(int fd, void *arg)
{
    (void)arg;
    int v = 0, type = 0;
    socklen_t len = sizeof v;
    if (syscall(SYS_getsockopt, fd, SOL_SOCKET, SO_SNDBUF, &v, &len) != 0 || v != 2 * UT_PLACEHOLDER_SNDBUF) return;
    len = sizeof type;
    if (syscall(SYS_getsockopt, fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM) return;
    ut_log(UT_LOG_ERROR, "fd %d was a user-stack socket of the program that exec'd this one; user-stack sockets "
                         "cannot cross exec (set SOCK_CLOEXEC/FD_CLOEXEC on them): every call on it will fail", fd);
}

void ut_check_inherited_fds(void)
{
    if (!getenv("_USERTCP_EXEC_CHECK")) return;
    ut_each_open_fd(check_inherited_fd, NULL);
}
