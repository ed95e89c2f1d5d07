// `genmodels serve` end to end on loopback, with a tiny trained image ddpm: the JSON API against
// `genmodels sample` (same pixels and parameters for the same seed and settings), one-line 4xx
// errors, cancellation and the bounded queue; 200 requests from concurrent clients (none lost or
// corrupted, same seed -> same PNG); the web page in headless Chromium; a port in use; the
// loaded weights kept while the run trains on; SIGINT with a job running.
#include "genmodels/models/serve.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <regex>
#include <thread>
#include <vector>

#include "cli/cli_util.h"
#include "genmodels/core/atomic_file.h"
#include "genmodels/core/json.h"
#include "genmodels/core/launch.h"
#include "genmodels/io/image.h"

namespace fs = std::filesystem;
using namespace gm::test::cli;
using gm::Json;

namespace {

using Clock = std::chrono::steady_clock;

// A `genmodels serve` process: started with its stderr in a file, stopped with a signal.
struct ServerProcess {
  pid_t pid = -1;
  int port = 0;
  std::string log;

  void start(const std::vector<std::string>& args, const std::string& log_file) {
    log = log_file;
    std::vector<std::string> argv = {GM_CLI, "serve"};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<char*> cargs;
    for (auto& a : argv) cargs.push_back(a.data());
    cargs.push_back(nullptr);
    pid = ::fork();
    if (pid == 0) {
      const int fd = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(fd, 2);
      ::dup2(fd, 1);
      ::execv(cargs[0], cargs.data());
      ::_exit(127);
    }
  }

  // Polls GET /v1/models until it answers (the runs are loaded), or the process ends.
  bool wait_ready(double seconds) const {
    httplib::Client c("127.0.0.1", port);
    c.set_connection_timeout(1);
    const auto end = Clock::now() + std::chrono::duration<double>(seconds);
    while (Clock::now() < end) {
      if (auto r = c.Get("/v1/models"); r && r->status == 200) return true;
      int status = 0;
      if (::waitpid(pid, &status, WNOHANG) == pid) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }

  // Sends `sig` and waits up to `seconds` for the exit; returns the exit status (-1: still
  // running, then killed).
  int stop(int sig, double seconds) {
    if (pid <= 0) return -1;
    ::kill(pid, sig);
    const auto end = Clock::now() + std::chrono::duration<double>(seconds);
    int status = 0;
    while (Clock::now() < end) {
      if (::waitpid(pid, &status, WNOHANG) == pid) {
        pid = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    pid = -1;
    return -1;
  }
};

// A PNG's pixels, decoded from its bytes.
torch::Tensor decode_png(const std::string& bytes, const std::string& scratch) {
  gm::write_file_atomic(scratch, bytes);
  return gm::io::read_image(scratch);
}

// The one image of a /v1/sample response.
std::string png_of(const Json& response) {
  return gm::base64_decode(response.at("images").at(0).at("png").get<std::string>());
}

class Serve : public ::testing::Test {
 protected:
  // One thread everywhere: the tests share the machine with others, and a busy core makes
  // OpenMP's two-thread team many times slower than one thread.
  static void SetUpTestSuite() {
    dir_ = fresh("serve");
    fs::create_directories(dir_);
    run_ = dir_ + "/tiny";
    const Result t =
        cli("train ddpm --steps 2 --data fashion-mnist --set data.limit=64 "
            "--set model.base_channels=8 --set model.attention_levels= --set train.batch_size=16 "
            "--seed 3 --threads 1 --out " +
            run_);
    ASSERT_EQ(t.status, 0) << t.err;
    server_.port = gm::free_local_port();
    server_.start(
        {run_, "--port", std::to_string(server_.port), "--queue", "4", "--quiet", "--threads", "1"},
        dir_ + "/serve.log");
    ASSERT_TRUE(server_.wait_ready(60)) << gm::read_file(server_.log);
  }
  static void TearDownTestSuite() { server_.stop(SIGTERM, 10); }

  void SetUp() override {
    ASSERT_GT(server_.pid, 0) << "the server did not start: " << gm::read_file(server_.log);
  }

  static httplib::Client client() {
    httplib::Client c("127.0.0.1", server_.port);
    c.set_read_timeout(60);
    return c;
  }

  // POST /v1/sample -> (status, JSON body).
  static std::pair<int, Json> post(const std::string& body) {
    auto r = client().Post("/v1/sample", body, "application/json");
    if (!r) return {0, Json()};
    return {r->status, Json::parse(r->body, nullptr, false)};
  }

  static std::string dir_, run_;
  static ServerProcess server_;
};
std::string Serve::dir_, Serve::run_;
ServerProcess Serve::server_;

TEST_F(Serve, ApiMatchesSampleCommandAndRejectsBadRequests) {
  // GET /v1/models describes the run.
  auto models = client().Get("/v1/models");
  ASSERT_TRUE(models && models->status == 200);
  const Json m = Json::parse(models->body).at("models").at(0);
  EXPECT_EQ(m.at("name"), "tiny");
  EXPECT_EQ(m.at("model"), "ddpm");
  EXPECT_EQ(m.at("shape"), Json({1, 28, 28}));
  EXPECT_EQ(m.at("classes").size(), 10u);
  EXPECT_EQ(m.at("prompts"), false);
  EXPECT_EQ(m.at("defaults").at("sampler"), "ddim");
  bool has_euler_a = false;
  for (const auto& s : m.at("samplers")) has_euler_a = has_euler_a || s.at("name") == "euler_a";
  EXPECT_TRUE(has_euler_a);

  // The same image as `genmodels sample` with the same seed, class and settings.
  const auto [status, res] =
      post(R"({"model": "tiny", "n": 4, "seed": 7, "class": 2, "sampler": "euler_a",
               "steps": 3, "guidance": 2})");
  ASSERT_EQ(status, 200) << res.dump();
  ASSERT_EQ(res.at("images").size(), 1u);
  EXPECT_GE(res.at("nfe").get<int64_t>(), 3);
  EXPECT_GT(res.at("seconds").get<double>(), 0.0);
  const Result s =
      cli("sample " + run_ +
          " --n 4 --seed 7 --class 2 --sampler euler_a --steps 3 --guidance 2 --threads 1"
          " --out " +
          dir_ + "/cli");
  ASSERT_EQ(s.status, 0) << s.err;
  const torch::Tensor served = decode_png(png_of(res), dir_ + "/served.png");
  const torch::Tensor sampled = gm::io::read_image(dir_ + "/cli/grid.png");
  ASSERT_EQ(served.sizes(), sampled.sizes());
  EXPECT_TRUE(torch::equal(served, sampled));
  EXPECT_GT(served.to(torch::kFloat).std().item<double>(), 1.0);  // an image, not a blank
  auto served_text = gm::io::read_png_text(dir_ + "/served.png");
  EXPECT_EQ(served_text["parameters"], gm::io::read_png_text(dir_ + "/cli/grid.png")["parameters"]);
  EXPECT_EQ(res.at("images").at(0).at("parameters").at("parameters"), served_text["parameters"]);

  // Bad requests: 4xx with a one-line JSON error naming the field.
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"{bad", "malformed JSON"},
      {"[1, 2]", "JSON object"},
      {R"({"model": "nosuch"})", "model:"},
      {R"({"model": 3})", "model:"},
      {R"({"n": 0})", "n:"},
      {R"({"n": 100000})", "n:"},
      {R"({"n": "4"})", "n:"},
      {R"({"seed": -1})", "seed:"},
      {R"({"sampler": "bogus"})", "sampler:"},
      {R"({"steps": 0})", "steps:"},
      {R"({"steps": [3]})", "steps:"},
      {R"({"guidance": "lots"})", "guidance:"},
      {R"({"class": 10})", "class:"},
      {R"({"prompt": "a bag"})", "prompt:"},
      {R"({"temperature": 0.7})", "temperature:"},
      {R"({"set": {"model.base_channels": 4}})", "set:"},
      {R"({"async": "yes"})", "async:"},
      {R"({"bogus": 1})", "'bogus'"},
  };
  for (const auto& [body, needle] : bad) {
    auto r = client().Post("/v1/sample", body, "application/json");
    ASSERT_TRUE(r) << body;
    EXPECT_EQ(r->status, 400) << body;
    EXPECT_EQ(std::count(r->body.begin(), r->body.end(), '\n'), 1) << r->body;
    const Json e = Json::parse(r->body, nullptr, false);
    ASSERT_TRUE(e.is_object()) << r->body;
    EXPECT_NE(e.value("error", "").find(needle), std::string::npos) << body << " -> " << r->body;
  }
  for (const std::string path : {"/v1/jobs/nosuch", "/nope"}) {
    auto r = client().Get(path);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 404) << path;
    EXPECT_TRUE(Json::parse(r->body, nullptr, false).contains("error")) << r->body;
  }
}

TEST_F(Serve, CancelsJobsAndBoundsTheQueue) {
  // A long job (1000 ancestral steps): its progress moves, and DELETE stops it between steps.
  const std::string slow = R"({"n": 8, "sampler": "ddpm", "async": true, "seed": )";
  auto [status, job] = post(slow + "1}");
  ASSERT_EQ(status, 202) << job.dump();
  const std::string id = job.at("id");
  Json st;
  for (auto end = Clock::now() + std::chrono::seconds(30); Clock::now() < end;) {
    st = Json::parse(client().Get("/v1/jobs/" + id)->body);
    if (st.at("step").get<int64_t>() >= 2) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(st.at("state"), "running") << st.dump();
  EXPECT_EQ(st.at("total"), 1000);
  // The queue holds 4 behind the running job; the 5th waiting one is refused.
  std::vector<std::string> queued;
  for (int i = 0; i < 4; ++i) {
    auto [s, j] = post(slow + std::to_string(10 + i) + "}");
    ASSERT_EQ(s, 202) << j.dump();
    queued.push_back(j.at("id"));
  }
  auto [full, refused] = post(slow + "20}");
  EXPECT_EQ(full, 503) << refused.dump();
  EXPECT_NE(refused.value("error", "").find("queue"), std::string::npos) << refused.dump();

  auto del = client().Delete("/v1/jobs/" + id);
  ASSERT_TRUE(del);
  EXPECT_EQ(del->status, 200) << del->body;
  st = Json::parse(client().Get("/v1/jobs/" + id)->body);
  EXPECT_EQ(st.at("state"), "cancelled") << st.dump();
  EXPECT_LT(st.at("step").get<int64_t>(), 1000);
  for (const auto& q : queued) {
    auto d = client().Delete("/v1/jobs/" + q);
    ASSERT_TRUE(d);
    EXPECT_EQ(d->status, 200) << d->body;
    EXPECT_EQ(Json::parse(d->body).at("state"), "cancelled") << d->body;
  }
  auto again = client().Delete("/v1/jobs/" + id);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 409) << again->body;
  // Still serving.
  auto [ok, res] = post(R"({"n": 1, "steps": 1})");
  EXPECT_EQ(ok, 200) << res.dump();
}

TEST_F(Serve, LoadTestLosesAndCorruptsNothing) {
  // 200 requests from 4 concurrent clients (the queue holds them all), seeds 0..9 in turn.
  constexpr int kRequests = 200, kClients = 4, kSeeds = 10;
  std::vector<int> statuses(kRequests, 0);
  std::vector<std::string> pngs(kRequests), seeds(kRequests);
  std::atomic<int> next{0};
  const auto t0 = Clock::now();
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c)
    clients.emplace_back([&] {
      httplib::Client http("127.0.0.1", server_.port);
      http.set_read_timeout(60);
      for (int i; (i = next++) < kRequests;) {
        const std::string body = R"({"n": 2, "sampler": "ddim", "steps": 2, "seed": )" +
                                 std::to_string(i % kSeeds) + "}";
        auto r = http.Post("/v1/sample", body, "application/json");
        if (!r) continue;
        statuses[i] = r->status;
        const Json j = Json::parse(r->body, nullptr, false);
        if (r->status != 200 || !j.is_object()) continue;
        pngs[i] = png_of(j);
        seeds[i] = j.at("images").at(0).at("parameters").value("seed", "");
      }
    });
  for (auto& t : clients) t.join();
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  std::cout << "[ load     ] " << kRequests << " requests in " << secs << " s (" << kRequests / secs
            << " requests/s, " << kClients << " clients)\n";
  RecordProperty("requests_per_second", std::to_string(kRequests / secs));

  std::map<int, torch::Tensor> by_seed;
  for (int i = 0; i < kRequests; ++i) {
    ASSERT_EQ(statuses[i], 200) << "request " << i;
    EXPECT_EQ(seeds[i], std::to_string(i % kSeeds)) << "request " << i << " got another's image";
    EXPECT_EQ(pngs[i], pngs[i % kSeeds]) << "request " << i << ": same seed, other bytes";
    if (i < kSeeds) {
      const torch::Tensor px = decode_png(pngs[i], dir_ + "/load.png");
      EXPECT_EQ(px.size(0), 32) << "a 1 x 2 grid of 28 x 28 images with 2 px padding";
      EXPECT_EQ(px.size(1), 62);
      by_seed[i] = px;
    }
  }
  EXPECT_FALSE(torch::equal(by_seed[0], by_seed[1])) << "seeds 0 and 1 drew the same images";
}

TEST_F(Serve, WebPageShowsTheGridInHeadlessChromium) {
  const std::string chromium = "/usr/bin/chromium";
  if (!fs::exists(chromium)) GTEST_SKIP() << chromium << " is not installed";
  const std::string url = "'http://127.0.0.1:" + std::to_string(server_.port) +
                          "/?model=tiny&class=3&sampler=ddim&steps=3&n=4&seed=5&auto=1'";
  const std::string common = chromium + " --headless --no-sandbox --disable-gpu" +
                             " --user-data-dir=" + dir_ + "/chromium" +
                             " --virtual-time-budget=30000 ";
  // The page fills the form from the query string, samples, polls and shows the grid.
  const Result dom = shell("timeout 60 " + common + "--dump-dom " + url);
  ASSERT_EQ(dom.status, 0) << dom.err;
  EXPECT_NE(dom.out.find("data-state=\"done\""), std::string::npos) << dom.out;
  EXPECT_EQ(dom.out.find("data-errors"), std::string::npos) << dom.out;
  std::smatch match;
  const std::regex img("id=\"grid\"[^>]*src=\"data:image/png;base64,([A-Za-z0-9+/=]+)\"");
  ASSERT_TRUE(std::regex_search(dom.out, match, img)) << dom.out;
  const torch::Tensor shown = decode_png(gm::base64_decode(match[1]), dir_ + "/page.png");
  const auto [status, res] =
      post(R"({"n": 4, "seed": 5, "class": 3, "sampler": "ddim", "steps": 3})");
  ASSERT_EQ(status, 200) << res.dump();
  EXPECT_TRUE(torch::equal(shown, decode_png(png_of(res), dir_ + "/api.png")));

  // The screenshot shows it: the 512 px wide grid covers much of the 900 x 900 window.
  const Result shot = shell("timeout 60 " + common + "--window-size=900,900 --screenshot=" + dir_ +
                            "/shot.png " + url);
  ASSERT_EQ(shot.status, 0) << shot.err;
  const torch::Tensor px = gm::io::read_image(dir_ + "/shot.png", 3);
  const int64_t non_white = (px.to(torch::kInt).sum(-1) < 3 * 250).sum().item<int64_t>();
  EXPECT_GT(non_white, 150000) << "the screenshot shows no grid";
}

TEST_F(Serve, PortInUseIsAnError) {
  expect_error("serve " + run_ + " --port " + std::to_string(server_.port), "--port");
  expect_error("serve " + run_ + " --port 70000", "--port 70000");
  expect_error("serve " + dir_ + "/nosuchrun --port 0", "nosuchrun");
}

TEST_F(Serve, KeepsTheLoadedWeightsAndStopsOnSigint) {
  // A copy of the run that trains on while it is served: the server keeps the weights it loaded
  // (and says which step they are from), `genmodels sample` takes the new checkpoint.
  const std::string copy = dir_ + "/copy";
  fs::copy(run_, copy, fs::copy_options::recursive);
  ServerProcess other;
  other.port = gm::free_local_port();
  other.start({copy, "--port", std::to_string(other.port), "--threads", "1"}, dir_ + "/other.log");
  ASSERT_TRUE(other.wait_ready(60)) << gm::read_file(other.log);
  httplib::Client c("127.0.0.1", other.port);
  c.set_read_timeout(60);
  const std::string req = R"({"n": 4, "seed": 3, "steps": 2})";
  auto before = c.Post("/v1/sample", req, "application/json");
  ASSERT_TRUE(before && before->status == 200);
  const Result t = cli("train ddpm --steps 4 --resume --threads 1 --out " + copy);
  ASSERT_EQ(t.status, 0) << t.err;
  auto after = c.Post("/v1/sample", req, "application/json");
  ASSERT_TRUE(after && after->status == 200);
  const std::string png = png_of(Json::parse(after->body));
  EXPECT_EQ(png_of(Json::parse(before->body)), png);
  gm::write_file_atomic(dir_ + "/kept.png", png);
  EXPECT_EQ(gm::io::read_png_text(dir_ + "/kept.png")["checkpoint_step"], "2");
  ASSERT_EQ(
      cli("sample " + copy + " --n 4 --seed 3 --steps 2 --threads 1 --out " + dir_ + "/trained_on")
          .status,
      0);
  EXPECT_EQ(gm::io::read_png_text(dir_ + "/trained_on/grid.png")["checkpoint_step"], "4");

  // A long job is running and a client waits for it when SIGINT comes.
  std::thread waiting([&] {
    auto r = c.Post("/v1/sample", R"({"n": 8, "sampler": "ddpm"})", "application/json");
    if (r) {  // else the connection closed
      EXPECT_EQ(r->status, 503) << r->body;
    }
  });
  httplib::Client poll("127.0.0.1", other.port);
  for (auto end = Clock::now() + std::chrono::seconds(30); Clock::now() < end;) {
    auto r = poll.Get("/v1/jobs/j3");
    if (r && r->status == 200 && Json::parse(r->body).at("step").get<int64_t>() > 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const auto t0 = Clock::now();
  EXPECT_EQ(other.stop(SIGINT, 10), 0) << gm::read_file(other.log);
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 5.0);
  waiting.join();
  const std::string log = gm::read_file(other.log);
  EXPECT_NE(log.find("j3 copy n=8 seed=0: cancelled"), std::string::npos) << log;
  EXPECT_NE(log.find("server stopped"), std::string::npos) << log;
  poll.set_connection_timeout(1);
  EXPECT_FALSE(poll.Get("/v1/models")) << "still answering after SIGINT";
}

}  // namespace
