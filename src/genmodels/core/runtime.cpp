#include "genmodels/core/runtime.h"

#include <dlfcn.h>
#include <malloc.h>
#include <torch/torch.h>

#include <cstdlib>
#include <iostream>
#include <thread>

#include "genmodels/core/error.h"

namespace gm {

void tune_allocator() {
  // glibc serves large blocks (activations) with fresh mmap()s and returns freed heap to the OS,
  // so every network call page-faults its buffers anew: sampling spent ~40% of its time in the
  // kernel. Keeping freed memory in the heap halves sampling time (14 s vs 28 s for 100 images).
  static const bool done = [] {
    mallopt(M_MMAP_THRESHOLD, 32 << 20);  // the largest glibc accepts; also fixes the threshold
    mallopt(M_TRIM_THRESHOLD, 1 << 30);   // keep up to 1 GiB of freed memory
    mallopt(M_TOP_PAD, 256 << 20);        // grow the heap in 256 MiB steps
    return true;
  }();
  (void)done;
}

namespace {
void set_openblas_threads(int n) {
  using SetThreadsFn = void (*)(int);
  if (auto fn = reinterpret_cast<SetThreadsFn>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads")))
    fn(n);
}
}  // namespace

int set_threads(int threads) {
  tune_allocator();
  if (threads < 0)
    throw Error("--threads must be >= 0 (0 = all cores), got " + std::to_string(threads));
  if (threads == 0) {
    // Data-parallel workers on one machine share its cores (LOCAL_WORLD_SIZE, set by torchrun
    // and by `genmodels train --nproc`).
    int local = 1;
    if (const char* v = std::getenv("LOCAL_WORLD_SIZE"); v && std::atoi(v) > 0)
      local = std::atoi(v);
    threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency() / local));
  }
  torch::set_num_threads(threads);
  // Debian's libopenblas0-pthread starts its own thread pool for every matmul; next to
  // LibTorch's OpenMP threads it oversubscribes the cores and makes steps randomly 10-30x slower
  // (measured by bench/unet_bench). LibTorch parallelises around BLAS, so BLAS runs
  // single-threaded.
  set_openblas_threads(1);
  return torch::get_num_threads();
}

BlasThreadsScope::BlasThreadsScope(int threads) {
  using GetThreadsFn = int (*)();
  if (auto fn = reinterpret_cast<GetThreadsFn>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads")))
    previous_ = fn();
  set_openblas_threads(threads > 0 ? threads : torch::get_num_threads());
}

BlasThreadsScope::~BlasThreadsScope() { set_openblas_threads(previous_); }

const char* version() { return GM_VERSION; }

bool is_primary_process() {
  const char* rank = std::getenv("RANK");
  return rank == nullptr || *rank == '\0' || std::string(rank) == "0";
}

std::string blas_name() {
  using ConfigFn = char* (*)();
  if (auto fn = reinterpret_cast<ConfigFn>(dlsym(RTLD_DEFAULT, "openblas_get_config")))
    return std::string("OpenBLAS ") + fn();
  if (dlsym(RTLD_DEFAULT, "mkl_get_version")) return "Intel MKL";
  if (dlsym(RTLD_DEFAULT, "bli_info_get_version_str")) return "BLIS";
  void* sym = dlsym(RTLD_DEFAULT, "sgemm_");
  Dl_info info{};
  if (sym && dladdr(sym, &info) && info.dli_fname)
    return std::string("reference BLAS (") + info.dli_fname + ")";
  return "reference BLAS";
}

bool blas_is_reference() { return blas_name().rfind("reference", 0) == 0; }

void warn_if_reference_blas() {
  if (!blas_is_reference()) return;
  std::cerr << "genmodels: WARNING: LibTorch is using " << blas_name()
            << ", about 30x slower than OpenBLAS. Fix: apt-get install libopenblas0-pthread\n";
}

void seed_everything(uint64_t seed) { torch::manual_seed(seed); }

std::string check_device(const std::string& device) {
  try {
    torch::Device d(device);
    if (d.is_cuda() && !torch::cuda::is_available())
      throw Error("--device " + device +
                  ": CUDA is not available on this machine (use --device cpu)");
  } catch (const c10::Error&) {
    throw Error("--device " + device + " is not a device name (use cpu, cuda or cuda:N)");
  }
  return device;
}

}  // namespace gm
