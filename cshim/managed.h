/*
 * The managed entry points (aot/Exports.cs, [UnmanagedCallersOnly]). Each returns >= 0 or -errno and never throws.
 * They are linked statically into the same shared object and are not exported from it.
 */
#ifndef USERTCP_MANAGED_H
#define USERTCP_MANAGED_H

#include "common.h"
#include "config.h"
#include "fdtab.h"

/* What C hands to managed code when the runtime starts in this process. Mirrored in interpose/Native/Handover.cs. */
struct ut_handover {
    const struct ut_config *config;
    const struct ut_fdrec *fds;
    int32_t nfds;
    int32_t nepregs;
    const struct ut_epreg *epregs;
    void *group;              /* memory shared with forked relatives (group.c), or NULL */
};

int ut_m_init(const struct ut_handover *h);
void ut_m_exit(void);

long ut_m_read(int fd, void *buf, size_t n);
long ut_m_write(int fd, const void *buf, size_t n);
long ut_m_readv(int fd, const struct iovec *iov, int iovcnt);
long ut_m_writev(int fd, const struct iovec *iov, int iovcnt);
long ut_m_recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *addr, socklen_t *len);
long ut_m_sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *addr, socklen_t len);
long ut_m_recvmsg(int fd, struct msghdr *msg, int flags);
long ut_m_sendmsg(int fd, const struct msghdr *msg, int flags);
long ut_m_recvmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags, struct timespec *tmo);
long ut_m_sendmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags);
long ut_m_sendfile(int out_fd, int in_fd, int64_t *offset, size_t count);
long ut_m_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags);
long ut_m_connect(int fd, const struct sockaddr *addr, socklen_t len);
long ut_m_bind(int fd, const struct sockaddr *addr, socklen_t len);
long ut_m_listen(int fd, int backlog);
long ut_m_shutdown(int fd, int how);
long ut_m_close(int fd);
long ut_m_dup(int fd, int minfd, int cloexec);
long ut_m_dup3(int fd, int fd2, int flags);
long ut_m_fcntl(int fd, int cmd, long arg);
long ut_m_ioctl(int fd, unsigned long req, void *arg);
long ut_m_setsockopt(int fd, int level, int name, const void *val, socklen_t len);
long ut_m_getsockopt(int fd, int level, int name, void *val, socklen_t *len);
long ut_m_getsockname(int fd, struct sockaddr *addr, socklen_t *len);
long ut_m_getpeername(int fd, struct sockaddr *addr, socklen_t *len);
long ut_m_socket(int domain, int type, int protocol);
long ut_m_inet6_divert(int fd, const char *why, int bound_ok); /* interpose/Inet6.cs: see inet6.h, ut_inet6_divert */
/* poll over a mix of kernel and user fds; timeout_ms < 0 waits forever; sigmask may be NULL. */
long ut_m_poll(struct pollfd *fds, unsigned long n, int timeout_ms, const sigset_t *sigmask);
long ut_m_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev);
long ut_m_epoll_wait(int epfd, struct epoll_event *ev, int max, int timeout_ms, const sigset_t *sigmask);
/* A kernel epoll fd that had user fds registered is being closed. */
long ut_m_epoll_close(int epfd);

/* packetdrill (packetdrill.c): start the stack over the packetdrill device (addresses in host byte order); inject one
 * IPv4 packet; take the next packet the stack sent (its length; *time_us = send time, gettimeofday's clock), waiting
 * at most wait_us (-EAGAIN when none came). */
int ut_m_pd_start(uint32_t local_ip, uint32_t remote_ip, int32_t mtu);
long ut_m_pd_send(const void *buf, size_t count);
long ut_m_pd_receive(void *buf, size_t size, long long *time_us, long long wait_us);

#endif
