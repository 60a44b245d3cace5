// Helpers shared by the C test suites.
#pragma once
#include <string>
#include <vector>

namespace ut {

// True when this process runs under LD_PRELOAD=libusertcp.so with offload configured (USERTCP_IP set): the socket
// parity suite then exercises user-stack sockets; otherwise it exercises the kernel (the oracle).
bool UnderUsertcp();

// Threads in this process (from /proc/self/status).
int ThreadCount();

// 0 not started, 1 started, 2 forked copy; -1 when libusertcp.so is not loaded.
int RuntimeState();

struct RunResult {
    int status = -1;        // waitpid status
    std::string out, err;   // captured stdout / stderr
    bool Exited(int code) const;
    bool Signaled(int sig) const;
};

// Runs argv with extra environment entries ("K=V"; "K=" removes K), capturing output. Kills it after timeout_s.
RunResult Run(const std::vector<std::string> &argv, const std::vector<std::string> &env, int timeout_s = 30);

// Absolute paths of the build outputs.
std::string BuildDir();
std::string Library();   // build/libusertcp.so
std::string Prog(const std::string &name); // build/tests/progs/<name>

} // namespace ut
