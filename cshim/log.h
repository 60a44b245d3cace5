/* Diagnostics: written with the real write() to stderr or USERTCP_LOG_FILE, never through stdio. */
#ifndef USERTCP_LOG_H
#define USERTCP_LOG_H

#include "common.h"

enum ut_log_level { UT_LOG_ERROR = 0, UT_LOG_WARN = 1, UT_LOG_INFO = 2, UT_LOG_DEBUG = 3 };

extern int ut_log_level UT_HIDDEN;
extern int ut_log_fd UT_HIDDEN;

void ut_log(int level, const char *fmt, ...) UT_HIDDEN __attribute__((format(printf, 2, 3)));
/* Logs an error and aborts the process. For states the shim must never continue from. */
void ut_die(const char *fmt, ...) UT_HIDDEN __attribute__((format(printf, 1, 2), noreturn));

/* For managed code: one already-formatted UTF-8 line. */
void k_log(int level, const char *msg);
/* For managed code: one line of USERTCP_STATS output, written whatever the log level. */
void k_stats(const char *msg);

#endif
