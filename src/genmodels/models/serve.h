// `genmodels serve RUN...`: a sampling server on cpp-httplib. Each run is loaded once at start-up
// and kept in memory; one worker thread samples one request at a time while the others wait in
// a bounded queue (beyond it: 503). JSON API:
// - GET /v1/models: the loaded runs (model, data shape, classes, prompts, samplers, defaults).
// - POST /v1/sample {model, n, seed, class | prompt, sampler, steps, guidance, ..., async}:
//   {id, images: [{png (base64), parameters}], nfe, seconds}; with async, 202 and the job id.
// - GET /v1/jobs/ID: state (queued, running, done, failed, cancelled), step / total, and an
//   async job's result (the last 64 finished jobs are kept).
// - DELETE /v1/jobs/ID: cancels a queued or running job (checked between sampler steps).
// - GET /: a self-contained web page that drives the API.
// The PNGs are written by write_sample_image, so they carry the same text chunks (and bytes) as
// `genmodels sample` writes for the same run, seed and settings. Bad requests get a 4xx with a
// one-line {"error": "..."} naming the field.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace gm {

struct ServeArgs {
  std::vector<std::string> runs;   ///< run directories, loaded once
  std::string host = "127.0.0.1";  ///< listen address (loopback unless told otherwise)
  int port = 8080;                 ///< 0 = any free port (printed at start-up)
  int threads = 0;                 ///< sampling threads (0 = all cores)
  int64_t queue = 16;              ///< jobs that may wait behind the running one; more get 503
  int64_t max_n = 256;             ///< the largest n a request may ask for
  bool quiet = false;              ///< no line per finished job on stderr
};

/// Loads the runs and serves until SIGINT/SIGTERM, then returns. Throws gm::Error when a run
/// cannot be loaded or the address cannot be bound (e.g. the port is in use).
void run_serve(const ServeArgs& args);

/// Standard base64 (RFC 4648, with padding).
std::string base64_encode(const std::string& bytes);
/// Inverse of base64_encode; throws gm::Error on characters outside the alphabet.
std::string base64_decode(const std::string& text);

/// The web page served at `/` (inline HTML and JavaScript, no other resources).
const std::string& serve_page();

}  // namespace gm
