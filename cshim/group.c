/*
 * Memory shared by a process and every child it forks (MAP_SHARED | MAP_ANONYMOUS, made in the constructor when
 * offload is configured). Processes of one family that run the user-level stack on the same device (nginx workers)
 * share flows out through it; interpose/FlowGroup.cs defines the layout and does all the work. C only makes it, so
 * that it exists before the first fork, and gives the family a random token.
 */
#include "group.h"
#include "log.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/random.h>

void *ut_group;

void ut_group_init(void)
{
    void *p = mmap(NULL, UT_GROUP_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        ut_log(UT_LOG_WARN, "cannot map the process-group area: processes will not share a device");
        return;
    }
    uint64_t token = 0;
    if (getrandom(&token, sizeof token, GRND_NONBLOCK) != sizeof token) token = (uint64_t)getpid() << 32 ^ (uint64_t)(uintptr_t)p;
    ((uint64_t *)p)[0] = UT_GROUP_MAGIC;
    ((uint64_t *)p)[1] = token | 1;
    ut_group = p;
}

long k_pid_alive(int pid) { return kill(pid, 0) == 0 || errno == EPERM; }
