/* Configuration calls on a user socket must not start the runtime; the first data-path call must. */
#include "probe_common.h"
#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

int main(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    struct sockaddr_in a = { .sin_family = AF_INET };
    socklen_t len = sizeof a;
    int ep = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN };
    int d = dup(fd);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) || bind(fd, (void *)&a, sizeof a) ||
        listen(fd, 128) || ioctl(fd, FIONBIO, &one) || fcntl(fd, F_SETFD, FD_CLOEXEC) ||
        getsockname(fd, (void *)&a, &len) || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) || d < 0 || close(d)) {
        perror("configuration call");
        return 1;
    }
    printf("configured fd=%d port=%d state=%d threads=%d\n", fd, ntohs(a.sin_port), probe_state(), probe_threads());
    int c = accept4(fd, NULL, NULL, 0);
    int err = errno;
    len = sizeof a;
    getsockname(fd, (void *)&a, &len);
    printf("accepted=%d errno=%d port=%d state=%d threads=%d\n", c, err, ntohs(a.sin_port), probe_state(),
           probe_threads());
    struct epoll_event out[2];
    int n = epoll_wait(ep, out, 2, 0);
    printf("epoll=%d\n", n);
    return 0;
}
