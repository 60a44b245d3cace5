// The shim's added cost on KERNEL fds (issue: "costs nothing measurable"). scripts/bench-shim.sh runs this binary
// without and with LD_PRELOAD in alternation and reports the difference per call.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <unistd.h>

static void BM_read_devzero(benchmark::State &state)
{
    int fd = open("/dev/zero", O_RDONLY);
    char c;
    for (auto _ : state) benchmark::DoNotOptimize(read(fd, &c, 1));
    close(fd);
}
BENCHMARK(BM_read_devzero);

static void BM_write_devnull(benchmark::State &state)
{
    int fd = open("/dev/null", O_WRONLY);
    char c = 0;
    for (auto _ : state) benchmark::DoNotOptimize(write(fd, &c, 1));
    close(fd);
}
BENCHMARK(BM_write_devnull);

static void BM_epoll_wait_empty(benchmark::State &state)
{
    int ep = epoll_create1(0);
    epoll_event ev[8];
    for (auto _ : state) benchmark::DoNotOptimize(epoll_wait(ep, ev, 8, 0));
    close(ep);
}
BENCHMARK(BM_epoll_wait_empty);

static void BM_poll_pipe(benchmark::State &state)
{
    int p[2];
    if (pipe(p)) state.SkipWithError("pipe");
    pollfd pf = { p[1], POLLOUT, 0 };
    for (auto _ : state) benchmark::DoNotOptimize(poll(&pf, 1, 0));
    close(p[0]);
    close(p[1]);
}
BENCHMARK(BM_poll_pipe);

BENCHMARK_MAIN();
