#pragma once
/// \file runtime.hpp
/// Process-wide settings made once at start-up.

namespace rbsde {

/// Keeps large freed blocks in the heap instead of returning them to the kernel. Each
/// training step allocates and frees the same tens of megabytes of tensors; with glibc's
/// defaults they are unmapped and faulted in again every step, which cost 15–20 % of the
/// step time (page clearing in the kernel, measured with perf).
void keep_freed_memory();

}  // namespace rbsde
