// The launch rules a kernel relies on, checked where it runs. A reduction written for a
// power-of-two block of at most 256 threads, or for one block per channel, computes
// garbage with any other launch and says nothing; KERNEL_REQUIRE makes it fail instead.
// On the emulated device the launch fails with the kernel's name and the rule; on a GPU
// the kernel traps (the Swift launchers check the same rules before launching, with the
// same words, so a GPU only traps on a launcher's bug).
#pragma once

#ifdef QUORUM_EMULATED
#define KERNEL_REQUIRE(condition, kernel, rule) \
  do {                                          \
    if (!(condition)) {                         \
      QUORUM_REQUIREMENT_FAILED(kernel, rule);  \
      return;                                   \
    }                                           \
  } while (0)
#else
#define KERNEL_REQUIRE(condition, kernel, rule) \
  do {                                          \
    if (!(condition)) __trap();                 \
  } while (0)
#endif

// The tree reductions halve the block: a power of two, and at most the 256 slots of their
// shared arrays.
#define REQUIRE_REDUCTION_BLOCK(kernel)                                                             \
  KERNEL_REQUIRE(blockDim.x <= 256 && (blockDim.x & (blockDim.x - 1)) == 0 && blockDim.y == 1, kernel, \
                 "needs a block of a power of two threads, at most 256 (blockDim.x)")
