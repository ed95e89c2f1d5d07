// Process-wide runtime set-up: threads, device, BLAS check, seeding.
#pragma once
#include <cstdint>
#include <string>

namespace gm {

/// Sets LibTorch's intra-op threads (0 = number of cores; BLAS itself single-threaded), tunes
/// the allocator, and returns the thread count in use.
int set_threads(int threads);

/// Multi-threaded BLAS for the lifetime of the scope (0 = LibTorch's thread count), for code that
/// spends its time inside large BLAS/LAPACK calls and runs no LibTorch kernels in parallel with
/// them (closed-form fits). Restores single-threaded BLAS afterwards. No-op for non-OpenBLAS.
class BlasThreadsScope {
 public:
  explicit BlasThreadsScope(int threads = 0);
  ~BlasThreadsScope();
  BlasThreadsScope(const BlasThreadsScope&) = delete;
  BlasThreadsScope& operator=(const BlasThreadsScope&) = delete;

 private:
  int previous_ = 1;
};

/// Keeps freed memory in the process heap instead of returning it to the OS after each tensor
/// (called by set_threads; idempotent).
void tune_allocator();

/// Name of the BLAS library LibTorch's matmul resolves to, e.g. "OpenBLAS 0.3.21 ..." or
/// "reference BLAS (libblas)". Detected by symbol lookup at run time.
std::string blas_name();

/// True when the BLAS in use is the slow reference implementation.
bool blas_is_reference();

/// Prints a loud warning on stderr when LibTorch runs on reference BLAS (30x slower here).
void warn_if_reference_blas();

/// The project's version ("0.1.0"; CMake's PROJECT_VERSION).
const char* version();

/// False in the ranks > 0 of a data-parallel run (environment variable RANK set and not 0):
/// they train but write no files and draw no progress.
bool is_primary_process();
/// Seeds every generator genmodels uses (LibTorch's default CPU/CUDA generators).
void seed_everything(uint64_t seed);

/// Parses "cpu", "cuda", "cuda:1"; throws gm::Error for unknown or unavailable devices.
std::string check_device(const std::string& device);

}  // namespace gm
