/* A user-stack socket left open across exec: the exec'd program must say so loudly (and the fd fails every call). */
#include "probe_common.h"
#include <sys/socket.h>

int main(int argc, char **argv)
{
    if (argc > 1) {
        char c;
        ssize_t r = read(atoi(argv[1]), &c, 1);
        printf("child read=%zd errno=%d\n", r, errno);
        return 0;
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0); /* no SOCK_CLOEXEC on purpose */
    char num[16];
    snprintf(num, sizeof num, "%d", fd);
    fflush(stdout);
    execl("/proc/self/exe", "probe_exec", num, (char *)0);
    return 1;
}
