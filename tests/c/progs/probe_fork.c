/* fork before the runtime starts: parent and child each start their own. fork after: the child must fail loudly on
 * a user fd (never hang), while kernel fds keep working. Usage: probe_fork before|after */
#include "probe_common.h"
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/wait.h>

int main(int argc, char **argv)
{
    int after = argc > 1 && !strcmp(argv[1], "after");
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0 || listen(fd, 8)) return perror("socket/listen"), 1;
    if (after) (void)accept(fd, NULL, NULL); /* starts the runtime in the parent */
    int p[2];
    if (pipe(p)) return 1;
    pid_t pid = fork();
    if (pid == 0) {
        if (write(p[1], "k", 1) != 1) _exit(3); /* kernel fds work in any child */
        int c = accept(fd, NULL, NULL);
        printf("child accept=%d errno=%d state=%d\n", c, errno, probe_state());
        fflush(stdout);
        _exit(c == -1 && errno == EAGAIN ? 0 : 4);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    char k = 0;
    int got = (int)read(p[0], &k, 1);
    int c = accept(fd, NULL, NULL);
    printf("parent accept=%d errno=%d state=%d pipe=%d\n", c, errno, probe_state(), got);
    if (WIFSIGNALED(st)) printf("child signal=%d\n", WTERMSIG(st));
    else printf("child exit=%d\n", WEXITSTATUS(st));
    return 0;
}
