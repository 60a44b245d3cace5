/* Shared includes and helpers for the C shim. */
#ifndef USERTCP_COMMON_H
#define USERTCP_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#define UT_LIKELY(x) __builtin_expect(!!(x), 1)
#define UT_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define UT_EXPORT __attribute__((visibility("default")))
#define UT_HIDDEN __attribute__((visibility("hidden")))

/* Turns a managed-style result (>= 0, or -errno) into the libc convention (>= 0, or -1 with errno set). */
static inline long ut_errno_ret(long r)
{
    if (UT_UNLIKELY(r < 0)) {
        errno = (int)-r;
        return -1;
    }
    return r;
}

#endif
