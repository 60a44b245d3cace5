/*
 * Configuration-time calls on user fds before the managed runtime starts (see fdtab.h and runtime.c).
 * Each ut_cfg_* function returns >= 0 or -errno and routes to managed code once the runtime has started.
 */
#ifndef USERTCP_PRESTART_H
#define USERTCP_PRESTART_H

#include "common.h"

/* Socket option table shared by the pre-start recorder and managed code: the option's minimum length, or -ENOPROTOOPT
 * for an option usertcp does not support (-EOPNOTSUPP for one it refuses on purpose, such as TCP_FASTOPEN). */
long k_sockopt_minlen(int level, int name);

long ut_cfg_socket(int domain, int type, int protocol) UT_HIDDEN;
long ut_cfg_setsockopt(int fd, int level, int name, const void *val, socklen_t len) UT_HIDDEN;
long ut_cfg_bind(int fd, const struct sockaddr *addr, socklen_t len) UT_HIDDEN;
long ut_cfg_listen(int fd, int backlog) UT_HIDDEN;
long ut_cfg_getsockname(int fd, struct sockaddr *addr, socklen_t *len) UT_HIDDEN;
long ut_cfg_fcntl(int fd, int cmd, long arg) UT_HIDDEN;
long ut_cfg_ioctl(int fd, unsigned long req, void *arg) UT_HIDDEN;
long ut_cfg_close(int fd) UT_HIDDEN;
long ut_cfg_dup(int fd, int minfd, int cloexec) UT_HIDDEN;
long ut_cfg_dup3(int fd, int fd2, int flags) UT_HIDDEN;
long ut_cfg_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev) UT_HIDDEN;
/* close() or dup2() onto a kernel epoll fd that has user registrations. */
void ut_cfg_epfd_closed(int epfd) UT_HIDDEN;

#endif
