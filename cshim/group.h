#ifndef USERTCP_GROUP_H
#define USERTCP_GROUP_H
#include "common.h"

/* Size of the shared area; interpose/FlowGroup.cs lays it out (header, listener counts, flow claims, then the
 * hand-off area: a 4 KiB header and 256 entries of 4 KiB for connections a closing listener passes on). Pages are
 * touched only when used. */
#define UT_GROUP_BYTES (4096 + 65536 * 4 + 65536 * 4 * 8 + 4096 + 256 * 4096)
#define UT_GROUP_MAGIC 0x7573657274637031ULL /* "usertcp1" */

extern void *ut_group UT_HIDDEN;
void ut_group_init(void) UT_HIDDEN;
long k_pid_alive(int pid);

/* Listening sockets of processes that have not started a stack (nginx's master holds them while workers restart). */
#define UT_GROUP_HELD_OFFSET 1024
#define UT_GROUP_HELD_SLOTS 384
void ut_group_held_add(uint16_t port_be) UT_HIDDEN;
void ut_group_held_remove(uint16_t port_be) UT_HIDDEN;

#endif
