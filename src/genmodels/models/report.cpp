// The HTML run report (see report.h). Everything is read from the run directory through
// train::RunDir; every string that comes from a file is escaped; images are embedded as base64
// data URIs and charts drawn as inline SVG (io/svg_chart.h), so the page needs no network (its
// Content-Security-Policy forbids any). A small inline script adds click-to-enlarge and, on load,
// publishes the boxes of the charts and images and any script error as attributes of <body>,
// which the headless-browser test reads back.
#include "genmodels/models/report.h"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "genmodels/core/atomic_file.h"
#include "genmodels/core/error.h"
#include "genmodels/core/json.h"
#include "genmodels/core/progress.h"
#include "genmodels/io/svg_chart.h"
#include "genmodels/train/checkpoint.h"
#include "genmodels/train/run_dir.h"

namespace gm {
namespace fs = std::filesystem;

namespace {

using io::xml_escape;

constexpr size_t kMaxPreviews = 16;             // timeline: evenly spaced, the last included
constexpr size_t kMaxFigures = 24;              // other PNGs of samples/, by name
constexpr uintmax_t kMaxImageBytes = 8u << 20;  // larger PNGs are listed, not embedded

struct Image {
  std::string path, caption;
  int64_t width = 0, height = 0;  // from the PNG header
};

// What the report shows of one run.
struct RunData {
  std::string path, label;
  std::string config;                                            // config.toml as written
  std::vector<std::pair<std::string, std::string>> config_keys;  // "data.name" -> "'moons'"
  std::string model;
  std::optional<int64_t> step;
  std::optional<double> elapsed;
  std::string saved;            // when checkpoint.pt was written
  std::string checkpoint_note;  // why the checkpoint tells nothing ("" = it did)
  std::vector<Json> records;    // metrics.jsonl, by step
  size_t bad_lines = 0;
  std::vector<Image> previews, figures;
  size_t previews_total = 0, figures_total = 0;
  std::vector<std::string> skipped_images;  // too large to embed
  Json eval, fit;                           // eval.json, report.json (null when absent)
};

std::string number(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.5g", v);
  return b;
}

std::string local_time(std::time_t t) {
  char b[32];
  std::strftime(b, sizeof b, "%Y-%m-%d %H:%M:%S", std::localtime(&t));
  return b;
}

std::string base64(const std::string& bytes) {
  static const char* const table =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t v = uint8_t(bytes[i]) << 16 | uint8_t(bytes[i + 1]) << 8 | uint8_t(bytes[i + 2]);
    for (int s : {18, 12, 6, 0}) out += table[(v >> s) & 63];
  }
  if (i < bytes.size()) {
    const bool two = i + 1 < bytes.size();
    const uint32_t v = uint8_t(bytes[i]) << 16 | (two ? uint8_t(bytes[i + 1]) << 8 : 0);
    out += table[(v >> 18) & 63];
    out += table[(v >> 12) & 63];
    out += two ? table[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

// Reads the IHDR size of a PNG; false when `bytes` is not a PNG.
bool png_size(const std::string& bytes, int64_t& w, int64_t& h) {
  static const char sig[] = "\x89PNG\r\n\x1a\n";
  if (bytes.size() < 24 || bytes.compare(0, 8, sig, 8) != 0 || bytes.compare(12, 4, "IHDR") != 0)
    return false;
  auto be32 = [&](size_t at) {
    return int64_t(uint8_t(bytes[at])) << 24 | int64_t(uint8_t(bytes[at + 1])) << 16 |
           int64_t(uint8_t(bytes[at + 2])) << 8 | int64_t(uint8_t(bytes[at + 3]));
  };
  w = be32(16);
  h = be32(20);
  return w > 0 && h > 0;
}

// "section.key" -> value text of a TOML file as config.toml writes it (one key per line).
std::vector<std::pair<std::string, std::string>> toml_keys(const std::string& text) {
  std::vector<std::pair<std::string, std::string>> out;
  std::string section;
  std::istringstream in(text);
  auto trim = [](std::string s) {
    const size_t a = s.find_first_not_of(" \t\r"), b = s.find_last_not_of(" \t\r");
    return a == std::string::npos ? std::string() : s.substr(a, b - a + 1);
  };
  for (std::string line; std::getline(in, line);) {
    line = trim(line);
    if (line.empty() || line[0] == '#') continue;
    if (line[0] == '[' && line.back() == ']') {
      section = trim(line.substr(1, line.size() - 2));
      continue;
    }
    const size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    const std::string key = trim(line.substr(0, eq));
    out.emplace_back(section.empty() ? key : section + "." + key, trim(line.substr(eq + 1)));
  }
  return out;
}

// Model name, step and wall time from the checkpoint; a checkpoint that cannot be read leaves a
// note in the report instead of failing it.
void read_checkpoint(RunData& r, const train::RunDir& dir) {
  const std::string path = dir.checkpoint();
  if (!fs::exists(path)) {
    r.checkpoint_note = "no checkpoint yet";
    return;
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) r.saved = local_time(st.st_mtime);
  try {
    auto archive = train::open_checkpoint(path);
    c10::IValue meta;
    if (archive.try_read("meta", meta) && meta.isString()) {
      const Json m = Json::parse(meta.toStringRef(), nullptr, /*allow_exceptions=*/false);
      if (m.is_object() && m.contains("model") && m["model"].is_string())
        r.model = m["model"].get<std::string>();
    }
    torch::Tensor step, elapsed;
    if (archive.try_read("step", step) && step.numel() == 1) r.step = step.item<int64_t>();
    if (archive.try_read("elapsed", elapsed) && elapsed.numel() == 1)
      r.elapsed = elapsed.item<double>();
  } catch (const std::exception& e) {
    r.checkpoint_note = e.what();
  }
}

// metrics.jsonl, tolerating a torn last line (a killed writer) and any other unreadable line.
void read_metrics(RunData& r, const train::RunDir& dir) {
  std::ifstream in(dir.metrics());
  if (!in) return;
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    Json j = Json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_object() && j.contains("step") && j["step"].is_number())
      r.records.push_back(std::move(j));
    else
      ++r.bad_lines;
  }
  std::stable_sort(r.records.begin(), r.records.end(), [](const Json& a, const Json& b) {
    return a["step"].get<double>() < b["step"].get<double>();
  });
}

// Embeds up to `limit` of `paths` (evenly spaced, the last one included).
std::vector<Image> pick_images(
    RunData& r, const std::vector<std::pair<std::string, std::string>>& paths,  // path, caption
    size_t limit) {
  std::vector<size_t> idx;
  if (paths.size() <= limit) {
    for (size_t i = 0; i < paths.size(); ++i) idx.push_back(i);
  } else {
    for (size_t k = 0; k < limit; ++k) idx.push_back(k * (paths.size() - 1) / (limit - 1));
  }
  std::vector<Image> out;
  for (size_t i : idx) {
    std::error_code ec;
    const uintmax_t size = fs::file_size(paths[i].first, ec);
    if (ec) continue;
    if (size > kMaxImageBytes) {
      r.skipped_images.push_back(paths[i].first);
      continue;
    }
    out.push_back({paths[i].first, paths[i].second});
  }
  return out;
}

void read_images(RunData& r, const train::RunDir& dir) {
  std::vector<std::pair<std::string, std::string>> previews, figures;
  std::vector<std::pair<long long, std::string>> steps;
  std::error_code ec;
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir.samples(), ec))
    if (e.path().extension() == ".png" && e.is_regular_file(ec))
      names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  for (const auto& name : names) {
    long long step = 0;
    char tail = 0;
    if (std::sscanf(name.c_str(), "step_%lld.pn%c", &step, &tail) == 2 && tail == 'g')
      steps.push_back({step, name});
    else
      figures.push_back({dir.figure(name), name});
  }
  std::sort(steps.begin(), steps.end());
  for (const auto& [step, name] : steps)
    previews.push_back({dir.figure(name), "step " + std::to_string(step)});
  r.previews_total = previews.size();
  r.figures_total = figures.size();
  r.previews = pick_images(r, previews, kMaxPreviews);
  if (figures.size() > kMaxFigures) figures.resize(kMaxFigures);
  r.figures = pick_images(r, figures, kMaxFigures);
}

Json read_json_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return nullptr;
  const std::string text{std::istreambuf_iterator<char>(in), {}};
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  return j.is_object() ? j : Json();
}

bool is_report_run(const std::string& path) {
  return fs::is_directory(path) &&
         (train::RunDir::is_run(path) || fs::exists(train::RunDir(path).config()));
}

void check_run(const std::string& path) {
  if (!is_report_run(path))
    throw Error("report: " + path +
                (fs::exists(path) ? " is not a run directory (no checkpoint.pt or config.toml)"
                                  : " does not exist") +
                "; give directories made by `genmodels train`");
}

RunData load_run_data(const std::string& path) {
  check_run(path);
  const train::RunDir dir(path);
  RunData r;
  r.path = path;
  {
    std::ifstream in(dir.config());
    r.config.assign(std::istreambuf_iterator<char>(in), {});
  }
  r.config_keys = toml_keys(r.config);
  read_checkpoint(r, dir);
  read_metrics(r, dir);
  read_images(r, dir);
  r.eval = read_json_file(dir.eval_json());
  r.fit = read_json_file(dir.report_json());
  return r;
}

std::string config_value(const RunData& r, const std::string& key) {
  for (const auto& [k, v] : r.config_keys)
    if (k == key) {
      if (v.size() >= 2 && (v.front() == '\'' || v.front() == '"') && v.back() == v.front())
        return v.substr(1, v.size() - 2);
      return v;
    }
  return "";
}

// Chart order: the losses, learning rates, gradient norms, the rest, then throughput and time.
int series_rank(const std::string& key) {
  if (key == "loss") return 0;
  if (key.rfind("loss", 0) == 0) return 1;
  if (key.find("loss") != std::string::npos) return 2;
  if (key.rfind("lr", 0) == 0) return 3;
  if (key.rfind("grad_norm", 0) == 0) return 4;
  if (key == "img_per_s" || key == "wall_time" || key == "dist_wait_ms") return 6;
  return 5;
}

std::vector<std::string> series_keys(const std::vector<RunData>& runs) {
  std::set<std::string> keys;
  for (const auto& r : runs)
    for (const auto& rec : r.records)
      for (const auto& [key, v] : rec.items())
        if (v.is_number() && key != "step" && key != "rollback_from") keys.insert(key);
  std::vector<std::string> out(keys.begin(), keys.end());
  std::stable_sort(out.begin(), out.end(), [](const std::string& a, const std::string& b) {
    return series_rank(a) < series_rank(b);
  });
  return out;
}

io::LineSeries series_of(const RunData& r, const std::string& key, const std::string& name) {
  io::LineSeries s{name, {}, {}, ""};
  for (const auto& rec : r.records)
    if (rec.contains(key) && rec[key].is_number()) {
      s.x.push_back(rec["step"].get<double>());
      s.y.push_back(rec[key].get<double>());
    }
  return s;
}

std::optional<double> last_value(const RunData& r, const std::string& key) {
  for (auto it = r.records.rbegin(); it != r.records.rend(); ++it)
    if (it->contains(key) && (*it)[key].is_number()) return (*it)[key].get<double>();
  return std::nullopt;
}

std::string id_part(const std::string& key) {
  std::string out;
  for (char c : key) out += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  return out;
}

// A scalar JSON value as a table cell.
std::string cell(const Json& v) {
  if (v.is_number_float()) return number(v.get<double>());
  if (v.is_string()) return xml_escape(v.get<std::string>());
  return xml_escape(v.dump());
}

// A table with one row per entry of `rows` (label, one cell per run; cells are HTML already).
std::string run_table(const std::vector<RunData>& runs, const std::string& corner,
                      const std::vector<std::pair<std::string, std::vector<std::string>>>& rows) {
  std::string h = "<table><thead><tr><th>" + xml_escape(corner) + "</th>";
  for (const auto& r : runs) h += "<th>" + xml_escape(r.label) + "</th>";
  h += "</tr></thead><tbody>";
  for (const auto& [label, cells] : rows) {
    h += "<tr><th>" + xml_escape(label) + "</th>";
    for (const auto& c : cells) h += "<td>" + c + "</td>";
    h += "</tr>";
  }
  return h + "</tbody></table>";
}

std::string summary_section(const std::vector<RunData>& runs,
                            const std::vector<std::string>& keys) {
  using Row = std::pair<std::string, std::vector<std::string>>;
  std::vector<Row> rows;
  auto add = [&](const std::string& label, const std::function<std::string(const RunData&)>& f) {
    Row row{label, {}};
    bool any = false;
    for (const auto& r : runs) {
      row.second.push_back(f(r));
      any = any || !row.second.back().empty();
    }
    if (any) rows.push_back(std::move(row));
  };
  add("model", [](const RunData& r) { return xml_escape(r.model); });
  add("data", [](const RunData& r) {
    const std::string b = config_value(r, "data.name_b");
    return xml_escape(config_value(r, "data.name") + (b.empty() ? "" : " / " + b));
  });
  add("checkpoint step", [](const RunData& r) {
    return r.step ? std::to_string(*r.step) : xml_escape(r.checkpoint_note);
  });
  add("wall time", [](const RunData& r) {
    return r.elapsed ? xml_escape(format_duration(*r.elapsed)) + " (" + number(*r.elapsed) + " s)"
                     : std::string();
  });
  add("checkpoint written", [](const RunData& r) { return xml_escape(r.saved); });
  add("last logged step", [](const RunData& r) {
    return r.records.empty() ? std::string() : number(r.records.back()["step"].get<double>());
  });
  for (const auto& key : keys)
    if (series_rank(key) <= 2 || key == "img_per_s")
      add("last " + key, [&key](const RunData& r) {
        const auto v = last_value(r, key);
        return v ? number(*v) : std::string();
      });
  std::set<std::string> fit_keys;
  std::vector<std::string> fit_order;
  for (const auto& r : runs)
    if (r.fit.is_object())
      for (const auto& [key, v] : r.fit.items())
        if (!v.is_structured() && fit_keys.insert(key).second) fit_order.push_back(key);
  for (const auto& key : fit_order)
    add("fit: " + key, [&key](const RunData& r) {
      return r.fit.is_object() && r.fit.contains(key) ? cell(r.fit[key]) : std::string();
    });
  add("metrics.jsonl", [](const RunData& r) {
    return r.bad_lines ? std::to_string(r.bad_lines) + " unreadable line(s) skipped"
                       : std::string();
  });
  return "<section id=\"summary\"><h2>Summary</h2>" + run_table(runs, "run", rows) + "</section>";
}

std::string eval_section(const std::vector<RunData>& runs) {
  std::vector<std::string> names;
  std::set<std::string> seen;
  bool any = false;
  for (const auto& r : runs)
    if (r.eval.is_object() && r.eval.contains("metrics") && r.eval["metrics"].is_object()) {
      any = true;
      for (const auto& [name, v] : r.eval["metrics"].items())
        if (seen.insert(name).second) names.push_back(name);
    }
  if (!any) return "";
  using Row = std::pair<std::string, std::vector<std::string>>;
  std::vector<Row> rows;
  for (const auto& name : names) {
    Row row{name, {}};
    for (const auto& r : runs) {
      std::string c;
      const Json* m = r.eval.is_object() && r.eval.contains("metrics") &&
                              r.eval["metrics"].is_object() && r.eval["metrics"].contains(name)
                          ? &r.eval["metrics"][name]
                          : nullptr;
      if (m && m->is_object() && m->contains("value") && (*m)["value"].is_number()) {
        c = number((*m)["value"].get<double>());
        if (m->contains("std") && (*m)["std"].is_number())
          c += " &plusmn; " + number((*m)["std"].get<double>());
        for (const auto& [k, v] : m->items())
          if (k != "value" && k != "std" && !v.is_structured())
            c += "<br><small>" + xml_escape(k) + ": " + cell(v) + "</small>";
      } else if (m && m->is_array()) {
        for (const auto& v : *m) c += (c.empty() ? "" : " ") + cell(v);
      } else if (m) {
        c = cell(*m);
      }
      row.second.push_back(c);
    }
    rows.push_back(std::move(row));
  }
  Row n{"samples", {}}, how{"drawn with", {}};
  for (const auto& r : runs) {
    n.second.push_back(r.eval.is_object() && r.eval.contains("n") ? cell(r.eval["n"]) : "");
    std::string h;
    if (r.eval.is_object() && r.eval.contains("sample") && r.eval["sample"].is_object())
      for (const char* k : {"sampler", "steps", "nfe", "guidance", "ema", "seed"})
        if (r.eval["sample"].contains(k))
          h += (h.empty() ? "" : ", ") + std::string(k) + " " + cell(r.eval["sample"][k]);
    how.second.push_back(h);
  }
  rows.push_back(std::move(n));
  rows.push_back(std::move(how));
  return "<section id=\"eval\"><h2>Evaluation</h2>" + run_table(runs, "metric", rows) +
         "</section>";
}

std::string curves_section(const std::vector<RunData>& runs, const std::vector<std::string>& keys) {
  if (keys.empty()) return "";
  std::string h = "<section id=\"curves\"><h2>Training curves</h2><div class=\"charts\">";
  for (const auto& key : keys) {
    std::vector<io::LineSeries> series;
    for (size_t i = 0; i < runs.size(); ++i) {  // the runs that log it, each in its colour
      io::LineSeries one = series_of(runs[i], key, runs.size() > 1 ? runs[i].label : key);
      one.colour = io::series_colour(i);
      if (!one.x.empty()) series.push_back(std::move(one));
    }
    io::ChartOptions o;
    o.title = key;
    o.id = "chart-" + id_part(key);
    o.log_y = io::wants_log_y(series);
    o.legend = runs.size() > 1;
    std::string svg = io::svg_line_chart(series, o);
    h += "<div class=\"chart\" data-gm-box=\"chart\" id=\"box-" + id_part(key) + "\">" + svg +
         "</div>";
  }
  return h + "</div></section>";
}

std::string image_html(const Image& img, const std::string& id, const std::string& kind) {
  std::ifstream in(img.path, std::ios::binary);
  const std::string bytes{std::istreambuf_iterator<char>(in), {}};
  int64_t w = 0, h = 0;
  if (!png_size(bytes, w, h))
    return "<figure><figcaption>" + xml_escape(img.caption) +
           " (not a readable PNG)</figcaption></figure>";
  // small grids are shown enlarged (pixelated), at most 4x and up to about 256 px
  const int64_t scale = std::clamp<int64_t>(256 / std::max(w, h), 1, 4);
  return "<figure><img class=\"gm-img\" id=\"" + id + "\" data-gm-box=\"" + kind + "\" width=\"" +
         std::to_string(w * scale) + "\" height=\"" + std::to_string(h * scale) + "\" alt=\"" +
         xml_escape(img.caption) + "\" src=\"data:image/png;base64," + base64(bytes) +
         "\"><figcaption>" + xml_escape(img.caption) + "</figcaption></figure>";
}

std::string images_section(const std::vector<RunData>& runs, bool previews) {
  std::string body;
  for (size_t i = 0; i < runs.size(); ++i) {
    const RunData& r = runs[i];
    const auto& images = previews ? r.previews : r.figures;
    if (images.empty()) continue;
    if (runs.size() > 1) body += "<h3>" + xml_escape(r.label) + "</h3>";
    const size_t total = previews ? r.previews_total : r.figures_total;
    if (total > images.size())
      body += "<p class=\"note\">" + std::to_string(images.size()) + " of " +
              std::to_string(total) + (previews ? " previews, evenly spaced" : " figures") + "</p>";
    body += std::string("<div class=\"") + (previews ? "timeline" : "figures") + "\">";
    for (size_t k = 0; k < images.size(); ++k)
      body += image_html(
          images[k],
          (previews ? "preview-" : "figure-") + std::to_string(i) + "-" + std::to_string(k),
          previews ? "preview" : "figure");
    body += "</div>";
  }
  if (body.empty()) return "";
  return previews ? "<section id=\"previews\"><h2>Preview grids</h2>" + body + "</section>"
                  : "<section id=\"figures\"><h2>Figures</h2>" + body + "</section>";
}

std::string config_section(const std::vector<RunData>& runs) {
  std::string h = "<section id=\"config\"><h2>Configuration</h2>";
  if (runs.size() > 1) {
    // the keys whose values differ between the runs
    std::vector<std::string> keys;
    std::set<std::string> seen;
    for (const auto& r : runs)
      for (const auto& [k, v] : r.config_keys)
        if (seen.insert(k).second) keys.push_back(k);
    std::vector<std::pair<std::string, std::vector<std::string>>> rows;
    for (const auto& key : keys) {
      std::vector<std::string> raw;
      for (const auto& r : runs) {
        std::string v = "&mdash;";
        for (const auto& [k, val] : r.config_keys)
          if (k == key) v = xml_escape(val);
        raw.push_back(v);
      }
      if (std::adjacent_find(raw.begin(), raw.end(), std::not_equal_to<>()) != raw.end())
        rows.push_back({key, raw});
    }
    h += rows.empty() ? "<p>The runs have the same configuration.</p>"
                      : "<h3>Keys that differ</h3>" + run_table(runs, "key", rows);
  }
  for (const auto& r : runs) {
    if (r.config.empty()) continue;
    if (runs.size() > 1)
      h += "<details><summary>config.toml of " + xml_escape(r.label) + "</summary>";
    h += "<pre class=\"config\">" + xml_escape(r.config) + "</pre>";
    if (runs.size() > 1) h += "</details>";
  }
  return h + "</section>";
}

const char* const kStyle = R"(
body{font-family:sans-serif;margin:16px 24px;color:#222;background:#fff}
h1{font-size:20px;margin:0 0 4px}h2{font-size:17px;margin:24px 0 8px;border-bottom:1px solid #ddd}
h3{font-size:14px;margin:12px 0 6px}p.meta,p.note{color:#666;font-size:12px;margin:2px 0 8px}
table{border-collapse:collapse;font-size:13px}th,td{border:1px solid #ddd;padding:3px 8px;
text-align:left;vertical-align:top}thead th{background:#f3f3f3}tbody th{font-weight:normal;color:#444}
.charts{display:flex;flex-wrap:wrap;gap:12px}.chart{border:1px solid #eee}
.timeline,.figures{display:flex;gap:12px;overflow-x:auto;padding-bottom:8px}
.figures{flex-wrap:wrap}figure{margin:0;flex:none}figcaption{font-size:12px;color:#555}
img.gm-img{image-rendering:pixelated;cursor:zoom-in;max-width:100%;height:auto;display:block}
pre.config{background:#f7f7f7;padding:8px;font-size:12px;max-height:480px;overflow:auto}
#gm-lightbox{position:fixed;inset:0;background:rgba(0,0,0,.8);display:flex;align-items:center;
justify-content:center;cursor:zoom-out}#gm-lightbox[hidden]{display:none}
#gm-lightbox img{max-width:95vw;max-height:95vh;image-rendering:pixelated}
)";

// Records script errors from the start (the test reads them back from <body data-gm-errors>).
const char* const kHeadScript = R"(<script>
window.gmErrors = [];
window.addEventListener('error', function (e) { window.gmErrors.push(String(e.message)); });
</script>)";

// Click an image to enlarge it; on load, publish the boxes of charts and images and the errors.
const char* const kBodyScript = R"(<div id="gm-lightbox" hidden></div>
<script>
(function () {
  var box = document.getElementById('gm-lightbox');
  box.addEventListener('click', function () { box.hidden = true; box.textContent = ''; });
  document.querySelectorAll('img.gm-img').forEach(function (img) {
    img.addEventListener('click', function () {
      var big = document.createElement('img');
      big.src = img.src;
      big.style.width = (img.width * 2) + 'px';
      box.textContent = '';
      box.appendChild(big);
      box.hidden = false;
    });
  });
  window.addEventListener('load', function () {
    var boxes = [];
    document.querySelectorAll('[data-gm-box]').forEach(function (el) {
      var r = el.getBoundingClientRect();
      boxes.push({id: el.id, kind: el.getAttribute('data-gm-box'), x: r.left + window.scrollX,
                  y: r.top + window.scrollY, w: r.width, h: r.height});
    });
    var b = document.body;
    b.setAttribute('data-gm-boxes', JSON.stringify(boxes));
    b.setAttribute('data-gm-errors', JSON.stringify(window.gmErrors));
    b.setAttribute('data-gm-height', String(document.documentElement.scrollHeight));
    b.setAttribute('data-gm-ready', 'yes');
  });
})();
</script>)";

}  // namespace

std::string report_html(const std::vector<std::string>& paths) {
  if (paths.empty()) throw Error("report: give one or more run directories");
  std::vector<RunData> runs;
  for (const auto& p : paths) runs.push_back(load_run_data(p));
  // labels: the directory names, or the paths as given when two names are the same
  std::map<std::string, int> count;
  for (auto& r : runs) {
    r.label = fs::path(r.path).lexically_normal().filename().string();
    if (r.label.empty())
      r.label = fs::path(r.path).lexically_normal().parent_path().filename().string();
    if (r.label.empty()) r.label = r.path;
    ++count[r.label];
  }
  for (auto& r : runs)
    if (count[r.label] > 1) r.label = r.path;

  std::string names;
  for (const auto& r : runs) names += (names.empty() ? "" : ", ") + r.label;
  const std::string title =
      (runs.size() > 1 ? "genmodels comparison: " : "genmodels report: ") + names;
  const std::vector<std::string> keys = series_keys(runs);

  std::string h =
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
      "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">"
      "<meta name=\"viewport\" content=\"width=device-width\"><title>" +
      xml_escape(title) + "</title><style>" + kStyle + "</style>" + kHeadScript + "</head><body>";
  h += "<h1>" + xml_escape(title) + "</h1><p class=\"meta\">";
  for (const auto& r : runs)
    h += xml_escape(fs::absolute(r.path).lexically_normal().string()) + "<br>";
  h += "written " + local_time(std::time(nullptr)) + " by genmodels report</p>";
  h += summary_section(runs, keys);
  h += eval_section(runs);
  h += curves_section(runs, keys);
  h += images_section(runs, /*previews=*/true);
  h += images_section(runs, /*previews=*/false);
  std::string skipped;
  for (const auto& r : runs)
    for (const auto& p : r.skipped_images) skipped += "<br>" + xml_escape(p);
  if (!skipped.empty())
    h += "<p class=\"note\">not embedded (over " + std::to_string(kMaxImageBytes >> 20) +
         " MB):" + skipped + "</p>";
  h += config_section(runs);
  h += kBodyScript;
  h += "</body></html>\n";
  return h;
}

std::string run_report(const ReportArgs& a) {
  if (a.runs.empty()) throw Error("report: give one or more run directories");
  for (const auto& run : a.runs) check_run(run);  // a bad path fails before any work
  std::string out = a.out;
  if (out.empty())
    out = a.runs.size() == 1 ? train::RunDir(a.runs[0]).path() + "/report.html" : "report.html";
  check_output_file(out, a.out.empty() ? "report:" : "--out");
  write_file_atomic(out, report_html(a.runs));
  return out;
}

void refresh_run_report(const std::string& run) {
  try {
    ReportArgs a;
    a.runs = {run};
    std::cerr << "genmodels: wrote " << run_report(a) << "\n";
  } catch (const std::exception& e) {
    std::cerr << "genmodels: warning: report.html not written: " << e.what() << "\n";
  }
}

}  // namespace gm
