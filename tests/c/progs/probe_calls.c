/* A program whose read, socket and epoll_wait calls must bind to usertcp (checked with LD_DEBUG=bindings). */
#include "probe_common.h"
#include <sys/epoll.h>
#include <sys/socket.h>

int main(void)
{
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    int ep = epoll_create1(0);
    struct epoll_event ev[1];
    char c;
    int p[2];
    if (pipe(p) || write(p[1], "x", 1) != 1) return 1;
    int ok = s >= 0 && epoll_wait(ep, ev, 1, 0) == 0 && read(p[0], &c, 1) == 1 && c == 'x';
    printf("%s threads=%d\n", ok ? "ok" : "fail", probe_threads());
    return ok ? 0 : 1;
}
