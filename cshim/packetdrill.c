/*
 * packetdrill's in-process interface (docs/packetdrill.md).
 *
 * packetdrill can test a TCP stack that lives in a shared object: it dlopen()s the object, calls
 * packetdrill_interface_init, and from then on makes the script's system calls and moves its packets through the
 * function pointers it got back. Here those lead to this process's user-level stack, started over a device that
 * carries raw IPv4 packets to and from packetdrill (interpose/PacketdrillDevice.cs) instead of the configured one.
 *
 * Every socket made through the interface is a user-stack socket, whatever USERTCP_IP says; its fd is an ordinary
 * user fd (a reserved kernel number, fdtab.h), so poll/epoll/close treat it as any other. Calls on other fds (a
 * pipe, an epoll fd) go to the kernel as the LD_PRELOAD wrappers would send them. Time is the real clock.
 */
#include "common.h"
#include "fdtab.h"
#include "log.h"
#include "managed.h"
#include "prestart.h"
#include "real.h"
#include "runtime.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

/* packetdrill's ABI (its packetdrill.h, struct packetdrill_interface): members in this exact order. */
struct packetdrill_interface {
    void *userdata;
    void (*free)(void *userdata);
    int (*socket)(void *userdata, int domain, int type, int protocol);
    int (*bind)(void *userdata, int sockfd, const struct sockaddr *addr, socklen_t addrlen);
    int (*listen)(void *userdata, int sockfd, int backlog);
    int (*accept)(void *userdata, int sockfd, struct sockaddr *addr, socklen_t *addrlen);
    int (*connect)(void *userdata, int sockfd, const struct sockaddr *addr, socklen_t addrlen);
    ssize_t (*read)(void *userdata, int fd, void *buf, size_t count);
    ssize_t (*readv)(void *userdata, int fd, const struct iovec *iov, int iovcnt);
    ssize_t (*recv)(void *userdata, int sockfd, void *buf, size_t len, int flags);
    ssize_t (*recvfrom)(void *userdata, int sockfd, void *buf, size_t len, int flags, struct sockaddr *src_addr,
                        socklen_t *addrlen);
    ssize_t (*recvmsg)(void *userdata, int sockfd, struct msghdr *msg, int flags);
    ssize_t (*write)(void *userdata, int fd, const void *buf, size_t count);
    ssize_t (*writev)(void *userdata, int fd, const struct iovec *iov, int iovcnt);
    ssize_t (*send)(void *userdata, int sockfd, const void *buf, size_t len, int flags);
    ssize_t (*sendto)(void *userdata, int sockfd, const void *buf, size_t len, int flags,
                      const struct sockaddr *dest_addr, socklen_t addrlen);
    ssize_t (*sendmsg)(void *userdata, int sockfd, const struct msghdr *msg, int flags);
    int (*fcntl)(void *userdata, int fd, int cmd, ...);
    int (*ioctl)(void *userdata, int fd, unsigned long request, ...);
    int (*close)(void *userdata, int fd);
    int (*shutdown)(void *userdata, int sockfd, int how);
    int (*getsockopt)(void *userdata, int sockfd, int level, int optname, void *optval, socklen_t *optlen);
    int (*setsockopt)(void *userdata, int sockfd, int level, int optname, const void *optval, socklen_t optlen);
    int (*poll)(void *userdata, struct pollfd *fds, nfds_t nfds, int timeout);
    int (*netdev_send)(void *userdata, const void *buf, size_t count);
    int (*netdev_receive)(void *userdata, void *buf, size_t *count, long long *time_usecs);
    int (*usleep)(void *userdata, useconds_t usec);
    int (*gettimeofday)(void *userdata, struct timeval *tv, struct timezone *tz);
    int (*epoll_create)(void *userdata, int size);
    int (*epoll_ctl)(void *userdata, int epfd, int op, int fd, struct epoll_event *event);
    int (*epoll_wait)(void *userdata, int epfd, struct epoll_event *events, int maxevents, int timeout);
    int (*pipe)(void *userdata, int pipefd[2]);
    int (*splice)(void *userdata, int fd_in, loff_t *off_in, int fd_out, loff_t *off_out, size_t len,
                  unsigned int flags);
};

int packetdrill_interface_init(const char *flags, struct packetdrill_interface *ifc) UT_EXPORT;

/* How long one netdev_receive call waits before it returns -1 and packetdrill asks again. Short enough that the
 * caller's own loop stays responsive; the stack's timers keep running either way (the progress thread). */
#define PD_RECEIVE_SLICE_US 100000LL

struct pd_options {
    uint32_t local_ip, remote_ip; /* host byte order */
    int32_t mtu;
};

static int pd_start(void *arg)
{
    const struct pd_options *o = arg;
    return ut_m_pd_start(o->local_ip, o->remote_ip, o->mtu);
}

/* --name=value or name=value, separated by blanks or commas. packetdrill passes --so_flags through untouched, so
 * anything we do not know is ignored rather than refused. */
static void parse_flags(const char *flags, struct pd_options *o)
{
    if (!flags) return;
    char *copy = strdup(flags);
    if (!copy) return;
    for (char *save, *tok = strtok_r(copy, " \t\n,", &save); tok; tok = strtok_r(NULL, " \t\n,", &save)) {
        while (*tok == '-') tok++;
        char *eq = strchr(tok, '=');
        if (!eq) continue;
        *eq = 0;
        char *val = eq + 1;
        /* packetdrill writes its remote address as a prefix (192.0.2.1/24); the address is what we need. */
        char *slash = strchr(val, '/');
        if (slash && (!strcmp(tok, "local_ip") || !strcmp(tok, "remote_ip"))) *slash = 0;
        struct in_addr a;
        if (!strcmp(tok, "local_ip") && inet_pton(AF_INET, val, &a) == 1) o->local_ip = ntohl(a.s_addr);
        else if (!strcmp(tok, "remote_ip") && inet_pton(AF_INET, val, &a) == 1) o->remote_ip = ntohl(a.s_addr);
        else if (!strcmp(tok, "mtu")) o->mtu = atoi(val);
        else if (!strcmp(tok, "local_ip") || !strcmp(tok, "remote_ip"))
            ut_log(UT_LOG_WARN, "packetdrill: ignoring %s=%s (not an IPv4 address)", tok, val);
    }
    free(copy);
}

/* ---- sockets: always the user stack ------------------------------------------------------------------------------ */

static int pd_socket(void *u, int domain, int type, int protocol)
{
    (void)u;
    return (int)ut_errno_ret(ut_m_socket(domain, type, protocol));
}

/* Calls that only make sense on a socket: a user fd goes to the stack, anything else to the kernel. */
#define PD_SOCK(fd, user, kernel) return ut_owned(fd) ? ut_errno_ret(user) : (kernel)

static int pd_bind(void *u, int fd, const struct sockaddr *a, socklen_t l)
{
    (void)u;
    PD_SOCK(fd, ut_m_bind(fd, a, l), ut_real.bind(fd, a, l));
}

static int pd_listen(void *u, int fd, int backlog)
{
    (void)u;
    PD_SOCK(fd, ut_m_listen(fd, backlog), ut_real.listen(fd, backlog));
}

static int pd_accept(void *u, int fd, struct sockaddr *a, socklen_t *l)
{
    (void)u;
    PD_SOCK(fd, ut_m_accept4(fd, a, l, 0), ut_real.accept(fd, a, l));
}

static int pd_connect(void *u, int fd, const struct sockaddr *a, socklen_t l)
{
    (void)u;
    PD_SOCK(fd, ut_m_connect(fd, a, l), ut_real.connect(fd, a, l));
}

static ssize_t pd_read(void *u, int fd, void *buf, size_t n)
{
    (void)u;
    PD_SOCK(fd, ut_m_read(fd, buf, n), ut_real.read(fd, buf, n));
}

static ssize_t pd_readv(void *u, int fd, const struct iovec *iov, int cnt)
{
    (void)u;
    PD_SOCK(fd, ut_m_readv(fd, iov, cnt), ut_real.readv(fd, iov, cnt));
}

static ssize_t pd_recv(void *u, int fd, void *buf, size_t n, int flags)
{
    (void)u;
    PD_SOCK(fd, ut_m_recvfrom(fd, buf, n, flags, NULL, NULL), ut_real.recv(fd, buf, n, flags));
}

static ssize_t pd_recvfrom(void *u, int fd, void *buf, size_t n, int flags, struct sockaddr *a, socklen_t *l)
{
    (void)u;
    PD_SOCK(fd, ut_m_recvfrom(fd, buf, n, flags, a, l), ut_real.recvfrom(fd, buf, n, flags, a, l));
}

static ssize_t pd_recvmsg(void *u, int fd, struct msghdr *m, int flags)
{
    (void)u;
    PD_SOCK(fd, ut_m_recvmsg(fd, m, flags), ut_real.recvmsg(fd, m, flags));
}

static ssize_t pd_write(void *u, int fd, const void *buf, size_t n)
{
    (void)u;
    PD_SOCK(fd, ut_m_write(fd, buf, n), ut_real.write(fd, buf, n));
}

static ssize_t pd_writev(void *u, int fd, const struct iovec *iov, int cnt)
{
    (void)u;
    PD_SOCK(fd, ut_m_writev(fd, iov, cnt), ut_real.writev(fd, iov, cnt));
}

static ssize_t pd_send(void *u, int fd, const void *buf, size_t n, int flags)
{
    (void)u;
    PD_SOCK(fd, ut_m_sendto(fd, buf, n, flags, NULL, 0), ut_real.send(fd, buf, n, flags));
}

static ssize_t pd_sendto(void *u, int fd, const void *buf, size_t n, int flags, const struct sockaddr *a, socklen_t l)
{
    (void)u;
    PD_SOCK(fd, ut_m_sendto(fd, buf, n, flags, a, l), ut_real.sendto(fd, buf, n, flags, a, l));
}

static ssize_t pd_sendmsg(void *u, int fd, const struct msghdr *m, int flags)
{
    (void)u;
    PD_SOCK(fd, ut_m_sendmsg(fd, m, flags), ut_real.sendmsg(fd, m, flags));
}

static int pd_fcntl(void *u, int fd, int cmd, ...)
{
    (void)u;
    va_list ap;
    va_start(ap, cmd);
    long arg = va_arg(ap, long);
    va_end(ap);
    PD_SOCK(fd, ut_m_fcntl(fd, cmd, arg), ut_real.fcntl(fd, cmd, arg));
}

static int pd_ioctl(void *u, int fd, unsigned long req, ...)
{
    (void)u;
    va_list ap;
    va_start(ap, req);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    PD_SOCK(fd, ut_m_ioctl(fd, req, arg), ut_real.ioctl(fd, req, arg));
}

static int pd_close(void *u, int fd)
{
    (void)u;
    if (ut_owned(fd)) return (int)ut_errno_ret(ut_m_close(fd));
    if (ut_epfd_has_user(fd)) ut_cfg_epfd_closed(fd);
    return ut_real.close(fd);
}

static int pd_shutdown(void *u, int fd, int how)
{
    (void)u;
    PD_SOCK(fd, ut_m_shutdown(fd, how), ut_real.shutdown(fd, how));
}

static int pd_getsockopt(void *u, int fd, int level, int name, void *val, socklen_t *len)
{
    (void)u;
    PD_SOCK(fd, ut_m_getsockopt(fd, level, name, val, len), ut_real.getsockopt(fd, level, name, val, len));
}

static int pd_setsockopt(void *u, int fd, int level, int name, const void *val, socklen_t len)
{
    (void)u;
    PD_SOCK(fd, ut_m_setsockopt(fd, level, name, val, len), ut_real.setsockopt(fd, level, name, val, len));
}

static int pd_poll(void *u, struct pollfd *fds, nfds_t n, int timeout)
{
    (void)u;
    /* Managed poll handles a mix of user and kernel fds. */
    return (int)ut_errno_ret(ut_m_poll(fds, n, timeout, NULL));
}

/* ---- epoll, pipes: kernel objects, with user fds registered through managed code --------------------------------- */

static int pd_epoll_create(void *u, int size)
{
    (void)u;
    return ut_real.epoll_create(size);
}

static int pd_epoll_ctl(void *u, int epfd, int op, int fd, struct epoll_event *ev)
{
    (void)u;
    if (!ut_owned(fd)) {
        if (ut_owned(epfd)) {
            errno = EINVAL;
            return -1;
        }
        return ut_real.epoll_ctl(epfd, op, fd, ev);
    }
    return (int)ut_errno_ret(ut_m_epoll_ctl(epfd, op, fd, ev));
}

static int pd_epoll_wait(void *u, int epfd, struct epoll_event *ev, int max, int timeout)
{
    (void)u;
    if (!ut_epfd_has_user(epfd)) return ut_real.epoll_wait(epfd, ev, max, timeout);
    return (int)ut_errno_ret(ut_m_epoll_wait(epfd, ev, max, timeout, NULL));
}

static int pd_pipe(void *u, int fds[2])
{
    (void)u;
    return pipe(fds);
}

static int pd_splice(void *u, int in, loff_t *off_in, int out, loff_t *off_out, size_t len, unsigned int flags)
{
    (void)u;
    if (ut_owned(in) || ut_owned(out)) {
        errno = EINVAL; /* the user stack has no pipe buffers to splice through */
        return -1;
    }
    return (int)splice(in, off_in, out, off_out, len, flags);
}

/* ---- packets and time -------------------------------------------------------------------------------------------- */

static int pd_netdev_send(void *u, const void *buf, size_t count)
{
    (void)u;
    return (int)ut_errno_ret(ut_m_pd_send(buf, count)) < 0 ? -1 : 0;
}

/* Waits (a slice at a time) for the next packet the stack sends. -1 means "nothing yet, ask again"; a success always
 * carries a packet. */
static int pd_netdev_receive(void *u, void *buf, size_t *count, long long *time_usecs)
{
    (void)u;
    if (!count) {
        errno = EFAULT;
        return -1;
    }
    long n = ut_m_pd_receive(buf, *count, time_usecs, PD_RECEIVE_SLICE_US);
    if (n <= 0) {
        errno = n == 0 ? EAGAIN : (int)-n;
        return -1;
    }
    *count = (size_t)n;
    return 0;
}

static int pd_usleep(void *u, useconds_t usec)
{
    (void)u;
    return usleep(usec);
}

static int pd_gettimeofday(void *u, struct timeval *tv, struct timezone *tz)
{
    (void)u;
    return gettimeofday(tv, tz);
}

static void pd_free(void *u)
{
    /* The stack stays up: a NativeAOT runtime cannot be unloaded, and packetdrill frees the interface only at exit. */
    free(u);
}

int packetdrill_interface_init(const char *flags, struct packetdrill_interface *ifc)
{
    if (!ifc) return -1;
    memset(ifc, 0, sizeof *ifc);
    struct pd_options o = { .local_ip = 0xC0A80001u /* 192.168.0.1 */, .remote_ip = 0xC0000201u /* 192.0.2.1 */,
                            .mtu = 1500 };
    parse_flags(flags, &o);
    int r = ut_runtime_start_custom(pd_start, &o);
    if (r) {
        ut_log(UT_LOG_ERROR, "packetdrill: cannot start the user-level stack: %s", strerror(-r));
        errno = -r;
        return -1;
    }
    struct in_addr l = { htonl(o.local_ip) }, rm = { htonl(o.remote_ip) };
    char ls[INET_ADDRSTRLEN], rs[INET_ADDRSTRLEN];
    ut_log(UT_LOG_INFO, "packetdrill: user-level stack at %s, peer %s, MTU %d",
           inet_ntop(AF_INET, &l, ls, sizeof ls), inet_ntop(AF_INET, &rm, rs, sizeof rs), o.mtu);

    ifc->userdata = malloc(1); /* packetdrill frees it through ifc->free; we keep no per-instance state */
    ifc->free = pd_free;
    ifc->socket = pd_socket;
    ifc->bind = pd_bind;
    ifc->listen = pd_listen;
    ifc->accept = pd_accept;
    ifc->connect = pd_connect;
    ifc->read = pd_read;
    ifc->readv = pd_readv;
    ifc->recv = pd_recv;
    ifc->recvfrom = pd_recvfrom;
    ifc->recvmsg = pd_recvmsg;
    ifc->write = pd_write;
    ifc->writev = pd_writev;
    ifc->send = pd_send;
    ifc->sendto = pd_sendto;
    ifc->sendmsg = pd_sendmsg;
    ifc->fcntl = pd_fcntl;
    ifc->ioctl = pd_ioctl;
    ifc->close = pd_close;
    ifc->shutdown = pd_shutdown;
    ifc->getsockopt = pd_getsockopt;
    ifc->setsockopt = pd_setsockopt;
    ifc->poll = pd_poll;
    ifc->netdev_send = pd_netdev_send;
    ifc->netdev_receive = pd_netdev_receive;
    ifc->usleep = pd_usleep;
    ifc->gettimeofday = pd_gettimeofday;
    ifc->epoll_create = pd_epoll_create;
    ifc->epoll_ctl = pd_epoll_ctl;
    ifc->epoll_wait = pd_epoll_wait;
    ifc->pipe = pd_pipe;
    ifc->splice = pd_splice;
    return 0;
}
