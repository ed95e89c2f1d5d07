// The sampling server (see serve.h): runs loaded once, a bounded job queue in front of one worker
// thread, and the HTTP handlers of the JSON API.
#include "genmodels/models/serve.h"

#include <httplib.h>
#include <torch/torch.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <iostream>
#include <limits>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "genmodels/core/atomic_file.h"
#include "genmodels/core/error.h"
#include "genmodels/core/json.h"
#include "genmodels/core/runtime.h"
#include "genmodels/models/run.h"
#include "genmodels/sampling/samplers.h"

namespace gm {
namespace fs = std::filesystem;

namespace {

constexpr const char* kB64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr size_t kMaxVariants = 8;    // models kept per run for other sample.* settings
constexpr size_t kKeepFinished = 64;  // finished jobs GET /v1/jobs/ID still knows
constexpr size_t kMaxBody = 1 << 20;  // request bodies beyond 1 MB get 413
constexpr int64_t kMaxSteps = 10000;  // the largest `steps` a request may ask for

std::atomic<int> g_stop_signal{0};
extern "C" void on_stop_signal(int sig) { g_stop_signal.store(sig); }

// A request the client should fix (4xx) or the server cannot take now (503).
struct HttpError : Error {
  int status;
  HttpError(int s, const std::string& message) : Error(message), status(s) {}
};

// Thrown from the progress callback to stop a cancelled job between sampler steps.
struct Cancelled {};

std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return s;
}

std::string error_body(const std::string& message) {
  return Json{{"error", one_line(message)}}.dump() + "\n";
}

bool is_loopback(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

// A loaded run, plus models built from its config with other sample.* settings that share its
// weights (families read those settings when they are built).
struct ServedRun {
  std::string name, path;
  LoadedRun base;
  bool conditional = false, prompts = false, samplers = false;
  std::list<std::pair<std::string, LoadedRun>> variants;  // most recently used first

  // The run under `sets` ("sample.KEY=V", already validated): `base` or a model sharing its
  // weights (no copy, no disk read of the weights).
  LoadedRun& with_settings(const std::vector<std::string>& sets) {
    if (sets.empty()) return base;
    std::string key;
    for (const auto& s : sets) key += s + "\n";
    for (auto it = variants.begin(); it != variants.end(); ++it)
      if (it->first == key) {
        variants.splice(variants.begin(), variants, it);
        return variants.front().second;
      }
    LoadedRun v;
    v.entry = base.entry;
    v.config = base.config;
    v.info = base.info;
    v.checkpoint_step = base.checkpoint_step;
    for (const auto& s : sets) v.config.set_assignment(s);
    v.model = v.entry->create(v.config, v.info);
    torch::nn::Module &from = base.model->module(), &to = v.model->module();
    const auto params = from.named_parameters(true), buffers = from.named_buffers(true);
    for (auto& p : to.named_parameters(true)) {
      const torch::Tensor* src = params.find(p.key());
      if (!src) throw Error(name + ": the model built with other settings has no " + p.key());
      p.value().set_data(*src);
    }
    for (auto& b : to.named_buffers(true)) {
      const torch::Tensor* src = buffers.find(b.key());
      if (!src) throw Error(name + ": the model built with other settings has no " + b.key());
      b.value().set_data(*src);
    }
    to.eval();
    variants.emplace_front(key, std::move(v));
    if (variants.size() > kMaxVariants) variants.pop_back();
    return variants.front().second;
  }

  // The GET /v1/models entry.
  Json describe() const {
    const Config& c = base.config;
    Json j = {{"name", name},
              {"run", path},
              {"model", base.entry->name},
              {"family", base.entry->family},
              {"data", base.info.dataset},
              {"shape", base.info.shape},
              {"image", base.info.is_image()},
              {"conditional", conditional},
              {"classes", conditional ? base.info.class_names : std::vector<std::string>{}},
              {"prompts", prompts}};
    j["samplers"] = Json::array();
    if (samplers)
      for (const auto& row : sampling::sampler_table())
        j["samplers"].push_back(
            {{"name", row.name}, {"doc", row.doc}, {"default_steps", row.default_steps}});
    // The sample-time fields this run takes, with the run's values as defaults.
    const Json values = c.to_json();
    j["defaults"] = Json::object();
    for (const auto& f : sample_flags())
      if (c.has(f.key)) j["defaults"][f.flag.substr(2)] = values.at(f.key);
    return j;
  }
};

struct Job {
  std::string id;
  ServedRun* run = nullptr;
  SampleArgs args;
  std::atomic<int64_t> step{0}, total{0};
  std::atomic<bool> cancel{false};
  // Guarded by the server's mutex.
  std::string state = "queued";  // queued, running, done, failed, cancelled
  int status = 0;                // HTTP status of the outcome
  Json result;                   // done: the response body; otherwise {"error": ...}
  bool finished() const { return state == "done" || state == "failed" || state == "cancelled"; }
};

// A JSON value as a --set value (numbers in their shortest exact form).
std::string setting_text(const Json& v, const std::string& field) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
  if (v.is_number_unsigned()) return std::to_string(v.get<uint64_t>());
  if (v.is_number_float()) return format_float(v.get<double>());
  throw HttpError(400, field + ": expected a number or a string, got " + v.dump());
}

int64_t integer_field(const Json& body, const std::string& field, int64_t fallback, int64_t lo,
                      int64_t hi) {
  if (!body.contains(field)) return fallback;
  const Json& v = body.at(field);
  if (!v.is_number_integer() &&
      !(v.is_number_float() && v.get<double>() == std::floor(v.get<double>())))
    throw HttpError(400, field + ": expected an integer, got " + v.dump());
  const double d = v.get<double>();
  if (d < double(lo) || d > double(hi))
    throw HttpError(400, field + ": " + v.dump() + " is out of range " + std::to_string(lo) + ".." +
                             std::to_string(hi));
  return v.get<int64_t>();
}

class Server {
 public:
  explicit Server(const ServeArgs& a) : a_(a) {}

  void run() {
    if (a_.runs.empty()) throw Error("serve: give at least one RUN directory");
    if (a_.port < 0 || a_.port > 65535)
      throw Error("--port " + std::to_string(a_.port) + " is not a TCP port (1..65535, 0 = any)");
    if (a_.queue < 0) throw Error("--queue must be >= 0, got " + std::to_string(a_.queue));
    if (a_.max_n < 1) throw Error("--max-n must be >= 1, got " + std::to_string(a_.max_n));
    set_threads(a_.threads);
    warn_if_reference_blas();
    routes();
    // Bound before the runs load: a taken port fails at once.
    int port = a_.port;
    errno = 0;
    if (a_.port == 0) {
      port = http_.bind_to_any_port(a_.host);
      if (port < 0) port = -1;
    } else if (!http_.bind_to_port(a_.host, a_.port)) {
      port = -1;
    }
    if (port < 0)
      throw Error("--port " + std::to_string(a_.port) + ": cannot listen on " + a_.host + ":" +
                  std::to_string(a_.port) +
                  (errno ? std::string(" (") + std::strerror(errno) + ")" : "") +
                  "; choose a free port (or --port 0 for any)");
    if (!is_loopback(a_.host))
      std::cerr << "genmodels: warning: serving on " << a_.host
                << ", not loopback: anyone who reaches it can sample (there is no "
                   "authentication)\n";
    load_runs();
    char tmpl[] = "/tmp/genmodels_serve_XXXXXX";
    if (!::mkdtemp(tmpl)) throw Error("serve: cannot create a temporary folder in /tmp");
    tmp_dir_ = tmpl;

    g_stop_signal.store(0);
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    struct sigaction old_int {
    }, old_term{};
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    struct sigaction ignore {
    }, old_pipe{};
    ignore.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &ignore, &old_pipe);  // a client that hangs up is not fatal
    std::thread worker([this] { work(); });
    std::thread watcher([this] {
      while (!g_stop_signal.load() && !watcher_done_.load())
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      shutdown();
    });
    std::cerr << "genmodels: serving " << runs_.size() << " run" << (runs_.size() == 1 ? "" : "s")
              << " on http://"
              << (a_.host.find(':') != std::string::npos ? "[" + a_.host + "]" : a_.host) << ":"
              << port << "/ (Ctrl-C stops)" << std::endl;
    http_.listen_after_bind();
    watcher_done_.store(true);
    watcher.join();
    worker.join();
    sigaction(SIGINT, &old_int, nullptr);
    sigaction(SIGTERM, &old_term, nullptr);
    sigaction(SIGPIPE, &old_pipe, nullptr);
    std::error_code ec;
    fs::remove_all(tmp_dir_, ec);
    std::cerr << "genmodels: server stopped" << std::endl;
  }

 private:
  void load_runs() {
    Json list = Json::array();
    for (const auto& path : a_.runs) {
      auto r = std::make_unique<ServedRun>();
      r->path = path;
      std::string name = fs::path(path).lexically_normal().filename().string();
      if (name.empty() || name == ".")
        name = fs::path(path).lexically_normal().parent_path().filename().string();
      if (name.empty()) name = "run";
      std::string unique = name;
      for (int k = 2; find_run(unique); ++k) unique = name + "-" + std::to_string(k);
      r->name = unique;
      r->base = load_run(path, /*raw_weights=*/false, {});
      const Config& c = r->base.config;
      r->prompts = c.has("model.text_encoder") && !c.get_string("model.text_encoder").empty();
      r->conditional = r->base.info.num_classes() > 0 &&
                       (!c.has("model.conditional") || c.get_bool("model.conditional"));
      r->samplers = c.has("sample.sampler");
      std::cerr << "genmodels: loaded " << path << " as '" << r->name << "' ("
                << r->base.entry->name << ", " << r->base.info.dataset << ")\n";
      list.push_back(r->describe());
      runs_.push_back(std::move(r));
    }
    models_ = {{"models", list}, {"max_n", a_.max_n}, {"queue", a_.queue}};
  }

  ServedRun* find_run(const std::string& name) const {
    for (const auto& r : runs_)
      if (r->name == name) return r.get();
    return nullptr;
  }

  std::string run_names() const {
    std::string s;
    for (const auto& r : runs_) s += (s.empty() ? "" : ", ") + r->name;
    return s;
  }

  // POST /v1/sample's body -> a job (not yet queued). Every field is checked here, so a bad
  // request is answered at once and never reaches the worker.
  std::shared_ptr<Job> parse_request(const std::string& text, bool* async) const {
    Json body = Json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (body.is_discarded())
      throw HttpError(400,
                      "malformed JSON in the request body; send an object such as "
                      "{\"model\": \"NAME\", \"n\": 4, \"seed\": 0}");
    if (!body.is_object())
      throw HttpError(400, "the request body must be a JSON object, got " + body.dump());
    std::vector<std::string> fields = {"model", "n", "seed", "class", "prompt", "set", "async"};
    for (const auto& f : sample_flags()) fields.push_back(f.flag.substr(2));
    for (const auto& [key, v] : body.items())
      if (std::find(fields.begin(), fields.end(), key) == fields.end()) {
        std::string valid;
        for (const auto& f : fields) valid += (valid.empty() ? "" : ", ") + f;
        throw HttpError(400, "unknown field '" + key + "'; fields: " + valid);
      }

    auto job = std::make_shared<Job>();
    if (!body.contains("model")) {
      if (runs_.size() != 1) throw HttpError(400, "model: missing; loaded runs: " + run_names());
      job->run = runs_.front().get();
    } else {
      if (!body["model"].is_string())
        throw HttpError(400, "model: expected a string, got " + body["model"].dump());
      job->run = find_run(body["model"].get<std::string>());
      if (!job->run)
        throw HttpError(400, "model: no run named '" + body["model"].get<std::string>() +
                                 "' is loaded; loaded runs: " + run_names());
    }
    const ServedRun& run = *job->run;
    SampleArgs& s = job->args;
    s.run = run.path;
    s.quiet = true;
    s.threads = a_.threads;
    s.n = integer_field(body, "n", 16, 1, a_.max_n);
    if (body.contains("seed")) {
      const Json& v = body["seed"];
      if (v.is_number_unsigned())
        s.seed = v.get<uint64_t>();
      else if (v.is_number_integer())
        throw HttpError(400, "seed: " + v.dump() + " must be >= 0");
      else
        throw HttpError(400, "seed: expected a non-negative integer, got " + v.dump());
    }
    if (body.contains("class")) {
      s.class_label = integer_field(body, "class", -1, -1, std::numeric_limits<int64_t>::max());
      const int64_t classes = run.conditional ? run.base.info.num_classes() : 0;
      if (s.class_label >= 0 && classes == 0)
        throw HttpError(400, "class: run '" + run.name + "' is not class-conditional");
      if (s.class_label >= classes)
        throw HttpError(400, "class: " + std::to_string(s.class_label) + " is out of range 0.." +
                                 std::to_string(classes - 1) + " (-1 = every class in turn)");
    }
    if (body.contains("prompt")) {
      if (!body["prompt"].is_string())
        throw HttpError(400, "prompt: expected a string, got " + body["prompt"].dump());
      s.prompt = body["prompt"].get<std::string>();
      if (!s.prompt.empty() && !run.prompts)
        throw HttpError(400, "prompt: run '" + run.name +
                                 "' is not text-conditional (ddpm trained with "
                                 "model.text_encoder); draw by class instead");
      if (!s.prompt.empty() && s.class_label >= 0)
        throw HttpError(400, "prompt and class: give one (a prompt says what to draw)");
    }
    if (body.contains("async")) {
      if (!body["async"].is_boolean())
        throw HttpError(400, "async: expected true or false, got " + body["async"].dump());
      *async = body["async"].get<bool>();
    }

    // Sample-time settings, in the order of the CLI's flags (so the PNG's `parameters` chunk
    // reads as `genmodels sample` would write it), then "set": {"sample.KEY": V}.
    Config check = run.base.config;
    auto add = [&](const std::string& field, const std::string& key, const Json& v) {
      const std::string value = setting_text(v, field);
      if (!check.has(key))
        throw HttpError(400, field + ": run '" + run.name + "' (" + run.base.entry->name +
                                 ") has no setting " + key);
      if (key == "sample.sampler") {
        try {
          sampling::check_sampler_name(value);
        } catch (const Error& e) {
          throw HttpError(400, "sampler: " + std::string(e.what()));
        }
      }
      try {
        check.set(key, value, field);
      } catch (const Error& e) {
        const std::string m = e.what();
        throw HttpError(400, m.rfind(field, 0) == 0 ? m : field + ": " + m);
      }
      if (key == "sample.steps" && (check.get_int(key) < 1 || check.get_int(key) > kMaxSteps))
        throw HttpError(400, field + ": " + value + " is out of range 1.." +
                                 std::to_string(kMaxSteps) + " (omit it for the default)");
      s.sets.push_back(key + "=" + value);
    };
    for (const auto& f : sample_flags())
      if (body.contains(f.flag.substr(2))) add(f.flag.substr(2), f.key, body[f.flag.substr(2)]);
    if (body.contains("set")) {
      if (!body["set"].is_object())
        throw HttpError(400, "set: expected an object such as {\"sample.eta\": 0.5}, got " +
                                 body["set"].dump());
      for (const auto& [key, v] : body["set"].items()) {
        if (key.rfind("sample.", 0) != 0)
          throw HttpError(400,
                          "set: " + key + " cannot change at sample time (only sample.* keys)");
        add("set." + key, key, v);
      }
    }
    return job;
  }

  void routes() {
    http_.set_payload_max_length(kMaxBody);
    // SO_REUSEADDR only: httplib's default also sets SO_REUSEPORT, which lets a second server
    // bind a port that is in use instead of failing.
    http_.set_socket_options([](auto sock) {
      int yes = 1;
      ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    });
    // Sync requests hold a connection thread while they wait: enough threads for a full queue
    // plus the polls and the page.
    const size_t threads = static_cast<size_t>(a_.queue) + 8;
    http_.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
    using Handled = httplib::Server::HandlerWithResponse;
    http_.set_error_handler(Handled([](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
      std::string m = res.status == 404 ? "no endpoint " + req.method + " " + req.path +
                                              " (GET /, GET /v1/models, POST /v1/sample, "
                                              "GET|DELETE /v1/jobs/ID)"
                      : res.status == 413 ? "request body too large (limit 1 MB)"
                                          : "bad request (HTTP " + std::to_string(res.status) + ")";
      res.set_content(error_body(m), "application/json");
      return httplib::Server::HandlerResponse::Handled;
    }));
    http_.set_exception_handler(
        [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
          std::string m = "internal error";
          try {
            std::rethrow_exception(ep);
          } catch (const std::exception& e) {
            m += std::string(": ") + e.what();
          } catch (...) {
          }
          res.status = 500;
          res.set_content(error_body(m), "application/json");
        });
    http_.Get("/", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(serve_page(), "text/html; charset=utf-8");
    });
    http_.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(models_.dump() + "\n", "application/json");
    });
    http_.Post("/v1/sample", [this](const httplib::Request& req, httplib::Response& res) {
      respond(res, [&] { return sample(req.body); });
    });
    http_.Get(R"(/v1/jobs/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
      respond(res, [&] { return job_status(req.matches[1]); });
    });
    http_.Delete(R"(/v1/jobs/([^/]+))",
                 [this](const httplib::Request& req, httplib::Response& res) {
                   respond(res, [&] { return cancel(req.matches[1]); });
                 });
  }

  // Runs a handler body returning (status, JSON); errors become one-line JSON errors.
  template <class F>
  void respond(httplib::Response& res, F&& f) {
    try {
      auto [status, body] = f();
      res.status = status;
      res.set_content(body.dump() + "\n", "application/json");
    } catch (const HttpError& e) {
      res.status = e.status;
      res.set_content(error_body(e.what()), "application/json");
    } catch (const Error& e) {
      res.status = 400;
      res.set_content(error_body(e.what()), "application/json");
    }
  }

  std::pair<int, Json> sample(const std::string& body) {
    bool async = false;
    std::shared_ptr<Job> job = parse_request(body, &async);
    std::unique_lock<std::mutex> lock(m_);
    if (stopping_) throw HttpError(503, "the server is shutting down");
    if (static_cast<int64_t>(queue_.size()) >= a_.queue)
      throw HttpError(503, "the queue is full (" + std::to_string(queue_.size()) +
                               " jobs waiting, --queue " + std::to_string(a_.queue) +
                               "); retry later");
    job->id = "j" + std::to_string(++next_id_);
    jobs_[job->id] = job;
    queue_.push_back(job);
    work_cv_.notify_one();
    if (async) return {202, {{"id", job->id}, {"state", job->state}, {"position", queue_.size()}}};
    done_cv_.wait(lock, [&] { return job->finished() || stopping_; });
    if (!job->finished()) throw HttpError(503, "the server is shutting down");
    // Delivered: only async jobs keep their images for GET /v1/jobs/ID.
    std::pair<int, Json> out = {job->status, std::move(job->result)};
    job->result = out.second.contains("error") ? out.second : Json::object();
    return out;
  }

  std::pair<int, Json> job_status(const std::string& id) {
    std::lock_guard<std::mutex> lock(m_);
    const auto it = jobs_.find(id);
    if (it == jobs_.end())
      throw HttpError(404, "job '" + id + "' is unknown (the last " +
                               std::to_string(kKeepFinished) + " finished jobs are kept)");
    const Job& job = *it->second;
    Json j = {{"id", job.id},       {"model", job.run->name},  {"n", job.args.n},
              {"state", job.state}, {"step", job.step.load()}, {"total", job.total.load()}};
    if (job.state == "queued")
      for (size_t i = 0; i < queue_.size(); ++i)
        if (queue_[i]->id == id) j["position"] = i + 1;
    if (job.state == "done" && !job.result.empty()) j["result"] = job.result;
    if (job.state == "failed" || job.state == "cancelled")
      j["error"] = job.result.value("error", "");
    return {200, j};
  }

  std::pair<int, Json> cancel(const std::string& id) {
    std::unique_lock<std::mutex> lock(m_);
    const auto it = jobs_.find(id);
    if (it == jobs_.end()) throw HttpError(404, "job '" + id + "' is unknown");
    std::shared_ptr<Job> job = it->second;
    if (job->finished())
      throw HttpError(409, "job " + id + " has already finished (" + job->state + ")");
    if (job->state == "queued") {
      queue_.erase(std::find(queue_.begin(), queue_.end(), job));
      finish(*job, "cancelled", 409, {{"error", "job " + id + " was cancelled"}});
      done_cv_.notify_all();
    } else {
      job->cancel = true;  // the worker stops it at the next sampler step
      done_cv_.wait_for(lock, std::chrono::seconds(30), [&] { return job->finished(); });
    }
    return {200,
            {{"id", id},
             {"state", job->state},
             {"step", job->step.load()},
             {"total", job->total.load()}}};
  }

  // Called with m_ held.
  void finish(Job& job, const std::string& state, int status, Json result) {
    job.state = state;
    job.status = status;
    job.result = std::move(result);
    finished_.push_back(job.id);
    while (finished_.size() > kKeepFinished) {
      jobs_.erase(finished_.front());
      finished_.pop_front();
    }
  }

  // The worker: one job at a time, without autograd, with the server's thread count (both are
  // per-thread settings in LibTorch).
  void work() {
    set_threads(a_.threads);
    torch::NoGradGuard no_grad;
    for (;;) {
      std::shared_ptr<Job> job;
      {
        std::unique_lock<std::mutex> lock(m_);
        work_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (stopping_) return;
        job = queue_.front();
        queue_.pop_front();
        job->state = "running";
      }
      std::string state = "done";
      int status = 200;
      Json result;
      const auto t0 = std::chrono::steady_clock::now();
      try {
        result = execute(*job);
      } catch (const Cancelled&) {
        state = "cancelled";
        status = 409;
        result = {{"error", "job " + job->id + " was cancelled"}};
      } catch (const Error& e) {
        state = "failed";
        status = 400;
        result = {{"error", one_line(e.what())}};
      } catch (const c10::Error& e) {
        state = "failed";
        status = 500;
        result = {{"error", "internal LibTorch error: " + one_line(e.what_without_backtrace())}};
      } catch (const std::exception& e) {
        state = "failed";
        status = 500;
        result = {{"error", "internal error: " + one_line(e.what())}};
      }
      const double secs =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (!a_.quiet)
        std::cerr << "genmodels: " << job->id << " " << job->run->name << " n=" << job->args.n
                  << " seed=" << job->args.seed << ": " << state << " in " << secs << " s"
                  << (state == "done" ? "" : " (" + result.value("error", "") + ")") << "\n";
      {
        std::lock_guard<std::mutex> lock(m_);
        finish(*job, state, status, std::move(result));
      }
      done_cv_.notify_all();
    }
  }

  // Samples one job and encodes its grid exactly as `genmodels sample` writes grid.png.
  Json execute(Job& job) {
    const auto t0 = std::chrono::steady_clock::now();
    LoadedRun& run = job.run->with_settings(job.args.sets);
    SampleResult res = sample_loaded(run, job.args, [&job](int64_t done, int64_t total) {
      job.step = done;
      job.total = total;
      if (job.cancel) throw Cancelled{};
    });
    if (job.cancel) throw Cancelled{};
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const std::string path = tmp_dir_ + "/" + job.id + ".png";
    write_sample_image(path, res, -1);
    const std::string png = read_file(path);
    fs::remove(path);
    Json params = Json::object();
    for (const auto& [k, v] : res.params) params[k] = v;
    Json out = {
        {"id", job.id},
        {"model", job.run->name},
        {"n", job.args.n},
        {"images", Json::array({Json{{"png", base64_encode(png)}, {"parameters", params}}})},
        {"seconds", secs}};
    out["nfe"] = nullptr;
    if (const auto it = res.params.find("nfe"); it != res.params.end()) {
      try {
        out["nfe"] = std::stoll(it->second);
      } catch (const std::exception&) {
      }
    }
    return out;
  }

  // Stops accepting work, cancels what is queued and running, and stops the listener.
  void shutdown() {
    {
      std::lock_guard<std::mutex> lock(m_);
      stopping_ = true;
      for (auto& job : queue_)
        finish(*job, "cancelled", 503, {{"error", "the server is shutting down"}});
      queue_.clear();
      for (auto& [id, job] : jobs_)
        if (job->state == "running") job->cancel = true;
    }
    work_cv_.notify_all();
    done_cv_.notify_all();
    http_.stop();
  }

  ServeArgs a_;
  std::vector<std::unique_ptr<ServedRun>> runs_;
  Json models_;
  std::string tmp_dir_;
  httplib::Server http_;
  std::mutex m_;
  std::condition_variable work_cv_, done_cv_;
  std::deque<std::shared_ptr<Job>> queue_;
  std::map<std::string, std::shared_ptr<Job>> jobs_;
  std::deque<std::string> finished_;
  uint64_t next_id_ = 0;
  bool stopping_ = false;
  std::atomic<bool> watcher_done_{false};
};

}  // namespace

std::string base64_encode(const std::string& bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t v = uint32_t(uint8_t(bytes[i])) << 16 | uint32_t(uint8_t(bytes[i + 1])) << 8 |
                       uint8_t(bytes[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out += kB64[(v >> s) & 63];
  }
  if (i < bytes.size()) {
    uint32_t v = uint32_t(uint8_t(bytes[i])) << 16;
    if (i + 1 < bytes.size()) v |= uint32_t(uint8_t(bytes[i + 1])) << 8;
    out += kB64[(v >> 18) & 63];
    out += kB64[(v >> 12) & 63];
    out += i + 1 < bytes.size() ? kB64[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::string base64_decode(const std::string& text) {
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    if (c == '=') break;
    const char* p = std::strchr(kB64, c);
    if (!p || !c) throw Error("base64: invalid character '" + std::string(1, c) + "'");
    acc = acc << 6 | uint32_t(p - kB64);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += char((acc >> bits) & 0xff);
    }
  }
  return out;
}

void run_serve(const ServeArgs& args) {
  Server server(args);
  server.run();
}

}  // namespace gm
