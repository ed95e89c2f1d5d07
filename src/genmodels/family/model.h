// The contract every family implements. A family is one folder (its algorithms plus a
// <family>_model.cpp that implements Model and returns its ModelEntry) and one row in
// models/registry.cpp: build from a config, a train step over named optimizers (train/step.h),
// the EMA targets, sampling, a likelihood if it has one, figures. The trainer, checkpoints, EMA,
// logging and evaluation are shared.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "genmodels/core/config.h"
#include "genmodels/core/json.h"
#include "genmodels/core/options.h"
#include "genmodels/data/dataset.h"
#include "genmodels/train/run_dir.h"
#include "genmodels/train/step.h"
#include "genmodels/train/trainer.h"

namespace gm {

namespace sampling {
class BatchCache;
}

/// What a model needs to know about its data; stored in the checkpoint so sampling needs no data.
struct DataInfo {
  std::string dataset;                   ///< the spec it was trained on
  std::vector<int64_t> shape;            ///< one example: {C, H, W} or {D}
  std::vector<std::string> class_names;  ///< empty when unlabeled
  int64_t channels_a = 0;  ///< > 0: two-domain data, domain A's channels first (data/paired.h)
  std::string dataset_b;   ///< unpaired translation: domain B's spec (data.name_b)
  bool is_image() const { return shape.size() == 3; }
  int64_t num_classes() const { return static_cast<int64_t>(class_names.size()); }
  Json to_json() const;
  static DataInfo from_json(const Json& j);
};

/// What to draw. Every other sampling setting is a sample.* config key the model read when it
/// was built (stored in the run, overridable at sample time).
struct SampleRequest {
  int64_t n = 64;            ///< number of samples
  int64_t class_label = -1;  ///< -1: every class in turn (conditional models)
  std::string prompt;        ///< text-conditional models: the text to draw ("" = by class)
  /// Diffusion and score models: (x_t, sigma) -> the scaled gradient of log p(c | x_t) added to
  /// the score (classifier or CLIP guidance; diffusion::Conditioning::gradient_guide).
  std::function<torch::Tensor(const torch::Tensor&, const torch::Tensor&)> gradient_guide;
  uint64_t seed = 0;
  std::function<void(int64_t, int64_t)> progress;  ///< (done, total)
  /// Diffusion and score models: keep finished batches here and resume from them
  /// (sampling/batch_cache.h); other families sample in seconds and refuse it.
  std::shared_ptr<const sampling::BatchCache> batch_cache;
};

struct SampleResult {
  torch::Tensor x;       ///< float samples: images in [-1, 1] N x C x H x W, or N x D
  torch::Tensor labels;  ///< int64 N requested classes, undefined when unconditional
  std::map<std::string, std::string> params;  ///< how to make it again (PNG metadata)
  int64_t nrow = 0;                           ///< images per grid row (0 = by class, or square)
};

/// Everything one `genmodels train` invocation hands the model.
struct TrainSession {
  const Config& config;
  const DataInfo& info;
  const data::Dataset& train;
  std::function<data::Dataset()> load_test;  ///< the test split, loaded on demand
  train::RunDir run;
  Json meta;  ///< stored in every checkpoint (model, config_toml, data, format)
  bool resume = false;
  int64_t stop_at = 0;  ///< behave as if interrupted after this step (tests)
  uint64_t seed = 0;
  int threads = 1;  ///< CPU threads in use (for the start-up line)
  /// Creates the run directory and writes the resolved config.toml into it.
  void save_config() const;
};

class Model : public train::Trainable {
 public:
  /// Draws samples (call under the weights you want, e.g. EMA).
  virtual SampleResult sample(const SampleRequest& request) = 0;

  /// Trains the model into `s.run`. The default runs the shared gradient Trainer over
  /// train_step(); closed-form models (GDA, naive Bayes) override it to fit in one call. Returns
  /// a report ({} for gradient training; accuracy, bits/dim, ... for fits).
  virtual Json train(TrainSession& s);

  /// The train.eval_every monitor of the default training (class entropy of samples under the
  /// Fashion-MNIST evaluator, mode-collapse warning); empty when off or not applicable.
  train::MonitorFn class_monitor(const TrainSession& s, int64_t every);
  /// The monitor the default training uses: class_monitor, unless the model watches something
  /// else (CLIP: zero-shot accuracy).
  virtual train::MonitorFn monitor(const TrainSession& s, int64_t every) {
    return class_monitor(s, every);
  }
  /// False for models that do not draw images (CLIP): no preview grids while training.
  virtual bool generates() const { return true; }

  /// Contrastive text-image models (CLIP): zero-shot classification of the first `n` test
  /// examples (0 = all) from prompt ensembles, and image <-> caption retrieval. Others throw.
  virtual Json zero_shot(const data::Dataset& test, int64_t n, uint64_t seed);
  /// Contrastive text-image models (CLIP): the cosine similarity of each float [-1, 1] image with
  /// its text (N images, N texts) -> N values. Others throw.
  virtual torch::Tensor image_text_similarity(const torch::Tensor& images,
                                              const std::vector<std::string>& texts);
  /// Text encoders (CLIP): unit-length text features of `texts`, float N x E on the CPU, in
  /// batches; the text is cleaned as the model's tokenizer expects. Others throw.
  virtual torch::Tensor text_features(const std::vector<std::string>& texts);
  /// CLIP models: exp(logit_scale) * the cosine similarity of the features of noisy images x_t
  /// (float N x C x H x W, the variance-preserving (x0 + sigma n) / sqrt(1 + sigma^2)) at noise
  /// levels sigma (float N) with `text` features (1 x E or N x E) -> N, differentiable in x_t
  /// (CLIP guidance). A noise-conditional encoder (model.noised_share > 0) is told sigma; a plain
  /// one sees x_t as if it were clean. Others throw.
  virtual torch::Tensor noisy_image_text_logits(const torch::Tensor& x_t,
                                                const torch::Tensor& sigma,
                                                const torch::Tensor& text);
  /// Text encoders trained on captions made from labelled images (CLIP on Fashion-MNIST): one
  /// caption per image of `images` (float [-1, 1]) with class `labels`, drawn as the model's own
  /// training draws them (training wording, measured attribute words) from `seed`. Empty when
  /// the model cannot caption images (trained on a caption folder). Others throw.
  virtual std::vector<std::string> caption_images(const torch::Tensor& images,
                                                  const torch::Tensor& labels, uint64_t seed);
  /// CLIP models: the text that stands for class `label` of the data they were trained on ("" if
  /// none), for scoring class-conditional samples.
  virtual std::string class_prompt(int64_t label) const { return ""; }

  /// Density models: the test negative log-likelihood on the first `n` examples of `test` (0 =
  /// all), with `k` importance samples where the model estimates it (0 = the model's default).
  /// Returns at least {"nll_nats", "n"} and, for images, "bits_per_dim" (under the convention of
  /// metrics/bits_per_dim.h). Models without a likelihood throw gm::Error.
  virtual Json test_likelihood(const data::Dataset& test, int64_t n, int64_t k, uint64_t seed);

  /// Translation models (pix2pix, CycleGAN): maps float [-1, 1] N x C x H x W images of one
  /// domain to the other; `direction` "AtoB", "BtoA" or "" (the model's default). params hold
  /// "direction" and how to make the images again. Other models throw gm::Error.
  virtual SampleResult translate(const torch::Tensor& images, const std::string& direction,
                                 uint64_t seed);
  /// The direction translate("") takes; "" for models that do not translate.
  virtual std::string default_direction() const { return ""; }
  /// Channels translate(direction) expects.
  virtual int64_t input_channels(const std::string& direction) const { return 0; }

  /// Model-specific figures written as run.figure(NAME) after training (VAE: reconstructions,
  /// latent interpolations, latent scatter); returns the files written.
  virtual std::vector<std::string> write_figures(const train::RunDir& run,
                                                 const data::Dataset& test, uint64_t seed) {
    return {};
  }
};

struct ModelEntry {
  std::string name;                             ///< "ddpm"
  std::string family;                           ///< "diffusion"
  std::string description;                      ///< one line for `genmodels list`
  std::vector<ConfigKey> config_keys;           ///< the model's own keys (from its bound KeyTables)
  std::map<std::string, std::string> defaults;  ///< new defaults of shared keys (train.lr, ...)
  /// Keys added after runs of this model existed, with the value that reproduces how those runs
  /// were trained: a stored configuration without the key loads with this value instead of the
  /// new default (e.g. the VAE's model.conditional = false).
  std::map<std::string, std::string> stored_run_defaults;
  std::function<std::unique_ptr<Model>(const Config&, const DataInfo&)> create;
};

/// Settings every run has (seed, device, data.*), bound to their keys by run_keys().
struct RunOptions {
  int64_t seed = 0;                    ///< seed: of every random generator
  std::string device = "cpu";          ///< device: cpu, cuda or cuda:N
  std::string data = "fashion-mnist";  ///< data.name: dataset (see `genmodels list`)
  std::string data_b;                  ///< data.name_b: domain B of unpaired translation
  bool hflip = false;                  ///< data.hflip: random horizontal flips
  int64_t limit = 0;                   ///< data.limit: first N training examples (0 = all)
  int64_t image_size = 0;              ///< data.image_size: resize (0 = native)
  int64_t channels = 0;                ///< data.channels: 1 or 3 (0 = native)
};
const KeyTable<RunOptions>& run_keys();

/// run_keys + the trainer's keys + the model's keys, with the model's defaults applied.
Config make_config(const ModelEntry& entry);
/// The configuration of a stored run: make_config, then the entry's stored_run_defaults for keys
/// the TOML text (as the run wrote it) lacks, then the text; `origin` names it in errors.
Config make_run_config(const ModelEntry& entry, const std::string& toml, const std::string& origin);

/// Class labels for a request: `class_label` for all, or every class in turn; errors name the
/// flag when the model is unconditional or the class is out of range.
torch::Tensor request_labels(const SampleRequest& r, int64_t num_classes, bool conditional);

/// A sample set as an image: a grid of images (`nrow` per row; <= 0: one column per class when
/// several classes were drawn, else square) or a density of 2-D points; params as PNG text.
void write_sample_image(const std::string& path, const SampleResult& s, int64_t nrow = -1);

}  // namespace gm
