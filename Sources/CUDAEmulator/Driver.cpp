// The CUDA driver's subset that Quorum uses, on the CPU: one device or several
// (QUORUM_EMULATOR_DEVICES), each with its primary context and its own device memory (host
// memory, tracked and NaN-filled, refused to another device's context), copies and memsets, streams and
// events (work runs at the call, in order, which is a legal schedule of a stream), modules
// (the CPU builds of the kernel files) and launches, with the checks a GPU does not make.
#include <sys/mman.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "CUDAEmulator.h"
#include "Emulator.h"

namespace emulator {
namespace {

using CUresult = int;
using CUdeviceptr = unsigned long long;

constexpr CUresult success = 0, invalid_value = 1, out_of_memory = 2, not_initialized = 3, invalid_device = 101,
                   invalid_image = 200, invalid_context = 201, invalid_handle = 400, illegal_state = 401, not_found = 500,
                   illegal_address = 700, launch_out_of_resources = 701, launch_failed = 719,
                   capture_unsupported = 900, capture_invalidated = 901, capture_wrong_thread = 908;

// MARK: Memory

/// The most emulated devices (QUORUM_EMULATOR_DEVICES).
constexpr int max_devices = 16;

struct Memory {
  std::mutex lock;
  std::map<uintptr_t, size_t> live;  // base → bytes
  std::map<uintptr_t, int> owner;  // base → the device it was allocated on
  std::map<uintptr_t, size_t> freed;  // recently freed, to name them in errors
  size_t live_bytes = 0;
  size_t live_bytes_of[max_devices] = {};
  /// Each device's size.
  size_t capacity = 0;
};

Memory& memory() {
  static Memory* instance = [] {
    auto* m = new Memory;
    // QUORUM_EMULATOR_MEMORY bytes per device (tests of out-of-memory handling set it
    // small), else half the machine's memory (pages are only taken as they are written).
    if (const char* text = std::getenv("QUORUM_EMULATOR_MEMORY")) m->capacity = std::strtoull(text, nullptr, 10);
    if (m->capacity == 0) {
      struct sysinfo info;
      sysinfo(&info);
      m->capacity = (size_t)info.totalram * info.mem_unit / 2;
    }
    return m;
  }();
  return *instance;
}

/// The live allocation holding `address`, if any (lock held).
const std::pair<const uintptr_t, size_t>* find_live(Memory& m, uintptr_t address) {
  auto next = m.live.upper_bound(address);
  if (next == m.live.begin()) return nullptr;
  auto candidate = std::prev(next);
  return address < candidate->first + candidate->second ? &*candidate : nullptr;
}

std::string describe_outside(Memory& m, uintptr_t address) {
  auto next = m.freed.upper_bound(address);
  if (next != m.freed.begin()) {
    auto candidate = std::prev(next);
    if (address < candidate->first + candidate->second) return "a freed device buffer";
  }
  return "host memory, not device memory";
}

/// A device allocation's size in whole pages.
size_t mapped_bytes(size_t bytes) {
  static const size_t page = (size_t)sysconf(_SC_PAGESIZE);
  return (bytes + page - 1) / page * page;
}

/// How many devices the driver shows: QUORUM_EMULATOR_DEVICES (1 to 16, default 1), so
/// that `cuda:all` and a worker serving several GPUs run on the emulator as on a machine
/// with that many GPUs.
int& device_count() {
  static int count = [] {
    const char* text = std::getenv("QUORUM_EMULATOR_DEVICES");
    int n = text ? std::atoi(text) : 1;
    return n < 1 ? 1 : n > max_devices ? max_devices : n;
  }();
  return count;
}

bool valid_device(int device) { return device >= 0 && device < device_count(); }

thread_local std::string last_detail;
thread_local int last_status = 0;

bool initialised = false;
bool race_check = [] {
  const char* setting = std::getenv("QUORUM_EMULATOR_CHECKS");
  return !(setting && std::strcmp(setting, "fast") == 0);
}();

char hex_name(CUdeviceptr pointer, char* text, size_t size) {
  std::snprintf(text, size, "0x%llx", pointer);
  return 0;
}

/// Checks that [pointer, pointer + bytes) is device memory; fails the call otherwise.
bool require_device(CUdeviceptr pointer, size_t bytes, const char* call, const char* what) {
  std::string why;
  if (is_device_range((uintptr_t)pointer, bytes, &why)) return true;
  char address[32];
  hex_name(pointer, address, sizeof address);
  fail(invalid_value, std::string(call) + ": " + what + " " + address + " (" + std::to_string(bytes) + " bytes) is " + why);
  return false;
}

// MARK: Stream capture

// A stream being captured records its work instead of running it, as on a GPU: the
// launches, device-to-device copies and memsets (and cuBLASLt's matmuls) become the
// graph's work, run in the stream's order at every cuGraphLaunch. Capture is per thread
// (CU_STREAM_CAPTURE_MODE_THREAD_LOCAL, the mode Quorum uses): while a thread captures,
// what a graph cannot hold fails on that thread with CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED
// and invalidates the capture, so cuStreamEndCapture then fails with
// CUDA_ERROR_STREAM_CAPTURE_INVALIDATED, as a GPU does:
// - a synchronisation (cuStreamSynchronize, cuCtxSynchronize) and a synchronous copy;
// - an allocation or a free (device or pinned memory);
// - any copy between host and device memory. A GPU accepts one from pinned memory into a
//   graph, which then reads the host buffer at every replay, and refuses one from pageable
//   memory; Quorum's recorded steps hold none (their inputs are staged before the replay),
//   so the emulator refuses both.

/// The work a capture recorded, in the stream's order.
struct Capture {
  std::vector<std::function<CUresult()>> work;
  bool invalidated = false;
  int device = -1;
};

struct Stream {
  unsigned flags;
  std::unique_ptr<Capture> capture;  // while the stream is being captured
};

/// The stream this thread is capturing, if any.
thread_local Stream* capturing_stream = nullptr;

/// Calls by entry point that the tests count: kernel launches the host made (captured
/// ones included, replayed ones not) and graph launches.
std::atomic<unsigned long long> host_kernel_launches{0}, graph_launches{0};

/// Fails `call` if this thread is capturing: the capture cannot hold it.
bool refused_in_capture(const char* call, const char* what) {
  if (!capturing_stream) return false;
  capturing_stream->capture->invalidated = true;
  fail(capture_unsupported, std::string(call) + ": " + what +
                                " while this thread captures a stream into a CUDA graph; the capture is invalidated (a "
                                "recorded step may hold only launches, device-to-device copies and memsets: stage its "
                                "inputs before the recording, read its results after the replay)");
  return true;
}

/// Runs `work` now, or records it if `stream` is being captured.
CUresult run_or_capture(void* stream, std::function<CUresult()> work) {
  auto* s = (Stream*)stream;
  if (s && s->capture) {
    s->capture->work.push_back(std::move(work));
    return success;
  }
  return work();
}

// MARK: Entry points

CUresult cuGetErrorString(CUresult status, const char** text) {
  if (const char* detail = detail_for(status)) {
    *text = detail;
    return success;
  }
  switch (status) {
    case success: *text = "no error"; break;
    case invalid_value: *text = "invalid argument"; break;
    case out_of_memory: *text = "out of memory"; break;
    case not_initialized: *text = "initialization error"; break;
    case invalid_device: *text = "invalid device ordinal"; break;
    case invalid_image: *text = "device kernel image is invalid"; break;
    case invalid_context: *text = "invalid device context"; break;
    case invalid_handle: *text = "invalid resource handle"; break;
    case not_found: *text = "named symbol not found"; break;
    case illegal_address: *text = "an illegal memory access was encountered"; break;
    case launch_out_of_resources: *text = "too many resources requested for launch"; break;
    case 710: *text = "device-side assert triggered"; break;
    case launch_failed: *text = "unspecified launch failure"; break;
    case illegal_state: *text = "the operation cannot be performed in the present state"; break;
    case capture_unsupported: *text = "operation not permitted when stream is capturing"; break;
    case capture_invalidated: *text = "operation failed due to a previous error during capture"; break;
    case capture_wrong_thread: *text = "attempt to terminate a thread-local capture sequence from another thread"; break;
    default: *text = nullptr; return invalid_value;
  }
  return success;
}

CUresult cuInit(unsigned flags) {
  if (flags != 0) return invalid_value;
  initialised = true;
  return success;
}

CUresult cuDriverGetVersion(int* version) {
  *version = 13000;
  return success;
}

CUresult cuDeviceGetCount(int* count) {
  if (!initialised) return not_initialized;
  *count = device_count();
  return success;
}

CUresult cuDeviceGet(int* device, int ordinal) {
  if (!initialised) return not_initialized;
  if (!valid_device(ordinal)) return invalid_device;
  *device = ordinal;
  return success;
}

CUresult cuDeviceGetName(char* name, int length, int device) {
  if (!valid_device(device)) return invalid_device;
  std::snprintf(name, (size_t)length, "Quorum emulated CUDA device (CPU)");
  return success;
}

CUresult cuDeviceGetAttribute(int* value, int attribute, int device) {
  if (!valid_device(device)) return invalid_device;
  switch (attribute) {
    case 1: *value = 1024; break;  // MAX_THREADS_PER_BLOCK
    case 2: *value = 1024; break;  // MAX_BLOCK_DIM_X
    case 5: *value = 2147483647; break;  // MAX_GRID_DIM_X
    case 8: *value = 48 * 1024; break;  // MAX_SHARED_MEMORY_PER_BLOCK
    case 10: *value = 32; break;  // WARP_SIZE
    case 16: *value = 1; break;  // MULTIPROCESSOR_COUNT
    // Compute capability 9.0: the kernels are compiled for sm_90 as for an H100.
    case 75: *value = 9; break;
    case 76: *value = 0; break;
    default: return invalid_value;
  }
  return success;
}

CUresult cuDeviceTotalMem(size_t* bytes, int device) {
  if (!valid_device(device)) return invalid_device;
  *bytes = memory().capacity;
  return success;
}

// One context per device, its primary one, current per thread as on a GPU: a thread that
// has not made one current (cuCtxSetCurrent) cannot allocate, copy or launch, so code that
// hands the device to another thread without binding it there fails here, as it would on
// a GPU, instead of working by accident. Memory belongs to the device whose context was
// current when it was allocated, and a launch or copy under another device's context
// refuses it (the emulated devices have no peer access).
int primary_contexts[max_devices];
thread_local void* current_context = nullptr;
/// The device whose context is current on this thread, or -1.
int current_device() { return current_context ? (int)((int*)current_context - primary_contexts) : -1; }
CUresult cuDevicePrimaryCtxRetain(void** context, int device) {
  if (!initialised) return not_initialized;
  if (!valid_device(device)) return invalid_device;
  *context = &primary_contexts[device];
  return success;
}
CUresult cuDevicePrimaryCtxRelease(int device) { return valid_device(device) ? success : invalid_device; }
CUresult cuCtxSetCurrent(void* context) {
  if (context && !(context >= (void*)primary_contexts && context < (void*)(primary_contexts + device_count()))) return invalid_handle;
  current_context = context;
  return success;
}
CUresult cuCtxGetCurrent(void** context) {
  *context = current_context;
  return success;
}

/// Fails `call` unless this thread has a current context.
bool require_context(const char* call) {
  if (current_context) return true;
  fail(invalid_context, std::string(call) +
                            ": no CUDA context is current on this thread: a thread must make the device's context "
                            "current (cuCtxSetCurrent; CUDADevice.makeCurrent) before it uses the device");
  return false;
}
CUresult cuCtxSynchronize() {
  if (refused_in_capture("cuCtxSynchronize", "a synchronisation")) return capture_unsupported;
  return success;
}

CUresult cuMemAlloc(CUdeviceptr* pointer, size_t bytes) {
  if (!initialised) return not_initialized;
  if (!require_context("cuMemAlloc")) return invalid_context;
  if (refused_in_capture("cuMemAlloc", "an allocation")) return capture_unsupported;
  if (bytes == 0) return invalid_value;
  Memory& m = memory();
  std::lock_guard<std::mutex> guard(m.lock);
  const int device = current_device();
  if (m.live_bytes_of[device] + bytes > m.capacity) {
    fail(out_of_memory, "cuMemAlloc: " + std::to_string(bytes) + " bytes asked, " +
                            std::to_string(m.capacity > m.live_bytes_of[device] ? m.capacity - m.live_bytes_of[device] : 0) +
                            " of emulated device " +
                            std::to_string(device) + "'s " + std::to_string(m.capacity) + " free");
    return out_of_memory;
  }
  // Pages of its own, never the host heap's: a host pointer can then never fall inside
  // device memory, live or freed (freed ranges stay reserved, see cuMemFree).
  void* storage = mmap(nullptr, mapped_bytes(bytes), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (storage == MAP_FAILED) return out_of_memory;
  // NaN everywhere: a kernel that reads memory nobody wrote gives NaNs the tests see.
  std::memset(storage, poison_byte, bytes);
  uintptr_t base = (uintptr_t)storage;
  m.live[base] = bytes;
  m.owner[base] = device;
  m.freed.erase(base);
  m.live_bytes += bytes;
  m.live_bytes_of[device] += bytes;
  *pointer = base;
  return success;
}

CUresult cuMemFree(CUdeviceptr pointer) {
  if (!require_context("cuMemFree")) return invalid_context;
  if (refused_in_capture("cuMemFree", "a free")) return capture_unsupported;
  Memory& m = memory();
  std::lock_guard<std::mutex> guard(m.lock);
  auto found = m.live.find((uintptr_t)pointer);
  if (found == m.live.end()) {
    char address[32];
    hex_name(pointer, address, sizeof address);
    fail(invalid_value, std::string("cuMemFree: ") + address + " is " + describe_outside(m, (uintptr_t)pointer));
    return invalid_value;
  }
  // The pages go back to the system but the addresses stay reserved and inaccessible: a
  // launch naming them is refused as a freed buffer, and a kernel that kept one faults.
  mmap((void*)found->first, mapped_bytes(found->second), PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
  m.live_bytes -= found->second;
  m.live_bytes_of[m.owner[found->first]] -= found->second;
  m.owner.erase(found->first);
  m.freed[found->first] = found->second;
  m.live.erase(found);
  return success;
}

CUresult cuMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  if (!require_context("cuMemGetInfo")) return invalid_context;
  Memory& m = memory();
  std::lock_guard<std::mutex> guard(m.lock);
  const size_t live = m.live_bytes_of[current_device()];
  *free_bytes = m.capacity > live ? m.capacity - live : 0;
  *total_bytes = m.capacity;
  return success;
}

// Pinned host memory is host memory; it is not device memory (a launch refuses it).
CUresult cuMemAllocHost(void** pointer, size_t bytes) {
  if (refused_in_capture("cuMemAllocHost", "an allocation")) return capture_unsupported;
  *pointer = std::aligned_alloc(256, (bytes + 255) / 256 * 256);
  return *pointer ? success : out_of_memory;
}
CUresult cuMemFreeHost(void* pointer) {
  if (refused_in_capture("cuMemFreeHost", "a free")) return capture_unsupported;
  std::free(pointer);
  return success;
}

// The copies and memsets themselves; the entry points below add the capture rules.
CUresult copy_to_device(CUdeviceptr destination, const void* source, size_t bytes, const char* call) {
  if (!require_context(call)) return invalid_context;
  if (!require_device(destination, bytes, call, "the destination")) return invalid_value;
  std::memcpy((void*)destination, source, bytes);
  return success;
}
CUresult copy_to_host(void* destination, CUdeviceptr source, size_t bytes, const char* call) {
  if (!require_context(call)) return invalid_context;
  if (!require_device(source, bytes, call, "the source")) return invalid_value;
  std::memcpy(destination, (const void*)source, bytes);
  return success;
}
CUresult copy_on_device(CUdeviceptr destination, CUdeviceptr source, size_t bytes, const char* call) {
  if (!require_context(call)) return invalid_context;
  if (!require_device(source, bytes, call, "the source")) return invalid_value;
  if (!require_device(destination, bytes, call, "the destination")) return invalid_value;
  std::memmove((void*)destination, (const void*)source, bytes);
  return success;
}
CUresult set_bytes(CUdeviceptr destination, unsigned char value, size_t count, const char* call) {
  if (!require_context(call)) return invalid_context;
  if (!require_device(destination, count, call, "the destination")) return invalid_value;
  std::memset((void*)destination, value, count);
  return success;
}
CUresult set_words(CUdeviceptr destination, unsigned value, size_t count, const char* call) {
  if (!require_context(call)) return invalid_context;
  if (!require_device(destination, count * 4, call, "the destination")) return invalid_value;
  auto* words = (unsigned*)destination;
  for (size_t i = 0; i < count; ++i) words[i] = value;
  return success;
}

CUresult cuMemcpyHtoD(CUdeviceptr destination, const void* source, size_t bytes) {
  if (refused_in_capture("cuMemcpyHtoD", "a synchronous copy")) return capture_unsupported;
  return copy_to_device(destination, source, bytes, "cuMemcpyHtoD");
}
CUresult cuMemcpyDtoH(void* destination, CUdeviceptr source, size_t bytes) {
  if (refused_in_capture("cuMemcpyDtoH", "a synchronous copy")) return capture_unsupported;
  return copy_to_host(destination, source, bytes, "cuMemcpyDtoH");
}
CUresult cuMemcpyDtoD(CUdeviceptr destination, CUdeviceptr source, size_t bytes) {
  if (refused_in_capture("cuMemcpyDtoD", "a synchronous copy")) return capture_unsupported;
  return copy_on_device(destination, source, bytes, "cuMemcpyDtoD");
}
CUresult cuMemcpyHtoDAsync(CUdeviceptr destination, const void* source, size_t bytes, void*) {
  if (refused_in_capture("cuMemcpyHtoDAsync", "a copy from host memory")) return capture_unsupported;
  return copy_to_device(destination, source, bytes, "cuMemcpyHtoDAsync");
}
CUresult cuMemcpyDtoHAsync(void* destination, CUdeviceptr source, size_t bytes, void*) {
  if (refused_in_capture("cuMemcpyDtoHAsync", "a copy to host memory")) return capture_unsupported;
  return copy_to_host(destination, source, bytes, "cuMemcpyDtoHAsync");
}
CUresult cuMemcpyDtoDAsync(CUdeviceptr destination, CUdeviceptr source, size_t bytes, void* stream) {
  if (!require_context("cuMemcpyDtoDAsync")) return invalid_context;
  return run_or_capture(stream, [=] { return copy_on_device(destination, source, bytes, "cuMemcpyDtoDAsync"); });
}
CUresult cuMemsetD8(CUdeviceptr destination, unsigned char value, size_t count) {
  if (refused_in_capture("cuMemsetD8", "a synchronous memset")) return capture_unsupported;
  return set_bytes(destination, value, count, "cuMemsetD8");
}
CUresult cuMemsetD32(CUdeviceptr destination, unsigned value, size_t count) {
  if (refused_in_capture("cuMemsetD32", "a synchronous memset")) return capture_unsupported;
  return set_words(destination, value, count, "cuMemsetD32");
}
CUresult cuMemsetD8Async(CUdeviceptr destination, unsigned char value, size_t count, void* stream) {
  if (!require_context("cuMemsetD8Async")) return invalid_context;
  return run_or_capture(stream, [=] { return set_bytes(destination, value, count, "cuMemsetD8Async"); });
}
CUresult cuMemsetD32Async(CUdeviceptr destination, unsigned value, size_t count, void* stream) {
  if (!require_context("cuMemsetD32Async")) return invalid_context;
  return run_or_capture(stream, [=] { return set_words(destination, value, count, "cuMemsetD32Async"); });
}

// MARK: Streams and events

CUresult cuStreamCreate(void** stream, unsigned flags) {
  if (!require_context("cuStreamCreate")) return invalid_context;
  *stream = new Stream{flags, nullptr};
  return success;
}
CUresult cuStreamDestroy(void* stream) {
  if (capturing_stream == stream) capturing_stream = nullptr;
  delete (Stream*)stream;
  return success;
}
CUresult cuStreamSynchronize(void*) {
  if (refused_in_capture("cuStreamSynchronize", "a synchronisation")) return capture_unsupported;
  return success;
}

CUresult cuStreamBeginCapture(void* stream, int mode) {
  if (!require_context("cuStreamBeginCapture")) return invalid_context;
  auto* s = (Stream*)stream;
  if (!s) {
    fail(invalid_value, "cuStreamBeginCapture: the legacy default stream cannot be captured");
    return invalid_value;
  }
  if (mode < 0 || mode > 2) return invalid_value;
  if (s->capture || capturing_stream) {
    fail(illegal_state, "cuStreamBeginCapture: this thread is already capturing a stream");
    return illegal_state;
  }
  s->capture = std::make_unique<Capture>();
  s->capture->device = current_device();
  capturing_stream = s;
  return success;
}

/// A captured graph, and an instantiated one: the work, in order, and its device.
struct Graph {
  std::vector<std::function<CUresult()>> work;
  int device;
};

CUresult cuStreamEndCapture(void* stream, void** graph) {
  auto* s = (Stream*)stream;
  if (!s || !s->capture) {
    fail(illegal_state, "cuStreamEndCapture: the stream is not being captured");
    return illegal_state;
  }
  if (capturing_stream != s) {
    fail(capture_wrong_thread, "cuStreamEndCapture: a thread-local capture must end on the thread that began it");
    return capture_wrong_thread;
  }
  std::unique_ptr<Capture> capture = std::move(s->capture);
  capturing_stream = nullptr;
  *graph = nullptr;
  if (capture->invalidated) {
    fail(capture_invalidated, "cuStreamEndCapture: the capture was invalidated by a call it could not hold (the first "
                              "error of the capture says which)");
    return capture_invalidated;
  }
  *graph = new Graph{std::move(capture->work), capture->device};
  return success;
}

CUresult cuGraphInstantiate(void** exec, void* graph, unsigned long long) {
  auto* g = (Graph*)graph;
  if (!g) return invalid_value;
  *exec = new Graph{g->work, g->device};
  return success;
}

CUresult cuGraphLaunch(void* exec, void* stream) {
  auto* g = (Graph*)exec;
  if (!g) return invalid_handle;
  if (!require_context("cuGraphLaunch")) return invalid_context;
  if (g->device != current_device()) {
    fail(invalid_value, "cuGraphLaunch: a graph of emulated device " + std::to_string(g->device) + " launched under device " +
                            std::to_string(current_device()) + "'s context");
    return invalid_value;
  }
  auto* s = (Stream*)stream;
  if (s && s->capture) {
    fail(capture_unsupported, "cuGraphLaunch: the emulator does not capture a graph launch into another graph");
    s->capture->invalidated = true;
    return capture_unsupported;
  }
  ++graph_launches;
  for (auto& work : g->work)
    if (CUresult status = work()) return status;
  return success;
}

CUresult cuGraphExecDestroy(void* exec) {
  delete (Graph*)exec;
  return success;
}
CUresult cuGraphDestroy(void* graph) {
  delete (Graph*)graph;
  return success;
}

struct Event {
  std::chrono::steady_clock::time_point when;
  bool recorded = false;
};
CUresult cuEventCreate(void** event, unsigned) {
  *event = new Event;
  return success;
}
CUresult cuEventDestroy(void* event) {
  delete (Event*)event;
  return success;
}
CUresult cuEventRecord(void* event, void*) {
  auto* e = (Event*)event;
  if (!e) return invalid_handle;
  e->when = std::chrono::steady_clock::now();
  e->recorded = true;
  return success;
}
CUresult cuEventSynchronize(void* event) { return event ? success : invalid_handle; }
CUresult cuEventElapsedTime(float* milliseconds, void* start, void* end) {
  auto *from = (Event*)start, *to = (Event*)end;
  if (!from || !to || !from->recorded || !to->recorded) return invalid_handle;
  *milliseconds = std::chrono::duration<float, std::milli>(to->when - from->when).count();
  return success;
}

// MARK: Modules and launches

/// What nvrtcGetCUBIN hands out on the emulated device: a tag and the kernel file's name.
constexpr char image_tag[] = "QUORUM-EMULATED-MODULE";

CUresult cuModuleLoadData(void** module, const void* image) {
  if (!require_context("cuModuleLoadData")) return invalid_context;
  if (!initialised) return not_initialized;
  const char* text = (const char*)image;
  if (std::strncmp(text, image_tag, sizeof image_tag - 1) != 0) {
    fail(invalid_image, "cuModuleLoadData: the emulated device loads only the images of its own NVRTC, not a real CUBIN");
    return invalid_image;
  }
  const char* file = text + sizeof image_tag;
  const Module* found = find_module(file);
  if (!found) {
    fail(invalid_image, std::string("cuModuleLoadData: the emulated device has no CPU build of ") + file);
    return invalid_image;
  }
  *module = (void*)found;
  return success;
}

CUresult cuModuleUnload(void* module) { return module ? success : invalid_handle; }

CUresult cuModuleGetFunction(void** function, void* module, const char* name) {
  auto* found = (const Module*)module;
  if (!found) return invalid_handle;
  auto kernel = found->kernels.find(name);
  if (kernel == found->kernels.end()) {
    fail(not_found, std::string("cuModuleGetFunction: ") + found->file + " has no kernel " + name);
    return not_found;
  }
  *function = (void*)&kernel->second;
  return success;
}

/// The allocations a launch may write, copied, for the race check's second run.
struct Snapshot {
  std::vector<Allocation> allocations;
  std::vector<std::vector<unsigned char>> bytes;

  void take(const std::vector<Allocation>& which) {
    allocations = which;
    bytes.clear();
    for (const Allocation& a : which) bytes.emplace_back((unsigned char*)a.base, (unsigned char*)a.base + a.bytes);
  }
  void restore() const {
    for (size_t i = 0; i < allocations.size(); ++i) std::memcpy((void*)allocations[i].base, bytes[i].data(), allocations[i].bytes);
  }
};

/// The allocations holding `pointers`, each once.
std::vector<Allocation> allocations_of(const std::vector<uintptr_t>& pointers) {
  Memory& m = memory();
  std::lock_guard<std::mutex> guard(m.lock);
  std::map<uintptr_t, size_t> found;
  for (uintptr_t p : pointers)
    if (auto* a = find_live(m, p)) found[a->first] = a->second;
  std::vector<Allocation> result;
  for (auto& [base, bytes] : found) result.push_back({base, bytes});
  return result;
}

/// Checks a launch's geometry and arguments; collects the buffers it may write.
CUresult check_launch(const Kernel* kernel, Dim3 grid, Dim3 block, unsigned shared_bytes, void** params, void** extra,
                      std::vector<uintptr_t>* writable) {
  if (!kernel) return invalid_handle;
  if (!require_context("cuLaunchKernel")) return invalid_context;
  if (extra) {
    fail(invalid_value, "cuLaunchKernel(" + kernel->name + "): the emulated device takes kernelParams, not extra");
    return invalid_value;
  }
  if (grid.count() == 0 || block.count() == 0 || block.count() > 1024 || block.z > 64 || shared_bytes > 48 * 1024) {
    fail(invalid_value, "cuLaunchKernel(" + kernel->name + "): a block of " + std::to_string(block.count()) +
                            " threads (at most 1024), a grid of " + std::to_string(grid.count()) + " blocks");
    return invalid_value;
  }
  if (kernel->parameter_count > 0 && !params) {
    fail(invalid_value, "cuLaunchKernel(" + kernel->name + "): no kernelParams");
    return invalid_value;
  }
  std::string why;
  if (!kernel->inspect(params, writable, &why)) {
    fail(illegal_address, "cuLaunchKernel(" + kernel->name + "): " + why);
    return illegal_address;
  }
  return success;
}

/// Runs a checked launch (twice, with the race check).
CUresult run_launch(const Kernel* kernel, Dim3 grid, Dim3 block, void** params, const std::vector<uintptr_t>& writable) {
  if (!race_check) return run_grid(*kernel, grid, block, params, false);
  // The race check: the same launch from the same memory in the reverse order of blocks
  // and threads must write the same bits. A kernel whose threads read what others write
  // without a barrier between, or whose blocks depend on each other, differs.
  Snapshot before, forward;
  std::vector<Allocation> outputs = allocations_of(writable);
  before.take(outputs);
  if (CUresult status = run_grid(*kernel, grid, block, params, false)) return status;
  forward.take(outputs);
  before.restore();
  if (CUresult status = run_grid(*kernel, grid, block, params, true)) return status;
  for (size_t i = 0; i < outputs.size(); ++i) {
    const unsigned char* reversed = (const unsigned char*)outputs[i].base;
    const std::vector<unsigned char>& expected = forward.bytes[i];
    for (size_t offset = 0; offset < outputs[i].bytes; ++offset) {
      if (reversed[offset] == expected[offset]) continue;
      size_t word = offset / 4 * 4;
      float first = 0, second = 0;
      if (word + 4 <= outputs[i].bytes) {
        std::memcpy(&first, expected.data() + word, 4);
        std::memcpy(&second, reversed + word, 4);
      }
      char text[300];
      std::snprintf(text, sizeof text,
                    "%s: a race: run with blocks and threads in reverse order, it wrote other bits at byte %zu of the "
                    "%zu-byte buffer 0x%llx (as float32: %.9g in order, %.9g reversed)",
                    kernel->name.c_str(), offset, outputs[i].bytes, (unsigned long long)outputs[i].base, first, second);
      fail(launch_failed, text);
      return launch_failed;
    }
  }
  return success;
}


/// A captured launch's own copy of its arguments.
struct CapturedArguments {
  std::vector<std::vector<unsigned char>> values;
  std::vector<void*> pointers;
};

CUresult cuLaunchKernel(void* function, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                        unsigned shared_bytes, void* stream, void** params, void** extra) {
  auto* kernel = (const Kernel*)function;
  Dim3 grid{gx, gy, gz}, block{bx, by, bz};
  std::vector<uintptr_t> writable;
  if (CUresult status = check_launch(kernel, grid, block, shared_bytes, params, extra, &writable)) return status;
  ++host_kernel_launches;
  auto* s = (Stream*)stream;
  if (!(s && s->capture)) return run_launch(kernel, grid, block, params, writable);
  // The graph keeps the arguments' values, as a GPU's graph node keeps its parameter
  // buffer; at each replay the launch is checked again (a buffer freed since is refused).
  auto arguments = std::make_shared<CapturedArguments>();
  for (int i = 0; i < kernel->parameter_count; ++i) {
    const auto* bytes = (const unsigned char*)params[i];
    arguments->values.emplace_back(bytes, bytes + kernel->parameter_sizes[(size_t)i]);
  }
  for (auto& value : arguments->values) arguments->pointers.push_back(value.data());
  s->capture->work.push_back([kernel, grid, block, shared_bytes, arguments]() -> CUresult {
    std::vector<uintptr_t> writable;
    void** params = arguments->pointers.data();
    if (CUresult status = check_launch(kernel, grid, block, shared_bytes, params, nullptr, &writable)) return status;
    return run_launch(kernel, grid, block, params, writable);
  });
  return success;
}

}  // namespace

// MARK: - Shared with the other parts

void fail(int status, const std::string& detail) {
  last_status = status;
  last_detail = "emulator: " + detail;
}

const char* detail_for(int status) { return status == last_status && !last_detail.empty() ? last_detail.c_str() : nullptr; }

bool is_device_range(uintptr_t address, size_t bytes, std::string* why) {
  Memory& m = memory();
  std::lock_guard<std::mutex> guard(m.lock);
  auto* a = find_live(m, address);
  if (!a) {
    *why = describe_outside(m, address);
    return false;
  }
  if (address + bytes > a->first + a->second) {
    *why = "past the end of its " + std::to_string(a->second) + "-byte device buffer";
    return false;
  }
  const int device = m.owner[a->first], current = current_device();
  if (current >= 0 && device != current) {
    *why = "a device buffer of emulated device " + std::to_string(device) + ", used under device " + std::to_string(current) +
           "'s context (the emulated devices have no peer access: each member's buffers stay on its device)";
    return false;
  }
  return true;
}

bool is_device_pointer(uintptr_t address, std::string* why) { return is_device_range(address, 1, why); }

bool capture_if_capturing(void* stream, std::function<int()> work) {
  auto* s = (Stream*)stream;
  if (!(s && s->capture)) return false;
  s->capture->work.push_back(std::move(work));
  return true;
}

bool race_check_enabled() { return race_check; }
void set_race_check(bool enabled) { race_check = enabled; }

void add_driver_symbols(SymbolTable& table) {
  table["cuGetErrorString"] = (void*)&cuGetErrorString;
  table["cuInit"] = (void*)&cuInit;
  table["cuDriverGetVersion"] = (void*)&cuDriverGetVersion;
  table["cuDeviceGetCount"] = (void*)&cuDeviceGetCount;
  table["cuDeviceGet"] = (void*)&cuDeviceGet;
  table["cuDeviceGetName"] = (void*)&cuDeviceGetName;
  table["cuDeviceGetAttribute"] = (void*)&cuDeviceGetAttribute;
  table["cuDeviceTotalMem_v2"] = (void*)&cuDeviceTotalMem;
  table["cuDevicePrimaryCtxRetain"] = (void*)&cuDevicePrimaryCtxRetain;
  table["cuDevicePrimaryCtxRelease_v2"] = (void*)&cuDevicePrimaryCtxRelease;
  table["cuCtxSetCurrent"] = (void*)&cuCtxSetCurrent;
  table["cuCtxGetCurrent"] = (void*)&cuCtxGetCurrent;
  table["cuCtxSynchronize"] = (void*)&cuCtxSynchronize;
  table["cuMemAlloc_v2"] = (void*)&cuMemAlloc;
  table["cuMemFree_v2"] = (void*)&cuMemFree;
  table["cuMemGetInfo_v2"] = (void*)&cuMemGetInfo;
  table["cuMemAllocHost_v2"] = (void*)&cuMemAllocHost;
  table["cuMemFreeHost"] = (void*)&cuMemFreeHost;
  table["cuMemcpyHtoD_v2"] = (void*)&cuMemcpyHtoD;
  table["cuMemcpyDtoH_v2"] = (void*)&cuMemcpyDtoH;
  table["cuMemcpyDtoD_v2"] = (void*)&cuMemcpyDtoD;
  table["cuMemcpyHtoDAsync_v2"] = (void*)&cuMemcpyHtoDAsync;
  table["cuMemcpyDtoHAsync_v2"] = (void*)&cuMemcpyDtoHAsync;
  table["cuMemcpyDtoDAsync_v2"] = (void*)&cuMemcpyDtoDAsync;
  table["cuMemsetD8_v2"] = (void*)&cuMemsetD8;
  table["cuMemsetD32_v2"] = (void*)&cuMemsetD32;
  table["cuMemsetD8Async"] = (void*)&cuMemsetD8Async;
  table["cuMemsetD32Async"] = (void*)&cuMemsetD32Async;
  table["cuStreamCreate"] = (void*)&cuStreamCreate;
  table["cuStreamDestroy_v2"] = (void*)&cuStreamDestroy;
  table["cuStreamSynchronize"] = (void*)&cuStreamSynchronize;
  table["cuStreamBeginCapture_v2"] = (void*)&cuStreamBeginCapture;
  table["cuStreamEndCapture"] = (void*)&cuStreamEndCapture;
  table["cuGraphInstantiateWithFlags"] = (void*)&cuGraphInstantiate;
  table["cuGraphLaunch"] = (void*)&cuGraphLaunch;
  table["cuGraphExecDestroy"] = (void*)&cuGraphExecDestroy;
  table["cuGraphDestroy"] = (void*)&cuGraphDestroy;
  table["cuEventCreate"] = (void*)&cuEventCreate;
  table["cuEventDestroy_v2"] = (void*)&cuEventDestroy;
  table["cuEventRecord"] = (void*)&cuEventRecord;
  table["cuEventSynchronize"] = (void*)&cuEventSynchronize;
  table["cuEventElapsedTime"] = (void*)&cuEventElapsedTime;
  table["cuModuleLoadData"] = (void*)&cuModuleLoadData;
  table["cuModuleUnload"] = (void*)&cuModuleUnload;
  table["cuModuleGetFunction"] = (void*)&cuModuleGetFunction;
  table["cuLaunchKernel"] = (void*)&cuLaunchKernel;
}

}  // namespace emulator

extern "C" {

void quorum_emulator_set_race_check(int enabled) { emulator::set_race_check(enabled != 0); }
int quorum_emulator_race_check(void) { return emulator::race_check_enabled() ? 1 : 0; }
unsigned long long quorum_emulator_set_memory(unsigned long long bytes) {
  emulator::Memory& m = emulator::memory();
  std::lock_guard<std::mutex> guard(m.lock);
  unsigned long long previous = m.capacity;
  m.capacity = bytes;
  return previous;
}
void quorum_emulator_set_device_count(int count) {
  emulator::device_count() = count < 1 ? 1 : count > emulator::max_devices ? emulator::max_devices : count;
}
unsigned long long quorum_emulator_host_kernel_launches(void) { return emulator::host_kernel_launches.load(); }
unsigned long long quorum_emulator_graph_launches(void) { return emulator::graph_launches.load(); }
unsigned long long quorum_emulator_live_bytes(void) {
  emulator::Memory& m = emulator::memory();
  std::lock_guard<std::mutex> guard(m.lock);
  return m.live_bytes;
}
}
