#ifndef QUORUM_ALLOCATION_COUNTER_H
#define QUORUM_ALLOCATION_COUNTER_H

/// Counts heap allocations (malloc, calloc, realloc, posix_memalign, aligned_alloc,
/// memalign) made by any thread between start and stop, their total size and the largest
/// one. The test process's own malloc forwards to glibc's after counting.
void quorum_allocations_start(void);
long quorum_allocations_stop(void);
long quorum_allocations_bytes(void);
long quorum_allocations_largest(void);
/// Allocations with an alignment above malloc's 16 bytes: Quorum's tensor storage is
/// 64-byte aligned, so these are the tensors (closure contexts and OpenBLAS's scratch
/// come from plain malloc).
long quorum_allocations_aligned(void);

#endif
