// Line charts as SVG text, for pages that must work offline (the HTML run report): shared axes
// with "nice" ticks (1, 2, 5 x 10^k), a linear or log-10 y axis, one polyline per series and a
// legend below the plot when there are several (or when asked).
#pragma once
#include <cstddef>
#include <string>
#include <vector>

namespace gm::io {

struct LineSeries {
  std::string name;       ///< legend label
  std::vector<double> x;  ///< ascending (e.g. steps)
  std::vector<double> y;  ///< one value per x; a non-finite value breaks the line
  std::string colour;     ///< "#rrggbb" ("" = series_colour of its index)
};

struct ChartOptions {
  std::string title;             ///< drawn above the plot
  std::string x_label = "step";  ///< drawn under the x axis
  int width = 400;               ///< px (the plot, axes and labels; the legend adds rows below)
  int height = 250;              ///< px
  bool log_y = false;            ///< log-10 y axis (values <= 0 are left out)
  bool legend = false;           ///< draw the legend for a single series too
  std::string id;                ///< id attribute of the <svg> ("" = none)
};

/// True when a log y axis shows `series` better: every finite value is positive and they span
/// more than a factor of 30 (at least one power of ten lies inside).
bool wants_log_y(const std::vector<LineSeries>& series);

/// An <svg> element drawing every series over shared axes.
/// Text (title, labels, names) is escaped.
std::string svg_line_chart(const std::vector<LineSeries>& series, const ChartOptions& options);

/// The colour of series i, "#rrggbb" (a ten-colour palette, cycled).
std::string series_colour(size_t i);

/// `text` with & < > " ' replaced by entities: safe in HTML/XML text and quoted attributes.
std::string xml_escape(const std::string& text);

}  // namespace gm::io
