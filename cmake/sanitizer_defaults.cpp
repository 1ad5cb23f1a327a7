// Compiled into every executable of an AddressSanitizer build (RBSDE_SANITIZE with address).
// Open MPI's plugins leak their start-up allocations from modules they have unloaded, which
// LeakSanitizer can neither attribute nor suppress by name: leak detection is off by default.
// ASAN_OPTIONS=detect_leaks=1 turns it back on. An allocation too large for the memory returns
// null, as malloc does, instead of aborting the process: rbsde reports it as an error.
extern "C" const char* __asan_default_options() {
  return "detect_leaks=0:allocator_may_return_null=1";
}
