// Generative classifiers against scikit-learn (issue #5): fit and predict time, test accuracy and
// prediction agreement of lda / qda / gnb / bnb on Fashion-MNIST, on identical feature matrices
// (written here, read by bench/classic_reference.py through Debian's /usr/bin/python3).
//   build/classic_bench [--json PATH] [--threads 2] [--repeats 3] [--models lda,qda,gnb,bnb]
//                       [--no-python] [--python /usr/bin/python3]
// Prints a table and writes JSON (default bench/results/classic_bench.json).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "genmodels/classic/classic_model.h"
#include "genmodels/classic/generative_classifier.h"
#include "genmodels/core/atomic_file.h"
#include "genmodels/core/json.h"
#include "genmodels/core/runtime.h"
#include "genmodels/data/dataset.h"
#include "genmodels/io/npy.h"
#include "genmodels/models/registry.h"

namespace fs = std::filesystem;
using gm::Json;

namespace {

std::string source_dir() { return fs::path(__FILE__).parent_path().parent_path().string(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double secs(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::string json_path = source_dir() + "/bench/results/classic_bench.json";
  std::string python = "/usr/bin/python3", models_arg = "lda,qda,gnb,bnb";
  int threads = 2, repeats = 3;
  bool run_python = true;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
      return argv[++i];
    };
    if (a == "--json")
      json_path = next();
    else if (a == "--threads")
      threads = std::stoi(next());
    else if (a == "--repeats")
      repeats = std::stoi(next());
    else if (a == "--models")
      models_arg = next();
    else if (a == "--python")
      python = next();
    else if (a == "--no-python")
      run_python = false;
    else {
      std::cout << "classic_bench [--json PATH] [--threads N] [--repeats R] [--models LIST] "
                   "[--no-python] [--python EXE]\n";
      return a == "--help" || a == "-h" ? 0 : 2;
    }
  }
  try {
    gm::set_threads(threads);
    gm::data::DataOptions dopts;
    const gm::data::Dataset train = gm::data::load_dataset("fashion-mnist", dopts);
    dopts.split = "test";
    const gm::data::Dataset test = gm::data::load_dataset("fashion-mnist", dopts);
    gm::DataInfo info;
    info.dataset = "fashion-mnist";
    info.shape = {1, 28, 28};
    info.class_names = train.class_names;

    const std::string dir = (fs::temp_directory_path() / "genmodels_classic_bench").string();
    fs::create_directories(dir);
    // Feature matrices, exactly as `genmodels train` builds them (seed 0).
    std::map<std::string, torch::Tensor> feats = {
        {"train_deq", gm::classic_features(train, gm::PixelFeatures::Dequantized, 0)},
        {"test_centre", gm::classic_features(test, gm::PixelFeatures::BinCentre)},
        {"train_scaled", gm::classic_features(train, gm::PixelFeatures::Scaled)},
        {"test_scaled", gm::classic_features(test, gm::PixelFeatures::Scaled)}};
    for (auto& [name, t] : feats) {
      gm::io::write_npy(dir + "/" + name + ".npy", t.contiguous());
      t = t.to(torch::kFloat64);  // both sides fit float64 matrices, converted before timing
    }
    gm::io::write_npy(dir + "/train_y.npy", train.y);

    Json manifest = {{"models", Json::array()}};
    Json out = {{"threads", threads},
                {"repeats", repeats},
                {"blas", gm::blas_name()},
                {"data", "fashion-mnist, 60000 train / 10000 test, 784 features in [0,1]"},
                {"models", Json::object()}};
    std::map<std::string, torch::Tensor> cpp_pred;
    for (const std::string& name : split(models_arg)) {
      const gm::ModelEntry& entry = gm::find_model(name);
      const gm::Config config = gm::make_config(entry);
      const bool binary = name == "bnb";
      const std::string ftr = binary ? "train_scaled" : "train_deq";
      const std::string fte = binary ? "test_scaled" : "test_centre";
      Json params;
      if (name == "lda") params["shrinkage"] = config.get_string("model.shrinkage");
      if (name == "qda") params["reg_param"] = config.get_float("model.reg_param");
      if (name == "gnb") params["var_smoothing"] = config.get_float("model.var_smoothing");
      if (name == "bnb") {
        params["alpha"] = config.get_float("model.alpha");
        params["binarize"] = config.get_float("model.binarize");
      }
      manifest["models"].push_back(
          {{"name", name}, {"train", ftr}, {"test", fte}, {"params", params}});
      std::vector<double> fit_t, pred_t;
      torch::Tensor pred;
      for (int r = 0; r < repeats; ++r) {
        auto model = entry.create(config, info);
        auto& clf = dynamic_cast<gm::classic::GenerativeClassifier&>(model->module());
        auto t0 = std::chrono::steady_clock::now();
        clf.fit(feats[ftr], train.y);
        fit_t.push_back(secs(t0));
        t0 = std::chrono::steady_clock::now();
        pred = clf.predict(feats[fte]);
        pred_t.push_back(secs(t0));
      }
      cpp_pred[name] = pred;
      const double acc = pred.eq(test.y).to(torch::kFloat64).mean().item<double>();
      out["models"][name] = {{"params", params},
                             {"cpp",
                              {{"fit_s", median(fit_t)},
                               {"predict_s", median(pred_t)},
                               {"fit_times", fit_t},
                               {"test_accuracy", acc}}}};
      std::printf("[genmodels] %s: fit %.3f s, predict %.3f s, accuracy %.4f\n", name.c_str(),
                  median(fit_t), median(pred_t), acc);
      std::fflush(stdout);
    }
    gm::write_file_atomic(dir + "/manifest.json", manifest.dump(1));

    if (run_python) {
      const std::string pyjson = dir + "/sklearn.json";
      const std::string cmd = "OPENBLAS_NUM_THREADS=" + std::to_string(threads) +
                              " OMP_NUM_THREADS=" + std::to_string(threads) + " " + python + " " +
                              source_dir() + "/bench/classic_reference.py --dir " + dir +
                              " --json " + pyjson + " --repeats " + std::to_string(repeats);
      std::printf("running: %s\n", cmd.c_str());
      std::fflush(stdout);
      const int rc = std::system(cmd.c_str());
      Json py;
      std::ifstream f(pyjson);
      if (rc == 0 && f) f >> py;
      if (!py.contains("models")) {
        std::printf("scikit-learn reference failed (status %d)\n", rc);
      } else {
        out["sklearn_version"] = py["sklearn"];
        for (auto& [name, m] : out["models"].items()) {
          if (!py["models"].contains(name)) continue;
          torch::Tensor sk = gm::io::read_npy(dir + "/sklearn_pred_" + name + ".npy");
          Json s = py["models"][name];
          s["test_accuracy"] = sk.eq(test.y).to(torch::kFloat64).mean().item<double>();
          m["sklearn"] = s;
          m["agreement"] = sk.eq(cpp_pred[name]).to(torch::kFloat64).mean().item<double>();
          m["fit_speedup"] = s["fit_s"].get<double>() / m["cpp"]["fit_s"].get<double>();
          m["predict_speedup"] = s["predict_s"].get<double>() / m["cpp"]["predict_s"].get<double>();
        }
      }
    }

    std::printf("\n%-5s %10s %10s %8s %10s %10s %8s %9s %9s %9s\n", "model", "fit C++", "fit skl",
                "speedup", "pred C++", "pred skl", "speedup", "acc C++", "acc skl", "agree");
    for (auto& [name, m] : out["models"].items()) {
      const Json& c = m["cpp"];
      if (m.contains("sklearn")) {
        const Json& s = m["sklearn"];
        std::printf("%-5s %9.3fs %9.3fs %7.1fx %9.3fs %9.3fs %7.1fx %9.4f %9.4f %8.2f%%\n",
                    name.c_str(), c["fit_s"].get<double>(), s["fit_s"].get<double>(),
                    m["fit_speedup"].get<double>(), c["predict_s"].get<double>(),
                    s["predict_s"].get<double>(), m["predict_speedup"].get<double>(),
                    c["test_accuracy"].get<double>(), s["test_accuracy"].get<double>(),
                    100 * m["agreement"].get<double>());
      } else {
        std::printf("%-5s %9.3fs %10s %8s %9.3fs %10s %8s %9.4f\n", name.c_str(),
                    c["fit_s"].get<double>(), "-", "-", c["predict_s"].get<double>(), "-", "-",
                    c["test_accuracy"].get<double>());
      }
    }
    fs::create_directories(fs::path(json_path).parent_path());
    gm::write_file_atomic(json_path, out.dump(1) + "\n");
    std::printf("wrote %s\n", json_path.c_str());
  } catch (const std::exception& e) {
    std::cerr << "classic_bench: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
