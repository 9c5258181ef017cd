// A `fp4serve serve` child process for transport tests: started on a free
// loopback port, its memory read from /proc, stopped by SIGTERM (then
// SIGKILL) when the test ends, so no test leaves a server behind.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <stdexcept>
#include <thread>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace fp4serve::test {


struct ServerOptions {
  std::vector<std::string> args;  // after `serve --fake-model --host 127.0.0.1 --port 0`
  // Address-space cap for the child (0: none), so a test of a memory bomb
  // cannot take the machine down when the defence is missing.
  uint64_t address_space_limit = 0;
};

class ServerProcess {
 public:
  explicit ServerProcess(ServerOptions options = {});
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  // From /proc/<pid>/status, in KiB: resident now and its peak.
  int64_t rss_kib() const { return status_kib("VmRSS:"); }
  int64_t peak_rss_kib() const { return status_kib("VmHWM:"); }

 private:
  int64_t status_kib(const char* field) const;
  pid_t pid_ = -1;
  int output_fd_ = -1;
  int port_ = 0;
};

// Runs `fp4serve ARGS...` to its end (killed after `timeout`): exit code
// (nullopt if killed) and its stdout and stderr together.
struct ProcessResult {
  std::optional<int> exit_code;
  std::string output;
};

namespace detail {


// fork + exec with stdout and stderr into a pipe; returns the read end.
inline pid_t spawn(const std::vector<std::string>& args, uint64_t address_space_limit, int* output_fd) {
  int fds[2];
  if (pipe(fds) != 0) throw std::runtime_error("pipe failed");
  pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    close(fds[0]);
    close(fds[1]);
    if (address_space_limit > 0) {
      rlimit limit{address_space_limit, address_space_limit};
      setrlimit(RLIMIT_AS, &limit);
    }
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(fds[1]);
  *output_fd = fds[0];
  return pid;
}

// Reads what is there within `timeout`; false at end of file.
inline bool read_some(int fd, std::string& out, std::chrono::milliseconds timeout) {
  pollfd p{fd, POLLIN, 0};
  if (poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return true;
  char buffer[4096];
  ssize_t n = read(fd, buffer, sizeof buffer);
  if (n <= 0) return false;
  out.append(buffer, static_cast<size_t>(n));
  return true;
}

inline std::optional<int> wait_for_exit(pid_t pid, std::chrono::milliseconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      return WIFEXITED(status) ? std::optional<int>(WEXITSTATUS(status)) : std::optional<int>(128 + WTERMSIG(status));
    }
    if (std::chrono::steady_clock::now() >= end) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace detail

inline std::string fp4serve_binary() {
  const char* bin = std::getenv("FP4SERVE_BIN");
  return bin ? bin : FP4SERVE_BINARY_DIR "/bin/fp4serve";
}

inline ServerProcess::ServerProcess(ServerOptions options) {
  std::vector<std::string> args = {fp4serve_binary(), "serve", "--fake-model", "--host", "127.0.0.1", "--port", "0"};
  args.insert(args.end(), options.args.begin(), options.args.end());
  int& output_fd = output_fd_;
  pid_ = detail::spawn(args, options.address_space_limit, &output_fd);
  std::string output;
  const std::regex serving(R"(serving .* on http://127\.0\.0\.1:(\d+))");
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  std::smatch match;
  while (!std::regex_search(output, match, serving)) {
    if (std::chrono::steady_clock::now() >= end || !detail::read_some(output_fd, output, std::chrono::milliseconds(100))) {
      close(output_fd);
      kill(pid_, SIGKILL);
      detail::wait_for_exit(pid_, std::chrono::seconds(5));
      throw std::runtime_error("fp4serve serve did not start: " + output);
    }
  }
  port_ = std::stoi(match[1]);
  // The server prints little after start: the pipe's buffer holds it, and an
  // open read end keeps its next print from failing.
  fcntl(output_fd, F_SETFD, FD_CLOEXEC);
}

inline ServerProcess::~ServerProcess() {
  if (output_fd_ >= 0) close(output_fd_);
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);
  if (!detail::wait_for_exit(pid_, std::chrono::seconds(10))) {
    kill(pid_, SIGKILL);
    detail::wait_for_exit(pid_, std::chrono::seconds(5));
  }
}


inline int64_t ServerProcess::status_kib(const char* field) const {
  std::ifstream status("/proc/" + std::to_string(pid_) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(field, 0) == 0) return std::stoll(line.substr(std::string(field).size()));
  }
  ADD_FAILURE() << field << " missing from /proc/" << pid_ << "/status";
  return -1;
}

inline ProcessResult run_fp4serve(const std::vector<std::string>& args, std::chrono::milliseconds timeout) {
  std::vector<std::string> argv = {fp4serve_binary()};
  argv.insert(argv.end(), args.begin(), args.end());
  int output_fd = -1;
  pid_t pid = detail::spawn(argv, 0, &output_fd);
  ProcessResult result;
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end && detail::read_some(output_fd, result.output, std::chrono::milliseconds(50))) {
  }
  close(output_fd);
  result.exit_code = detail::wait_for_exit(pid, std::chrono::duration_cast<std::chrono::milliseconds>(
                                            std::max<std::chrono::steady_clock::duration>(std::chrono::milliseconds(100), end - std::chrono::steady_clock::now())));
  if (!result.exit_code) {
    kill(pid, SIGKILL);
    detail::wait_for_exit(pid, std::chrono::seconds(5));
  }
  return result;
}

}  // namespace fp4serve::test
