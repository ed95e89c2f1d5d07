// Data-parallel training on PyTorch's c10d engine (Gloo on CPU), the way torchrun starts it:
// every process is one rank; rank 0 hosts the rendezvous store (c10d TCPStore at
// MASTER_ADDR:MASTER_PORT) and the others connect to it. LibTorch's C++ frontend has no
// DistributedDataParallel module, so this file provides what a data-parallel step needs on top of
// the process group: weight broadcast, bucketed gradient all-reduce overlapped with the backward
// pass through gradient hooks, small collectives for the loop's agreements (loss, stop, clock),
// and a failure report that names the rank that died or hung.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

namespace gm::train::dist {

/// The launcher's environment: RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR,
/// MASTER_PORT (the variables torchrun sets).
struct Env {
  int rank = 0, world_size = 1, local_rank = 0, local_world_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  /// torchrun's static rendezvous hosts the store in its agent (TORCHELASTIC_USE_AGENT_STORE):
  /// every rank, rank 0 included, connects as a client under the restart's key prefix.
  bool agent_store = false;
  int restart_count = 0;  ///< TORCHELASTIC_RESTART_COUNT
  /// Reads the variables; world_size 1 when WORLD_SIZE is unset. Throws gm::Error naming the
  /// variable when one is malformed or RANK is outside [0, WORLD_SIZE).
  static Env from_environment();
};

/// One process group over all ranks. Every collective is blocking unless named _async, uses the
/// group's timeout, and on failure throws gm::Error naming the ranks that stopped answering.
class Group {
 public:
  /// Rendezvous and Gloo set-up; waits up to `timeout_s` for the other ranks to arrive.
  static std::unique_ptr<Group> join(const Env& env, double timeout_s);
  ~Group();
  Group(const Group&) = delete;
  Group& operator=(const Group&) = delete;

  int rank() const;
  int size() const;
  /// Copies `root`'s tensors into every rank's tensors of the same shapes (in place).
  void broadcast(std::vector<torch::Tensor> tensors, int root = 0);
  /// Element-wise sum (or max) over ranks, in place.
  void all_reduce(torch::Tensor t, bool max = false);
  /// Every rank's `t`, stacked along a new first dimension (same result on every rank).
  torch::Tensor all_gather(const torch::Tensor& t);

  class Pending;
  /// Starts an element-wise sum over ranks; wait() on the handle before reading `t`.
  std::shared_ptr<Pending> all_reduce_async(torch::Tensor t);

  /// Throws gm::Error: "rank R: <what> failed: ..." plus which ranks stopped answering (ranks whose
  /// heartbeat in the store stalled) or that rank 0 and its store are gone.
  [[noreturn]] void fail(const std::string& what, const std::exception& e) const;

 private:
  struct Impl;
  explicit Group(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

class Group::Pending {
 public:
  virtual ~Pending() = default;
  /// Blocks until the collective is done; throws like the blocking collectives.
  virtual void wait() = 0;
};

/// Averages the gradients of one optimizer's parameters over the ranks after each backward pass.
/// Parameters are packed into flat buckets of about `bucket_bytes` in reverse registration order
/// (the order backward produces them); a bucket's all-reduce starts from a gradient hook as soon
/// as its last gradient arrives, so communication overlaps the rest of the backward pass. Buckets
/// are always started in index order (a collective's identity is its position in the sequence),
/// so ranks agree even when hooks fire in different orders; parameters the loss did not reach
/// contribute zeros.
class GradientReducer {
 public:
  GradientReducer(Group& group, std::vector<torch::Tensor> params, int64_t bucket_bytes = 4 << 20);
  ~GradientReducer();
  /// Arms the hooks; call right before loss.backward().
  void prepare();
  /// Starts the buckets the hooks did not, waits for all, and writes the rank-mean into each
  /// parameter's .grad. Returns the seconds spent waiting for communication after the backward.
  double finish();
  int64_t buckets() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace gm::train::dist
