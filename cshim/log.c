#include "log.h"
#include "real.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

int ut_log_level = UT_LOG_WARN;
int ut_log_fd = 2;

static const char *const level_names[] = { "error", "warning", "info", "debug" };

static void vlog(int level, const char *fmt, va_list ap)
{
    char line[1024];
    int n = snprintf(line, sizeof line, "usertcp[%d]: %s: ", (int)getpid(), level_names[level]);
    if (n < 0) return;
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    if (m < 0) return;
    size_t len = (size_t)n + ((size_t)m < sizeof line - (size_t)n - 1 ? (size_t)m : sizeof line - (size_t)n - 2);
    line[len++] = '\n';
    int saved = errno;
    (void)!ut_real.write(ut_log_fd, line, len);
    errno = saved;
}

void ut_log(int level, const char *fmt, ...)
{
    if (level > ut_log_level) return;
    va_list ap;
    va_start(ap, fmt);
    vlog(level, fmt, ap);
    va_end(ap);
}

void ut_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(UT_LOG_ERROR, fmt, ap);
    va_end(ap);
    abort();
}

void k_log(int level, const char *msg)
{
    if (level < 0) level = 0;
    if (level > UT_LOG_DEBUG) level = UT_LOG_DEBUG;
    ut_log(level, "%s", msg);
}

void k_stats(const char *msg)
{
    char line[1024];
    int n = snprintf(line, sizeof line, "usertcp[%d]: stats: %s\n", (int)getpid(), msg);
    if (n <= 0) return;
    if ((size_t)n >= sizeof line) {
        n = sizeof line;
        line[n - 1] = '\n';
    }
    int saved = errno;
    (void)!ut_real.write(ut_log_fd, line, (size_t)n);
    errno = saved;
}
