// c10d process group (Gloo), gradient buckets with backward hooks, and the failure report.
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO 1  // Debian's LibTorch is built with Gloo; the header hides it otherwise
#endif
#include "genmodels/train/distributed.h"

#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "genmodels/core/error.h"

namespace gm::train::dist {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  if (*end != '\0' || x < 0 || x > (1 << 30))
    throw Error(std::string("environment variable ") + name + "='" + v +
                "' is not a non-negative integer (it is set by the launcher: torchrun or "
                "genmodels train --nproc N)");
  return static_cast<int>(x);
}

// c10d logs every connection retry and broken socket through glog on stderr; this program
// reports those failures itself in one line, so glog is kept to FATAL (looked up at run time:
// glog is LibTorch's dependency, not ours).
void quiet_c10d_logging() {
  if (auto* level = static_cast<int32_t*>(dlsym(RTLD_DEFAULT, "_ZN3fLI17FLAGS_minloglevelE")))
    *level = std::max(*level, 3);
}

std::string heartbeat_key(int rank) { return "gm/heartbeat/" + std::to_string(rank); }

// One line of an exception, without LibTorch's backtrace.
std::string first_line(const std::exception& e) {
  std::string s = e.what();
  if (const auto* c = dynamic_cast<const c10::Error*>(&e)) s = c->what_without_backtrace();
  const auto nl = s.find('\n');
  return nl == std::string::npos ? s : s.substr(0, nl);
}

}  // namespace

Env Env::from_environment() {
  Env e;
  e.world_size = env_int("WORLD_SIZE", 1);
  if (e.world_size < 1) throw Error("environment variable WORLD_SIZE must be >= 1");
  e.rank = env_int("RANK", 0);
  if (e.rank >= e.world_size)
    throw Error("environment variable RANK=" + std::to_string(e.rank) + " is outside [0, " +
                std::to_string(e.world_size) + ") (WORLD_SIZE)");
  e.local_rank = env_int("LOCAL_RANK", e.rank);
  e.local_world_size = env_int("LOCAL_WORLD_SIZE", e.world_size);
  if (const char* a = std::getenv("MASTER_ADDR"); a && *a) e.master_addr = a;
  e.master_port = env_int("MASTER_PORT", 29500);
  const char* agent = std::getenv("TORCHELASTIC_USE_AGENT_STORE");
  e.agent_store = agent && std::string(agent) == "True";
  e.restart_count = env_int("TORCHELASTIC_RESTART_COUNT", 0);
  if (e.master_port < 1 || e.master_port > 65535)
    throw Error("environment variable MASTER_PORT=" + std::to_string(e.master_port) +
                " is not a TCP port");
  return e;
}

struct Group::Impl {
  Env env;
  milliseconds timeout{0};
  c10::intrusive_ptr<c10d::TCPStore> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
  // Heartbeat: a thread with its own store connection bumps this rank's counter every second;
  // after a failed collective, counters that stop moving name the ranks that died or hung.
  std::thread beat;
  std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;

  c10::intrusive_ptr<c10d::TCPStore> connect(milliseconds t, bool server) const {
    c10d::TCPStoreOptions o;
    o.port = static_cast<std::uint16_t>(env.master_port);
    o.isServer = server;
    o.numWorkers = env.world_size;
    o.waitWorkers = false;
    o.timeout = t;
    return c10::make_intrusive<c10d::TCPStore>(env.master_addr, o);
  }

  void start_heartbeat() {
    beat = std::thread([this] {
      try {
        auto s = connect(milliseconds(10000), false);
        std::unique_lock<std::mutex> lock(mu);
        while (!stopping) {
          lock.unlock();
          s->add(heartbeat_key(env.rank), 1);
          lock.lock();
          cv.wait_for(lock, std::chrono::seconds(1), [this] { return stopping; });
        }
      } catch (const std::exception&) {
        // The store went away (rank 0 finished or died): nothing left to report to.
      }
    });
  }

  ~Impl() {
    {
      std::lock_guard<std::mutex> lock(mu);
      stopping = true;
    }
    cv.notify_all();
    if (beat.joinable()) beat.join();
  }

  void run(const std::string& what, c10::intrusive_ptr<c10d::Work> work, const Group& g) const {
    try {
      work->wait(timeout);
    } catch (const std::exception& e) {
      g.fail(what, e);
    }
  }
};

class WorkPending : public Group::Pending {
 public:
  WorkPending(const Group& g, c10::intrusive_ptr<c10d::Work> w) : g_(g), w_(std::move(w)) {}
  void wait() override {
    try {
      w_->wait();
    } catch (const std::exception& e) {
      g_.fail("gradient all-reduce", e);
    }
  }

 private:
  const Group& g_;
  c10::intrusive_ptr<c10d::Work> w_;
};

Group::Group(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Group::~Group() = default;

std::unique_ptr<Group> Group::join(const Env& env, double timeout_s) {
  if (!(timeout_s > 0)) throw Error("the distributed timeout must be > 0 seconds");
  quiet_c10d_logging();
  auto impl = std::make_unique<Impl>();
  impl->env = env;
  impl->timeout = milliseconds(static_cast<int64_t>(timeout_s * 1000));
  const std::string where = env.master_addr + ":" + std::to_string(env.master_port);
  const bool host = env.rank == 0 && !env.agent_store;
  try {
    impl->store = impl->connect(impl->timeout, host);
  } catch (const std::exception& e) {
    throw Error("rank " + std::to_string(env.rank) + ": cannot " + (host ? "host" : "reach") +
                " the rendezvous store at " + where +
                " (MASTER_ADDR:MASTER_PORT): " + first_line(e) +
                (host ? "; is the port in use? choose another MASTER_PORT"
                      : "; is rank 0 running and the address reachable?"));
  }
  auto opts = c10d::ProcessGroupGloo::Options::create(impl->timeout);
  const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
  if (ifname && *ifname)
    opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
  else if (env.master_addr == "127.0.0.1" || env.master_addr == "localhost")
    opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
  else
    opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  // One worker thread: collectives run in issue order and leave the cores to the training.
  opts->threads = 1;
  try {
    const std::string prefix =
        env.agent_store ? "/worker/attempt_" + std::to_string(env.restart_count) + "/gm/pg"
                        : "gm/pg";
    auto prefixed = c10::make_intrusive<c10d::PrefixStore>(prefix, impl->store);
    impl->pg =
        c10::make_intrusive<c10d::ProcessGroupGloo>(prefixed, env.rank, env.world_size, opts);
  } catch (const std::exception& e) {
    throw Error("rank " + std::to_string(env.rank) + ": the " + std::to_string(env.world_size) +
                " ranks did not all join at " + where + " within " +
                std::to_string(static_cast<int>(timeout_s)) + " s: " + first_line(e));
  }
  impl->start_heartbeat();
  return std::unique_ptr<Group>(new Group(std::move(impl)));
}

int Group::rank() const { return impl_->env.rank; }
int Group::size() const { return impl_->env.world_size; }

void Group::broadcast(std::vector<torch::Tensor> tensors, int root) {
  c10d::BroadcastOptions o;
  o.rootRank = root;
  // Gloo broadcasts one tensor list of equal-sized entries at a time: one call per tensor.
  for (auto& t : tensors) {
    std::vector<at::Tensor> one{t};
    impl_->run("broadcast", impl_->pg->broadcast(one, o), *this);
  }
}

void Group::all_reduce(torch::Tensor t, bool max) {
  std::vector<at::Tensor> one{t};
  c10d::AllreduceOptions o;
  o.reduceOp = max ? c10d::ReduceOp::MAX : c10d::ReduceOp::SUM;
  impl_->run("all-reduce", impl_->pg->allreduce(one, o), *this);
}

torch::Tensor Group::all_gather(const torch::Tensor& t) {
  std::vector<at::Tensor> in{t.contiguous()};
  std::vector<std::vector<at::Tensor>> out(1);
  for (int r = 0; r < size(); ++r) out[0].push_back(torch::empty_like(in[0]));
  impl_->run("all-gather", impl_->pg->allgather(out, in), *this);
  return torch::stack(out[0]);
}

std::shared_ptr<Group::Pending> Group::all_reduce_async(torch::Tensor t) {
  std::vector<at::Tensor> one{t};
  try {
    return std::make_shared<WorkPending>(*this, impl_->pg->allreduce(one));
  } catch (const std::exception& e) {
    fail("gradient all-reduce", e);
  }
}

void Group::fail(const std::string& what, const std::exception& e) const {
  const Env& env = impl_->env;
  std::string msg = "rank " + std::to_string(env.rank) + ": " + what + " failed (" +
                    first_line(e).substr(0, 160) + "); ";
  try {
    // A fresh connection: the group's own may be the one that broke.
    auto s = impl_->connect(milliseconds(5000), false);
    std::vector<int64_t> before(env.world_size);
    for (int r = 0; r < env.world_size; ++r) before[r] = s->add(heartbeat_key(r), 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(3000));
    std::string silent;
    for (int r = 0; r < env.world_size; ++r)
      if (r != env.rank && s->add(heartbeat_key(r), 0) == before[r])
        silent += (silent.empty() ? "" : ", ") + std::to_string(r);
    msg += silent.empty() ? "every other rank is still alive, so one of them failed first "
                            "(see its own message)"
                          : "rank " + silent + " stopped answering (died or hung)";
  } catch (const std::exception&) {
    msg += "the rendezvous store at " + env.master_addr + ":" + std::to_string(env.master_port) +
           " is gone: rank 0" + (env.agent_store ? "'s launcher" : "") + " died";
  }
  throw Error(msg + "; the last checkpoint is intact, continue with --resume");
}

// ----------------------------------------------------------------------------------------------

struct GradientReducer::State {
  Group* group = nullptr;
  std::vector<torch::Tensor> params;
  struct Bucket {
    torch::Tensor flat;                    // the bucket's gradients, packed
    std::vector<int64_t> members;          // indices into params
    std::vector<int64_t> offsets;          // element offset of each member in flat
    int64_t pending = 0;                   // members whose gradient has not arrived
    std::shared_ptr<Group::Pending> work;  // set once started
  };
  std::vector<Bucket> buckets;
  std::vector<int64_t> bucket_of, slot_of;  // per parameter
  std::vector<bool> arrived;
  int64_t next_start = 0;  // buckets are started strictly in index order
  bool armed = false;

  void start_ready() {
    while (next_start < static_cast<int64_t>(buckets.size()) && buckets[next_start].pending == 0) {
      Bucket& b = buckets[next_start++];
      b.work = group->all_reduce_async(b.flat);
    }
  }

  void on_grad(int64_t i, const torch::Tensor& g) {
    if (!armed || arrived[i]) return;
    Bucket& b = buckets[bucket_of[i]];
    const int64_t n = params[i].numel();
    b.flat.narrow(0, b.offsets[slot_of[i]], n).copy_(g.reshape({n}));
    arrived[i] = true;
    if (--b.pending == 0) start_ready();
  }
};

GradientReducer::GradientReducer(Group& group, std::vector<torch::Tensor> params,
                                 int64_t bucket_bytes)
    : state_(std::make_shared<State>()) {
  State& s = *state_;
  s.group = &group;
  s.params = std::move(params);
  const int64_t n = static_cast<int64_t>(s.params.size());
  s.bucket_of.assign(n, -1);
  s.slot_of.assign(n, -1);
  s.arrived.assign(n, false);
  // Reverse order: the last layers' gradients are produced first by backward.
  State::Bucket cur;
  int64_t cur_bytes = 0, cur_elems = 0;
  auto close = [&] {
    if (cur.members.empty()) return;
    cur.flat = torch::zeros({cur_elems}, s.params[cur.members.front()].options());
    s.buckets.push_back(std::move(cur));
    cur = State::Bucket();
    cur_bytes = cur_elems = 0;
  };
  for (int64_t i = n - 1; i >= 0; --i) {
    const torch::Tensor& p = s.params[i];
    if (!p.requires_grad()) continue;
    if (!cur.members.empty() && (p.scalar_type() != s.params[cur.members.front()].scalar_type() ||
                                 p.device() != s.params[cur.members.front()].device()))
      close();
    s.bucket_of[i] = static_cast<int64_t>(s.buckets.size());
    s.slot_of[i] = static_cast<int64_t>(cur.members.size());
    cur.members.push_back(i);
    cur.offsets.push_back(cur_elems);
    cur_elems += p.numel();
    cur_bytes += p.numel() * static_cast<int64_t>(p.element_size());
    if (cur_bytes >= bucket_bytes) close();
  }
  close();
  // Hooks hold a weak reference: a parameter may outlive its reducer.
  std::weak_ptr<State> weak = state_;
  for (int64_t i = 0; i < n; ++i) {
    if (s.bucket_of[i] < 0) continue;
    s.params[i].register_hook([weak, i](const torch::Tensor& g) {
      if (auto st = weak.lock()) {
        torch::NoGradGuard no_grad;
        st->on_grad(i, g);
      }
    });
  }
}

GradientReducer::~GradientReducer() = default;

int64_t GradientReducer::buckets() const { return static_cast<int64_t>(state_->buckets.size()); }

void GradientReducer::prepare() {
  State& s = *state_;
  for (auto& b : s.buckets) {
    b.pending = static_cast<int64_t>(b.members.size());
    b.work.reset();
  }
  std::fill(s.arrived.begin(), s.arrived.end(), false);
  s.next_start = 0;
  s.armed = true;
}

double GradientReducer::finish() {
  State& s = *state_;
  torch::NoGradGuard no_grad;
  s.armed = false;
  const auto t0 = Clock::now();
  // Gradients no hook delivered: the loss did not reach the parameter (zeros), or it was reached
  // outside the hooks' view (its .grad holds it).
  for (auto& b : s.buckets) {
    if (b.pending == 0) continue;
    for (size_t k = 0; k < b.members.size(); ++k) {
      const int64_t i = b.members[k];
      if (s.arrived[i]) continue;
      const torch::Tensor& g = s.params[i].grad();
      auto dst = b.flat.narrow(0, b.offsets[k], s.params[i].numel());
      if (g.defined())
        dst.copy_(g.reshape({-1}));
      else
        dst.zero_();
      s.arrived[i] = true;
    }
    b.pending = 0;
  }
  s.start_ready();
  const double inv = 1.0 / s.group->size();
  for (auto& b : s.buckets) {
    b.work->wait();
    b.flat.mul_(inv);
    for (size_t k = 0; k < b.members.size(); ++k) {
      torch::Tensor& p = s.params[b.members[k]];
      auto src = b.flat.narrow(0, b.offsets[k], p.numel()).view(p.sizes());
      if (p.grad().defined())
        p.mutable_grad().copy_(src);
      else
        p.mutable_grad() = src.clone();
    }
  }
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace gm::train::dist
