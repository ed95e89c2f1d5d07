// The HTML run report: one self-contained page (inline SVG charts, images as data URIs, no
// network) with a run's checkpoint step and wall time, its training curves (every numeric series
// of metrics.jsonl), evaluation table (eval.json), closed-form fit report (report.json), preview
// grids as a timeline, model figures and resolved config; several runs are compared (one curve
// per run in each chart, one table, the config keys that differ).
#pragma once
#include <string>
#include <vector>

namespace gm {

struct ReportArgs {
  std::vector<std::string> runs;  ///< run directories
  std::string out;  ///< HTML file ("" = RUN/report.html for one run, report.html for several)
};

/// The report's HTML (nothing written). Throws gm::Error naming a path that is not a run.
std::string report_html(const std::vector<std::string>& runs);

/// Writes report_html(args.runs) atomically and returns the file's path.
std::string run_report(const ReportArgs& args);

/// Rewrites RUN/report.html (after train and eval); a failure is a warning on stderr, since the
/// command's own work is done.
void refresh_run_report(const std::string& run);

}  // namespace gm
