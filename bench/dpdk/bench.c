// DPDK packet-rate benchmark, C side. Two roles over one memif link between two processes:
//
//   peer  memif server: transmits 64-byte frames as fast as the link takes them and counts what comes back.
//   fwd   memif client (the device under test): rx burst -> swap the Ethernet addresses -> tx burst back.
//
// and one single-process role that needs no peer and no second CPU:
//
//   loop  one net_ring port whose transmit ring is its receive ring: alloc 32 mbufs -> write 64-byte frames ->
//         tx burst -> rx burst -> swap the Ethernet addresses -> free. Measures the per-packet cost of the
//         device path itself.
//
// Rates are printed per wall-clock second and per CPU second of the polling thread (clock_gettime
// CLOCK_THREAD_CPUTIME_ID): on a shared machine the second is the stable one.
// The managed device under test (bench/dpdk/Program.cs, `fwd`) runs the same loop through DpdkDevice, against the
// same C peer, so the two forwarding rates compare the managed path with plain C. See docs/benchmarks.md.
//
// Build: make -f bench/dpdk/bench.mk   (gcc -O2 ... $(pkg-config --cflags --libs libdpdk))
// Run:   dpdk-bench peer|fwd|loop [--socket /name.sock] [--seconds N] [--cpu N] [--no-huge] [--dev DEVARGS]

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_mbuf.h>

#define BURST 32

static volatile int stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

static double thread_cpu_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + ts.tv_nsec;
}

// Block timing (the stable number on a shared machine): the loop runs in blocks of BLOCK iterations; a block in which
// every iteration moved a full burst both ways is timed and its ns per packet kept. Preemption only ever makes a
// block slower, so the low percentiles of many short blocks measure the code, not the scheduler. The managed
// benchmark (Program.cs) does exactly the same.
#define BLOCK 8
#define MAX_SAMPLES (1 << 20)
static float samples[MAX_SAMPLES];
static int nsamples;

static int cmp_float(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;
	return x < y ? -1 : x > y;
}

static void print_blocks(const char *role)
{
	if (nsamples == 0) {
		printf("%s: blocks 0\n", role);
		return;
	}
	qsort(samples, nsamples, sizeof(samples[0]), cmp_float);
	printf("%s: blocks %d, ns per packet min %.3f p10 %.3f p50 %.3f\n", role, nsamples, samples[0],
	       samples[nsamples / 10], samples[nsamples / 2]);
}

static void die(const char *what, int rc)
{
	fprintf(stderr, "dpdk-bench: %s: %s\n", what, rte_strerror(rc < 0 ? -rc : rc));
	exit(1);
}

static void setup_port(uint16_t port, struct rte_mempool *mp)
{
	struct rte_eth_conf conf;
	memset(&conf, 0, sizeof(conf));
	int rc;
	if ((rc = rte_eth_dev_configure(port, 1, 1, &conf)) != 0) die("configure", rc);
	if ((rc = rte_eth_rx_queue_setup(port, 0, 1024, rte_socket_id(), NULL, mp)) != 0) die("rxq", rc);
	if ((rc = rte_eth_tx_queue_setup(port, 0, 1024, rte_socket_id(), NULL)) != 0) die("txq", rc);
	if ((rc = rte_eth_dev_start(port)) != 0) die("start", rc);
}

static int link_up(uint16_t port)
{
	struct rte_eth_link link;
	rte_eth_link_get_nowait(port, &link);
	return link.link_status;
}

// Median cost of one mono_ns() call, subtracted from every timed step (pair mode times each step on its own).
static double timer_overhead_ns(void)
{
	static float d[10001];
	for (int i = 0; i < 10001; i++) {
		uint64_t a = mono_ns(), b = mono_ns();
		d[i] = (float)(b - a);
	}
	qsort(d, 10001, sizeof(d[0]), cmp_float);
	return d[5000];
}

// The forwarder's step, a function of its own so callgrind can count its instructions
// (--toggle-collect=forward_step; the managed side's is Loops.ForwardStep).
static __attribute__((noinline)) void forward_step(uint16_t port, struct rte_mbuf **pkts, uint16_t *rx, uint16_t *tx)
{
	uint16_t r = rte_eth_rx_burst(port, 0, pkts, BURST);
	for (uint16_t i = 0; i < r; i++) {
		struct rte_ether_hdr *eh = rte_pktmbuf_mtod(pkts[i], struct rte_ether_hdr *);
		struct rte_ether_addr t = eh->dst_addr;
		eh->dst_addr = eh->src_addr;
		eh->src_addr = t;
	}
	uint16_t s = r ? rte_eth_tx_burst(port, 0, pkts, r) : 0;
	if (s < r) rte_pktmbuf_free_bulk(pkts + s, r - s);
	*rx = r;
	*tx = s;
}

// pair: both ends of one memif link in this process, driven by one thread, so no second CPU and no scheduler
// between the two sides. Each iteration: the peer (memif server, port 0) allocates 32 frames and transmits them;
// the forwarder (memif client, port 1: the device under test) receives, swaps the Ethernet addresses and transmits
// back; the peer receives and frees. Only the forwarder's step is timed (minus the timer's own cost). The managed
// `pair` (Program.cs) does the same with the forwarder step through DpdkDevice.
static int run_pair(int seconds)
{
	struct rte_mempool *mp0 = rte_pktmbuf_pool_create("peer", 8191, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE, rte_socket_id());
	struct rte_mempool *mp1 = rte_pktmbuf_pool_create("fwd", 8191, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE, rte_socket_id());
	if (mp0 == NULL || mp1 == NULL)
		die("pool", rte_errno);
	setup_port(0, mp0);
	setup_port(1, mp1);
	while (!(link_up(0) && link_up(1)) && !stop)
		usleep(10000);
	fprintf(stderr, "pair: link up\n");
	double overhead = timer_overhead_ns();
	uint8_t frame[64];
	memset(frame, 0, sizeof(frame));
	memset(frame, 0x02, 6);
	memset(frame + 6, 0x04, 6);
	frame[12] = 0x88;
	frame[13] = 0xb5;
	struct rte_mbuf *gen[BURST], *pkts[BURST];
	uint64_t start = mono_ns(), fwd_ns = 0, count = 0;
	int block_iter = 0, block_full = 1;
	while (!stop) {
		if (rte_pktmbuf_alloc_bulk(mp0, gen, BURST) == 0) {
			for (int i = 0; i < BURST; i++) {
				memcpy(rte_pktmbuf_mtod(gen[i], void *), frame, sizeof(frame));
				gen[i]->data_len = gen[i]->pkt_len = sizeof(frame);
			}
			uint16_t s = rte_eth_tx_burst(0, 0, gen, BURST);
			if (s < BURST) rte_pktmbuf_free_bulk(gen + s, BURST - s);
		}

		uint64_t t0 = mono_ns();
		uint16_t r, s;
		forward_step(1, pkts, &r, &s);
		uint64_t t1 = mono_ns();
		fwd_ns += t1 - t0;
		count += s;
		if (r < BURST || s < r) block_full = 0;

		uint16_t back = rte_eth_rx_burst(0, 0, gen, BURST);
		rte_pktmbuf_free_bulk(gen, back);

		if (++block_iter == BLOCK) {
			if (block_full && nsamples < MAX_SAMPLES)
				samples[nsamples++] = (float)((fwd_ns - BLOCK * overhead) / (BLOCK * BURST));
			fwd_ns = 0;
			block_iter = 0;
			block_full = 1;
			if (t1 - start >= (uint64_t)seconds * 1000000000u)
				break;
		}
	}
	printf("pair: %.2f Mpps forwarded (wall clock, peer included), timer overhead %.1f ns, %llu packets forwarded\n",
	       count / ((mono_ns() - start) / 1e9) / 1e6, overhead, (unsigned long long)count);
	print_blocks("pair");
	// Close the client first and let the server see the link go down (memif close race, docs/dpdk.md).
	rte_eth_dev_stop(1);
	rte_eth_dev_close(1);
	for (int i = 0; i < 200 && link_up(0); i++)
		usleep(10000);
	usleep(20000);
	rte_eth_dev_stop(0);
	rte_eth_dev_close(0);
	rte_eal_cleanup();
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2 || (strcmp(argv[1], "peer") != 0 && strcmp(argv[1], "fwd") != 0 && strcmp(argv[1], "loop") != 0 &&
			 strcmp(argv[1], "pair") != 0)) {
		fprintf(stderr, "usage: %s peer|fwd|loop|pair [--socket /name.sock] [--seconds N] [--cpu N] [--no-huge] [--dev DEVARGS]\n", argv[0]);
		return 2;
	}
	int peer = strcmp(argv[1], "peer") == 0;
	int loop = strcmp(argv[1], "loop") == 0;
	int pair = strcmp(argv[1], "pair") == 0;
	const char *sock = "/usertcp-bench.sock";
	const char *dev = NULL; // --dev overrides the device (e.g. net_af_packet0,iface=X for either role)
	int seconds = 10, cpu = peer ? 1 : 0, nohuge = 0;
	static const struct option opts[] = {
		{"socket", required_argument, 0, 's'}, {"seconds", required_argument, 0, 't'},
		{"cpu", required_argument, 0, 'c'}, {"no-huge", no_argument, 0, 'n'}, {"dev", required_argument, 0, 'd'},
		{0, 0, 0, 0}};
	int o;
	optind = 2;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 's': sock = optarg; break;
		case 't': seconds = atoi(optarg); break;
		case 'c': cpu = atoi(optarg); break;
		case 'n': nohuge = 1; break;
		case 'd': dev = optarg; break;
		default: return 2;
		}
	}

	// The same EAL arguments DpdkEal builds for the managed side.
	char lcores[64], prefix[64], vdev[256];
	snprintf(lcores, sizeof(lcores), "--lcores=0@%d", cpu);
	snprintf(prefix, sizeof(prefix), "--file-prefix=bench%d", (int)getpid());
	char vdev2[256] = "";
	if (pair) {
		snprintf(vdev, sizeof(vdev), "--vdev=net_memif0,role=server,socket=%s,mac=02:00:c6:12:01:01", sock);
		snprintf(vdev2, sizeof(vdev2), "--vdev=net_memif1,role=client,socket=%s,mac=02:00:c6:12:01:02", sock);
	} else if (dev)
		snprintf(vdev, sizeof(vdev), "--vdev=%s", dev);
	else if (loop)
		snprintf(vdev, sizeof(vdev), "--vdev=net_ring0");
	else
		snprintf(vdev, sizeof(vdev), "--vdev=net_memif0,role=%s,socket=%s", peer ? "server" : "client", sock);
	char *eal[16];
	int n = 0;
	eal[n++] = "dpdk-bench";
	eal[n++] = lcores;
	eal[n++] = "--no-telemetry";
	eal[n++] = prefix;
	eal[n++] = "-m";
	eal[n++] = "256";
	eal[n++] = "--log-level=*:warning";
	if (nohuge) {
		eal[n++] = "--no-huge";
		eal[n++] = "--no-shconf";
	} else {
		eal[n++] = "--in-memory";
		eal[n++] = "--single-file-segments";
	}
	eal[n++] = "--no-pci";
	eal[n++] = vdev;
	if (vdev2[0])
		eal[n++] = vdev2;
	eal[n] = NULL;
	if (rte_eal_init(n, eal) < 0)
		die("rte_eal_init", rte_errno);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);

	if (pair)
		return run_pair(seconds);

	struct rte_mempool *mp = rte_pktmbuf_pool_create("bench", 8191, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE, rte_socket_id());
	if (mp == NULL)
		die("pool", rte_errno);
	uint16_t port = 0;
	setup_port(port, mp);
	while (!link_up(port) && !stop)
		usleep(10000);
	fprintf(stderr, "%s: link up\n", argv[1]);

	uint8_t frame[64];
	memset(frame, 0, sizeof(frame));
	memset(frame, 0x02, 6);
	memset(frame + 6, 0x04, 6);
	frame[12] = 0x88;
	frame[13] = 0xb5;

	struct rte_mbuf *pkts[BURST];
	uint64_t hz = rte_get_tsc_hz(), start = rte_get_tsc_cycles(), last = start;
	uint64_t rx = 0, tx = 0, rx_last = 0, tx_last = 0;
	double sum = 0, cpu_sum = 0, cpu_last = thread_cpu_seconds();
	int intervals = 0;
	uint64_t iter = 0;
	uint64_t block_start = mono_ns();
	int block_iter = 0, block_full = 1;
	while (!stop) {
		// Stop polling as soon as the peer is gone: memif 22.11 can crash when the interrupt thread tears a
		// disconnected interface down while this thread is still in rx/tx on it.
		if (!loop && (++iter & 1023) == 0 && !link_up(port))
			break;
		if (loop) {
			if (rte_pktmbuf_alloc_bulk(mp, pkts, BURST) == 0) {
				for (int i = 0; i < BURST; i++) {
					memcpy(rte_pktmbuf_mtod(pkts[i], void *), frame, sizeof(frame));
					pkts[i]->data_len = pkts[i]->pkt_len = sizeof(frame);
				}
				uint16_t s = rte_eth_tx_burst(port, 0, pkts, BURST);
				tx += s;
				if (s < BURST) { rte_pktmbuf_free_bulk(pkts + s, BURST - s); block_full = 0; }
			} else {
				block_full = 0;
			}
			uint16_t r = rte_eth_rx_burst(port, 0, pkts, BURST);
			if (r < BURST) block_full = 0;
			for (uint16_t i = 0; i < r; i++) {
				struct rte_ether_hdr *eh = rte_pktmbuf_mtod(pkts[i], struct rte_ether_hdr *);
				struct rte_ether_addr t = eh->dst_addr;
				eh->dst_addr = eh->src_addr;
				eh->src_addr = t;
			}
			rx += r;
			rte_pktmbuf_free_bulk(pkts, r);
		} else if (peer) {
			if (rte_pktmbuf_alloc_bulk(mp, pkts, BURST) == 0) {
				for (int i = 0; i < BURST; i++) {
					memcpy(rte_pktmbuf_mtod(pkts[i], void *), frame, sizeof(frame));
					pkts[i]->data_len = pkts[i]->pkt_len = sizeof(frame);
				}
				uint16_t s = rte_eth_tx_burst(port, 0, pkts, BURST);
				tx += s;
				if (s < BURST) rte_pktmbuf_free_bulk(pkts + s, BURST - s);
			}
			uint16_t r = rte_eth_rx_burst(port, 0, pkts, BURST);
			rx += r;
			rte_pktmbuf_free_bulk(pkts, r);
		} else {
			uint16_t r = rte_eth_rx_burst(port, 0, pkts, BURST);
			for (uint16_t i = 0; i < r; i++) {
				struct rte_ether_hdr *eh = rte_pktmbuf_mtod(pkts[i], struct rte_ether_hdr *);
				struct rte_ether_addr t = eh->dst_addr;
				eh->dst_addr = eh->src_addr;
				eh->src_addr = t;
			}
			rx += r;
			uint16_t s = r ? rte_eth_tx_burst(port, 0, pkts, r) : 0;
			tx += s;
			if (s < r) rte_pktmbuf_free_bulk(pkts + s, r - s);
			if (r < BURST || s < r) block_full = 0;
		}
		if (!peer && ++block_iter == BLOCK) {
			uint64_t t = mono_ns();
			if (block_full && nsamples < MAX_SAMPLES)
				samples[nsamples++] = (float)(t - block_start) / (BLOCK * BURST);
			block_start = t;
			block_iter = 0;
			block_full = 1;
		}
		uint64_t now = rte_get_tsc_cycles();
		if (now - last >= hz) {
			double secs = (double)(now - last) / hz;
			double cpu_now = thread_cpu_seconds();
			uint64_t count = peer || loop ? rx - rx_last : tx - tx_last;
			double mpps = count / secs / 1e6, cpu_mpps = count / (cpu_now - cpu_last) / 1e6;
			printf("%s: %.2f Mpps, %.2f Mpps per CPU second (%s)\n", argv[1], mpps, cpu_mpps,
			       peer ? "returned" : loop ? "looped" : "forwarded");
			fflush(stdout);
			if (intervals++ > 0) { sum += mpps; cpu_sum += cpu_mpps; } // the first second includes warm-up
			cpu_last = cpu_now;
			rx_last = rx;
			tx_last = tx;
			last = now;
			if (now - start >= (uint64_t)seconds * hz) break;
		}
	}
	if (intervals > 1)
		printf("%s: average %.2f Mpps, %.2f Mpps per CPU second, over %d s\n", argv[1], sum / (intervals - 1),
		       cpu_sum / (intervals - 1), intervals - 1);
	if (!peer)
		print_blocks(argv[1]);
	rte_eth_dev_stop(port);
	rte_eth_dev_close(port);
	rte_eal_cleanup();
	return 0;
}
