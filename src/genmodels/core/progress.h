// Training progress on stderr: a redrawn bar on a terminal, plain periodic lines otherwise.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace gm {

class Progress {
 public:
  /// total = last step; start = first step of this run (resume starts mid-way); `label` prefixes
  /// lines.
  /// Nothing is drawn until `delay_s` seconds have passed (short jobs stay silent).
  Progress(int64_t total, int64_t start, std::string label, double line_interval_s = 10.0,
           double delay_s = 0.0);
  /// Reports that `step` is done; `extra` is shown after the rate (e.g. "loss 0.0312").
  void update(int64_t step, const std::string& extra);
  /// Reports `steps` more done (for work counted in several passes).
  void advance(int64_t steps, const std::string& extra) { update(step_ + steps, extra); }
  /// Ends the bar with a final line.
  void finish(const std::string& message);
  /// Steps per second since start.
  double rate() const;
  static bool stderr_is_terminal();
  /// Silences every bar of this process (`--quiet`).
  static void set_quiet(bool quiet);

 private:
  std::string line(int64_t step, const std::string& extra) const;
  int64_t total_, start_, step_ = 0;
  std::string label_;
  double interval_, delay_;
  bool tty_;
  bool quiet_;  // data-parallel ranks > 0 draw nothing
  std::chrono::steady_clock::time_point t0_, last_draw_;
};

/// "1h02m", "3m05s", "12s".
std::string format_duration(double seconds);

}  // namespace gm
