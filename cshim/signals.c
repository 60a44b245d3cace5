/*
 * SA_RESTART for blocking calls on user-stack sockets.
 *
 * A blocking read/write/accept/connect on a user socket waits in a loop of short sleeps (interpose/Blocking.cs). The
 * kernel restarts such a call after a signal handler installed with SA_RESTART returns, and fails it with EINTR
 * otherwise (signal(7); also EINTR whenever SO_RCVTIMEO/SO_SNDTIMEO is set, and poll/epoll/select are never
 * restarted). Our sleep is a ppoll, which the kernel never restarts, and it cannot say which handler ran. So:
 *
 *  - the handlers' flags are read from the kernel (sigaction with no new action) and cached per thread; the exported
 *    sigaction/signal/sysv_signal/bsd_signal/sigset/siginterrupt below only pass through and bump a generation
 *    number, so the cache is rebuilt after any change;
 *  - if every signal with a handler that this thread does not block was installed with SA_RESTART, an interrupted
 *    sleep means "restart": the wait goes on. If none was, it means EINTR. Both are exact;
 *  - if both kinds could arrive, the sleep blocks the SA_RESTART ones (ppoll's mask), so an interruption can only be
 *    an EINTR one; after each sleep step the SA_RESTART signals that arrived meanwhile are let in (their handlers
 *    run) and the wait goes on. Their handlers run up to one sleep step late (100 us busy, 5 ms idle).
 *
 * A wait is many system calls with managed code in between; a handler that ran in between would interrupt nothing,
 * and the call would go on as if restarted. So while a thread waits (k_wait_begin .. k_wait_end) its asynchronous
 * signals are blocked except inside the sleeps themselves (ppoll/epoll_pwait with the thread's own mask), where a
 * handler always interrupts the sleep and is seen: the kernel's atomicity, kept across the whole wait.
 */
#include "common.h"
#include "real.h"

#include <dlfcn.h>
#include <pthread.h>
#include <time.h>

static unsigned s_generation = 1;

static void changed(void) { __atomic_add_fetch(&s_generation, 1, __ATOMIC_RELEASE); }

UT_EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    static int (*real)(int, const struct sigaction *, struct sigaction *);
    if (!real) real = (int (*)(int, const struct sigaction *, struct sigaction *))dlsym(RTLD_NEXT, "sigaction");
    if (!real) {
        errno = ENOSYS;
        return -1;
    }
    int r = real(sig, act, old);
    if (act) changed();
    return r;
}

#define UT_SIGNAL_LIKE(name)                                                                                           \
    UT_EXPORT sighandler_t name(int sig, sighandler_t handler)                                                                 \
    {                                                                                                                  \
        static sighandler_t (*real)(int, sighandler_t);                                                                \
        if (!real) real = (sighandler_t (*)(int, sighandler_t))dlsym(RTLD_NEXT, #name);                                \
        if (!real) {                                                                                                   \
            errno = ENOSYS;                                                                                            \
            return SIG_ERR;                                                                                            \
        }                                                                                                              \
        sighandler_t r = real(sig, handler);                                                                           \
        changed();                                                                                                     \
        return r;                                                                                                      \
    }
UT_SIGNAL_LIKE(signal)
UT_SIGNAL_LIKE(sysv_signal)
UT_SIGNAL_LIKE(bsd_signal)
UT_SIGNAL_LIKE(sigset)

UT_EXPORT int siginterrupt(int sig, int flag)
{
    static int (*real)(int, int);
    if (!real) real = (int (*)(int, int))dlsym(RTLD_NEXT, "siginterrupt");
    if (!real) {
        errno = ENOSYS;
        return -1;
    }
    int r = real(sig, flag);
    changed();
    return r;
}

/* The thread's mask outside the current wait (valid while t_wait_depth > 0). */
static __thread sigset_t t_saved;
static __thread int t_wait_depth;

void ut_sigset_asynchronous(sigset_t *set)
{
    sigfillset(set);
    /* Synchronous faults must always reach whoever handles them (the runtime turns them into exceptions). */
    sigdelset(set, SIGSEGV);
    sigdelset(set, SIGBUS);
    sigdelset(set, SIGFPE);
    sigdelset(set, SIGILL);
    sigdelset(set, SIGTRAP);
}

/* Whether the current wait blocked the thread's signals (0: no asynchronous signal had a handler at its start). */
static __thread int t_wait_masked;
/* Signals with a handler, split by SA_RESTART; rebuilt in each thread when the generation moved. */
static __thread unsigned t_generation;
static __thread sigset_t t_restart, t_intr;
static void refresh(void);

long k_wait_begin(void)
{
    if (t_wait_depth++ > 0) return 0;
    refresh();
    if (sigisemptyset(&t_restart) && sigisemptyset(&t_intr)) {
        /* No handler can run between the sleeps (a signal ends the process or is ignored, in a sleep or not): nothing
           to block, and two system calls per wait saved (a load generator such as wrk installs none). A handler
           installed by another thread during this wait is seen by the next one. */
        t_wait_masked = 0;
        return 0;
    }
    t_wait_masked = 1;
    sigset_t all;
    ut_sigset_asynchronous(&all);
    sigdelset(&all, SIGRTMIN); /* the runtime's activation signal (thread suspension for the GC) stays deliverable */
    return -pthread_sigmask(SIG_BLOCK, &all, &t_saved);
}

long k_wait_end(void)
{
    if (t_wait_depth <= 0 || --t_wait_depth > 0) return 0;
    if (!t_wait_masked) return 0;
    return -pthread_sigmask(SIG_SETMASK, &t_saved, NULL); /* a signal that came after the last sleep runs now */
}

const sigset_t *ut_wait_mask(void) { return t_wait_depth > 0 && t_wait_masked ? &t_saved : NULL; }


static void refresh(void)
{
    unsigned g = __atomic_load_n(&s_generation, __ATOMIC_ACQUIRE);
    if (t_generation == g) return;
    sigemptyset(&t_restart);
    sigemptyset(&t_intr);
    for (int sig = 1; sig < NSIG; sig++) {
        /* SIGKILL/SIGSTOP have no handler; faults (the runtime's own handlers) are synchronous, never an EINTR here. */
        if (sig == SIGKILL || sig == SIGSTOP || sig == SIGSEGV || sig == SIGBUS || sig == SIGFPE || sig == SIGILL
            || sig == SIGTRAP)
            continue;
        struct sigaction cur;
        if (sigaction(sig, NULL, &cur) != 0) continue; /* glibc's own signals (32, 33) */
        if (cur.sa_handler == SIG_DFL || cur.sa_handler == SIG_IGN) continue;
        sigaddset((cur.sa_flags & SA_RESTART) ? &t_restart : &t_intr, sig);
    }
    t_generation = g;
}

static int any_unblocked(const sigset_t *set, const sigset_t *blocked, sigset_t *out)
{
    sigset_t open;
    sigfillset(&open);
    for (int sig = 1; sig < NSIG; sig++)
        if (sigismember(blocked, sig) == 1) sigdelset(&open, sig);
    sigandset(out, set, &open);
    return !sigisemptyset(out);
}

static int sleep_on(const struct timespec *ts, const sigset_t *mask, int device)
{
    return device ? ut_device_ppoll(ts, mask) : ut_real.ppoll(NULL, 0, ts, mask);
}

/*
 * Sleeps up to `us` microseconds inside a blocking socket call (with `device`, also until a frame waits on the device:
 * real.c; returns 1 then). Returns 0 when the wait should go on (time passed, or
 * a handler that asks for restart ran) and -EINTR when the call must fail with EINTR. `restartable` is 0 when the
 * kernel would not restart this call (a timeout is set, or the call has already made progress and returns it).
 */
long k_wait_us(long us, int restartable, int device)
{
    int woke = 0;
    struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };
    sigset_t blocked;
    if (t_wait_depth > 0 && !t_wait_masked) {
        /* No handler when the wait began: nothing to restart or sort out; an interruption can only be a handler
           installed since, and fails the call like one without SA_RESTART. */
        int r = sleep_on(&ts, NULL, device);
        return r < 0 && errno == EINTR ? -EINTR : r > 0;
    }
    if (t_wait_depth > 0) blocked = t_saved;
    else pthread_sigmask(SIG_BLOCK, NULL, &blocked);
    if (restartable) refresh();
    sigset_t restart, intr;
    int can_restart = restartable && any_unblocked(&t_restart, &blocked, &restart);
    int can_intr = any_unblocked(&t_intr, &blocked, &intr);
    if (!can_restart) {
        int r = sleep_on(&ts, &blocked, device);
        return r < 0 && errno == EINTR ? -EINTR : r > 0;
    }
    if (!can_intr) {
        woke = sleep_on(&ts, &blocked, device) > 0; /* a handler ran: every possible one asked for restart */
        return woke;
    }
    /* The SA_RESTART handlers wait for the end of the step: keep it short (a device wait may be long when idle). */
    if (us > 5000) ts = (struct timespec){ 0, 5000 * 1000 };
    sigset_t during;
    sigorset(&during, &blocked, &restart);
    int r = sleep_on(&ts, &during, device);
    if (r < 0 && errno == EINTR) return -EINTR; /* only a handler without SA_RESTART could run */
    woke = r > 0;
    sigset_t pending;
    sigpending(&pending);
    sigandset(&pending, &pending, &restart);
    if (!sigisemptyset(&pending)) {
        struct timespec zero = { 0, 0 };
        (void)ut_real.ppoll(NULL, 0, &zero, &blocked); /* let them in: their handlers run now */
    }
    return woke;
}
