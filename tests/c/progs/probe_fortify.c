/* Built with -O2 -D_FORTIFY_SOURCE=2: read/recv/recvfrom/poll become __read_chk, __recv_chk, __recvfrom_chk,
 * __poll_chk. On a kernel pipe they must work; on a user socket they must reach usertcp. */
#include "probe_common.h"
#include <poll.h>
#include <sys/socket.h>

/* Lengths the compiler cannot see, so the checked variants are called. */
static volatile size_t len8 = 8;
static volatile nfds_t one = 1;

int main(void)
{
    int p[2];
    char buf[8];
    if (pipe(p) || write(p[1], "abc", 3) != 3) return 1;
    if (read(p[0], buf, len8) != 3) return 2;
    struct pollfd pf[1] = { { p[1], POLLOUT, 0 } };
    if (poll(pf, one, 0) != 1) return 3;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ssize_t r1 = read(fd, buf, len8);
    int e1 = errno;
    ssize_t r2 = recv(fd, buf, len8, 0);
    int e2 = errno;
    ssize_t r3 = recvfrom(fd, buf, len8, 0, NULL, NULL);
    int e3 = errno;
    struct pollfd up[1] = { { fd, POLLOUT, 0 } };
    int r4 = poll(up, one, 0);
    printf("read=%zd/%d recv=%zd/%d recvfrom=%zd/%d poll=%d/%x state=%d\n", r1, e1, r2, e2, r3, e3, r4, up[0].revents,
           probe_state());
    return 0;
}
