// `genmodels train ... --nproc N`: a local launcher in the manner of torchrun. It starts N copies
// of this program as data-parallel ranks with the environment torchrun would give them (RANK,
// LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT), forwards SIGINT/SIGTERM to
// them, and when one rank fails it names it and stops the others.
#pragma once
#include <string>
#include <vector>

namespace gm {

struct LaunchOptions {
  int nproc = 2;
  /// Seconds the other ranks get to notice a failed rank and exit on their own before the
  /// launcher sends SIGTERM (then SIGKILL after as long again).
  double grace_s = 20;
};

/// Runs `argv` (the program's own arguments without --nproc; argv[0] is ignored, this executable
/// is re-run) as `o.nproc` ranks and waits for them. Returns the exit status for the launcher: 0
/// when every rank succeeded, else the first failed rank's status (128 + signal when killed).
int launch_local(const std::vector<std::string>& argv, const LaunchOptions& o);

/// A TCP port on 127.0.0.1 that is free right now (MASTER_PORT when set).
int free_local_port();

}  // namespace gm
