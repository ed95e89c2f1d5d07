// The network, sampling and likelihood shared by the denoiser models (see denoiser_model.h).
#include "genmodels/score/denoiser_model.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "genmodels/core/error.h"
#include "genmodels/core/progress.h"
#include "genmodels/metrics/bits_per_dim.h"
#include "genmodels/nn/layout.h"
#include "genmodels/score/likelihood.h"

namespace gm {

std::vector<int64_t> parse_int_list(const std::string& text, const std::string& key) {
  std::vector<int64_t> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.find_first_not_of(" ") == std::string::npos) continue;
    try {
      size_t used = 0;
      out.push_back(std::stoll(item, &used));
      if (item.find_first_not_of(" ", used) != std::string::npos) throw std::invalid_argument("");
    } catch (const std::exception&) {
      throw Error(key + " = '" + text + "': expected comma-separated integers, e.g. \"1,2,2\"");
    }
  }
  return out;
}

namespace score {

const KeyTable<NetOptions>& net_keys() {
  using O = NetOptions;
  static const KeyTable<O> table = [] {
    KeyTable<O> t;
    t.add("model.base_channels", &O::base_channels, "U-Net width of the first level");
    t.add("model.channel_mult", &O::channel_mult, "U-Net width multipliers per level");
    t.add("model.num_res_blocks", &O::num_res_blocks, "residual blocks per level");
    t.add("model.attention_levels", &O::attention_levels,
          "levels with self-attention (e.g. \"2\" or \"\")");
    t.add("model.heads", &O::heads, "attention heads");
    t.add("model.dropout", &O::dropout, "dropout in residual blocks");
    t.add("model.scale_shift_norm", &O::scale_shift_norm,
          "AdaGN conditioning (Nichol & Dhariwal 2021)");
    t.add("model.precision", &O::precision, nn::kPrecisionHelp, nn::precision_choices());
    t.add("model.memory_format", &O::memory_format,
          "U-Net activation layout: channels_last (NHWC: 1.3-1.7x faster sampling on CPU), "
          "nchw, or auto (channels_last on CPU, nchw elsewhere)",
          {"auto", "nchw", "channels_last"});
    t.add("model.conditional", &O::conditional, "class-conditional (needs labelled data)");
    t.add("model.mlp_hidden", &O::mlp_hidden, "2-D toys: MLP width");
    t.add("model.mlp_depth", &O::mlp_depth, "2-D toys: MLP hidden layers");
    return t;
  }();
  return table;
}

std::vector<ConfigKey> denoiser_model_keys(std::vector<ConfigKey> own) {
  std::vector<ConfigKey> keys = net_keys().keys();
  keys.insert(keys.end(), own.begin(), own.end());
  for (const auto& k : sampling::sampler_keys().keys()) keys.push_back(k);
  return keys;
}

std::map<std::string, std::string> denoiser_model_defaults(
    std::map<std::string, std::string> more) {
  more.insert({{"train.batch_size", "64"},
               {"train.lr", "1e-3"},
               {"train.lr_schedule", "cosine"},
               {"train.lr_min_ratio", "0.05"},
               {"train.ema_decay", "0.995"}});
  return more;
}

DenoiserModel::DenoiserModel(const Config& c, const DataInfo& info, int64_t out_factor,
                             int64_t cond_dim)
    : info_(info),
      net_o_(net_keys().read(c)),
      sample_(sampling::sampler_keys().read(c)),
      conditional_(cond_dim == 0 && net_o_.conditional && info.num_classes() > 0),
      num_classes_(conditional_ ? info.num_classes() : 0),
      precision_(nn::parse_precision(net_o_.precision, "model.precision")),
      device_(c.get_string("device")) {
  if (info.is_image()) {
    nn::UNetOptions u;
    u.in_channels = info.shape[0];
    u.out_channels = info.shape[0] * out_factor;
    u.base_channels = net_o_.base_channels;
    u.channel_mult = parse_int_list(net_o_.channel_mult, "model.channel_mult");
    u.num_res_blocks = net_o_.num_res_blocks;
    u.attention_levels = parse_int_list(net_o_.attention_levels, "model.attention_levels");
    u.num_heads = net_o_.heads;
    u.dropout = net_o_.dropout;
    u.scale_shift_norm = net_o_.scale_shift_norm;
    u.num_classes = num_classes_;
    u.cond_dim = cond_dim;
    u.channels_last = nn::channels_last_for(net_o_.memory_format, device_);
    const int64_t factor = int64_t{1} << (u.channel_mult.size() - 1);
    if (info.shape[1] % factor || info.shape[2] % factor)
      throw Error("model.channel_mult '" + net_o_.channel_mult + "' downsamples " +
                  std::to_string(u.channel_mult.size() - 1) + " times, but the images are " +
                  std::to_string(info.shape[1]) + "x" + std::to_string(info.shape[2]) +
                  " (not divisible by " + std::to_string(factor) + "); use fewer levels");
    net_->unet = net_->register_module("unet", nn::UNet(u));
  } else {
    if (cond_dim > 0)
      throw Error("text conditioning (model.text_encoder) is for image data; " + info.dataset +
                  " is not images");
    nn::TimeMLPOptions m;
    m.dim = info.shape[0];
    m.out_dim = info.shape[0] * out_factor;
    m.hidden = net_o_.mlp_hidden;
    m.depth = net_o_.mlp_depth;
    m.num_classes = num_classes_;
    net_->mlp = net_->register_module("mlp", nn::TimeMLP(m));
  }
  net_->to(device_);
}

diffusion::NetFn DenoiserModel::net_fn() {
  DenoiserNet net = net_;
  const nn::Precision precision = precision_;
  return [net, precision](const torch::Tensor& x, const torch::Tensor& t,
                          const torch::Tensor& y) mutable {
    nn::AutocastScope autocast(precision);
    return net->forward(x, t, y).to(torch::kFloat);
  };
}

SampleResult DenoiserModel::sample(const SampleRequest& r) {
  diffusion::Denoiser d = denoiser();
  sampling::SampleJob job;
  job.shape = info_.shape;
  job.n = r.n;
  job.seed = r.seed;
  job.image = info_.is_image();
  job.device = device_;
  job.progress = r.progress;
  job.cache = r.batch_cache;
  SampleResult res;
  condition(r, job, res);
  job.cond.gradient_guide = r.gradient_guide;
  sampling::Drawn drawn = sampling::draw_samples(d, sample_, job);
  res.x = drawn.x;
  for (const auto& [k, v] : drawn.params) res.params[k] = v;
  res.params["prediction"] = diffusion::to_string(d.prediction());
  res.params["noise_schedule"] = d.schedule().name;
  return res;
}

void DenoiserModel::condition(const SampleRequest& r, sampling::SampleJob& job, SampleResult& res) {
  // Under gradient guidance the prompt is the guide's (CLIP guidance); otherwise this model has
  // no use for one.
  if (!r.prompt.empty() && !r.gradient_guide)
    throw Error(
        "--prompt: this run is not text-conditional (train ddpm with --set "
        "model.text_encoder=CLIP_RUN to draw from text)");
  if (conditional_ && r.gradient_guide && r.class_label < 0) {
    // Gradient (CLIP) guidance without --class: the model's unconditional half (the null class).
    job.cond.null_label = num_classes_;
    res.params["class"] = "none";
    return;
  }
  res.labels = request_labels(r, num_classes_, conditional_);
  if (!conditional_) return;
  job.cond.labels = res.labels;
  job.cond.null_label = num_classes_;
  res.params["class"] = r.class_label >= 0 ? std::to_string(r.class_label) : "all";
}

// Song et al. 2021, App. D.2 (likelihood.h) on uniformly dequantised pixels (bits_per_dim.h).
Json DenoiserModel::test_likelihood(const data::Dataset& test, int64_t n, int64_t k,
                                    uint64_t seed) {
  net_->eval();
  if (k <= 0) k = 1;
  if (n <= 0 || n > test.size()) n = test.size();
  const diffusion::Denoiser d = denoiser();
  diffusion::Conditioning cond;
  if (conditional_) cond.null_label = num_classes_;  // p(x): the model's unconditional half
  LikelihoodOptions lo;
  at::Generator gen = at::detail::createCPUGenerator(seed);
  constexpr int64_t kBatch = 50;
  Progress bar(n * k, 0, "nll", 10.0);
  double total = 0.0;
  int64_t nfe = 0, evaluated = 0;
  for (int64_t i = 0; i < n; i += kBatch) {
    const int64_t b = std::min(kBatch, n - i);
    const torch::Tensor x = test.x.narrow(0, i, b);
    torch::Tensor sum_ll = torch::zeros({b}, torch::kDouble);
    for (int64_t j = 0; j < k; ++j) {
      torch::Tensor xin = x;
      if (info_.is_image()) {  // pixel k -> 2 (k + u) / 256 - 1
        const torch::Tensor pix = torch::round((x + 1.0) * 127.5);
        xin = (pix + at::rand(x.sizes(), gen, torch::kFloat32)) * (2.0 / 256.0) - 1.0;
      }
      const torch::Tensor probe = rademacher_like(xin, gen);
      LikelihoodResult r = ode_log_likelihood(
          d, xin.to(device_), cond, probe.to(device_), lo,
          [&](double f) { bar.update(evaluated + static_cast<int64_t>(f * b), ""); });
      sum_ll += r.log_p.cpu();
      nfe += r.nfe * b;
      evaluated += b;
      bar.update(evaluated, "");
    }
    total += -(sum_ll / double(k)).sum().item<double>();
  }
  const double nll = total / double(n);
  Json out = {{"n", n},
              {"k", k},
              {"nll_nats", nll},
              {"nfe_per_image", double(nfe) / double(n * k)},
              {"estimator", "probability-flow ODE (RK45, rtol = atol = " + num(lo.rtol) +
                                "), Hutchinson trace with a Rademacher probe, from sigma " +
                                num(d.sigma_min()) + " to " + num(d.sigma_max())}};
  if (info_.is_image()) {
    const int64_t dims = test.x[0].numel();
    out["bits_per_dim"] = metrics::bits_per_dim_dequantised(nll, dims, 2.0);
    out["dequantization"] = "uniform, " + std::to_string(k) + " draw(s) per image";
  }
  bar.finish(num(nll) + " nats per image");
  // The denoising error at common noise levels (likelihood.h): the same levels for every model,
  // whatever its schedule, on the first 200 test images (whatever n: 1,600 evaluations at most).
  const torch::Tensor xs = test.x.narrow(0, 0, std::min<int64_t>(test.size(), 200)).to(device_);
  std::vector<double> levels;
  for (double s : {0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0})  // within 0.1 % of the range
    if (s >= d.sigma_min() * 0.999 && s <= d.sigma_max() * 1.001)
      levels.push_back(std::clamp(s, d.sigma_min(), d.sigma_max()));
  Json table = Json::array();
  for (const DenoiseError& e : denoising_error(d, xs, cond, levels, gen))
    table.push_back({{"sigma", e.sigma}, {"mse_x0", e.mse_x0}, {"mse_eps", e.mse_eps}});
  out["denoise_mse"] = table;
  return out;
}

}  // namespace score
}  // namespace gm
