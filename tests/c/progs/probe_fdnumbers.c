/* The application's fd numbers stay the application's: a user socket gets the lowest free number, what the runtime
 * opens when it starts (DPDK, its threads) and the library's placeholder socket live above the low numbers, closing
 * the placeholder's number is EBADF (the application never opened it), and dup2 onto that number gives it to the
 * application. Prints one line of facts for shim_test to check. */
#include "probe_common.h"
#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

static int placeholder_fd(int skip)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    for (int fd = 0; fd < (int)rl.rlim_cur && fd < 65536; fd++) {
        int v = 0;
        socklen_t l = sizeof v;
        /* The placeholder carries SO_SNDBUF 4099 (the kernel reports it doubled). */
        if (fd != skip && fcntl(fd, F_GETFD) >= 0 && getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, &l) == 0 && v == 8198)
            return fd;
    }
    return -1;
}

int main(void)
{
    int probe = open("/dev/null", O_RDONLY);
    close(probe);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    struct sockaddr_in a = { .sin_family = AF_INET };
    if (s < 0 || bind(s, (void *)&a, sizeof a) || listen(s, 16) || ioctl(s, FIONBIO, &one)) {
        perror("listener");
        return 1;
    }
    (void)accept4(s, NULL, NULL, 0); /* the data path: starts the runtime */
    int next = open("/dev/null", O_RDONLY);
    int ph = placeholder_fd(s);
    errno = 0;
    int closed = close(ph);
    int close_errno = errno;
    int took = dup2(next, ph);
    int s2 = socket(AF_INET, SOCK_STREAM, 0);
    int s2_listen = s2 >= 0 ? listen(s2, 1) : -1;
    int ph2 = placeholder_fd(s2);
    printf("state=%d socket_is_lowest=%d next_is_lowest=%d placeholder_high=%d close_placeholder=%d/%s "
           "dup2_onto_placeholder=%d socket_after=%d placeholder_moved=%d\n",
           probe_state(), s == probe, next == s + 1, ph >= 16, closed, close_errno == EBADF ? "EBADF" : "other",
           took == ph, s2 >= 0 && s2_listen == 0, ph2 >= 0 && ph2 != ph);
    return 0;
}
