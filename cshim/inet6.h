/* AF_INET6 (dual-stack) sockets on the user-level stack, and moving IPv6-only ones to the kernel. See inet6.c. */
#ifndef USERTCP_INET6_H
#define USERTCP_INET6_H

#include "common.h"
#include "fdtab.h"
#include <netinet/in.h>

#define UT_SIN6_MINLEN 24 /* SIN6_LEN_RFC2133: sockaddr_in6 without sin6_scope_id, the shortest Linux takes */

/* New AF_INET6 TCP sockets may be offloaded (net.ipv6.bindv6only is 0). */
int ut_inet6_offloadable(void) UT_HIDDEN;
/* addr is a sockaddr_in6 with an address the stack cannot carry (neither IPv4-mapped nor, unless any_is_native,
 * the unspecified address). */
int ut_inet6_native(const struct sockaddr *addr, socklen_t len, int any_is_native) UT_HIDDEN;
/* Moves fd's AF_INET6 socket to the kernel (a bound one only when bound_ok: its port goes with it): 0 done (repeat the call on the kernel), 1 not applicable (go on with the
 * user-stack call), < 0 -errno. */
long ut_inet6_divert(int fd, const char *why, int bound_ok) UT_HIDDEN;
/* Recording-time helpers (prestart.c): bind's address checks (ip and port in network order; mapped set for an
 * IPv4-mapped address), getsockname, and the IPPROTO_IPV6 options' checks (0: record it). */
long ut_inet6_parse_bind(const struct sockaddr *addr, socklen_t len, uint32_t *ip, uint16_t *port, int *mapped) UT_HIDDEN;
long ut_inet6_copy_local(const struct sockaddr_in *local, struct sockaddr *addr, socklen_t *len) UT_HIDDEN;
long ut_inet6_ps_setsockopt(const struct ut_sock *s, int level, int name, const void *val, socklen_t len) UT_HIDDEN;
/* For managed code: the kernel socket that takes over fd (opts: level, name, int value triples). */
long k_inet6_to_kernel(int fd, int nonblock, int port, const int *opts, int nopts);

#endif
