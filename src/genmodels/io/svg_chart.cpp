// SVG line charts (see svg_chart.h). Ticks follow the usual 1-2-5 rule (Heckbert, "Nice numbers
// for graph labels", Graphics Gems 1990); long series are thinned to the min and max of each
// pixel column, which keeps spikes visible.
#include "genmodels/io/svg_chart.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

namespace gm::io {
namespace {

// Plot margins (px): room for the y tick labels, the title, and the x ticks and label.
constexpr double kLeft = 60, kRight = 14, kTop = 26, kBottom = 40;

std::string fixed1(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f", v);
  return b;
}

// The tick spacing giving about `target` intervals over `span`: 1, 2 or 5 times a power of ten.
double nice_step(double span, int target) {
  const double raw = span / target;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double f = raw / mag;
  return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

// "0", "0.25", "1e-05", "25k", "1.5M": short labels for tick values.
std::string tick_label(double v) {
  char b[32];
  const double a = std::fabs(v);
  if (a == 0) return "0";
  if (a >= 1e6 && std::fmod(a, 1e5) == 0)
    std::snprintf(b, sizeof b, "%gM", v / 1e6);
  else if (a >= 1e4 && std::fmod(a, 1e3) == 0)
    std::snprintf(b, sizeof b, "%gk", v / 1e3);
  else if (a >= 1e5 || a < 1e-3)
    std::snprintf(b, sizeof b, "%.3g", v);
  else
    std::snprintf(b, sizeof b, "%.6g", v);
  return b;
}

// One axis: its domain in plot space (log10 of the value on a log axis) and its ticks.
struct Axis {
  double lo = 0, hi = 1;
  bool log = false;
  std::vector<double> ticks;  // values (not logs)
  double to_plot(double v) const { return log ? std::log10(v) : v; }
  double frac(double v) const { return (to_plot(v) - lo) / (hi - lo); }
};

Axis linear_axis(double lo, double hi, int target) {
  if (!(hi > lo)) {  // one value: a band around it
    const double pad = lo != 0 ? std::fabs(lo) * 0.1 : 1.0;
    lo -= pad;
    hi += pad;
  }
  Axis a;
  const double step = nice_step(hi - lo, target);
  a.lo = std::floor(lo / step) * step;
  a.hi = std::ceil(hi / step) * step;
  const int n = static_cast<int>(std::lround((a.hi - a.lo) / step));
  for (int i = 0; i <= n; ++i) {
    double t = a.lo + i * step;
    if (std::fabs(t) < step * 1e-9) t = 0;  // no "-1.4e-17" for zero
    a.ticks.push_back(t);
  }
  return a;
}

Axis log_axis(double lo, double hi) {
  Axis a;
  a.log = true;
  a.lo = std::floor(std::log10(lo));
  a.hi = std::ceil(std::log10(hi));
  if (a.hi <= a.lo) a.hi = a.lo + 1;
  const int decades = static_cast<int>(a.hi - a.lo);
  const int every = std::max(1, (decades + 5) / 6);  // at most about six labelled decades
  for (int k = static_cast<int>(a.lo); k <= static_cast<int>(a.hi); k += every) {
    a.ticks.push_back(std::pow(10.0, k));
    if (decades <= 2 && k < a.hi)
      for (double m : {2.0, 5.0}) a.ticks.push_back(m * std::pow(10.0, k));
  }
  std::sort(a.ticks.begin(), a.ticks.end());
  return a;
}

bool usable(double y, bool log) { return std::isfinite(y) && (!log || y > 0); }

// Pixel points of a series, split where values are missing, each run thinned to the min and max
// of every pixel column when it has more points than the plot has columns.
std::vector<std::vector<std::pair<double, double>>> pixel_runs(const LineSeries& s, const Axis& ax,
                                                               const Axis& ay, double x0, double y0,
                                                               double pw, double ph) {
  std::vector<std::vector<std::pair<double, double>>> runs(1);
  const size_t n = std::min(s.x.size(), s.y.size());
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(s.x[i]) || !usable(s.y[i], ay.log)) {
      if (!runs.back().empty()) runs.emplace_back();
      continue;
    }
    runs.back().push_back({x0 + ax.frac(s.x[i]) * pw, y0 + ph - ay.frac(s.y[i]) * ph});
  }
  if (runs.back().empty()) runs.pop_back();
  for (auto& run : runs) {
    if (run.size() <= 2 * static_cast<size_t>(pw)) continue;
    std::vector<std::pair<double, double>> thin;
    for (size_t i = 0; i < run.size();) {
      const long column = std::lround(run[i].first);
      size_t lo = i, hi = i, j = i;
      for (; j < run.size() && std::lround(run[j].first) == column; ++j) {
        if (run[j].second < run[lo].second) lo = j;
        if (run[j].second > run[hi].second) hi = j;
      }
      thin.push_back(run[std::min(lo, hi)]);
      if (lo != hi) thin.push_back(run[std::max(lo, hi)]);
      i = j;
    }
    run = std::move(thin);
  }
  return runs;
}

}  // namespace

std::string xml_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string series_colour(size_t i) {
  // matplotlib's "tab10"
  static const char* const palette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                        "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
  return palette[i % 10];
}

bool wants_log_y(const std::vector<LineSeries>& series) {
  double lo = std::numeric_limits<double>::infinity(), hi = 0;
  for (const auto& s : series)
    for (double y : s.y) {
      if (!std::isfinite(y)) continue;
      if (y <= 0) return false;
      lo = std::min(lo, y);
      hi = std::max(hi, y);
    }
  return hi > 0 && hi > 30 * lo;
}

std::string svg_line_chart(const std::vector<LineSeries>& series, const ChartOptions& o) {
  const double w = o.width, h = o.height;
  const double pw = w - kLeft - kRight, ph = h - kTop - kBottom;

  // Legend rows under the plot (several series only): names wrap at the right margin.
  struct Entry {
    double x, y;
  };
  std::vector<Entry> legend;
  double legend_h = 0;
  if (series.size() > 1 || (o.legend && !series.empty())) {
    double x = kLeft, y = h + 4;
    for (const auto& s : series) {
      const double ew = 24 + 6.5 * s.name.size();
      if (x > kLeft && x + ew > w - kRight) {
        x = kLeft;
        y += 16;
      }
      legend.push_back({x, y});
      x += ew + 12;
    }
    legend_h = y + 16 - h;
  }

  double xlo = std::numeric_limits<double>::infinity(), xhi = -xlo, ylo = xlo, yhi = -xlo;
  for (const auto& s : series)
    for (size_t i = 0; i < std::min(s.x.size(), s.y.size()); ++i)
      if (std::isfinite(s.x[i]) && usable(s.y[i], o.log_y)) {
        xlo = std::min(xlo, s.x[i]);
        xhi = std::max(xhi, s.x[i]);
        ylo = std::min(ylo, s.y[i]);
        yhi = std::max(yhi, s.y[i]);
      }
  const bool empty = !(xhi >= xlo);

  std::string svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"gm-chart\"";
  if (!o.id.empty()) svg += " id=\"" + xml_escape(o.id) + "\"";
  svg += " width=\"" + fixed1(w) + "\" height=\"" + fixed1(h + legend_h) + "\" viewBox=\"0 0 " +
         fixed1(w) + " " + fixed1(h + legend_h) +
         "\" font-family=\"sans-serif\" font-size=\"11\" role=\"img\">";
  svg += "<rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>";
  svg += "<text x=\"" + fixed1(kLeft) + "\" y=\"16\" font-size=\"13\" font-weight=\"bold\">" +
         xml_escape(o.title) +
         (o.log_y ? " <tspan font-weight=\"normal\">(log scale)</tspan>" : "") + "</text>";
  if (empty) {
    svg += "<text x=\"" + fixed1(w / 2) + "\" y=\"" + fixed1(h / 2) +
           "\" text-anchor=\"middle\" fill=\"#888\">no data</text></svg>";
    return svg;
  }

  const Axis ax = linear_axis(xlo, xhi, 5);
  const Axis ay = o.log_y ? log_axis(ylo, yhi) : linear_axis(ylo, yhi, 4);
  const double x0 = kLeft, y0 = kTop;

  // grid, ticks and their labels
  for (double t : ay.ticks) {
    const double y = y0 + ph - ay.frac(t) * ph;
    svg += "<line x1=\"" + fixed1(x0) + "\" x2=\"" + fixed1(x0 + pw) + "\" y1=\"" + fixed1(y) +
           "\" y2=\"" + fixed1(y) + "\" stroke=\"#e4e4e4\"/>";
    svg += "<text x=\"" + fixed1(x0 - 5) + "\" y=\"" + fixed1(y + 4) +
           "\" text-anchor=\"end\" fill=\"#444\">" + xml_escape(tick_label(t)) + "</text>";
  }
  for (double t : ax.ticks) {
    const double x = x0 + ax.frac(t) * pw;
    svg += "<line x1=\"" + fixed1(x) + "\" x2=\"" + fixed1(x) + "\" y1=\"" + fixed1(y0 + ph) +
           "\" y2=\"" + fixed1(y0 + ph + 4) + "\" stroke=\"#444\"/>";
    svg += "<text x=\"" + fixed1(x) + "\" y=\"" + fixed1(y0 + ph + 16) +
           "\" text-anchor=\"middle\" fill=\"#444\">" + xml_escape(tick_label(t)) + "</text>";
  }
  svg += "<rect x=\"" + fixed1(x0) + "\" y=\"" + fixed1(y0) + "\" width=\"" + fixed1(pw) +
         "\" height=\"" + fixed1(ph) + "\" fill=\"none\" stroke=\"#444\"/>";
  svg += "<text x=\"" + fixed1(x0 + pw / 2) + "\" y=\"" + fixed1(h - 6) +
         "\" text-anchor=\"middle\" fill=\"#444\">" + xml_escape(o.x_label) + "</text>";

  // the curves, then their legend
  for (size_t i = 0; i < series.size(); ++i) {
    const auto& s = series[i];
    const std::string colour = s.colour.empty() ? series_colour(i) : xml_escape(s.colour);
    const std::string name = xml_escape(s.name);
    const auto runs = pixel_runs(s, ax, ay, x0, y0, pw, ph);
    size_t points = 0;
    for (const auto& run : runs) points += run.size();
    svg += "<g class=\"gm-series\" stroke=\"" + colour + "\" fill=\"" + colour + "\"><title>" +
           name + "</title>";
    for (const auto& run : runs) {
      if (run.size() > 1) {
        svg += "<polyline fill=\"none\" stroke-width=\"1.8\" stroke-linejoin=\"round\" points=\"";
        for (const auto& [px, py] : run) svg += fixed1(px) + "," + fixed1(py) + " ";
        svg.back() = '"';
        svg += "/>";
      }
      if (points <= 40 || run.size() == 1)  // few points: mark each one
        for (const auto& [px, py] : run)
          svg += "<circle cx=\"" + fixed1(px) + "\" cy=\"" + fixed1(py) + "\" r=\"2.5\"/>";
    }
    svg += "</g>";
    if (!legend.empty()) {
      const Entry& e = legend[i];
      svg += "<line x1=\"" + fixed1(e.x) + "\" x2=\"" + fixed1(e.x + 18) + "\" y1=\"" +
             fixed1(e.y + 6) + "\" y2=\"" + fixed1(e.y + 6) + "\" stroke=\"" + colour +
             "\" stroke-width=\"3\"/>";
      svg +=
          "<text x=\"" + fixed1(e.x + 24) + "\" y=\"" + fixed1(e.y + 10) + "\">" + name + "</text>";
    }
  }
  svg += "</svg>";
  return svg;
}

}  // namespace gm::io
