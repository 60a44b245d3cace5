// The shim seen from outside: it is really bound, it defers the runtime, it handles fork, fortified programs and
// bad configuration, and it leaves unmodified programs alone. Each test runs programs with and without LD_PRELOAD.
#include "helpers.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <string>
#include <unistd.h>

using ut::Library;
using ut::Prog;


namespace {

const std::string kOffload = "USERTCP_IP=198.18.0.2/24";
std::string Preload() { return "LD_PRELOAD=" + Library(); }

bool Contains(const std::string &hay, const std::string &needle) { return hay.find(needle) != std::string::npos; }

} // namespace

TEST(Binding, ProgramCallsReachTheShim)
{
    auto r = ut::Run({ Prog("probe_calls") }, { Preload(), "LD_DEBUG=bindings" });
    ASSERT_TRUE(r.Exited(0)) << r.out << r.err.substr(0, 2000);
    for (const char *sym : { "read", "socket", "epoll_wait", "epoll_create1", "write" }) {
        std::string line = "binding file " + Prog("probe_calls") + " [0] to " + Library() + " [0]: normal symbol `" +
                           sym + "'";
        EXPECT_TRUE(Contains(r.err, line)) << "not bound to usertcp: " << sym;
    }
}

TEST(Binding, ExportsAreUnversioned)
{
    auto r = ut::Run({ "sh", "-c", "nm -D --defined-only " + Library() }, {});
    ASSERT_TRUE(r.Exited(0));
    for (const char *sym : { " read\n", " socket\n", " epoll_wait\n", " accept4\n", " __read_chk\n", " fcntl64\n",
                             " sendfile64\n", " __recv\n", " vfork\n" })
        EXPECT_TRUE(Contains(r.out, sym)) << "missing or versioned export:" << sym;
    EXPECT_FALSE(Contains(r.out, "@@")) << "versioned exports would be bypassed by glibc";
}

TEST(Runtime, ConfigurationCallsDoNotStartItButTheDataPathDoes)
{
    auto r = ut::Run({ Prog("probe_deferred") }, { Preload(), kOffload });
    ASSERT_TRUE(r.Exited(0)) << r.out << r.err;
    // Before: recorded in C, one thread, runtime not started. After accept4: started, with its own threads.
    EXPECT_TRUE(Contains(r.out, "state=0 threads=1\n")) << r.out;
    EXPECT_TRUE(Contains(r.out, "accepted=-1 errno=11")) << r.out;
    EXPECT_TRUE(Contains(r.out, "state=1 threads=")) << r.out;
    EXPECT_FALSE(Contains(r.out, "state=1 threads=1\n")) << r.out;
    // The port assigned before the start is the one managed code reports after it.
    auto port = [&](const char *prefix) {
        auto at = r.out.find(prefix);
        auto p = r.out.find("port=", at);
        return atoi(r.out.c_str() + p + 5);
    };
    EXPECT_NE(port("configured"), 0);
    EXPECT_EQ(port("configured"), port("accepted"));
    EXPECT_TRUE(Contains(r.out, "epoll=0")) << "a listener with no connection is not readable";
}

TEST(Runtime, ApplicationKeepsItsFdNumbers)
{
    // Kernel first: the same facts hold there (no placeholder exists, so those fields read 0 there).
    auto k = ut::Run({ Prog("probe_fdnumbers") }, {});
    ASSERT_TRUE(k.Exited(0)) << k.out << k.err;
    EXPECT_TRUE(Contains(k.out, "socket_is_lowest=1 next_is_lowest=1 ")) << k.out;
    auto r = ut::Run({ Prog("probe_fdnumbers") }, { Preload(), kOffload });
    ASSERT_TRUE(r.Exited(0)) << r.out << r.err;
    EXPECT_EQ(r.out, "state=1 socket_is_lowest=1 next_is_lowest=1 placeholder_high=1 close_placeholder=-1/EBADF "
                     "dup2_onto_placeholder=1 socket_after=1 placeholder_moved=1\n");
}

TEST(Runtime, KernelOnlyProgramNeverStartsIt)
{
    auto r = ut::Run({ Prog("probe_calls") }, { Preload(), kOffload });
    ASSERT_TRUE(r.Exited(0)) << r.err;
    EXPECT_EQ(r.out, "ok threads=1\n");
}

TEST(Fork, BeforeStartEachProcessStartsItsOwn)
{
    auto r = ut::Run({ Prog("probe_fork"), "before" }, { Preload(), kOffload });
    ASSERT_TRUE(r.Exited(0)) << r.out << r.err;
    EXPECT_TRUE(Contains(r.out, "child accept=-1 errno=11 state=1")) << r.out;
    EXPECT_TRUE(Contains(r.out, "parent accept=-1 errno=11 state=1 pipe=1")) << r.out;
    EXPECT_TRUE(Contains(r.out, "child exit=0")) << r.out;
}

TEST(Fork, AfterStartTheChildFailsLoudlyNeverHangs)
{
    auto r = ut::Run({ Prog("probe_fork"), "after" }, { Preload(), kOffload }, 20);
    ASSERT_TRUE(r.Exited(0)) << r.out << r.err;
    EXPECT_TRUE(Contains(r.out, "child signal=6")) << r.out << r.err;
    EXPECT_TRUE(Contains(r.err, "a forked copy cannot run the user-level stack")) << r.err;
    EXPECT_TRUE(Contains(r.out, "pipe=1")) << "kernel fds keep working in the child";
    EXPECT_TRUE(Contains(r.out, "parent accept=-1 errno=11 state=1")) << r.out;
}

TEST(Fortify, CheckedVariantsWorkOnKernelFdsAndReachTheShim)
{
    auto nm = ut::Run({ "sh", "-c", "nm -D " + Prog("probe_fortify") }, {});
    ASSERT_TRUE(Contains(nm.out, "__read_chk")) << "the probe was not built fortified";
    ASSERT_TRUE(Contains(nm.out, "__poll_chk"));
    auto kernel = ut::Run({ Prog("probe_fortify") }, {});
    ASSERT_TRUE(kernel.Exited(0)) << kernel.err;
    auto user = ut::Run({ Prog("probe_fortify") }, { Preload(), kOffload });
    ASSERT_TRUE(user.Exited(0)) << user.err;
    // Same answers as the kernel for an unconnected socket, and the runtime started: the calls reached usertcp.
    std::string expect = "read=-1/107 recv=-1/107 recvfrom=-1/107 poll=1/14";
    EXPECT_TRUE(Contains(kernel.out, expect)) << kernel.out;
    EXPECT_TRUE(Contains(user.out, expect + " state=1")) << user.out;
}

TEST(Config, InvalidValuesAreReportedAndRefused)
{
    auto r = ut::Run({ "/bin/true" }, { Preload(), "USERTCP_FD_BASE=abc" });
    EXPECT_TRUE(r.Exited(111));
    EXPECT_TRUE(Contains(r.err, "USERTCP_FD_BASE='abc' is invalid")) << r.err;
    r = ut::Run({ "/bin/true" }, { Preload(), "USERTCP_IP=300.1.1.1" });
    EXPECT_TRUE(r.Exited(111));
    EXPECT_TRUE(Contains(r.err, "USERTCP_IP")) << r.err;
    r = ut::Run({ "/bin/true" }, { Preload(), "USERTCP_NO_SUCH_KEY=1" });
    EXPECT_TRUE(r.Exited(111));
    EXPECT_TRUE(Contains(r.err, "unknown key 'NO_SUCH_KEY'")) << r.err;
}

TEST(Config, FileIsReadAndEnvironmentWins)
{
    char path[] = "/tmp/usertcp-cfg-XXXXXX";
    int fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    std::string text = "# usertcp test\nIP = 198.18.0.2/24\nUSERTCP_FD_BASE=2048\n";
    ASSERT_EQ(write(fd, text.data(), text.size()), (ssize_t)text.size());
    close(fd);
    auto r = ut::Run({ Prog("probe_deferred") }, { Preload(), std::string("USERTCP_CONFIG=") + path });
    EXPECT_TRUE(Contains(r.out, "configured fd=2048 ")) << r.out << r.err;
    r = ut::Run({ Prog("probe_deferred") }, { Preload(), std::string("USERTCP_CONFIG=") + path, "USERTCP_FD_BASE=3000" });
    EXPECT_TRUE(Contains(r.out, "configured fd=3000 ")) << r.out << r.err;
    unlink(path);
}

TEST(Children, KernelPolicyStripsThePreloadFromExecdChildren)
{
    auto inherit = ut::Run({ "sh", "-c", "echo \"$LD_PRELOAD|$USERTCP_IP\"" }, { Preload(), kOffload });
    EXPECT_TRUE(Contains(inherit.out, "libusertcp.so|198.18.0.2/24")) << inherit.out;
    auto kernel = ut::Run({ "sh", "-c", "echo \"$LD_PRELOAD|$USERTCP_IP\"" },
                      { Preload(), kOffload, "USERTCP_CHILDREN=kernel" });
    EXPECT_EQ(kernel.out, "|\n");
}

TEST(RealPrograms, Python3BehavesTheSame)
{
    std::string script = "import socket,os,select,subprocess\n"
                         "a,b=socket.socketpair(); a.sendall(b'x'*100000); a.close()\n"
                         "n=0\n"
                         "while True:\n"
                         "  d=b.recv(65536)\n"
                         "  if not d: break\n"
                         "  n+=len(d)\n"
                         "s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen(); c=socket.create_connection(s.getsockname())\n"
                         "x,_=s.accept(); c.sendall(b'hello'); print(n, x.recv(5), select.select([x],[],[],0)[0]==[],"
                         " subprocess.run(['echo','child'],capture_output=True).stdout)\n";
    auto plain = ut::Run({ "python3", "-c", script }, {});
    auto pre = ut::Run({ "python3", "-c", script }, { Preload() });
    ASSERT_TRUE(plain.Exited(0)) << plain.err;
    ASSERT_TRUE(pre.Exited(0)) << pre.err;
    EXPECT_EQ(plain.out, pre.out);
    EXPECT_EQ(pre.out, "100000 b'hello' True b'child\\n'\n");
}

TEST(RealPrograms, NginxAndCurlBehaveTheSameWithoutOffload)
{
    if (access("/usr/sbin/nginx", X_OK) != 0) GTEST_FAIL() << "nginx is not installed (run make setup)";
    auto r = ut::Run({ "bash", "tests/c/nginx_same.sh", Library() }, {}, 120);
    EXPECT_TRUE(r.Exited(0)) << r.out << r.err;
    EXPECT_TRUE(Contains(r.out, "identical")) << r.out;
}

TEST(Children, UserSocketsLeftOpenAcrossExecAreReportedLoudly)
{
    auto r = ut::Run({ Prog("probe_exec") }, { Preload(), kOffload });
    ASSERT_TRUE(r.Exited(0)) << r.out << r.err;
    EXPECT_TRUE(Contains(r.err, "was a user-stack socket of the program that exec'd this one")) << r.err;
    EXPECT_TRUE(Contains(r.out, "child read=-1")) << r.out;
    // Without offload nothing is a user-stack socket, and nothing is said.
    auto plain = ut::Run({ Prog("probe_exec") }, { Preload() });
    EXPECT_FALSE(Contains(plain.err, "user-stack socket")) << plain.err;
}
