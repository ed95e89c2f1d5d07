#include "genmodels/core/progress.h"

#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "genmodels/core/runtime.h"

namespace gm {

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  long s = std::lround(seconds);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%ldh%02ldm", s / 3600, (s % 3600) / 60);
  else if (s >= 60)
    std::snprintf(buf, sizeof buf, "%ldm%02lds", s / 60, s % 60);
  else
    std::snprintf(buf, sizeof buf, "%lds", s);
  return buf;
}

namespace {
std::atomic<bool> g_quiet{false};
}  // namespace

bool Progress::stderr_is_terminal() { return ::isatty(STDERR_FILENO) == 1; }

void Progress::set_quiet(bool quiet) { g_quiet = quiet; }

Progress::Progress(int64_t total, int64_t start, std::string label, double line_interval_s,
                   double delay_s)
    : total_(total),
      start_(start),
      step_(start),
      label_(std::move(label)),
      interval_(line_interval_s),
      delay_(delay_s),
      tty_(stderr_is_terminal()),
      quiet_(!is_primary_process() || g_quiet),
      t0_(std::chrono::steady_clock::now()),
      last_draw_(t0_) {}

double Progress::rate() const {
  double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  return dt > 0 ? (step_ - start_) / dt : 0.0;
}

std::string Progress::line(int64_t step, const std::string& extra) const {
  const double r = rate();
  const double eta = r > 0 ? (total_ - step) / r : NAN;
  std::ostringstream out;
  out << label_ << " ";
  if (total_ <= 0) {
    char buf[48];
    std::snprintf(buf, sizeof buf, "%.2f it/s", r);
    out << extra << "  " << buf;
    return out.str();
  }
  if (tty_) {
    const int width = 24;
    const int filled = total_ > 0 ? static_cast<int>(width * step / total_) : 0;
    out << "[" << std::string(filled, '#') << std::string(width - filled, '.') << "] ";
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "%lld/%lld  %.2f it/s", static_cast<long long>(step),
                static_cast<long long>(total_), r);
  out << buf << "  " << extra << "  ETA " << format_duration(eta);
  return out.str();
}

void Progress::update(int64_t step, const std::string& extra) {
  step_ = step;
  if (quiet_) return;
  const auto now = std::chrono::steady_clock::now();
  const double since = std::chrono::duration<double>(now - last_draw_).count();
  if (delay_ > 0 && std::chrono::duration<double>(now - t0_).count() < delay_) return;
  if (tty_) {
    if (since < 0.2 && step != total_) return;
    std::fprintf(stderr, "\r\033[K%s", line(step, extra).c_str());
  } else {
    if (since < interval_ && step != total_) return;
    std::fprintf(stderr, "%s\n", line(step, extra).c_str());
  }
  std::fflush(stderr);
  last_draw_ = now;
}

void Progress::finish(const std::string& message) {
  if (quiet_) return;
  const bool drawn = last_draw_ != t0_;
  if (!drawn && delay_ > 0) return;  // a short job: it drew nothing, it says nothing
  if (tty_ && drawn) std::fprintf(stderr, "\n");
  if (!message.empty()) std::fprintf(stderr, "%s %s\n", label_.c_str(), message.c_str());
  std::fflush(stderr);
}

}  // namespace gm
