/* N calls of one kind on kernel fds; used under callgrind to count the instructions the shim adds per call. */
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    const char *what = argc > 1 ? argv[1] : "read";
    long n = argc > 2 ? atol(argv[2]) : 100000;
    int fd = open("/dev/zero", O_RDONLY), ep = epoll_create1(0), p[2];
    if (pipe(p)) return 1;
    char c;
    struct epoll_event ev[4];
    struct pollfd pf = { p[1], POLLOUT, 0 };
    for (long i = 0; i < n; i++) {
        if (!strcmp(what, "read")) (void)!read(fd, &c, 1);
        else if (!strcmp(what, "write")) (void)!write(p[1], &c, 0);
        else if (!strcmp(what, "epoll_wait")) epoll_wait(ep, ev, 4, 0);
        else poll(&pf, 1, 0);
    }
    return 0;
}
