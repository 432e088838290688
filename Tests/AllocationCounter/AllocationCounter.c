// Interposes the C allocator in the test executable: symbols defined here take
// precedence over glibc's for every library in the process, so Swift's runtime,
// Foundation, libdispatch and OpenBLAS are all counted.
#include "AllocationCounter.h"

#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *pointer, size_t size);
extern void *__libc_memalign(size_t alignment, size_t size);

static atomic_int counting;
static atomic_long allocations;
static atomic_long bytes;
static atomic_long largest;
static atomic_long aligned;

static inline void count_aligned(size_t alignment) {
  if (alignment > 16 && atomic_load_explicit(&counting, memory_order_relaxed)) {
    atomic_fetch_add_explicit(&aligned, 1, memory_order_relaxed);
  }
}

static inline void count(size_t size) {
  if (atomic_load_explicit(&counting, memory_order_relaxed)) {
    atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&bytes, (long)size, memory_order_relaxed);
    long seen = atomic_load_explicit(&largest, memory_order_relaxed);
    while ((long)size > seen &&
           !atomic_compare_exchange_weak_explicit(&largest, &seen, (long)size, memory_order_relaxed, memory_order_relaxed)) {
    }
  }
}

void *malloc(size_t size) { count(size); return __libc_malloc(size); }
void *calloc(size_t n, size_t size) { count(n * size); return __libc_calloc(n, size); }
void *realloc(void *pointer, size_t size) { count(size); return __libc_realloc(pointer, size); }
void *memalign(size_t alignment, size_t size) { count(size); count_aligned(alignment); return __libc_memalign(alignment, size); }
void *aligned_alloc(size_t alignment, size_t size) { count(size); count_aligned(alignment); return __libc_memalign(alignment, size); }

int posix_memalign(void **result, size_t alignment, size_t size) {
  count(size);
  count_aligned(alignment);
  void *pointer = __libc_memalign(alignment, size);
  if (pointer == NULL) return ENOMEM;
  *result = pointer;
  return 0;
}

void quorum_allocations_start(void) {
  atomic_store(&allocations, 0);
  atomic_store(&bytes, 0);
  atomic_store(&largest, 0);
  atomic_store(&aligned, 0);
  atomic_store(&counting, 1);
}

long quorum_allocations_stop(void) {
  atomic_store(&counting, 0);
  return atomic_load(&allocations);
}

long quorum_allocations_bytes(void) { return atomic_load(&bytes); }
long quorum_allocations_largest(void) { return atomic_load(&largest); }
long quorum_allocations_aligned(void) { return atomic_load(&aligned); }
