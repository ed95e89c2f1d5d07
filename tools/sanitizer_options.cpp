// Default options of the sanitizers for every program of this project built with
// GENMODELS_SANITIZE=ON (the runtimes call these weak hooks at start-up; the environment variables
// ASAN_OPTIONS, UBSAN_OPTIONS and LSAN_OPTIONS still override them). Empty in a normal build.
#if defined(__SANITIZE_ADDRESS__)

extern "C" {

// Initialisation-order bugs across translation units and use of a stack frame after its return
// are reported too; leaks are checked at exit.
const char* __asan_default_options() {
  return "detect_leaks=1:check_initialization_order=1:strict_init_order=1:"
         "detect_stack_use_after_return=1";
}

// Undefined behaviour stops the program (it is also compiled not to recover) with a stack trace.
const char* __ubsan_default_options() { return "print_stacktrace=1:halt_on_error=1"; }

// Allocations made and kept by uninstrumented libraries for the life of the process (LibTorch's
// operator registries and thread pools, Gloo's and OpenMP's workers) are not leaks of ours.
const char* __lsan_default_suppressions() {
  return "leak:libtorch_cpu.so\n"
         "leak:libc10.so\n"
         "leak:libgloo.so\n"
         "leak:libgomp.so\n";
}

}  // extern "C"

#endif
