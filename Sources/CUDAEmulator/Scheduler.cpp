// Runs a launch's blocks on the CPU. A kernel without barriers runs as a plain loop over
// its threads; one with __syncthreads or warp shuffles runs each thread as a fiber (its
// own stack) that yields to this scheduler at every barrier and shuffle, so a block's
// threads meet there as on a GPU. The scheduler also reports what a GPU would hang on or
// silently get wrong: a barrier reached by part of a block, a shuffle whose mask names
// lanes that are not there or have returned.
//
// Fibers switch with a few instructions on x86-64 (the callee-saved registers and the
// stack pointer: a barrier costs nanoseconds), with ucontext elsewhere (a system call per
// switch, for the signal mask: correct, 50 times slower).
#include <ucontext.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "Emulator.h"
#include "prelude.h"

thread_local emulator::Index3 threadIdx = {}, blockIdx = {}, blockDim = {}, gridDim = {};

namespace emulator {
namespace {

constexpr int launch_failed = 719;  // CUDA_ERROR_LAUNCH_FAILED
constexpr int assert_failed = 710;  // CUDA_ERROR_ASSERT
constexpr size_t fiber_stack_bytes = 64 * 1024;

#if defined(__x86_64__)
}  // namespace
}  // namespace emulator
// emulator_switch(&from, to): saves the callee-saved registers on the current stack,
// stores the stack pointer in *from, loads `to` and restores what that stack saved.
extern "C" void emulator_switch(void** from, void* to);
asm(R"(
  .text
  .globl emulator_switch
  .hidden emulator_switch
  .type emulator_switch, @function
emulator_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size emulator_switch, .-emulator_switch
)");
namespace emulator {
namespace {

/// A suspended thread of execution: its saved stack pointer.
struct Context {
  void* stack_pointer = nullptr;
};

/// A context that starts `entry` on `stack` at the first switch to it.
void prepare(Context& context, char* stack, size_t bytes, void (*entry)()) {
  uintptr_t top = ((uintptr_t)(stack + bytes)) & ~(uintptr_t)15;
  // `ret` pops entry's address from a 16-byte aligned slot, leaving the stack as a call
  // would (rsp ≡ 8 mod 16); below it, the six registers emulator_switch pops.
  auto* slots = (void**)(top - 16);
  slots[0] = (void*)entry;
  slots[1] = nullptr;
  for (int i = 1; i <= 6; ++i) slots[-i] = nullptr;
  context.stack_pointer = slots - 6;
}

void switch_context(Context& from, Context& to) { emulator_switch(&from.stack_pointer, to.stack_pointer); }
#else
struct Context {
  ucontext_t context;
};

void prepare(Context& context, char* stack, size_t bytes, void (*entry)()) {
  getcontext(&context.context);
  context.context.uc_stack.ss_sp = stack;
  context.context.uc_stack.ss_size = bytes;
  context.context.uc_link = nullptr;
  makecontext(&context.context, entry, 0);
}

void switch_context(Context& from, Context& to) { swapcontext(&from.context, &to.context); }
#endif

enum class FiberState { runnable, at_barrier, at_shuffle, at_warp_sync, finished };

struct Fiber {
  Context context;
  char* stack;
  FiberState state = FiberState::runnable;
  Index3 thread;
  unsigned linear = 0;  // x + y·bx + z·bx·by: lane = linear % 32, warp = linear / 32
  // A pending shuffle or __syncwarp: what this lane offers and asks for.
  unsigned mask = 0;
  Shuffle kind = Shuffle::index;
  int argument = 0, width = 32;
  uint32_t value = 0, result = 0;
};

/// What the running kernel's threads see of the launch in progress on this thread.
struct Launch {
  const Kernel* kernel = nullptr;
  void** params = nullptr;
  bool fibers = false;
  Fiber* current = nullptr;
  Context scheduler;
  std::string failure;  // the first rule broken, if any
  int failure_status = 0;
};

thread_local Launch launch;
/// Fiber stacks, kept from launch to launch (a block of 256 threads needs 16 MiB).
thread_local std::vector<std::unique_ptr<char[]>> stacks;

void note_failure(int status, const std::string& message) {
  if (launch.failure.empty()) {
    launch.failure = message;
    launch.failure_status = status;
  }
}

std::string block_name() {
  char text[64];
  std::snprintf(text, sizeof text, "block (%u, %u, %u)", blockIdx.x, blockIdx.y, blockIdx.z);
  return text;
}

/// A fiber's first frame: the kernel, then back to the scheduler for good (a finished
/// fiber is never resumed, so this never returns).
void fiber_entry() {
  Fiber* fiber = launch.current;
  launch.kernel->invoke(launch.params);
  fiber->state = FiberState::finished;
  switch_context(fiber->context, launch.scheduler);
  __builtin_unreachable();
}

void yield(FiberState state) {
  Fiber* fiber = launch.current;
  fiber->state = state;
  switch_context(fiber->context, launch.scheduler);
}

/// The lanes of warp `warp` that exist in a block of `threads` threads, as a mask.
unsigned present_lanes(unsigned warp, unsigned threads) {
  unsigned first = warp * 32, count = threads - first < 32 ? threads - first : 32;
  return count == 32 ? 0xffffffffu : (1u << count) - 1;
}

/// Completes the shuffles and __syncwarps of one warp whose named lanes have all arrived;
/// false if the warp cannot go on, with the reason noted.
bool resolve_warp(std::vector<Fiber>& fibers, unsigned warp, unsigned threads, bool* progressed) {
  unsigned present = present_lanes(warp, threads);
  Fiber* lanes[32] = {};
  for (unsigned lane = 0; lane < 32 && warp * 32 + lane < threads; ++lane) lanes[lane] = &fibers[warp * 32 + lane];
  for (unsigned lane = 0; lane < 32; ++lane) {
    Fiber* fiber = lanes[lane];
    if (!fiber || (fiber->state != FiberState::at_shuffle && fiber->state != FiberState::at_warp_sync)) continue;
    if (fiber->mask & ~present) {
      char text[200];
      std::snprintf(text, sizeof text,
                    "%s: a warp shuffle's mask 0x%08x names lanes that are not there (warp %u of %s has lanes 0x%08x)",
                    launch.kernel->name.c_str(), fiber->mask, warp, block_name().c_str(), present);
      note_failure(launch_failed, text);
      return false;
    }
    if (!(fiber->mask & (1u << lane))) {
      char text[160];
      std::snprintf(text, sizeof text, "%s: lane %u of warp %u shuffles with a mask 0x%08x that leaves it out",
                    launch.kernel->name.c_str(), lane, warp, fiber->mask);
      note_failure(launch_failed, text);
      return false;
    }
    // Every lane the mask names must be at a warp operation; one that returned never will.
    bool ready = true;
    for (unsigned other = 0; other < 32; ++other) {
      if (!(fiber->mask & (1u << other))) continue;
      FiberState state = lanes[other]->state;
      if (state == FiberState::finished) {
        char text[200];
        std::snprintf(text, sizeof text,
                      "%s: lane %u of warp %u in %s waits at a warp shuffle for lane %u, which has returned",
                      launch.kernel->name.c_str(), lane, warp, block_name().c_str(), other);
        note_failure(launch_failed, text);
        return false;
      }
      if (state != FiberState::at_shuffle && state != FiberState::at_warp_sync) ready = false;
    }
    if (!ready) continue;
    for (unsigned other = 0; other < 32; ++other) {
      if (!(fiber->mask & (1u << other))) continue;
      Fiber* participant = lanes[other];
      if (participant->state == FiberState::at_shuffle) {
        int segment = (int)other / participant->width * participant->width, offset = (int)other - segment;
        int source = (int)other;
        switch (participant->kind) {
          case Shuffle::index: source = segment + participant->argument % participant->width; break;
          case Shuffle::up: source = offset >= participant->argument ? (int)other - participant->argument : (int)other; break;
          case Shuffle::down:
            source = offset + participant->argument < participant->width ? (int)other + participant->argument : (int)other;
            break;
          case Shuffle::exclusive_or: {
            int partner = (int)other ^ participant->argument;
            source = partner / participant->width == (int)other / participant->width ? partner : (int)other;
            break;
          }
        }
        if (source < 0 || source >= 32 || !(participant->mask & (1u << source)) || !lanes[source]) {
          char text[200];
          std::snprintf(text, sizeof text,
                        "%s: lane %u of warp %u reads lane %d in a shuffle, which its mask 0x%08x does not name",
                        launch.kernel->name.c_str(), other, warp, source, participant->mask);
          note_failure(launch_failed, text);
          return false;
        }
        participant->result = lanes[source]->value;
      }
      participant->state = FiberState::runnable;
    }
    *progressed = true;
  }
  return true;
}

/// Runs one block as fibers until every thread returns; false on a rule broken.
bool run_block_as_fibers(unsigned threads, bool reversed) {
  while (stacks.size() < threads) stacks.emplace_back(new char[fiber_stack_bytes]);
  std::vector<Fiber> fibers(threads);
  for (unsigned t = 0; t < threads; ++t) {
    Fiber& fiber = fibers[t];
    fiber.linear = t;
    fiber.thread = {t % blockDim.x, t / blockDim.x % blockDim.y, t / (blockDim.x * blockDim.y)};
    fiber.stack = stacks[t].get();
    prepare(fiber.context, fiber.stack, fiber_stack_bytes, fiber_entry);
  }
  for (;;) {
    bool ran = false;
    for (unsigned i = 0; i < threads; ++i) {
      Fiber& fiber = fibers[reversed ? threads - 1 - i : i];
      if (fiber.state != FiberState::runnable) continue;
      ran = true;
      launch.current = &fiber;
      threadIdx = fiber.thread;
      switch_context(launch.scheduler, fiber.context);
      if (!launch.failure.empty()) return false;
    }
    unsigned finished = 0, at_barrier = 0;
    for (const Fiber& fiber : fibers) {
      finished += fiber.state == FiberState::finished;
      at_barrier += fiber.state == FiberState::at_barrier;
    }
    if (finished == threads) return true;
    bool progressed = false;
    for (unsigned warp = 0; warp * 32 < threads; ++warp)
      if (!resolve_warp(fibers, warp, threads, &progressed)) return false;
    if (progressed) continue;
    if (at_barrier > 0) {
      if (at_barrier + finished == threads && finished == 0) {
        for (Fiber& fiber : fibers) fiber.state = FiberState::runnable;
        continue;
      }
      char text[200];
      std::snprintf(text, sizeof text,
                    "%s: __syncthreads reached by only %u of the %u threads of %s (%u returned, %u wait elsewhere)",
                    launch.kernel->name.c_str(), at_barrier, threads, block_name().c_str(), finished,
                    threads - finished - at_barrier);
      note_failure(launch_failed, text);
      return false;
    }
    if (!ran) {
      note_failure(launch_failed, launch.kernel->name + ": the threads of " + block_name() +
                                      " wait at warp operations that can never complete");
      return false;
    }
  }
}

void run_block_as_loop(unsigned threads, bool reversed) {
  for (unsigned i = 0; i < threads; ++i) {
    unsigned t = reversed ? threads - 1 - i : i;
    threadIdx = {t % blockDim.x, t / blockDim.x % blockDim.y, t / (blockDim.x * blockDim.y)};
    launch.kernel->invoke(launch.params);
    if (!launch.failure.empty()) return;
  }
}

}  // namespace

void barrier() {
  if (!launch.fibers) {
    note_failure(launch_failed, launch.kernel->name +
                                    " calls __syncthreads but is registered to run as a plain loop: register it "
                                    "with Schedule::fibers (Sources/CUDAEmulator/Kernels.cpp)");
    return;
  }
  yield(FiberState::at_barrier);
}

void warp_sync(unsigned mask) {
  if (!launch.fibers) {
    note_failure(launch_failed, launch.kernel->name + " calls __syncwarp but is registered to run as a plain loop");
    return;
  }
  launch.current->mask = mask;
  yield(FiberState::at_warp_sync);
}

uint32_t shuffle(unsigned mask, uint32_t value, Shuffle kind, int argument, int width) {
  if (!launch.fibers) {
    note_failure(launch_failed, launch.kernel->name + " shuffles but is registered to run as a plain loop");
    return value;
  }
  if (width <= 0 || width > 32 || (width & (width - 1))) {
    note_failure(launch_failed, launch.kernel->name + ": a shuffle's width must be a power of two up to 32");
    return value;
  }
  Fiber* fiber = launch.current;
  fiber->mask = mask;
  fiber->value = value;
  fiber->kind = kind;
  fiber->argument = argument;
  fiber->width = width;
  yield(FiberState::at_shuffle);
  return fiber->result;
}

void requirement_failed(const char* kernel, const char* message) {
  note_failure(assert_failed, std::string(kernel) + ": " + message);
}

int run_grid(const Kernel& kernel, Dim3 grid, Dim3 block, void** params, bool reversed) {
  launch.kernel = &kernel;
  launch.params = params;
  launch.fibers = kernel.schedule == Schedule::fibers;
  launch.failure.clear();
  launch.failure_status = 0;
  gridDim = {grid.x, grid.y, grid.z};
  blockDim = {block.x, block.y, block.z};
  unsigned threads = (unsigned)block.count();
  unsigned long long blocks = grid.count();
  for (unsigned long long i = 0; i < blocks; ++i) {
    unsigned long long b = reversed ? blocks - 1 - i : i;
    blockIdx = {(unsigned)(b % grid.x), (unsigned)(b / grid.x % grid.y), (unsigned)(b / ((unsigned long long)grid.x * grid.y))};
    if (launch.fibers) {
      if (!run_block_as_fibers(threads, reversed)) break;
    } else {
      run_block_as_loop(threads, reversed);
    }
    if (!launch.failure.empty()) break;
  }
  launch.kernel = nullptr;
  if (launch.failure.empty()) return 0;
  fail(launch.failure_status, launch.failure);
  return launch.failure_status;
}

}  // namespace emulator
