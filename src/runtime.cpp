#include "rbsde/runtime.hpp"

#include <malloc.h>

namespace rbsde {

void keep_freed_memory() {
  mallopt(M_MMAP_THRESHOLD, 1 << 30);  // serve blocks up to 1 GiB from the heap
  mallopt(M_TRIM_THRESHOLD, 1 << 30);  // and do not trim it while less than 1 GiB is free
}

}  // namespace rbsde
