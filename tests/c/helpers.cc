#include "helpers.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

namespace ut {

bool UnderUsertcp()
{
    const char *pre = getenv("LD_PRELOAD");
    const char *ip = getenv("USERTCP_IP");
    return pre && strstr(pre, "libusertcp") && ip && *ip;
}

int ThreadCount()
{
    FILE *f = fopen("/proc/self/status", "re");
    if (!f) return -1;
    char line[256];
    int n = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "Threads:", 8)) n = atoi(line + 8);
    fclose(f);
    return n;
}

int RuntimeState()
{
    auto fn = reinterpret_cast<int (*)()>(dlsym(RTLD_DEFAULT, "usertcp_runtime_state"));
    return fn ? fn() : -1;
}

bool RunResult::Exited(int code) const { return WIFEXITED(status) && WEXITSTATUS(status) == code; }
bool RunResult::Signaled(int sig) const { return WIFSIGNALED(status) && WTERMSIG(status) == sig; }

static void drain(int fd, std::string &into)
{
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) into.append(buf, (size_t)n);
}

RunResult Run(const std::vector<std::string> &argv, const std::vector<std::string> &env, int timeout_s)
{
    RunResult r;
    int out[2], err[2];
    if (pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC)) return r;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(out[1], 1);
        dup2(err[1], 2);
        // Children run with a clean view of usertcp: only what the test asks for.
        unsetenv("LD_PRELOAD");
        for (char **e = environ; *e;) {
            if (!strncmp(*e, "USERTCP_", 8)) {
                std::string k(*e, strchr(*e, '=') - *e);
                unsetenv(k.c_str());
            } else {
                e++;
            }
        }
        for (const auto &kv : env) {
            auto eq = kv.find('=');
            std::string k = kv.substr(0, eq), v = kv.substr(eq + 1);
            if (v.empty()) unsetenv(k.c_str());
            else setenv(k.c_str(), v.c_str(), 1);
        }
        std::vector<char *> args;
        for (const auto &a : argv) args.push_back(const_cast<char *>(a.c_str()));
        args.push_back(nullptr);
        execvp(args[0], args.data());
        _exit(127);
    }
    close(out[1]);
    close(err[1]);
    fcntl(out[0], F_SETFL, O_NONBLOCK);
    fcntl(err[0], F_SETFL, O_NONBLOCK);
    time_t deadline = time(nullptr) + timeout_s;
    for (;;) {
        struct pollfd p[2] = { { out[0], POLLIN, 0 }, { err[0], POLLIN, 0 } };
        poll(p, 2, 100);
        drain(out[0], r.out);
        drain(err[0], r.err);
        int st;
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid) {
            r.status = st;
            drain(out[0], r.out);
            drain(err[0], r.err);
            break;
        }
        if (time(nullptr) > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &r.status, 0);
            r.err += "\n[killed: timeout]";
            break;
        }
    }
    close(out[0]);
    close(err[0]);
    return r;
}

std::string BuildDir()
{
    const char *b = getenv("UT_TEST_BUILD");
    return b ? b : "build";
}

std::string Library() { return BuildDir() + "/libusertcp.so"; }
std::string Prog(const std::string &name) { return BuildDir() + "/tests/progs/" + name; }

} // namespace ut
