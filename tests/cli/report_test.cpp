// `genmodels report`: the HTML page of one run and the comparison of two, rendered in headless
// Chromium. The page's inline script publishes on load whether it ran, any script error and the
// boxes of its charts and images as <body> attributes (read back with --dump-dom); a screenshot
// at the same width shows the curves in their series colours and the previews as real pixels.
#include "genmodels/models/report.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "cli/cli_util.h"
#include "genmodels/core/json.h"
#include "genmodels/io/image.h"
#include "genmodels/io/svg_chart.h"

namespace fs = std::filesystem;
using namespace gm::test::cli;

namespace {

const char* const kChromium = "/usr/bin/chromium";
constexpr int kWidth = 1280;

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

// The value of attribute `name` of <body> in Chromium's serialised DOM, entities decoded.
std::string body_attribute(const std::string& dom, const std::string& name) {
  const size_t body = dom.find("<body");
  const size_t end = dom.find('>', body);
  const size_t at = dom.find(" " + name + "=\"", body);
  if (body == std::string::npos || at == std::string::npos || at > end) return "";
  const size_t start = at + name.size() + 3;
  std::string raw = dom.substr(start, dom.find('"', start) - start), out;
  for (size_t i = 0; i < raw.size(); ++i) {
    bool decoded = false;
    for (const auto& [entity, c] : {std::pair<const char*, char>{"&quot;", '"'},
                                    {"&amp;", '&'},
                                    {"&lt;", '<'},
                                    {"&gt;", '>'},
                                    {"&nbsp;", ' '}})
      if (raw.compare(i, std::strlen(entity), entity) == 0) {
        out += c;
        i += std::strlen(entity) - 1;
        decoded = true;
        break;
      }
    if (!decoded) out += raw[i];
  }
  return out;
}

struct Page {
  std::string ready, errors;
  gm::Json boxes;        // [{id, kind, x, y, w, h}] in CSS px = screenshot px
  torch::Tensor pixels;  // the screenshot, uint8 H x W x 3
};

// Loads `html` in headless Chromium: the DOM after the load event, then a screenshot of the whole
// page (the window as tall as the document, device scale 1).
Page render(const std::string& html, const std::string& dir) {
  const std::string chromium = std::string("timeout 120 ") + kChromium +
                               " --headless --no-sandbox --disable-gpu --hide-scrollbars"
                               " --force-device-scale-factor=1 --user-data-dir=" +
                               dir + "/chromium-profile";
  const std::string url = "file://" + fs::absolute(html).string();
  Result dom = shell(chromium + " --window-size=" + std::to_string(kWidth) + ",900 --dump-dom " +
                     url + " 2>/dev/null");
  EXPECT_EQ(dom.status, 0) << dom.err;
  Page p;
  p.ready = body_attribute(dom.out, "data-gm-ready");
  p.errors = body_attribute(dom.out, "data-gm-errors");
  p.boxes = gm::Json::parse(body_attribute(dom.out, "data-gm-boxes"), nullptr, false);
  const int height =
      std::clamp(std::atoi(body_attribute(dom.out, "data-gm-height").c_str()), 200, 8000);
  const std::string shot = dir + "/" + fs::path(html).stem().string() + ".png";
  Result s = shell(chromium + " --window-size=" + std::to_string(kWidth) + "," +
                   std::to_string(height) + " --screenshot=" + shot + " " + url);
  EXPECT_EQ(s.status, 0) << s.err;
  if (fs::exists(shot)) p.pixels = gm::io::read_image(shot, 3);
  return p;
}

const gm::Json* box(const Page& p, const std::string& id) {
  if (!p.boxes.is_array()) return nullptr;
  for (const auto& b : p.boxes)
    if (b.value("id", "") == id) return &b;
  return nullptr;
}

// The pixels of the screenshot inside a box, uint8 h x w x 3 (empty when off the screenshot).
torch::Tensor crop(const Page& p, const gm::Json& b) {
  const int64_t x0 = std::lround(b["x"].get<double>()), y0 = std::lround(b["y"].get<double>());
  const int64_t x1 = std::min<int64_t>(x0 + std::lround(b["w"].get<double>()), p.pixels.size(1));
  const int64_t y1 = std::min<int64_t>(y0 + std::lround(b["h"].get<double>()), p.pixels.size(0));
  if (x0 < 0 || y0 < 0 || x1 <= x0 || y1 <= y0) return torch::empty({0, 0, 3}, torch::kUInt8);
  return p.pixels.slice(0, y0, y1).slice(1, x0, x1);
}

// Pixels of a box within `tol` of colour "#rrggbb" in every channel.
int64_t count_colour(const torch::Tensor& region, const std::string& hex, int tol = 30) {
  const auto rgb = torch::tensor(
      {std::stoi(hex.substr(1, 2), nullptr, 16), std::stoi(hex.substr(3, 2), nullptr, 16),
       std::stoi(hex.substr(5, 2), nullptr, 16)},
      torch::kInt32);
  const auto d = (region.to(torch::kInt32) - rgb).abs().amax(-1);
  return (d <= tol).sum().item<int64_t>();
}

// The page loaded, its scripts ran without an error, and it published its boxes.
void expect_clean_load(const Page& p) {
  EXPECT_EQ(p.ready, "yes") << "the report's script did not run";
  EXPECT_EQ(p.errors, "[]");
  ASSERT_TRUE(p.boxes.is_array());
  ASSERT_TRUE(p.pixels.defined()) << "no screenshot";
}

// The chart `id` shows each colour's curve: enough pixels of it inside the chart's box.
void expect_curves(const Page& p, const std::string& id, const std::vector<std::string>& colours) {
  const gm::Json* b = box(p, id);
  ASSERT_NE(b, nullptr) << "no chart " << id;
  const torch::Tensor region = crop(p, *b);
  ASSERT_GT(region.numel(), 0) << id << " is off the screenshot";
  for (const auto& c : colours) EXPECT_GT(count_colour(region, c), 40) << id << " colour " << c;
}

// An embedded image shows content: varied pixels, mostly unlike the white page.
void expect_image(const Page& p, const std::string& id) {
  const gm::Json* b = box(p, id);
  ASSERT_NE(b, nullptr) << "no image " << id;
  EXPECT_GE(b->at("w").get<double>(), 32);
  const torch::Tensor region = crop(p, *b).to(torch::kFloat32);
  ASSERT_GT(region.numel(), 0) << id << " is off the screenshot";
  const double not_white = (region.amin(-1) < 240).to(torch::kFloat32).mean().item<double>();
  EXPECT_GT(not_white, 0.3) << id;
  EXPECT_GT(region.std().item<double>(), 10) << id;
}

bool have_chromium() { return fs::exists(kChromium); }

}  // namespace

TEST(Report, SingleAndComparisonRenderInChromium) {
  const std::string dir = fresh("report");
  fs::create_directories(dir);
  const std::string toy = dir + "/moons", gan = dir + "/gan";
  // a diffusion model on a 2-D toy (scalar curves), then a tiny image GAN (two losses, previews)
  Result t =
      cli("train ddpm --data moons --steps 40 --set model.mlp_hidden=16 --set "
          "train.log_every=5 --threads 2 --out " +
          toy);
  ASSERT_EQ(t.status, 0) << t.err;
  t =
      cli("train dcgan --data fashion-mnist --steps 8 --set data.limit=256 --set "
          "data.image_size=16 --set train.batch_size=16 --set train.sample_every=4 --set "
          "train.log_every=2 --threads 2 --out " +
          gan);
  ASSERT_EQ(t.status, 0) << t.err;

  // train wrote each run's report; eval rewrites it with the evaluation table
  const std::string before = slurp(toy + "/report.html");
  EXPECT_NE(before.find("id=\"curves\""), std::string::npos);
  EXPECT_EQ(before.find("id=\"eval\""), std::string::npos);
  EXPECT_NE(slurp(gan + "/report.html").find("data:image/png;base64,"), std::string::npos);
  ASSERT_EQ(cli("eval " + toy + " --n 200 --threads 2").status, 0);
  const std::string after = slurp(toy + "/report.html");
  EXPECT_NE(after.find("id=\"eval\""), std::string::npos);
  EXPECT_NE(after.find(">swd<"), std::string::npos);

  // `report` itself: one run (default RUN/report.html) and two (--out)
  Result r = cli("report " + gan);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, gan + "/report.html\n");
  const std::string single = slurp(gan + "/report.html");
  EXPECT_NE(single.find("step 8"), std::string::npos) << "the last preview is in the timeline";
  EXPECT_NE(single.find("id=\"chart-loss_d\""), std::string::npos);
  EXPECT_NE(single.find("id=\"chart-loss_g\""), std::string::npos);
  EXPECT_EQ(single.find("http://"), single.find("http://www.w3.org/2000/svg"))
      << "no link but the SVG namespace";
  const std::string both = dir + "/compare.html";
  r = cli("report " + toy + " " + gan + " --out " + both);
  ASSERT_EQ(r.status, 0) << r.err;
  const std::string cmp = slurp(both);
  EXPECT_NE(cmp.find("genmodels comparison: moons, gan"), std::string::npos);
  EXPECT_NE(cmp.find("Keys that differ"), std::string::npos);
  // several runs without --out: report.html in the working directory
  ASSERT_EQ(shell("cd " + dir + " && " + GM_CLI + " report moons gan").status, 0);
  EXPECT_TRUE(fs::exists(dir + "/report.html"));

  if (!have_chromium()) GTEST_SKIP() << kChromium << " is missing (scripts/setup installs it)";
  const Page one = render(gan + "/report.html", dir);
  expect_clean_load(one);
  expect_curves(one, "box-loss_d", {gm::io::series_colour(0)});
  expect_image(one, "preview-0-0");
  expect_image(one, "preview-0-1");

  const Page two = render(both, dir);
  expect_clean_load(two);
  // a series both runs log: one curve per run, in the first two colours
  expect_curves(two, "box-wall_time", {gm::io::series_colour(0), gm::io::series_colour(1)});
  expect_curves(two, "box-loss", {gm::io::series_colour(0)});
  expect_image(two, "preview-1-0");  // run 1 (the GAN) has the previews
}

TEST(Report, WithoutEvalOrPreviewsRendersAndEscapes) {
  // a run as an interrupted first minute leaves it: config and metrics, nothing else
  const std::string dir = fresh("report_bare"), run = dir + "/bare";
  fs::create_directories(run);
  write(run + "/config.toml",
        "seed = 0\n[data]\nname = '<script>alert(\"x\")</script>'\n[model]\nnote = 'a & b'\n");
  std::string metrics;
  for (int s = 10; s <= 200; s += 10)
    metrics += "{\"step\":" + std::to_string(s) + ",\"loss\":" + std::to_string(10000.0 / (s * s)) +
               ",\"loss_<b>\":" + std::to_string(s) + "}\n";
  write(run + "/metrics.jsonl", metrics + "{\"step\":210,\"lo");  // a torn last line
  const std::string html = gm::report_html({run});
  EXPECT_EQ(html.find("id=\"eval\""), std::string::npos);
  EXPECT_EQ(html.find("id=\"previews\""), std::string::npos);
  EXPECT_EQ(html.find("id=\"figures\""), std::string::npos);
  EXPECT_NE(html.find("no checkpoint yet"), std::string::npos);
  EXPECT_NE(html.find("1 unreadable line(s) skipped"), std::string::npos);
  EXPECT_NE(html.find("id=\"chart-loss\""), std::string::npos);
  EXPECT_NE(html.find("(log scale)"), std::string::npos) << "loss falls 400x";
  // what came from files is text, not markup
  EXPECT_EQ(html.find("<script>alert"), std::string::npos);
  EXPECT_NE(html.find("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"), std::string::npos);
  EXPECT_EQ(html.find("loss_<b>"), std::string::npos);
  EXPECT_NE(html.find("loss_&lt;b&gt;"), std::string::npos);
  EXPECT_NE(html.find("a &amp; b"), std::string::npos);

  // an evaluation whose names carry markup is escaped too
  write(run + "/eval.json",
        R"({"metrics": {"<i>fid</i>": {"value": 12.5, "std": 0.5}}, "n": 10,
            "sample": {"sampler": "<img src=x onerror=alert(1)>"}})");
  const std::string with_eval = gm::report_html({run});
  EXPECT_NE(with_eval.find("&lt;i&gt;fid&lt;/i&gt;"), std::string::npos);
  EXPECT_NE(with_eval.find("12.5 &plusmn; 0.5"), std::string::npos);
  EXPECT_EQ(with_eval.find("<img src=x"), std::string::npos);
  fs::remove(run + "/eval.json");

  ASSERT_EQ(cli("report " + run).status, 0);
  if (!have_chromium()) GTEST_SKIP() << kChromium << " is missing (scripts/setup installs it)";
  const Page p = render(run + "/report.html", dir);
  expect_clean_load(p);
  expect_curves(p, "box-loss", {gm::io::series_colour(0)});
  // the checks can fail: no pixel of a colour the chart does not use, and an error is seen
  ASSERT_NE(box(p, "box-loss"), nullptr);
  EXPECT_EQ(count_colour(crop(p, *box(p, "box-loss")), gm::io::series_colour(1)), 0);
  std::string broken = slurp(run + "/report.html");
  broken.insert(broken.rfind("</body>"), "<script>no_such_function();</script>");
  write(dir + "/broken.html", broken);
  EXPECT_NE(render(dir + "/broken.html", dir).errors.find("no_such_function"), std::string::npos);
}

TEST(Report, NotARunIsOneLineError) {
  const std::string dir = fresh("report_bad");
  fs::create_directories(dir + "/empty");
  expect_error("report " + dir + "/none", "does not exist");
  expect_error("report " + dir + "/empty", "is not a run directory");
  expect_error("report", "runs is required");
}
