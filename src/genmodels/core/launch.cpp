#include "genmodels/core/launch.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <thread>

#include "genmodels/core/error.h"

namespace gm {
namespace {

std::atomic<int> g_forward{0};
extern "C" void on_launcher_signal(int sig) { g_forward.store(sig); }

std::string describe(int status) {
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    return "was killed by signal " + std::to_string(sig) + " (" + strsignal(sig) + ")";
  }
  return "exited with status " + std::to_string(WEXITSTATUS(status));
}

int exit_code(int status) {
  return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

}  // namespace

int free_local_port() {
  if (const char* p = std::getenv("MASTER_PORT"); p && *p) return std::atoi(p);
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw Error("--nproc: cannot open a socket to find a free port; set MASTER_PORT");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  ::close(fd);
  if (!ok) throw Error("--nproc: no free TCP port on 127.0.0.1; set MASTER_PORT");
  return ntohs(addr.sin_port);
}

int launch_local(const std::vector<std::string>& argv, const LaunchOptions& o) {
  if (o.nproc < 1) throw Error("--nproc must be >= 1, got " + std::to_string(o.nproc));
  const int port = free_local_port();
  const char* addr_env = std::getenv("MASTER_ADDR");
  const std::string addr = addr_env && *addr_env ? addr_env : "127.0.0.1";
  std::vector<pid_t> pids(o.nproc, -1);
  std::vector<bool> alive(o.nproc, false);

  g_forward.store(0);
  struct sigaction sa {};
  sa.sa_handler = on_launcher_signal;
  sigemptyset(&sa.sa_mask);
  struct sigaction old_int {
  }, old_term{};
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);

  // Everything a child needs is built before fork: between fork and exec it only makes system
  // calls (the parent may have threads holding the allocator's locks).
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  static const char* const kRankVars[] = {
      "RANK=", "LOCAL_RANK=", "WORLD_SIZE=", "LOCAL_WORLD_SIZE=", "MASTER_ADDR=", "MASTER_PORT="};
  std::vector<std::string> inherited;
  for (char** e = environ; *e; ++e) {
    bool ours = false;
    for (const char* v : kRankVars) ours = ours || std::strncmp(*e, v, std::strlen(v)) == 0;
    if (!ours) inherited.emplace_back(*e);
  }
  const pid_t parent = ::getpid();
  for (int r = 0; r < o.nproc; ++r) {
    std::vector<std::string> env = inherited;
    env.push_back("RANK=" + std::to_string(r));
    env.push_back("LOCAL_RANK=" + std::to_string(r));
    env.push_back("WORLD_SIZE=" + std::to_string(o.nproc));
    env.push_back("LOCAL_WORLD_SIZE=" + std::to_string(o.nproc));
    env.push_back("MASTER_ADDR=" + addr);
    env.push_back("MASTER_PORT=" + std::to_string(port));
    std::vector<char*> envp;
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) throw Error("--nproc: fork failed: " + std::string(std::strerror(errno)));
    if (pid == 0) {
      // A rank: its own process group (the terminal's Ctrl-C reaches it once, through the
      // launcher), and SIGTERM when the launcher dies.
      ::setpgid(0, 0);
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != parent) ::_exit(1);
      ::signal(SIGINT, SIG_DFL);
      ::signal(SIGTERM, SIG_DFL);
      ::execve("/proc/self/exe", args.data(), envp.data());
      static const char msg[] = "genmodels: a rank cannot start /proc/self/exe\n";
      [[maybe_unused]] const auto n = ::write(STDERR_FILENO, msg, sizeof msg - 1);
      ::_exit(127);
    }
    pids[r] = pid;
    alive[r] = true;
  }

  using Clock = std::chrono::steady_clock;
  int result = 0, running = o.nproc;
  bool failing = false, termed = false, killed = false;
  Clock::time_point failed_at;
  auto signal_all = [&](int sig) {
    for (int r = 0; r < o.nproc; ++r)
      if (alive[r]) ::kill(pids[r], sig);
  };
  while (running > 0) {
    if (const int sig = g_forward.exchange(0)) signal_all(sig);
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid > 0) {
      int r = 0;
      while (r < o.nproc && pids[r] != pid) ++r;
      if (r == o.nproc) continue;
      alive[r] = false;
      --running;
      const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
      if (!ok && !failing) {
        std::cerr << "genmodels: rank " << r << " (pid " << pid << ") " << describe(status)
                  << (running > 0 ? "; stopping the other ranks" : "") << "\n";
        failing = true;
        failed_at = Clock::now();
        result = exit_code(status);
      }
      continue;
    }
    if (failing && running > 0) {
      const double waited = std::chrono::duration<double>(Clock::now() - failed_at).count();
      if (!termed && waited > o.grace_s) {
        signal_all(SIGTERM);
        termed = true;
      } else if (!killed && waited > 2 * o.grace_s) {
        signal_all(SIGKILL);
        killed = true;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  return result;
}

}  // namespace gm
