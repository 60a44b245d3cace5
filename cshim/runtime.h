/*
 * The managed runtime's life in a process: deferred start, fork, exit. See docs/architecture.md, "Runtime start".
 */
#ifndef USERTCP_RUNTIME_H
#define USERTCP_RUNTIME_H

#include "common.h"

enum ut_runtime_state {
    UT_RT_NOT_STARTED = 0,  /* configuration calls are recorded in C */
    UT_RT_STARTED = 1,      /* managed code owns every user fd */
    UT_RT_FORKED = 2,       /* a fork of a process whose runtime had started: user fds are unusable here */
};

extern int ut_rt_state UT_HIDDEN;

/* Starts the runtime in this process if needed (hands over the records). Returns 0 or -errno. Aborts with a clear
 * message in a forked copy of a started process. */
int ut_runtime_start_slow(void) UT_HIDDEN;

/* Starts the runtime with start() instead of the configured device (the packetdrill entry point), under the same
 * rules: ut_lock held, the application's signals blocked for the runtime's threads, SIGPIPE kept. Sets up the fd
 * table if offload is not configured. -EBUSY if the runtime already started or user-stack sockets were created. */
int ut_runtime_start_custom(int (*start)(void *arg), void *arg) UT_HIDDEN;

static inline int ut_runtime_ensure(void)
{
    if (UT_LIKELY(__atomic_load_n(&ut_rt_state, __ATOMIC_ACQUIRE) == UT_RT_STARTED)) return 0;
    return ut_runtime_start_slow();
}

/* Exported for tests and tools: 0 not started, 1 started, 2 forked copy. */
int usertcp_runtime_state(void) UT_EXPORT;

#endif
