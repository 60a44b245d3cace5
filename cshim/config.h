/*
 * Configuration: USERTCP_* environment variables, optionally a file (USERTCP_CONFIG=path, KEY=VALUE lines, '#'
 * comments; the environment wins over the file). Read once in the library constructor, because some programs
 * (nginx workers) clear environ before they touch the network. docs/configuration.md is the reference.
 *
 * The struct is handed to managed code as is: keep it plain data, and keep interpose/Native/ShimConfig.cs in step.
 */
#ifndef USERTCP_CONFIG_H
#define USERTCP_CONFIG_H

#include "common.h"

#define UT_CHILDREN_INHERIT 0
#define UT_CHILDREN_KERNEL 1

struct ut_config {
    int32_t offload;          /* 1 when an interface is configured: AF_INET TCP sockets go to the user-level stack */
    uint32_t ip;              /* USERTCP_IP a.b.c.d/len, host byte order */
    int32_t prefix_len;
    uint32_t gateway;         /* USERTCP_GATEWAY, host byte order, 0 = none */
    int32_t fd_base;          /* USERTCP_FD_BASE: user-stack fds are allocated at or above this number */
    int32_t max_fds;          /* USERTCP_MAX_SOCKETS: user-stack fds available above fd_base */
    int32_t log_level;        /* USERTCP_LOG: error|warn|info|debug */
    int32_t children;         /* USERTCP_CHILDREN: inherit|kernel (what exec'd children get) */
    int32_t stats;            /* USERTCP_STATS=1: print GC collections and stack counters to stderr at exit */
    char dev[512];            /* USERTCP_DEV: DPDK device (vdev string or PCI address) */
    char dpdk_args[1024];     /* USERTCP_DPDK_ARGS: extra EAL arguments */
    char mac[32];             /* USERTCP_MAC: override the device's MAC address */
    char log_file[256];       /* USERTCP_LOG_FILE */
    uint8_t ip6[16];          /* USERTCP_IP6 address (network order), all zero = none */
    int32_t prefix6;          /* USERTCP_IP6 prefix length */
};

extern struct ut_config ut_cfg UT_HIDDEN;

/* Reads the configuration. On an invalid value, prints every problem and returns -1. */
int ut_config_load(void) UT_HIDDEN;

/* USERTCP_VIRTUAL_FDS=1: user-stack fds are numbers above the kernel's RLIMIT_NOFILE hard limit with no kernel
 * descriptor behind them (see fdtab.c), so a process holds more sockets than the kernel would give it fds. */
extern int ut_virtual_fds UT_HIDDEN;

#endif
