#ifndef USERTCP_GROUP_H
#define USERTCP_GROUP_H
#include "common.h"

/* Size of the shared area; interpose/FlowGroup.cs lays it out (header, listener counts, flow claims). */
#define UT_GROUP_BYTES (4096 + 65536 * 4 + 65536 * 4 * 8)
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
