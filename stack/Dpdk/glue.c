// libusertcp-dpdk.so: the small C layer between the managed DpdkDevice and DPDK 22.11.
//
// Why it exists: the DPDK fast path (rte_eth_rx_burst, rte_eth_tx_burst, rte_pktmbuf_alloc_bulk, ...) is made of
// static inline functions, so managed code cannot call it directly; rte_errno is a thread-local macro. Everything
// else here is setup code kept in C because it touches DPDK structs whose layout we do not want to mirror in C#
// (rte_eth_conf, rte_eth_dev_info). The managed side mirrors exactly one DPDK struct, rte_mbuf, and
// utd_mbuf_layout() reports the offsets it relies on so a test can compare them.
//
// Conventions: every function is prefixed utd_; functions that can fail return >= 0 on success and a negative
// errno value on failure (rte_errno when DPDK set one). No function here aborts the process.

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <net/if.h>
#include <pthread.h>
#include <poll.h>
#include <sched.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <rte_bus.h>
#include <rte_dev.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_interrupts.h>

#define UTD_EXPORT __attribute__((visibility("default")))

// Bumped whenever a signature or struct below changes; DpdkNative checks it at load time.
#define UTD_ABI_VERSION 5

// The managed mirror (stack/Dpdk/MbufLayout.cs) hard-codes these; fail the build if DPDK ever moves them.
_Static_assert(sizeof(struct rte_mbuf) == 128, "rte_mbuf size");
_Static_assert(offsetof(struct rte_mbuf, buf_addr) == 0, "buf_addr");
_Static_assert(offsetof(struct rte_mbuf, data_off) == 16, "data_off");
_Static_assert(offsetof(struct rte_mbuf, refcnt) == 18, "refcnt");
_Static_assert(offsetof(struct rte_mbuf, nb_segs) == 20, "nb_segs");
_Static_assert(offsetof(struct rte_mbuf, port) == 22, "port");
_Static_assert(offsetof(struct rte_mbuf, ol_flags) == 24, "ol_flags");
_Static_assert(offsetof(struct rte_mbuf, packet_type) == 32, "packet_type");
_Static_assert(offsetof(struct rte_mbuf, pkt_len) == 36, "pkt_len");
_Static_assert(offsetof(struct rte_mbuf, data_len) == 40, "data_len");
_Static_assert(offsetof(struct rte_mbuf, vlan_tci) == 42, "vlan_tci");
_Static_assert(offsetof(struct rte_mbuf, buf_len) == 54, "buf_len");
_Static_assert(offsetof(struct rte_mbuf, pool) == 56, "pool");
_Static_assert(offsetof(struct rte_mbuf, next) == 64, "next");
_Static_assert(offsetof(struct rte_mbuf, tx_offload) == 72, "tx_offload");

UTD_EXPORT int utd_abi_version(void) { return UTD_ABI_VERSION; }

// Copies at most n of the count values to out; returns count (how many exist).
static int put_values(const int64_t *v, int count, int64_t *out, int n)
{
	for (int i = 0; i < n && i < count; i++)
		out[i] = v[i];
	return count;
}

// Layout facts the managed mirror depends on, in a fixed order (see MbufLayout.Expected in C#).
// Returns how many values exist; writes at most n of them.
UTD_EXPORT int utd_mbuf_layout(int64_t *out, int n)
{
	const int64_t v[] = {
		sizeof(struct rte_mbuf),
		offsetof(struct rte_mbuf, buf_addr),
		offsetof(struct rte_mbuf, data_off),
		offsetof(struct rte_mbuf, refcnt),
		offsetof(struct rte_mbuf, nb_segs),
		offsetof(struct rte_mbuf, port),
		offsetof(struct rte_mbuf, ol_flags),
		offsetof(struct rte_mbuf, packet_type),
		offsetof(struct rte_mbuf, pkt_len),
		offsetof(struct rte_mbuf, data_len),
		offsetof(struct rte_mbuf, vlan_tci),
		offsetof(struct rte_mbuf, buf_len),
		offsetof(struct rte_mbuf, pool),
		offsetof(struct rte_mbuf, next),
		offsetof(struct rte_mbuf, tx_offload),
		RTE_PKTMBUF_HEADROOM,
		(int64_t)RTE_MBUF_F_RX_IP_CKSUM_MASK,
		(int64_t)RTE_MBUF_F_RX_IP_CKSUM_GOOD,
		(int64_t)RTE_MBUF_F_RX_L4_CKSUM_MASK,
		(int64_t)RTE_MBUF_F_RX_L4_CKSUM_GOOD,
		(int64_t)RTE_MBUF_F_TX_IPV4,
		(int64_t)RTE_MBUF_F_TX_IP_CKSUM,
		(int64_t)RTE_MBUF_F_TX_TCP_CKSUM,
		(int64_t)RTE_MBUF_F_TX_OFFLOAD_MASK,
	};
	return put_values(v, (int)(sizeof(v) / sizeof(v[0])), out, n);
}

// Mirror of the C# struct UserTcp.Stack.Phy.PacketBuf (stack/Phy/PacketBuf.cs), which the per-burst packet
// functions below read and write directly; utd_packet_layout() lets a test compare the two.
struct utd_packet {
	uint8_t *buffer;         // buf_addr
	int32_t offset;          // data_off
	int32_t length;          // data_len = pkt_len (single segment)
	int32_t capacity;        // buf_len
	uint8_t offloads;        // PacketOffloads
	uint8_t pad[3];
	struct rte_mbuf *handle; // the mbuf
};
_Static_assert(sizeof(struct utd_packet) == 32, "utd_packet size");

// PacketOffloads values (stack/Phy/PacketBuf.cs).
#define UTD_OFF_TX_IPV4 4
#define UTD_OFF_TX_TCP 8

// The packet view of mbuf m holding len bytes at its data offset.
static inline void fill_packet(struct utd_packet *p, struct rte_mbuf *m, int32_t len)
{
	p->buffer = m->buf_addr;
	p->offset = m->data_off;
	p->length = len;
	p->capacity = m->buf_len;
	p->offloads = 0;
	p->handle = m;
}

UTD_EXPORT int utd_packet_layout(int64_t *out, int n)
{
	const int64_t v[] = {
		sizeof(struct utd_packet),
		offsetof(struct utd_packet, buffer),
		offsetof(struct utd_packet, offset),
		offsetof(struct utd_packet, length),
		offsetof(struct utd_packet, capacity),
		offsetof(struct utd_packet, offloads),
		offsetof(struct utd_packet, handle),
	};
	return put_values(v, (int)(sizeof(v) / sizeof(v[0])), out, n);
}

UTD_EXPORT int utd_errno(void) { return rte_errno; }

UTD_EXPORT const char *utd_strerror(int err) { return rte_strerror(err < 0 ? -err : err); }

static int neg_rte_errno(int fallback)
{
	int e = rte_errno;
	return -(e > 0 ? e : fallback);
}

// rte_eal_init with the side effects an embedding library cannot accept undone:
// - EAL pins the calling thread to the main lcore's CPU set; we restore the caller's affinity afterwards so an
//   application thread that happened to initialise the device is not confined to one CPU (threads it creates
//   later would inherit that).
// - EAL parses argv with getopt_long and leaves optind/opterr changed; the application may use getopt itself.
// - rte_eal_init permutes argv; the caller passes a scratch copy.
UTD_EXPORT int utd_eal_init(int argc, char **argv)
{
	cpu_set_t saved;
	int have_saved = pthread_getaffinity_np(pthread_self(), sizeof(saved), &saved) == 0;
	int saved_opterr = opterr;

	int rc = rte_eal_init(argc, argv);
	int err = rc < 0 ? rte_errno : 0;

	optind = 0; // 0 (not 1) makes glibc re-initialise its getopt state, including the "nextchar" pointer
	opterr = saved_opterr;
	if (have_saved)
		pthread_setaffinity_np(pthread_self(), sizeof(saved), &saved);

	if (rc < 0)
		return -(err > 0 ? err : EINVAL);
	return rc;
}

// ---- lcore ids for every thread that touches the pools.
//
// A mempool's per-lcore cache serves only threads with an lcore id: the thread that ran rte_eal_init has one, any
// other thread's allocations and frees (ours and the driver's: memif's receive takes 32 mbufs per non-empty call and
// frees the unused ones, its transmit frees what it copied) go to the pool's shared ring instead: a compare-and-swap
// per call and FIFO order, every mbuf of the pool in turn instead of the same few warm ones. Which thread polls is the
// application's choice (wrk's worker thread, not the thread that started the runtime; the engine's progress thread),
// so the glue gives a thread an lcore id the first time it receives or allocates. The id goes back when the thread
// exits (a pthread key's destructor), after the thread's cache of every pool was flushed back to its pool; a thread
// that finds no id left (RTE_MAX_LCORE registered) keeps the ring, correct and slower, and is not asked again.

static pthread_key_t utd_lcore_key;
static pthread_once_t utd_lcore_once = PTHREAD_ONCE_INIT;
static int utd_lcore_key_ok;
static __thread int utd_lcore_refused;
static uint32_t utd_lcores_given, utd_lcores_refused, utd_lcores_released; // counters (utd_lcore_stats)

static void utd_flush_cache(struct rte_mempool *mp, void *arg)
{
	struct rte_mempool_cache *cache = rte_mempool_default_cache(mp, *(unsigned *)arg);
	if (cache != NULL)
		rte_mempool_cache_flush(cache, mp);
}

static void utd_lcore_release(void *value)
{
	(void)value;
	unsigned lcore = rte_lcore_id();
	if (lcore == LCORE_ID_ANY)
		return;
	rte_mempool_walk(utd_flush_cache, &lcore);
	rte_thread_unregister();
	__atomic_fetch_add(&utd_lcores_released, 1, __ATOMIC_RELEASE);
}

static void utd_lcore_key_create(void) { utd_lcore_key_ok = pthread_key_create(&utd_lcore_key, utd_lcore_release) == 0; }

__attribute__((noinline)) static void utd_lcore_slow(void)
{
	if (utd_lcore_refused)
		return;
	pthread_once(&utd_lcore_once, utd_lcore_key_create);
	// Without the key the id could not be given back at exit: leave the thread on the ring.
	if (!utd_lcore_key_ok || rte_thread_register() != 0) {
		utd_lcore_refused = 1;
		__atomic_fetch_add(&utd_lcores_refused, 1, __ATOMIC_RELAXED);
		return;
	}
	pthread_setspecific(utd_lcore_key, (void *)1);
	__atomic_fetch_add(&utd_lcores_given, 1, __ATOMIC_RELAXED);
}

// Gives the calling thread an lcore id now (the same as its first receive or allocation would, given back at its
// exit). Returns the lcore id or a negative errno (ENOSPC: none left).
UTD_EXPORT int utd_thread_register(void)
{
	if (rte_lcore_id() == LCORE_ID_ANY) {
		utd_lcore_refused = 0; // an explicit request tries again
		utd_lcore_slow();
	}
	return rte_lcore_id() == LCORE_ID_ANY ? -ENOSPC : (int)rte_lcore_id();
}

// Gives the calling thread's lcore id back before its exit (its caches flushed first, as at exit).
UTD_EXPORT void utd_thread_unregister(void)
{
	if (rte_lcore_id() == LCORE_ID_ANY)
		return;
	if (utd_lcore_key_ok)
		pthread_setspecific(utd_lcore_key, NULL); // no second release at exit
	utd_lcore_release(NULL);
}

// One thread-local read on the fast path (the mempool code reads the same variable right after).
static inline void utd_need_lcore(void)
{
	if (__builtin_expect(rte_lcore_id() == LCORE_ID_ANY, 0))
		utd_lcore_slow();
}

// Threads given an lcore id by the glue so far, threads that found none left, and ids given back (thread exits).
UTD_EXPORT void utd_lcore_stats(uint32_t *given, uint32_t *refused, uint32_t *released)
{
	*given = __atomic_load_n(&utd_lcores_given, __ATOMIC_RELAXED);
	*refused = __atomic_load_n(&utd_lcores_refused, __ATOMIC_RELAXED);
	*released = __atomic_load_n(&utd_lcores_released, __ATOMIC_ACQUIRE);
}

UTD_EXPORT int utd_eal_cleanup(void)
{
	int rc = rte_eal_cleanup();
	return rc < 0 ? neg_rte_errno(EINVAL) : 0;
}

// Moves the calling thread into the network namespace at `path` (e.g. /run/netns/ut-srv) and returns a file
// descriptor for the namespace it was in, to pass to utd_netns_leave. The af_packet PMD opens its socket and
// issues its interface ioctls (MTU, flags) in the namespace of the thread that probes and configures the port, so
// the managed side wraps port open/setup/close in enter/leave. setns(CLONE_NEWNET) applies to this thread only.
UTD_EXPORT int utd_netns_enter(const char *path)
{
	int old = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (old < 0)
		return -errno;
	int target = open(path, O_RDONLY | O_CLOEXEC);
	if (target < 0) {
		int e = errno;
		close(old);
		return -e;
	}
	if (setns(target, CLONE_NEWNET) < 0) {
		int e = errno;
		close(target);
		close(old);
		return -e;
	}
	close(target);
	return old;
}

UTD_EXPORT int utd_netns_leave(int old)
{
	int rc = setns(old, CLONE_NEWNET) < 0 ? -errno : 0;
	close(old);
	return rc;
}

// Finds the ethdev port for a device name, probing the device first if it is not there yet. `devargs` is
// "name[,key=value...]" as for --vdev (net_af_packet0,iface=ut-srv0) or a PCI address. Devices named on the
// EAL command line already exist; later ones are hot-plugged so a process can open ports after rte_eal_init.
UTD_EXPORT int utd_port_open(const char *devargs, uint16_t *port_out)
{
	char name[RTE_DEV_NAME_MAX_LEN];
	size_t len = strcspn(devargs, ",");
	if (len == 0 || len >= sizeof(name))
		return -EINVAL;
	memcpy(name, devargs, len);
	name[len] = '\0';

	uint16_t port;
	if (rte_eth_dev_get_port_by_name(name, &port) != 0) {
		// af_packet and af_xdp attach to an existing interface given as iface=NAME; check it here (in the
		// caller's network namespace) so a missing interface is reported as ENODEV instead of a generic probe
		// failure. (tap's iface= names an interface it creates, so only these two drivers are checked.)
		const char *iface = strstr(devargs, ",iface=");
		if (iface != NULL && (strncmp(name, "net_af_packet", 13) == 0 || strncmp(name, "net_af_xdp", 10) == 0)) {
			iface++;
			char ifname[IF_NAMESIZE + 1];
			iface += 6;
			size_t ilen = strcspn(iface, ",");
			if (ilen == 0 || ilen >= sizeof(ifname))
				return -EINVAL;
			memcpy(ifname, iface, ilen);
			ifname[ilen] = '\0';
			if (if_nametoindex(ifname) == 0)
				return -ENODEV;
		}
		int rc = rte_dev_probe(devargs);
		if (rc < 0)
			return rc;
		if (rte_eth_dev_get_port_by_name(name, &port) != 0)
			return -ENODEV;
	}
	*port_out = port;
	return 0;
}

// Mirrored in C# (DpdkNative.PortConfig); keep field order and sizes in sync.
struct utd_port_conf {
	uint16_t nb_rxq;
	uint16_t nb_txq;
	uint16_t nb_rxd;
	uint16_t nb_txd;
	uint16_t mtu;        // 0: leave the device's MTU
	uint8_t promiscuous;
	uint8_t offloads;    // UTD_OFF_* the caller wants when the device has them
};

#define UTD_OFF_RX_IPV4 1
#define UTD_OFF_RX_TCP 2
#define UTD_OFF_TX_IPV4 4
#define UTD_OFF_TX_TCP 8

// Mirrored in C# (DpdkNative.PortInfo).
struct utd_port_info {
	uint8_t mac[6];
	uint16_t mtu;
	uint8_t offloads;    // UTD_OFF_* actually enabled
	uint8_t rss;         // 1 when RSS spreads receive over the queues
	uint16_t max_rxq;
	uint16_t max_txq;
	uint16_t nb_rxd;     // descriptor counts after the driver adjusted them
	uint16_t nb_txd;
	int32_t socket;
	char driver[32];
};

UTD_EXPORT int utd_port_setup(uint16_t port, const struct utd_port_conf *conf, struct rte_mempool **rx_pools,
			      struct utd_port_info *info)
{
	struct rte_eth_dev_info dev;
	int rc = rte_eth_dev_info_get(port, &dev);
	if (rc != 0)
		return rc;
	if (conf->nb_rxq == 0 || conf->nb_txq == 0 || conf->nb_rxq > dev.max_rx_queues ||
	    conf->nb_txq > dev.max_tx_queues)
		return -EINVAL;

	struct rte_eth_conf ec;
	memset(&ec, 0, sizeof(ec));
	memset(info, 0, sizeof(*info));
	uint8_t off = 0;
	if ((conf->offloads & UTD_OFF_RX_IPV4) && (dev.rx_offload_capa & RTE_ETH_RX_OFFLOAD_IPV4_CKSUM)) {
		ec.rxmode.offloads |= RTE_ETH_RX_OFFLOAD_IPV4_CKSUM;
		off |= UTD_OFF_RX_IPV4;
	}
	if ((conf->offloads & UTD_OFF_RX_TCP) && (dev.rx_offload_capa & RTE_ETH_RX_OFFLOAD_TCP_CKSUM)) {
		ec.rxmode.offloads |= RTE_ETH_RX_OFFLOAD_TCP_CKSUM;
		off |= UTD_OFF_RX_TCP;
	}
	if ((conf->offloads & UTD_OFF_TX_IPV4) && (dev.tx_offload_capa & RTE_ETH_TX_OFFLOAD_IPV4_CKSUM)) {
		ec.txmode.offloads |= RTE_ETH_TX_OFFLOAD_IPV4_CKSUM;
		off |= UTD_OFF_TX_IPV4;
	}
	if ((conf->offloads & UTD_OFF_TX_TCP) && (dev.tx_offload_capa & RTE_ETH_TX_OFFLOAD_TCP_CKSUM)) {
		ec.txmode.offloads |= RTE_ETH_TX_OFFLOAD_TCP_CKSUM;
		off |= UTD_OFF_TX_TCP;
	}
	// Several receive queues are only useful if the NIC spreads flows over them. Hash on the IPv4/TCP 4-tuple
	// with the driver's default key; the stack instance per queue then sees whole connections.
	if (conf->nb_rxq > 1 && dev.flow_type_rss_offloads != 0) {
		ec.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
		ec.rx_adv_conf.rss_conf.rss_key = NULL;
		ec.rx_adv_conf.rss_conf.rss_hf =
			dev.flow_type_rss_offloads & (RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP);
		info->rss = ec.rx_adv_conf.rss_conf.rss_hf != 0;
		if (!info->rss)
			ec.rxmode.mq_mode = RTE_ETH_MQ_RX_NONE;
	}

	rc = rte_eth_dev_configure(port, conf->nb_rxq, conf->nb_txq, &ec);
	if (rc != 0)
		return rc;

	uint16_t nb_rxd = conf->nb_rxd, nb_txd = conf->nb_txd;
	rc = rte_eth_dev_adjust_nb_rx_tx_desc(port, &nb_rxd, &nb_txd);
	if (rc != 0)
		return rc;

	if (conf->mtu != 0) {
		rc = rte_eth_dev_set_mtu(port, conf->mtu);
		if (rc != 0 && rc != -ENOTSUP)
			return rc;
	}

	int socket = rte_eth_dev_socket_id(port);
	for (uint16_t q = 0; q < conf->nb_rxq; q++) {
		struct rte_eth_rxconf rxc = dev.default_rxconf;
		rxc.offloads = ec.rxmode.offloads;
		rc = rte_eth_rx_queue_setup(port, q, nb_rxd, socket, &rxc, rx_pools[q]);
		if (rc != 0)
			return rc;
	}
	for (uint16_t q = 0; q < conf->nb_txq; q++) {
		struct rte_eth_txconf txc = dev.default_txconf;
		txc.offloads = ec.txmode.offloads;
		rc = rte_eth_tx_queue_setup(port, q, nb_txd, socket, &txc);
		if (rc != 0)
			return rc;
	}

	rc = rte_eth_dev_start(port);
	if (rc != 0)
		return rc;
	if (conf->promiscuous) {
		rc = rte_eth_promiscuous_enable(port);
		if (rc != 0 && rc != -ENOTSUP) {
			rte_eth_dev_stop(port);
			return rc;
		}
	}

	struct rte_ether_addr mac;
	if (rte_eth_macaddr_get(port, &mac) == 0)
		memcpy(info->mac, mac.addr_bytes, 6);
	uint16_t mtu = 0;
	if (rte_eth_dev_get_mtu(port, &mtu) != 0)
		mtu = RTE_ETHER_MTU;
	info->mtu = mtu;
	info->offloads = off;
	info->max_rxq = dev.max_rx_queues;
	info->max_txq = dev.max_tx_queues;
	info->nb_rxd = nb_rxd;
	info->nb_txd = nb_txd;
	info->socket = socket;
	snprintf(info->driver, sizeof(info->driver), "%s", dev.driver_name ? dev.driver_name : "");
	return 0;
}

// Stops and closes the port; then detaches the underlying device so the same name can be probed again
// (a closed virtual device otherwise stays on the vdev bus and a second probe of the name fails).
UTD_EXPORT int utd_port_close(uint16_t port)
{
	char name[RTE_ETH_NAME_MAX_LEN];
	if (rte_eth_dev_get_name_by_port(port, name) != 0)
		return -ENODEV;
	struct rte_eth_dev_info dev;
	int is_vdev = rte_eth_dev_info_get(port, &dev) == 0 && dev.device != NULL &&
		      strcmp(rte_bus_name(rte_dev_bus(dev.device)), "vdev") == 0;
	int rc = rte_eth_dev_stop(port);
	// A virtual device's remove callback closes and releases its ethdev; removing it through the bus also
	// takes the name off the vdev bus. Other devices (PCI) are closed and stay probed.
	int rc2 = is_vdev ? rte_eal_hotplug_remove("vdev", name) : rte_eth_dev_close(port);
	if (rc == 0)
		rc = rc2;
	return rc;
}

// Mirrored in C# (DpdkNative.PortStats).
struct utd_port_stats {
	uint64_t ipackets, opackets, ibytes, obytes, imissed, ierrors, oerrors, rx_nombuf;
};

UTD_EXPORT int utd_port_stats(uint16_t port, struct utd_port_stats *out)
{
	struct rte_eth_stats s;
	int rc = rte_eth_stats_get(port, &s);
	if (rc != 0)
		return rc;
	out->ipackets = s.ipackets;
	out->opackets = s.opackets;
	out->ibytes = s.ibytes;
	out->obytes = s.obytes;
	out->imissed = s.imissed;
	out->ierrors = s.ierrors;
	out->oerrors = s.oerrors;
	out->rx_nombuf = s.rx_nombuf;
	return 0;
}

// 1 when the link is up, 0 when down, negative errno on failure; speed in Mbit/s.
UTD_EXPORT int utd_port_link(uint16_t port, uint32_t *speed)
{
	struct rte_eth_link link;
	int rc = rte_eth_link_get_nowait(port, &link);
	if (rc != 0)
		return rc;
	*speed = link.link_speed;
	return link.link_status ? 1 : 0;
}

UTD_EXPORT struct rte_mempool *utd_pool_create(const char *name, uint32_t n, uint32_t cache, uint16_t data_room,
					       int32_t socket)
{
	return rte_pktmbuf_pool_create(name, n, cache, 0, data_room, socket < 0 ? (int)rte_socket_id() : socket);
}

UTD_EXPORT void utd_pool_free(struct rte_mempool *mp) { rte_mempool_free(mp); }

// Free mbufs in the pool, including those parked in per-lcore caches.
UTD_EXPORT uint32_t utd_pool_avail(struct rte_mempool *mp) { return rte_mempool_avail_count(mp); }

UTD_EXPORT uint32_t utd_pool_in_use(struct rte_mempool *mp) { return rte_mempool_in_use_count(mp); }

// Free mbufs in the pool's shared ring only (not in any per-lcore cache).
// (rte_mempool_avail_count adds the caches to the ring's count and caps the sum at the pool's size; the caches are
// read without their owners' cooperation, so the difference is clamped at 0.)
UTD_EXPORT uint32_t utd_pool_shared_avail(struct rte_mempool *mp)
{
	uint32_t n = rte_mempool_avail_count(mp), cached = 0;
	if (mp->cache_size != 0)
		for (unsigned i = 0; i < RTE_MAX_LCORE; i++)
			cached += __atomic_load_n(&mp->local_cache[i].len, __ATOMIC_RELAXED);
	return n > cached ? n - cached : 0;
}

// ---- fast path: called through unmanaged function pointers with SuppressGCTransition, so these must never block
// or call back into managed code. One exception, once per thread: a thread's first receive or allocation takes an
// lcore id (utd_need_lcore: pthread_once, rte_thread_register's spinlock and a gettid system call), bounded and
// short, never a sleep.

static int utd_has_avx;
__attribute__((constructor)) static void utd_detect_avx(void)
{
	__builtin_cpu_init(); // constructors may run before libgcc has filled in the CPU model
	utd_has_avx = __builtin_cpu_supports("avx");
}

// The managed caller may leave the upper halves of the vector registers dirty (the JIT uses 256/512-bit moves);
// DPDK is built for SSE (-march=corei7), and legacy-SSE instructions running with dirty upper state pay a
// transition penalty on every instruction. vzeroupper clears that state.
static inline void utd_clean_upper(void)
{
	if (utd_has_avx)
		__asm__ volatile("vzeroupper" ::: "memory");
}

UTD_EXPORT uint16_t utd_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{
	utd_clean_upper();
	return rte_eth_rx_burst(port, queue, pkts, n);
}

UTD_EXPORT uint16_t utd_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{
	utd_clean_upper();
	return rte_eth_tx_burst(port, queue, pkts, n);
}

// Allocates up to n reset mbufs; returns how many. The bulk call is all-or-nothing, so when the pool is nearly
// empty fall back to single allocations to hand out what is left.
UTD_EXPORT uint32_t utd_alloc(struct rte_mempool *mp, struct rte_mbuf **pkts, uint32_t n)
{
	utd_clean_upper();
	if (rte_pktmbuf_alloc_bulk(mp, pkts, n) == 0)
		return n;
	uint32_t i = 0;
	for (; i < n; i++) {
		pkts[i] = rte_pktmbuf_alloc(mp);
		if (pkts[i] == NULL)
			break;
	}
	return i;
}

UTD_EXPORT void utd_free_bulk(struct rte_mbuf **pkts, uint32_t n)
{
	utd_clean_upper();
	rte_pktmbuf_free_bulk(pkts, n);
}

// The packet functions: one call per burst that also converts between mbufs and PacketBufs, in the same pass that
// touches each mbuf anyway. Measured against the same conversion written in C# over the mbuf mirror: the C loops
// are shorter (no spills), and the memif forwarding step came within noise of plain C (docs/benchmarks.md).

// Receives up to n frames into pkts; scratch holds n mbuf pointers. Offloads are left 0 (the caller reads the
// receive checksum flags when the port has them). *segments gets the OR of every nb_segs: > 1 means a
// multi-segment frame is among them.
UTD_EXPORT uint16_t utd_rx_packets(uint16_t port, uint16_t queue, struct utd_packet *pkts, uint16_t n,
				   struct rte_mbuf **scratch, uint32_t *segments)
{
	utd_clean_upper();
	utd_need_lcore();
	uint16_t r = rte_eth_rx_burst(port, queue, scratch, n);
	uint32_t segs = 0;
	for (uint16_t i = 0; i < r; i++) {
		struct rte_mbuf *m = scratch[i];
		fill_packet(&pkts[i], m, m->data_len);
		segs |= m->nb_segs;
	}
	*segments = segs;
	return r;
}

// Allocates up to n reset mbufs as empty packets (offset = headroom, length 0); returns how many.
UTD_EXPORT uint32_t utd_alloc_packets(struct rte_mempool *mp, struct utd_packet *pkts, uint32_t n,
				      struct rte_mbuf **scratch)
{
	utd_need_lcore();
	uint32_t got = utd_alloc(mp, scratch, n);
	for (uint32_t i = 0; i < got; i++) {
		struct rte_mbuf *m = scratch[i];
		fill_packet(&pkts[i], m, 0);
	}
	return got;
}

#define UTD_TX_NEEDS_OFFLOAD (-1000000)

// Writes each packet's offset and length back into its mbuf and transmits the burst; returns how many the driver
// took (the caller still owns the rest). Before sending anything it returns
//   -(i + 1) when packet i is not an mbuf packet (no handle or a small integer such as a NativePacketPool slot,
//   buffer != buf_addr, data past buf_len);
//   UTD_TX_NEEDS_OFFLOAD when prepared == 0 and a packet asks for checksum offload or carries transmit flags
//   from an earlier attempt: the caller sets or clears them (scratch is filled) and calls again with prepared = 1.
UTD_EXPORT int32_t utd_tx_packets(uint16_t port, uint16_t queue, const struct utd_packet *pkts, uint16_t n,
				  struct rte_mbuf **scratch, int32_t prepared)
{
	utd_clean_upper();
	uint64_t offload = 0;
	for (uint16_t i = 0; i < n; i++) {
		const struct utd_packet *p = &pkts[i];
		struct rte_mbuf *m = p->handle;
		int32_t off = p->offset, len = p->length;
		if ((uintptr_t)m < 4096 || p->buffer != m->buf_addr || len < 0 || off < 0 || (uint32_t)off + (uint32_t)len > m->buf_len)
			return -(int32_t)i - 1;
		m->data_off = (uint16_t)off;
		m->data_len = (uint16_t)len;
		m->pkt_len = (uint32_t)len;
		offload |= (p->offloads & (UTD_OFF_TX_IPV4 | UTD_OFF_TX_TCP)) | (m->ol_flags & RTE_MBUF_F_TX_OFFLOAD_MASK);
		scratch[i] = m;
	}
	if (offload != 0 && !prepared)
		return UTD_TX_NEEDS_OFFLOAD;
	return rte_eth_tx_burst(port, queue, scratch, n);
}

// Frees the mbufs of n packets in bulk (handles of 0 skipped) and clears each packet's handle and length.
UTD_EXPORT void utd_free_packets(struct utd_packet *pkts, uint32_t n, struct rte_mbuf **scratch)
{
	utd_clean_upper();
	uint32_t k = 0;
	for (uint32_t i = 0; i < n; i++) {
		struct rte_mbuf *m = pkts[i].handle;
		scratch[k] = m;
		k += m != NULL;
		pkts[i].handle = NULL;
		pkts[i].length = 0;
	}
	if (k > 0)
		rte_pktmbuf_free_bulk(scratch, k);
}

UTD_EXPORT void utd_free(struct rte_mbuf *m)
{
	utd_clean_upper();
	rte_pktmbuf_free(m);
}

// ---- memif receive interrupts: sleeping until the peer sends.
//
// memif's rings live in shared memory. Each ring has a flags word that its receiver owns; while it holds
// MEMIF_RING_FLAG_MASK_INT the sender never signals, otherwise the sender's transmit writes 1 to the ring's eventfd
// after moving the ring's producer index (and the receiver's rx burst reads the eventfd back). The DPDK 22.11 PMD
// masks its receive rings when the link comes up ("polling mode") and offers no rx_queue_intr_enable, so the glue
// does it: utd_memif_rx_arm clears the mask on the queue's ring and returns the ring's eventfd to sleep on;
// utd_memif_rx_disarm sets the mask again once frames flow, so a busy link makes no system call per burst.
//
// The PMD keeps the queue, the process-private region table and the ring offset in private structs
// (drivers/net/memif/rte_eth_memif.h, not installed), and struct rte_eth_dev / rte_eth_dev_data are in the
// uninstalled ethdev_driver.h. The offsets below are read from the 22.11 build (the PMD's own code:
// memif_init_queues, eth_memif_rx_zc, memif_connect, memif_free_regions) and checked on every arm against facts the glue
// knows independently (the queue's port id, a valid ring size and type, the region index within the table, the
// ring's cookie inside its region); any mismatch returns -ENOTSUP and the caller keeps polling on a schedule.
#define UTD_MQ_TYPE 0x10          // memif_ring_type_t: 0 client-to-server, 1 server-to-client
#define UTD_MQ_REGION 0x14        // uint16_t region index
#define UTD_MQ_IN_PORT 0x16       // uint16_t port id
#define UTD_MQ_RING_OFFSET 0x18   // uint32_t ring offset in the region
#define UTD_MQ_LAST_HEAD 0x1c     // uint16_t
#define UTD_MQ_LAST_TAIL 0x1e     // uint16_t
#define UTD_MQ_INTR 0x38          // struct rte_intr_handle *
#define UTD_MQ_LOG2 0x40          // uint8_t log2 of the ring size
#define UTD_DEV_SIZE 0x4080       // sizeof(struct rte_eth_dev)
#define UTD_DEV_DATA 0x30         // rte_eth_dev.data
#define UTD_DEV_PROC_PRIVATE 0x38 // rte_eth_dev.process_private: struct memif_region *regions[256]; uint16_t n
#define UTD_DATA_DEV_PRIVATE 0x60 // rte_eth_dev_data.dev_private: struct pmd_internals
#define UTD_PMD_FLAGS 0x8         // pmd_internals.flags (uint32_t)
#define UTD_PMD_CONNECTED 0x2     // ETH_MEMIF_FLAG_CONNECTED
#define UTD_MEMIF_MAX_REGIONS 256
#define UTD_MEMIF_COOKIE 0x3E31F20u
// memif protocol (shared memory, stable across versions): the ring header.
#define UTD_RING_FLAGS 4          // uint16_t, bit 0 MEMIF_RING_FLAG_MASK_INT
#define UTD_RING_HEAD 6           // uint16_t
#define UTD_RING_TAIL 64          // uint16_t, second cache line

extern uint8_t utd_eth_devices[] __asm__("rte_eth_devices");

// The receive ring of (port, queue) and its eventfd, or a negative errno: -ENOTCONN while the link is down (no
// ring mapped yet), -ENOTSUP when the PMD's structs are not laid out as expected.
static int utd_memif_rx_ring(uint16_t port, uint16_t queue, uint8_t **mq_out, volatile uint8_t **ring_out)
{
	if (port >= RTE_MAX_ETHPORTS || rte_eth_fp_ops[port].rxq.data == NULL)
		return -ENODEV;
	uint8_t *mq = rte_eth_fp_ops[port].rxq.data[queue];
	if (mq == NULL)
		return -ENODEV;
	uint8_t log2 = mq[UTD_MQ_LOG2];
	uint32_t type = *(uint32_t *)(mq + UTD_MQ_TYPE);
	uint16_t region = *(uint16_t *)(mq + UTD_MQ_REGION);
	if (*(uint16_t *)(mq + UTD_MQ_IN_PORT) != port || type > 1 || region >= UTD_MEMIF_MAX_REGIONS)
		return -ENOTSUP;
	if (log2 == 0)
		return -ENOTCONN; // set when the link comes up
	if (log2 > 15)
		return -ENOTSUP;
	uint8_t *dev = utd_eth_devices + (size_t)port * UTD_DEV_SIZE;
	uint8_t *data = *(uint8_t **)(dev + UTD_DEV_DATA);
	uint8_t *pmd = data != NULL ? *(uint8_t **)(data + UTD_DATA_DEV_PRIVATE) : NULL;
	uint8_t **regions = *(uint8_t ***)(dev + UTD_DEV_PROC_PRIVATE);
	if (pmd == NULL || regions == NULL)
		return -ENOTSUP;
	// The link goes down in the EAL interrupt thread: the PMD clears CONNECTED first, then unmaps the regions. The
	// PMD's own rx burst makes the same check before it touches the ring (and has the same small window).
	if (!(__atomic_load_n((uint32_t *)(pmd + UTD_PMD_FLAGS), __ATOMIC_ACQUIRE) & UTD_PMD_CONNECTED))
		return -ENOTCONN;
	uint8_t *r = regions[region];
	if (r == NULL)
		return -ENOTCONN;
	uint8_t *base = *(uint8_t **)r;
	uint64_t size = *(uint64_t *)(r + 8);
	uint32_t off = *(uint32_t *)(mq + UTD_MQ_RING_OFFSET);
	if (base == NULL)
		return -ENOTCONN;
	if ((uint64_t)off + 128 > size)
		return -ENOTSUP;
	volatile uint8_t *ring = base + off;
	if (*(volatile uint32_t *)ring != UTD_MEMIF_COOKIE)
		return -ENOTSUP;
	*mq_out = mq;
	*ring_out = ring;
	// rte_intr_fd_get is marked experimental in 22.11 (present since 21.11, unchanged since).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
	int fd = rte_intr_fd_get(*(struct rte_intr_handle **)(mq + UTD_MQ_INTR));
#pragma GCC diagnostic pop
	return fd < 0 ? -ENOTCONN : fd; // no eventfd (yet): treated like a link that is not up
}

// Asks the peer to signal the next frame on the receive queue and returns the eventfd to poll (POLLIN) before
// sleeping, or a negative errno (see utd_memif_rx_ring). Frames that arrived before the peer could see the
// request would never be signalled: when the ring already holds some, the glue signals the eventfd itself so the
// sleep ends at once. Not a fast-path call (once per sleep); safe beside a receiving thread.
UTD_EXPORT int utd_memif_rx_arm(uint16_t port, uint16_t queue)
{
	uint8_t *mq;
	volatile uint8_t *ring;
	int fd = utd_memif_rx_ring(port, queue, &mq, &ring);
	if (fd < 0)
		return fd;
	volatile uint16_t *flags = (volatile uint16_t *)(ring + UTD_RING_FLAGS);
	if (*flags & 1)
		*flags = (uint16_t)(*flags & ~1);
	// The store above must be visible before the indexes are read (the sender writes its index, then reads flags).
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	uint32_t type = *(uint32_t *)(mq + UTD_MQ_TYPE);
	int pending = type == 0 ? *(volatile uint16_t *)(ring + UTD_RING_HEAD) != *(volatile uint16_t *)(mq + UTD_MQ_LAST_HEAD)
				: *(volatile uint16_t *)(ring + UTD_RING_TAIL) != *(volatile uint16_t *)(mq + UTD_MQ_LAST_TAIL);
	if (pending) {
		uint64_t one = 1;
		ssize_t w = write(fd, &one, sizeof one);
		(void)w;
	}
	return fd;
}

// Masks the peer's signals again (frames flow: the receiver polls) and, with drain, empties the eventfd so the next
// sleep does not end at once. Returns 0 or a negative errno.
UTD_EXPORT int utd_memif_rx_disarm(uint16_t port, uint16_t queue, int32_t drain)
{
	uint8_t *mq;
	volatile uint8_t *ring;
	int fd = utd_memif_rx_ring(port, queue, &mq, &ring);
	if (fd < 0)
		return fd;
	volatile uint16_t *flags = (volatile uint16_t *)(ring + UTD_RING_FLAGS);
	if (!(*flags & 1))
		*flags = (uint16_t)(*flags | 1);
	if (drain) {
		uint64_t v;
		ssize_t r = read(fd, &v, sizeof v); // EFD_NONBLOCK: EAGAIN when nothing was signalled
		(void)r;
	}
	return 0;
}
