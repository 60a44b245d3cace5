/*
 * Memory shared by a process and every child it forks (MAP_SHARED | MAP_ANONYMOUS, made in the constructor when
 * offload is configured). Processes of one family that run the user-level stack on the same device (nginx workers)
 * share flows out through it; interpose/FlowGroup.cs defines the layout and does all the work. C only makes it, so
 * that it exists before the first fork, and gives the family a random token.
 */
#include "group.h"
#include "log.h"

#include <arpa/inet.h>
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

/*
 * A process that listens before its stack starts (nginx's master, which never starts one) records (pid, port) here, so
 * that while no started process of the family listens on the port (old workers closed their listeners on reload, new
 * workers are still starting), a SYN is dropped and retried by the peer instead of being answered with a reset.
 * Slots: u64 pid << 32 | port (host order), 0 free; a slot whose pid died is free for the taking.
 */
static uint64_t *held_slots(void) { return ut_group ? (uint64_t *)((char *)ut_group + UT_GROUP_HELD_OFFSET) : NULL; }

void ut_group_held_add(uint16_t port_be)
{
    uint64_t *slots = held_slots();
    if (!slots) return;
    uint64_t mine = (uint64_t)(uint32_t)getpid() << 32 | ntohs(port_be);
    for (int i = 0; i < UT_GROUP_HELD_SLOTS; i++) {
        uint64_t v = __atomic_load_n(&slots[i], __ATOMIC_ACQUIRE);
        if (v == mine) return;
        if (v != 0 && k_pid_alive((int)(v >> 32))) continue;
        if (__atomic_compare_exchange_n(&slots[i], &v, mine, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) return;
    }
    ut_log(UT_LOG_WARN, "no room to record the listener on port %u: during a restart of the workers, peers may be refused",
           ntohs(port_be));
}

void ut_group_held_remove(uint16_t port_be)
{
    uint64_t *slots = held_slots();
    if (!slots) return;
    uint64_t mine = (uint64_t)(uint32_t)getpid() << 32 | ntohs(port_be);
    for (int i = 0; i < UT_GROUP_HELD_SLOTS; i++) {
        uint64_t v = mine;
        if (__atomic_compare_exchange_n(&slots[i], &v, 0, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) return;
    }
}
