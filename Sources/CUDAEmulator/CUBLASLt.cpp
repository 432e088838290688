// The emulated device's cuBLASLt: the entry points the CUDA backend's GEMMs call (the 1×1
// convolutions, the stem's im2col product, the classifier), with cuBLASLt's column-major
// semantics and its C ABI, computed on the CPU with OpenBLAS's sgemm. The Swift side calls
// these through function pointers declared with the real prototypes, so the values below
// are the real headers' and the structs that cross the boundary have the real layouts.
//
// What it cannot tell: which algorithms real cuBLASLt's heuristics offer for a problem (it
// offers one whenever the problem is valid), tensor-core numerics (TF32 and bf16 products
// are computed as float32 products here, in OpenBLAS's summation order, so results agree
// with a GPU only to rounding), alignment demands of particular kernels beyond the element
// size, and anything about speed. Streams are ignored: every call runs to completion on
// the calling thread, like the rest of the emulator.
//
// Values checked against NVIDIA's headers (cublasLt.h of CUDA 12.9/13, cublasLt.h of 11.x,
// cublas_api.h 12.3, a preprocessed library_types.h):
//   cublasStatus_t: SUCCESS 0, NOT_INITIALIZED 1, ALLOC_FAILED 3, INVALID_VALUE 7,
//     ARCH_MISMATCH 8, MAPPING_ERROR 11, EXECUTION_FAILED 13, INTERNAL_ERROR 14,
//     NOT_SUPPORTED 15, LICENSE_ERROR 16.
//   cublasOperation_t: N 0, T 1, C 2.   cublasLtPointerMode_t: HOST 0, DEVICE 1,
//     DEVICE_VECTOR 2, ALPHA_DEVICE_VECTOR_BETA_ZERO 3, ALPHA_DEVICE_VECTOR_BETA_HOST 4.
//   cublasComputeType_t: 16F 64, 16F_PEDANTIC 65, 32F 68, 32F_PEDANTIC 69, 64F 70,
//     64F_PEDANTIC 71, 32I 72, 32I_PEDANTIC 73, 32F_FAST_16F 74, 32F_FAST_16BF 75,
//     32F_FAST_TF32 77.
//   cudaDataType_t: R_32F 0, R_64F 1, R_16F 2, R_8I 3, R_32I 10, R_16BF 14.
//   cublasLtMatmulDescAttributes_t (value, type): COMPUTE_TYPE 0 int32, SCALE_TYPE 1 int32,
//     POINTER_MODE 2 int32, TRANSA 3 int32, TRANSB 4 int32, TRANSC 5, FILL_MODE 6,
//     EPILOGUE 7 uint32, BIAS_POINTER 8 pointer, BIAS_BATCH_STRIDE 10 int64,
//     EPILOGUE_AUX_POINTER 11 pointer, EPILOGUE_AUX_LD 12 int64, AUX_BATCH_STRIDE 13,
//     ALPHA_VECTOR_BATCH_STRIDE 14, SM_COUNT_TARGET 15, A/B/C/D_SCALE_POINTER 17–20,
//     AMAX_D_POINTER 21, EPILOGUE_AUX_DATA_TYPE 22, AUX_SCALE_POINTER 23,
//     AUX_AMAX_POINTER 24, FAST_ACCUM 25, BIAS_DATA_TYPE 26 int32 (default −1: the type
//     of D), A/B/C/D/AUX scale modes 31–35, D_OUT_SCALE_POINTER 36, D_OUT_SCALE_MODE 37,
//     EMULATION_DESCRIPTOR 38, ALPHA/BETA_BATCH_STRIDE 39/40.
//   cublasLtMatrixLayoutAttribute_t: TYPE 0 uint32, ORDER 1 int32, ROWS 2 uint64,
//     COLS 3 uint64, LD 4 int64, BATCH_COUNT 5 int32, STRIDED_BATCH_OFFSET 6 int64,
//     PLANE_OFFSET 7 int64, BATCH_MODE 8.   cublasLtOrder_t: COL 0, ROW 1, COL32 2,
//     COL4_4R2_8C 3, COL32_2R_4R4 4.
//   cublasLtMatmulPreferenceAttributes_t: SEARCH_MODE 0 uint32, MAX_WORKSPACE_BYTES 1
//     uint64, REDUCTION_SCHEME_MASK 3 uint32, MIN_ALIGNMENT_A/B/C/D_BYTES 5–8 uint32,
//     MAX_WAVES_COUNT 9 float, IMPL_MASK 12 uint64.
//   cublasLtEpilogue_t: DEFAULT 1, RELU 2, RELU_AUX 130, BIAS 4, RELU_BIAS 6,
//     RELU_AUX_BIAS 134, DRELU 136, DRELU_BGRAD 152, GELU 32, GELU_AUX 160, GELU_BIAS 36,
//     GELU_AUX_BIAS 164, DGELU 192, DGELU_BGRAD 208, BGRADA 256, BGRADB 512.
//   cublasLtMatmulAlgo_t = { uint64_t data[8]; } (64 bytes), passed by pointer.
//   cublasLtMatmulHeuristicResult_t = { cublasLtMatmulAlgo_t algo; size_t workspaceSize;
//     cublasStatus_t state; float wavesCount; int reserved[4]; } (96 bytes).
//   Handles and descriptors are opaque pointers (cublasLtHandle_t, cublasLtMatmulDesc_t,
//   cublasLtMatrixLayout_t, cublasLtMatmulPreference_t); these are the emulator's own.
//   Get-attribute: sizeInBytes 0 with sizeWritten asks for the size; a wrong size or a
//   null buffer is INVALID_VALUE. cublasLtMatmulAlgoGetHeuristic: requestedAlgoCount ≤ 0 is
//   INVALID_VALUE, no algorithm is NOT_SUPPORTED. cublasLtMatmul: in place means C == D
//   with Cdesc equal to Ddesc; out of place, C and D share type, shape, batch and order.
//
// BGRADA and BGRADB (bias gradients, reductions of op(A) or op(B) over k) are left
// unsupported: whether cuBLASLt scales them by alpha, and which transposes it accepts for
// them, is not in the headers, and an emulator that guesses would pass code a GPU fails.

#include <cblas.h>

#include <cmath>
#include <cstddef>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include "Emulator.h"

namespace emulator {
namespace cublaslt {

// MARK: - The real headers' values

enum Status : int {
  success = 0,
  not_initialized = 1,
  alloc_failed = 3,
  invalid_value = 7,
  arch_mismatch = 8,
  mapping_error = 11,
  execution_failed = 13,
  internal_error = 14,
  not_supported = 15,
  license_error = 16,
};

constexpr int32_t op_n = 0, op_t = 1, op_c = 2;
constexpr int32_t pointer_mode_host = 0;
constexpr int32_t compute_32f = 68, compute_32f_pedantic = 69, compute_32f_fast_16bf = 75,
                  compute_32f_fast_tf32 = 77;
constexpr int32_t type_unset = -1, r_32f = 0, r_16bf = 14;
constexpr int32_t order_col = 0;

enum DescAttribute : int32_t {
  desc_compute_type = 0,
  desc_scale_type = 1,
  desc_pointer_mode = 2,
  desc_transa = 3,
  desc_transb = 4,
  desc_epilogue = 7,
  desc_bias_pointer = 8,
  desc_bias_batch_stride = 10,
  desc_epilogue_aux_pointer = 11,
  desc_epilogue_aux_ld = 12,
  desc_bias_data_type = 26,
};

enum LayoutAttribute : int32_t {
  layout_type = 0,
  layout_order = 1,
  layout_rows = 2,
  layout_cols = 3,
  layout_ld = 4,
  layout_batch_count = 5,
  layout_strided_batch_offset = 6,
};

enum PreferenceAttribute : int32_t {
  pref_max_workspace_bytes = 1,
  pref_min_alignment_a_bytes = 5,
  pref_min_alignment_d_bytes = 8,
};

enum Epilogue : uint32_t {
  epilogue_default = 1,
  epilogue_relu = 2,
  epilogue_bias = 4,
  epilogue_relu_bias = 6,
};

/// cublasLtMatmulAlgo_t.
struct Algo {
  uint64_t data[8];
};

/// cublasLtMatmulHeuristicResult_t.
struct HeuristicResult {
  Algo algo;
  size_t workspaceSize;
  int32_t state;
  float wavesCount;
  int reserved[4];
};
static_assert(sizeof(Algo) == 64, "cublasLtMatmulAlgo_t is 8 uint64_t");
static_assert(sizeof(HeuristicResult) == 96, "cublasLtMatmulHeuristicResult_t is 96 bytes");
static_assert(offsetof(HeuristicResult, workspaceSize) == 64, "workspaceSize follows algo");
static_assert(offsetof(HeuristicResult, state) == 72, "state follows workspaceSize");
static_assert(offsetof(HeuristicResult, wavesCount) == 76, "wavesCount follows state");

/// Marks an algorithm as the emulator's, so that matmul can refuse one it did not hand out
/// (uninitialised memory, or a real cuBLASLt's algo): "QUORUMLT".
constexpr uint64_t algo_marker = 0x51554F52554D4C54ull;

/// The API these stand-ins follow (cuBLASLt 13.1), in CUBLAS_VERSION's encoding
/// (major·10000 + minor·100 + patch). No real library reports it from this process: it
/// comes from the emulator, which is the only thing that answers to these names here.
constexpr size_t emulated_version = 130100;

// MARK: - Names for details

namespace {

const char* status_name(int status) {
  switch (status) {
    case success: return "CUBLAS_STATUS_SUCCESS";
    case not_initialized: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case alloc_failed: return "CUBLAS_STATUS_ALLOC_FAILED";
    case invalid_value: return "CUBLAS_STATUS_INVALID_VALUE";
    case arch_mismatch: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case mapping_error: return "CUBLAS_STATUS_MAPPING_ERROR";
    case execution_failed: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case internal_error: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case not_supported: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case license_error: return "CUBLAS_STATUS_LICENSE_ERROR";
    default: return "CUBLAS_STATUS_UNKNOWN";
  }
}

std::string epilogue_name(uint32_t epilogue) {
  switch (epilogue) {
    case 1: return "CUBLASLT_EPILOGUE_DEFAULT (1)";
    case 2: return "CUBLASLT_EPILOGUE_RELU (2)";
    case 130: return "CUBLASLT_EPILOGUE_RELU_AUX (130)";
    case 4: return "CUBLASLT_EPILOGUE_BIAS (4)";
    case 6: return "CUBLASLT_EPILOGUE_RELU_BIAS (6)";
    case 134: return "CUBLASLT_EPILOGUE_RELU_AUX_BIAS (134)";
    case 136: return "CUBLASLT_EPILOGUE_DRELU (136)";
    case 152: return "CUBLASLT_EPILOGUE_DRELU_BGRAD (152)";
    case 32: return "CUBLASLT_EPILOGUE_GELU (32)";
    case 160: return "CUBLASLT_EPILOGUE_GELU_AUX (160)";
    case 36: return "CUBLASLT_EPILOGUE_GELU_BIAS (36)";
    case 164: return "CUBLASLT_EPILOGUE_GELU_AUX_BIAS (164)";
    case 192: return "CUBLASLT_EPILOGUE_DGELU (192)";
    case 208: return "CUBLASLT_EPILOGUE_DGELU_BGRAD (208)";
    case 256: return "CUBLASLT_EPILOGUE_BGRADA (256)";
    case 512: return "CUBLASLT_EPILOGUE_BGRADB (512)";
    default: return "epilogue " + std::to_string(epilogue) + " (not a cublasLtEpilogue_t value)";
  }
}

std::string type_name(int32_t type) {
  switch (type) {
    case r_32f: return "CUDA_R_32F";
    case r_16bf: return "CUDA_R_16BF";
    case 1: return "CUDA_R_64F";
    case 2: return "CUDA_R_16F";
    case 3: return "CUDA_R_8I";
    case 10: return "CUDA_R_32I";
    default: return "cudaDataType " + std::to_string(type);
  }
}

std::string compute_type_name(int32_t type) {
  switch (type) {
    case 64: return "CUBLAS_COMPUTE_16F";
    case 65: return "CUBLAS_COMPUTE_16F_PEDANTIC";
    case compute_32f: return "CUBLAS_COMPUTE_32F";
    case compute_32f_pedantic: return "CUBLAS_COMPUTE_32F_PEDANTIC";
    case 70: return "CUBLAS_COMPUTE_64F";
    case 71: return "CUBLAS_COMPUTE_64F_PEDANTIC";
    case 72: return "CUBLAS_COMPUTE_32I";
    case 73: return "CUBLAS_COMPUTE_32I_PEDANTIC";
    case 74: return "CUBLAS_COMPUTE_32F_FAST_16F";
    case compute_32f_fast_16bf: return "CUBLAS_COMPUTE_32F_FAST_16BF";
    case compute_32f_fast_tf32: return "CUBLAS_COMPUTE_32F_FAST_TF32";
    default: return "cublasComputeType " + std::to_string(type);
  }
}

std::string shape(uint64_t rows, uint64_t cols) {
  return std::to_string(rows) + "x" + std::to_string(cols);
}

int refuse(int status, const std::string& detail) {
  fail(status, detail);
  return status;
}

}  // namespace

// MARK: - Handles and descriptors

/// What an opaque pointer was created as; kept so that a destroyed or foreign pointer is
/// refused with a reason instead of being read.
enum class Kind { handle, matmul_desc, layout, preference };

struct Context {
  static constexpr Kind kind = Kind::handle;
  static constexpr const char* noun = "cuBLASLt handle";
};

struct MatmulDesc {
  static constexpr Kind kind = Kind::matmul_desc;
  static constexpr const char* noun = "matmul descriptor";
  int32_t compute_type = compute_32f;
  int32_t scale_type = r_32f;
  int32_t pointer_mode = pointer_mode_host;
  int32_t transa = op_n;
  int32_t transb = op_n;
  uint32_t epilogue = epilogue_default;
  const void* bias = nullptr;
  int64_t bias_batch_stride = 0;
  int32_t bias_type = type_unset;
  void* aux = nullptr;
  int64_t aux_ld = 0;
};

struct Layout {
  static constexpr Kind kind = Kind::layout;
  static constexpr const char* noun = "matrix layout";
  uint32_t type = r_32f;
  int32_t order = order_col;
  uint64_t rows = 0;
  uint64_t cols = 0;
  int64_t ld = 0;
  int32_t batch_count = 1;
  int64_t batch_stride = 0;
};

struct Preference {
  static constexpr Kind kind = Kind::preference;
  static constexpr const char* noun = "matmul preference";
  uint64_t max_workspace_bytes = 0;
  uint32_t min_alignment[4] = {256, 256, 256, 256};
};

namespace {

class Registry {
 public:
  void add(const void* object, Kind kind) {
    std::lock_guard<std::mutex> lock(mutex_);
    live_[object] = kind;
  }
  bool remove(const void* object, Kind kind) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto found = live_.find(object);
    if (found == live_.end() || found->second != kind) return false;
    live_.erase(found);
    return true;
  }
  bool contains(const void* object, Kind kind) const {
    std::lock_guard<std::mutex> lock(mutex_);
    auto found = live_.find(object);
    return found != live_.end() && found->second == kind;
  }

 private:
  mutable std::mutex mutex_;
  std::map<const void*, Kind> live_;
};

// Never destroyed: a handle may be released by a Swift deinit during exit.
Registry& registry() {
  static Registry* shared = new Registry;
  return *shared;
}

template <typename T>
int create_object(const char* call, T** out) {
  if (out == nullptr) return refuse(invalid_value, std::string(call) + ": the output pointer is null");
  T* object = new (std::nothrow) T;
  if (object == nullptr) return refuse(alloc_failed, std::string(call) + ": out of host memory");
  registry().add(object, T::kind);
  *out = object;
  return success;
}

template <typename T>
int destroy_object(const char* call, T* object) {
  if (object == nullptr) return success;  // like free(NULL): the real library accepts it
  if (!registry().remove(object, T::kind))
    return refuse(invalid_value, std::string(call) + ": not a live " + T::noun + " (destroyed twice, or never created)");
  delete object;
  return success;
}

/// The object behind `pointer` if it is a live T; otherwise nullptr with `why` set.
template <typename T>
const T* live(const T* pointer, const char* call, const char* role, std::string* why) {
  if (pointer == nullptr) {
    *why = std::string(call) + ": " + role + " is null";
    return nullptr;
  }
  if (!registry().contains(pointer, T::kind)) {
    *why = std::string(call) + ": " + role + " is not a live " + T::noun + " (destroyed, or never created)";
    return nullptr;
  }
  return pointer;
}

// MARK: - Attributes

/// Where an attribute's value lives in a descriptor and how many bytes it has, so that Set
/// and Get share one table and one size check. `address` is null for an attribute the
/// emulator does not implement.
struct Field {
  void* address;
  size_t size;
};

Field desc_field(MatmulDesc& desc, int32_t attribute) {
  switch (attribute) {
    case desc_compute_type: return {&desc.compute_type, sizeof(int32_t)};
    case desc_scale_type: return {&desc.scale_type, sizeof(int32_t)};
    case desc_pointer_mode: return {&desc.pointer_mode, sizeof(int32_t)};
    case desc_transa: return {&desc.transa, sizeof(int32_t)};
    case desc_transb: return {&desc.transb, sizeof(int32_t)};
    case desc_epilogue: return {&desc.epilogue, sizeof(uint32_t)};
    case desc_bias_pointer: return {&desc.bias, sizeof(void*)};
    case desc_bias_batch_stride: return {&desc.bias_batch_stride, sizeof(int64_t)};
    case desc_epilogue_aux_pointer: return {&desc.aux, sizeof(void*)};
    case desc_epilogue_aux_ld: return {&desc.aux_ld, sizeof(int64_t)};
    case desc_bias_data_type: return {&desc.bias_type, sizeof(int32_t)};
    default: return {nullptr, 0};
  }
}
constexpr const char* desc_attributes =
    "COMPUTE_TYPE 0, SCALE_TYPE 1, POINTER_MODE 2, TRANSA 3, TRANSB 4, EPILOGUE 7, BIAS_POINTER 8, "
    "BIAS_BATCH_STRIDE 10, EPILOGUE_AUX_POINTER 11, EPILOGUE_AUX_LD 12, BIAS_DATA_TYPE 26";

Field layout_field(Layout& layout, int32_t attribute) {
  switch (attribute) {
    case layout_type: return {&layout.type, sizeof(uint32_t)};
    case layout_order: return {&layout.order, sizeof(int32_t)};
    case layout_rows: return {&layout.rows, sizeof(uint64_t)};
    case layout_cols: return {&layout.cols, sizeof(uint64_t)};
    case layout_ld: return {&layout.ld, sizeof(int64_t)};
    case layout_batch_count: return {&layout.batch_count, sizeof(int32_t)};
    case layout_strided_batch_offset: return {&layout.batch_stride, sizeof(int64_t)};
    default: return {nullptr, 0};
  }
}
constexpr const char* layout_attributes = "TYPE 0, ORDER 1, ROWS 2, COLS 3, LD 4, BATCH_COUNT 5, STRIDED_BATCH_OFFSET 6";

Field preference_field(Preference& preference, int32_t attribute) {
  if (attribute == pref_max_workspace_bytes) return {&preference.max_workspace_bytes, sizeof(uint64_t)};
  // Alignment floors only filter algorithms; the emulator's one needs the element size.
  if (attribute >= pref_min_alignment_a_bytes && attribute <= pref_min_alignment_d_bytes)
    return {&preference.min_alignment[attribute - pref_min_alignment_a_bytes], sizeof(uint32_t)};
  return {nullptr, 0};
}
constexpr const char* preference_attributes = "MAX_WORKSPACE_BYTES 1, MIN_ALIGNMENT_A/B/C/D_BYTES 5-8";

/// `implemented` lists the call's attributes, for the detail when `field` is not one.
int set_field(const char* call, const char* implemented, int32_t attribute, const Field& field, const void* buffer,
              size_t size) {
  std::string name = std::string(call) + ": attribute " + std::to_string(attribute);
  if (field.address == nullptr)
    return refuse(invalid_value, name + " is not emulated (the emulator has " + implemented + ")");
  if (buffer == nullptr) return refuse(invalid_value, std::string(call) + ": the buffer is null");
  if (size != field.size)
    return refuse(invalid_value, name + " takes " + std::to_string(field.size) + " bytes, not " + std::to_string(size));
  std::memcpy(field.address, buffer, size);
  return success;
}

int get_field(const char* call, const char* implemented, int32_t attribute, const Field& field, void* buffer,
              size_t size, size_t* written) {
  std::string name = std::string(call) + ": attribute " + std::to_string(attribute);
  if (field.address == nullptr)
    return refuse(invalid_value, name + " is not emulated (the emulator has " + implemented + ")");
  if (size == 0) {
    // A size query, as in the real library.
    if (written == nullptr) return refuse(invalid_value, std::string(call) + ": a size query without sizeWritten");
    *written = field.size;
    return success;
  }
  if (buffer == nullptr) return refuse(invalid_value, std::string(call) + ": the buffer is null");
  if (size != field.size)
    return refuse(invalid_value, name + " has " + std::to_string(field.size) + " bytes, not " + std::to_string(size));
  std::memcpy(buffer, field.address, size);
  if (written != nullptr) *written = size;
  return success;
}

}  // namespace

// MARK: - Entry points: handle, version, status strings

int create(Context** handle) {
  // The emulator runs a grid on the calling thread; OpenBLAS's own helper threads would
  // spin-yield between GEMMs and take a core from it (half the emulator's speed on two
  // cores, measured). The CPU backend makes the same choice.
  openblas_set_num_threads(1);
  return create_object("cublasLtCreate", handle);
}

int destroy(Context* handle) {
  if (handle == nullptr || !registry().remove(handle, Kind::handle))
    return refuse(not_initialized, "cublasLtDestroy: not a live cuBLASLt handle (null, destroyed, or never created)");
  delete handle;
  return success;
}

size_t get_version() { return emulated_version; }

const char* get_status_name(int status) { return status_name(status); }

/// The emulator's reason for this thread's last failure with `status`, which says more than
/// the code; the canonical name where there is none.
const char* get_status_string(int status) {
  const char* detail = detail_for(status);
  return detail != nullptr ? detail : status_name(status);
}

// MARK: - Entry points: descriptors

int matmul_desc_create(MatmulDesc** desc, int32_t compute_type, int32_t scale_type) {
  int status = create_object("cublasLtMatmulDescCreate", desc);
  if (status != success) return status;
  (*desc)->compute_type = compute_type;
  (*desc)->scale_type = scale_type;
  return success;
}

int matmul_desc_destroy(MatmulDesc* desc) { return destroy_object("cublasLtMatmulDescDestroy", desc); }

int matmul_desc_set_attribute(MatmulDesc* desc, int32_t attribute, const void* buffer, size_t size) {
  const char* call = "cublasLtMatmulDescSetAttribute";
  std::string why;
  if (live(desc, call, "the descriptor", &why) == nullptr) return refuse(invalid_value, why);
  return set_field(call, desc_attributes, attribute, desc_field(*desc, attribute), buffer, size);
}

int matmul_desc_get_attribute(MatmulDesc* desc, int32_t attribute, void* buffer, size_t size, size_t* written) {
  const char* call = "cublasLtMatmulDescGetAttribute";
  std::string why;
  if (live(desc, call, "the descriptor", &why) == nullptr) return refuse(invalid_value, why);
  return get_field(call, desc_attributes, attribute, desc_field(*desc, attribute), buffer, size, written);
}

int matrix_layout_create(Layout** layout, int32_t type, uint64_t rows, uint64_t cols, int64_t ld) {
  int status = create_object("cublasLtMatrixLayoutCreate", layout);
  if (status != success) return status;
  (*layout)->type = static_cast<uint32_t>(type);
  (*layout)->rows = rows;
  (*layout)->cols = cols;
  (*layout)->ld = ld;
  return success;
}

int matrix_layout_destroy(Layout* layout) { return destroy_object("cublasLtMatrixLayoutDestroy", layout); }

int matrix_layout_set_attribute(Layout* layout, int32_t attribute, const void* buffer, size_t size) {
  const char* call = "cublasLtMatrixLayoutSetAttribute";
  std::string why;
  if (live(layout, call, "the layout", &why) == nullptr) return refuse(invalid_value, why);
  return set_field(call, layout_attributes, attribute, layout_field(*layout, attribute), buffer, size);
}

int matrix_layout_get_attribute(Layout* layout, int32_t attribute, void* buffer, size_t size, size_t* written) {
  const char* call = "cublasLtMatrixLayoutGetAttribute";
  std::string why;
  if (live(layout, call, "the layout", &why) == nullptr) return refuse(invalid_value, why);
  return get_field(call, layout_attributes, attribute, layout_field(*layout, attribute), buffer, size, written);
}

int matmul_preference_create(Preference** preference) {
  return create_object("cublasLtMatmulPreferenceCreate", preference);
}

int matmul_preference_destroy(Preference* preference) {
  return destroy_object("cublasLtMatmulPreferenceDestroy", preference);
}

int matmul_preference_set_attribute(Preference* preference, int32_t attribute, const void* buffer, size_t size) {
  const char* call = "cublasLtMatmulPreferenceSetAttribute";
  std::string why;
  if (live(preference, call, "the preference", &why) == nullptr) return refuse(invalid_value, why);
  return set_field(call, preference_attributes, attribute, preference_field(*preference, attribute), buffer, size);
}

namespace {

// MARK: - Validating a problem

/// A GEMM that passed every check: D (m×n) = epilogue(alpha·op(A)·op(B) + beta·C), op(A)
/// m×k, op(B) k×n, `batches` times.
struct Problem {
  const Layout* a;
  const Layout* b;
  const Layout* c;
  const Layout* d;
  int m, n, k;
  bool transpose_a, transpose_b;
  int batches;
  bool bias, relu;
  int32_t bias_type;
  int64_t bias_batch_stride;
};

size_t element_size(uint32_t type) { return type == r_16bf ? 2 : 4; }

bool is_transpose(int32_t op) { return op == op_t || op == op_c; }  // C is T for real types

int check_compute(const char* call, const MatmulDesc& desc) {
  switch (desc.compute_type) {
    // TF32 and BF16 "fast" modes allow lower-precision products; float32 ones are a valid
    // (more accurate) implementation of them.
    case compute_32f:
    case compute_32f_pedantic:
    case compute_32f_fast_tf32:
    case compute_32f_fast_16bf: break;
    default:
      return refuse(not_supported, std::string(call) + ": compute type " + compute_type_name(desc.compute_type) +
                                       " is not emulated (only CUBLAS_COMPUTE_32F and its PEDANTIC, FAST_TF32 and "
                                       "FAST_16BF variants)");
  }
  if (desc.scale_type != r_32f)
    return refuse(not_supported, std::string(call) + ": scale type " + type_name(desc.scale_type) +
                                     " is not emulated (only CUDA_R_32F)");
  if (desc.pointer_mode != pointer_mode_host)
    return refuse(not_supported, std::string(call) + ": POINTER_MODE " + std::to_string(desc.pointer_mode) +
                                     " is not emulated: alpha and beta are read from host memory only");
  return success;
}

/// cuBLASLt's type combinations for CUBLAS_COMPUTE_32F with a float32 scale, restricted to
/// the two storage types the emulator has: A and B share a type, C and D share a type, and
/// bf16 outputs need bf16 inputs. The FAST modes take float32 matrices only.
int check_types(const char* call, const MatmulDesc& desc, const Problem& p) {
  uint32_t ab = p.a->type, cd = p.d->type;
  std::string combination = "A " + type_name(p.a->type) + ", B " + type_name(p.b->type) + ", C " +
                            type_name(p.c->type) + ", D " + type_name(p.d->type);
  bool storable = (ab == r_32f || ab == r_16bf) && (cd == r_32f || cd == r_16bf);
  bool paired = p.b->type == ab && p.c->type == cd;
  bool listed = (ab == r_32f && cd == r_32f) || (ab == r_16bf && (cd == r_16bf || cd == r_32f));
  bool fast = desc.compute_type == compute_32f_fast_tf32 || desc.compute_type == compute_32f_fast_16bf;
  if (!storable || !paired || !listed || (fast && ab != r_32f))
    return refuse(not_supported, std::string(call) + ": " + combination + " with " +
                                     compute_type_name(desc.compute_type) + " is not a combination cuBLASLt and the "
                                     "emulator share (A = B and C = D in CUDA_R_32F or CUDA_R_16BF, no bf16 output "
                                     "from float32 inputs)");
  return success;
}

int check_order(const char* call, const char* name, const Layout& layout) {
  if (layout.order != order_col)
    return refuse(not_supported, std::string(call) + ": " + name + " has CUBLASLT_MATRIX_LAYOUT_ORDER " +
                                     std::to_string(layout.order) + "; the emulator has column-major (0) only");
  return success;
}

int check_extent(const char* call, const char* name, const Layout& layout) {
  constexpr uint64_t int_max = static_cast<uint64_t>(std::numeric_limits<int>::max());
  if (layout.rows > int_max || layout.cols > int_max || layout.ld > static_cast<int64_t>(int_max))
    return refuse(not_supported, std::string(call) + ": " + name + " is " + shape(layout.rows, layout.cols) +
                                     " with ld " + std::to_string(layout.ld) + ", beyond 32-bit dimensions");
  if (layout.ld < 0 || static_cast<uint64_t>(layout.ld) < layout.rows)
    return refuse(invalid_value, std::string(call) + ": " + name + " has ld " + std::to_string(layout.ld) +
                                     " but " + std::to_string(layout.rows) + " rows; ld must be at least the rows");
  if (layout.batch_count < 1)
    return refuse(invalid_value, std::string(call) + ": " + name + " has batch count " +
                                     std::to_string(layout.batch_count) + "; it must be at least 1");
  if (layout.batch_stride < 0)
    return refuse(invalid_value, std::string(call) + ": " + name + " has a negative batch stride " +
                                     std::to_string(layout.batch_stride));
  return success;
}

std::string op_name(bool transpose) { return transpose ? "T" : "N"; }

/// op(A) m×k, op(B) k×n, C and D m×n, one batch count for all.
int check_shapes(const char* call, Problem* p) {
  const Layout &a = *p->a, &b = *p->b, &c = *p->c, &d = *p->d;
  p->m = static_cast<int>(d.rows);
  p->n = static_cast<int>(d.cols);
  uint64_t op_a_rows = p->transpose_a ? a.cols : a.rows, op_a_cols = p->transpose_a ? a.rows : a.cols;
  uint64_t op_b_rows = p->transpose_b ? b.cols : b.rows, op_b_cols = p->transpose_b ? b.rows : b.cols;
  p->k = static_cast<int>(op_a_cols);
  if (op_a_rows != d.rows)
    return refuse(invalid_value, std::string(call) + ": A is " + shape(a.rows, a.cols) + " with TRANSA=" +
                                     op_name(p->transpose_a) + ", so op(A) is " + shape(op_a_rows, op_a_cols) +
                                     ", but D is " + shape(d.rows, d.cols) + ": op(A) must have m = " +
                                     std::to_string(d.rows) + " rows");
  if (op_b_rows != op_a_cols || op_b_cols != d.cols)
    return refuse(invalid_value, std::string(call) + ": B is " + shape(b.rows, b.cols) + " with TRANSB=" +
                                     op_name(p->transpose_b) + ", so op(B) is " + shape(op_b_rows, op_b_cols) +
                                     ", but op(A) is " + shape(op_a_rows, op_a_cols) + " and D is " +
                                     shape(d.rows, d.cols) + ": op(B) must be k x n = " +
                                     shape(op_a_cols, d.cols));
  if (c.rows != d.rows || c.cols != d.cols)
    return refuse(invalid_value, std::string(call) + ": C is " + shape(c.rows, c.cols) + " but D is " +
                                     shape(d.rows, d.cols) + "; they must have the same shape");
  if (a.batch_count != d.batch_count || b.batch_count != d.batch_count || c.batch_count != d.batch_count)
    return refuse(invalid_value, std::string(call) + ": batch counts differ (A " + std::to_string(a.batch_count) +
                                     ", B " + std::to_string(b.batch_count) + ", C " + std::to_string(c.batch_count) +
                                     ", D " + std::to_string(d.batch_count) + ")");
  p->batches = d.batch_count;
  return success;
}

int check_epilogue(const char* call, const MatmulDesc& desc, Problem* p) {
  switch (desc.epilogue) {
    case epilogue_default: break;
    case epilogue_relu: p->relu = true; break;
    case epilogue_bias: p->bias = true; break;
    case epilogue_relu_bias: p->bias = p->relu = true; break;
    default:
      return refuse(not_supported, std::string(call) + ": " + epilogue_name(desc.epilogue) +
                                       " is not emulated (DEFAULT, RELU, BIAS and RELU_BIAS are)");
  }
  // The real default (−1) is the type of D; a float32 bias may go with a bf16 D.
  p->bias_type = desc.bias_type == type_unset ? static_cast<int32_t>(p->d->type) : desc.bias_type;
  p->bias_batch_stride = desc.bias_batch_stride;
  if (p->bias) {
    bool allowed = p->bias_type == static_cast<int32_t>(p->d->type) || p->bias_type == r_32f;
    if (!allowed)
      return refuse(not_supported, std::string(call) + ": a " + type_name(p->bias_type) + " bias with D in " +
                                       type_name(p->d->type) + " is not emulated (the bias is D's type or CUDA_R_32F)");
    if (p->bias_batch_stride < 0)
      return refuse(invalid_value, std::string(call) + ": negative BIAS_BATCH_STRIDE " +
                                       std::to_string(p->bias_batch_stride));
  }
  return success;
}

/// Every check that needs no data pointer: what cublasLtMatmulAlgoGetHeuristic can judge.
int validate(const char* call, const MatmulDesc* desc_pointer, const Layout* a, const Layout* b, const Layout* c,
             const Layout* d, Problem* p) {
  std::string why;
  const MatmulDesc* desc = live(desc_pointer, call, "the matmul descriptor", &why);
  if (desc == nullptr) return refuse(invalid_value, why);
  const Layout* layouts[4] = {a, b, c, d};
  const char* descs[4] = {"Adesc", "Bdesc", "Cdesc", "Ddesc"};
  for (int i = 0; i < 4; ++i)
    if (live(layouts[i], call, descs[i], &why) == nullptr) return refuse(invalid_value, why);
  *p = Problem{};
  p->a = a, p->b = b, p->c = c, p->d = d;

  int status = check_compute(call, *desc);
  if (status != success) return status;
  if (!(desc->transa == op_n || is_transpose(desc->transa)))
    return refuse(invalid_value, std::string(call) + ": TRANSA " + std::to_string(desc->transa) + " is not a cublasOperation_t");
  if (!(desc->transb == op_n || is_transpose(desc->transb)))
    return refuse(invalid_value, std::string(call) + ": TRANSB " + std::to_string(desc->transb) + " is not a cublasOperation_t");
  p->transpose_a = is_transpose(desc->transa);
  p->transpose_b = is_transpose(desc->transb);

  const char* names[4] = {"A", "B", "C", "D"};
  for (int i = 0; i < 4; ++i) {
    if ((status = check_order(call, names[i], *layouts[i])) != success) return status;
    if ((status = check_extent(call, names[i], *layouts[i])) != success) return status;
  }
  if ((status = check_types(call, *desc, *p)) != success) return status;
  if ((status = check_shapes(call, p)) != success) return status;
  return check_epilogue(call, *desc, p);
}

// MARK: - Checking the data pointers

/// The bytes a matrix's batches span: the last column starts at (cols − 1)·ld and has
/// `rows` elements; each further batch starts `stride` elements later.
bool span_bytes(const Layout& layout, size_t* bytes) {
  if (layout.rows == 0 || layout.cols == 0) {
    *bytes = 0;
    return true;
  }
  uint64_t elements = 0, batch_offset = 0;
  bool overflow = __builtin_mul_overflow(layout.cols - 1, static_cast<uint64_t>(layout.ld), &elements) ||
                  __builtin_add_overflow(elements, layout.rows, &elements) ||
                  __builtin_mul_overflow(static_cast<uint64_t>(layout.batch_count - 1),
                                         static_cast<uint64_t>(layout.batch_stride), &batch_offset) ||
                  __builtin_add_overflow(elements, batch_offset, &elements) ||
                  __builtin_mul_overflow(elements, static_cast<uint64_t>(element_size(layout.type)), &elements);
  *bytes = static_cast<size_t>(elements);
  return !overflow;
}

/// One operand's memory, for the device-memory and overlap checks.
struct Range {
  const char* name;
  uintptr_t begin;
  size_t bytes;
  bool overlaps(const Range& other) const {
    return bytes != 0 && other.bytes != 0 && begin < other.begin + other.bytes && other.begin < begin + bytes;
  }
};

int check_device_range(const char* call, const Range& range, size_t alignment) {
  if (range.bytes == 0) return success;
  if (range.begin == 0) return refuse(invalid_value, std::string(call) + ": " + range.name + " is a null pointer");
  if (range.begin % alignment != 0)
    return refuse(invalid_value, std::string(call) + ": " + range.name + " is not aligned to its " +
                                     std::to_string(alignment) + "-byte elements");
  std::string why;
  if (!is_device_range(range.begin, range.bytes, &why))
    return refuse(invalid_value, std::string(call) + ": " + range.name + " is " + why);
  return success;
}

int check_matrix(const char* call, const char* name, const Layout& layout, const void* data, Range* range) {
  size_t bytes = 0;
  if (!span_bytes(layout, &bytes))
    return refuse(invalid_value, std::string(call) + ": " + name + " spans more bytes than an address holds");
  *range = Range{name, reinterpret_cast<uintptr_t>(data), bytes};
  return check_device_range(call, *range, element_size(layout.type));
}

/// The pointers a GPU would dereference: each inside a live device allocation, and D
/// written nowhere the GEMM reads (on a GPU that is a race), except C exactly in place.
int check_operands(const char* call, const Problem& p, const void* a, const void* b, const void* c, bool reads_c,
                   const void* d, const void* bias) {
  Range ra{}, rb{}, rc{}, rd{}, rbias{};
  int status;
  if ((status = check_matrix(call, "A", *p.a, a, &ra)) != success) return status;
  if ((status = check_matrix(call, "B", *p.b, b, &rb)) != success) return status;
  if (reads_c && (status = check_matrix(call, "C", *p.c, c, &rc)) != success) return status;
  if ((status = check_matrix(call, "D", *p.d, d, &rd)) != success) return status;
  if (p.bias) {
    size_t bytes = static_cast<size_t>(p.m) * element_size(static_cast<uint32_t>(p.bias_type)) +
                   static_cast<size_t>(p.batches - 1) * static_cast<size_t>(p.bias_batch_stride) *
                       element_size(static_cast<uint32_t>(p.bias_type));
    rbias = Range{"the bias", reinterpret_cast<uintptr_t>(bias), p.m == 0 ? 0 : bytes};
    if ((status = check_device_range(call, rbias, element_size(static_cast<uint32_t>(p.bias_type)))) != success)
      return status;
  }
  size_t one_d = 0;
  Layout single = *p.d;
  single.batch_count = 1;
  span_bytes(single, &one_d);
  if (p.batches > 1 && rd.bytes != 0 && static_cast<uint64_t>(p.d->batch_stride) * element_size(p.d->type) < one_d)
    return refuse(invalid_value, std::string(call) + ": D's batches overlap (batch stride " +
                                     std::to_string(p.d->batch_stride) + " elements is less than one matrix)");
  for (const Range* input : {&ra, &rb, &rbias})
    if (rd.overlaps(*input))
      return refuse(invalid_value, std::string(call) + ": D overlaps " + input->name + ", which the GEMM reads");
  bool in_place = reads_c && rc.begin == rd.begin;
  if (in_place && (p.c->ld != p.d->ld || p.c->batch_stride != p.d->batch_stride))
    return refuse(invalid_value, std::string(call) + ": C and D are the same memory (in place) but their layouts "
                                     "differ (ld " + std::to_string(p.c->ld) + " vs " + std::to_string(p.d->ld) +
                                     ", batch stride " + std::to_string(p.c->batch_stride) + " vs " +
                                     std::to_string(p.d->batch_stride) + ")");
  if (reads_c && !in_place && rd.overlaps(rc))
    return refuse(invalid_value, std::string(call) + ": D partly overlaps C; cuBLASLt takes C == D or disjoint");
  return success;
}

// MARK: - Arithmetic

float bf16_to_float(uint16_t value) {
  uint32_t bits = static_cast<uint32_t>(value) << 16;
  float result;
  std::memcpy(&result, &bits, sizeof result);
  return result;
}

/// Round to nearest, ties to even, as the GPU's conversion does; every NaN becomes the
/// canonical quiet NaN so that NaN payloads cannot differ between runs.
uint16_t float_to_bf16(float value) {
  if (std::isnan(value)) return 0x7FC0;
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  uint32_t rounding = 0x7FFF + ((bits >> 16) & 1);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

/// A column-major float32 view of one batch of an operand: the memory itself for float32,
/// a packed copy (ld = rows) for bf16.
struct FloatMatrix {
  const float* data;
  int ld;
  std::vector<float> storage;
};

FloatMatrix float_view(const Layout& layout, const void* base, int batch) {
  size_t offset = static_cast<size_t>(batch) * static_cast<size_t>(layout.batch_stride);
  if (layout.type == r_32f)
    return FloatMatrix{static_cast<const float*>(base) + offset, static_cast<int>(layout.ld), {}};
  const uint16_t* source = static_cast<const uint16_t*>(base) + offset;
  FloatMatrix view{nullptr, static_cast<int>(layout.rows), std::vector<float>(layout.rows * layout.cols)};
  for (uint64_t j = 0; j < layout.cols; ++j)
    for (uint64_t i = 0; i < layout.rows; ++i)
      view.storage[i + j * layout.rows] = bf16_to_float(source[i + j * static_cast<uint64_t>(layout.ld)]);
  view.data = view.storage.data();
  return view;
}

/// The bias of one batch as float32 (m values).
std::vector<float> bias_values(const Problem& p, const void* bias, int batch) {
  size_t offset = static_cast<size_t>(batch) * static_cast<size_t>(p.bias_batch_stride);
  std::vector<float> values(static_cast<size_t>(p.m));
  for (int i = 0; i < p.m; ++i)
    values[i] = p.bias_type == r_16bf ? bf16_to_float(static_cast<const uint16_t*>(bias)[offset + i])
                                      : static_cast<const float*>(bias)[offset + i];
  return values;
}

/// The output before the product is added: beta·C where C is read, zeros where beta is 0
/// (C is then never read, as in cuBLAS, so a NaN-poisoned C cannot leak into D; and sgemm
/// is not trusted to ignore a poisoned D when beta is 0).
void initialise_output(float* out, int ld, const Problem& p, const void* c, int batch, float beta) {
  size_t offset = static_cast<size_t>(batch) * static_cast<size_t>(p.c->batch_stride);
  for (int j = 0; j < p.n; ++j)
    for (int i = 0; i < p.m; ++i) {
      float value = 0;
      if (beta != 0) {
        size_t at = offset + i + static_cast<size_t>(j) * static_cast<size_t>(p.c->ld);
        float source = p.c->type == r_16bf ? bf16_to_float(static_cast<const uint16_t*>(c)[at])
                                           : static_cast<const float*>(c)[at];
        value = beta * source;
      }
      out[i + static_cast<size_t>(j) * ld] = value;
    }
}

/// Bias then ReLU, element by element in a fixed order. ReLU keeps NaN rather than turning
/// it into 0 so that a poisoned read stays visible downstream.
void apply_epilogue(float* out, int ld, const Problem& p, const std::vector<float>& bias) {
  if (!p.bias && !p.relu) return;
  for (int j = 0; j < p.n; ++j)
    for (int i = 0; i < p.m; ++i) {
      float& value = out[i + static_cast<size_t>(j) * ld];
      if (p.bias) value += bias[i];
      if (p.relu && value < 0) value = 0;
    }
}

/// One batch: out = alpha·op(A)·op(B) + (beta·C or 0), then the epilogue, then stored to D.
/// A float32 D is computed in place; a bf16 D through a float32 scratch, rounded once.
void run_batch(const Problem& p, float alpha, const void* a, const void* b, float beta, const void* c, void* d,
               const void* bias, int batch) {
  size_t d_offset = static_cast<size_t>(batch) * static_cast<size_t>(p.d->batch_stride);
  std::vector<float> scratch;
  float* out;
  int ld;
  if (p.d->type == r_32f) {
    out = static_cast<float*>(d) + d_offset;
    ld = static_cast<int>(p.d->ld);
  } else {
    scratch.assign(static_cast<size_t>(p.m) * static_cast<size_t>(p.n), 0.0f);
    out = scratch.data();
    ld = p.m;
  }
  initialise_output(out, ld, p, c, batch, beta);
  if (p.k > 0) {
    FloatMatrix op_a = float_view(*p.a, a, batch), op_b = float_view(*p.b, b, batch);
    // The output already holds beta·C (or zeros), hence beta 1 here.
    cblas_sgemm(CblasColMajor, p.transpose_a ? CblasTrans : CblasNoTrans, p.transpose_b ? CblasTrans : CblasNoTrans,
                p.m, p.n, p.k, alpha, op_a.data, op_a.ld, op_b.data, op_b.ld, 1.0f, out, ld);
  }
  apply_epilogue(out, ld, p, p.bias ? bias_values(p, bias, batch) : std::vector<float>());
  if (p.d->type == r_16bf) {
    uint16_t* target = static_cast<uint16_t*>(d) + d_offset;
    for (int j = 0; j < p.n; ++j)
      for (int i = 0; i < p.m; ++i)
        target[i + static_cast<size_t>(j) * static_cast<size_t>(p.d->ld)] =
            float_to_bf16(out[i + static_cast<size_t>(j) * ld]);
  }
}

}  // namespace

// MARK: - Entry points: heuristic and matmul

int matmul_algo_get_heuristic(Context* handle, MatmulDesc* desc, Layout* a, Layout* b, Layout* c, Layout* d,
                              Preference* preference, int requested, HeuristicResult results[], int* returned) {
  const char* call = "cublasLtMatmulAlgoGetHeuristic";
  if (returned != nullptr) *returned = 0;
  std::string why;
  if (live(handle, call, "the handle", &why) == nullptr) return refuse(not_initialized, why);
  if (live(preference, call, "the preference", &why) == nullptr) return refuse(invalid_value, why);
  if (requested <= 0)
    return refuse(invalid_value, std::string(call) + ": requestedAlgoCount " + std::to_string(requested) +
                                     " must be positive");
  if (results == nullptr || returned == nullptr)
    return refuse(invalid_value, std::string(call) + ": the results array or returnAlgoCount is null");
  Problem problem;
  int status = validate(call, desc, a, b, c, d, &problem);
  if (status != success) return status;
  // One algorithm, which needs no workspace, so every MAX_WORKSPACE_BYTES admits it.
  results[0] = HeuristicResult{};
  results[0].algo.data[0] = algo_marker;
  results[0].workspaceSize = 0;
  results[0].state = success;
  results[0].wavesCount = 1.0f;
  *returned = 1;
  return success;
}

int matmul(Context* handle, MatmulDesc* desc, const void* alpha, const void* a, Layout* a_layout, const void* b,
           Layout* b_layout, const void* beta, const void* c, Layout* c_layout, void* d, Layout* d_layout,
           const Algo* algo, void* workspace, size_t workspace_size, void* stream) {
  const char* call = "cublasLtMatmul";
  // Streams run their work at the call, or record it while captured (a CUDA graph).
  std::string why;
  if (live(handle, call, "the handle", &why) == nullptr) return refuse(not_initialized, why);
  Problem problem;
  int status = validate(call, desc, a_layout, b_layout, c_layout, d_layout, &problem);
  if (status != success) return status;
  if (alpha == nullptr || beta == nullptr)
    return refuse(invalid_value, std::string(call) + ": alpha or beta is a null pointer");
  if (algo != nullptr && algo->data[0] != algo_marker)
    return refuse(invalid_value, std::string(call) + ": the algo did not come from the emulator's "
                                     "cublasLtMatmulAlgoGetHeuristic");
  if (workspace_size > 0) {
    if ((status = check_device_range(call, Range{"the workspace", reinterpret_cast<uintptr_t>(workspace),
                                                 workspace_size}, 1)) != success)
      return status;
  }
  float alpha_value, beta_value;
  Algo algo_value{};
  if (algo != nullptr) algo_value = *algo;
  std::memcpy(&alpha_value, alpha, sizeof alpha_value);
  std::memcpy(&beta_value, beta, sizeof beta_value);
  bool reads_c = beta_value != 0;
  const void* bias = desc->bias;
  if ((status = check_operands(call, problem, a, b, c, reads_c, d, bias)) != success) return status;
  // Captured: the graph keeps alpha, beta and the algorithm by value (host scalars are
  // read at the call, as cuBLASLt's host pointer mode does), and the handle, descriptors
  // and operands by reference: the replay runs this call again, checks included.
  if (stream != nullptr) {
    const bool captured = capture_if_capturing(stream, [=]() -> int {
      const Algo* kept = algo == nullptr ? nullptr : &algo_value;
      return matmul(handle, desc, &alpha_value, a, a_layout, b, b_layout, &beta_value, c, c_layout, d, d_layout, kept, workspace,
                    workspace_size, nullptr);
    });
    if (captured) return success;
  }
  if (problem.m == 0 || problem.n == 0) return success;
  for (int batch = 0; batch < problem.batches; ++batch)
    run_batch(problem, alpha_value, a, b, beta_value, c, d, bias, batch);
  return success;
}

}  // namespace cublaslt

void add_cublaslt_symbols(SymbolTable& table) {
  table["cublasLtCreate"] = reinterpret_cast<void*>(&cublaslt::create);
  table["cublasLtDestroy"] = reinterpret_cast<void*>(&cublaslt::destroy);
  table["cublasLtGetVersion"] = reinterpret_cast<void*>(&cublaslt::get_version);
  table["cublasLtGetStatusName"] = reinterpret_cast<void*>(&cublaslt::get_status_name);
  table["cublasLtGetStatusString"] = reinterpret_cast<void*>(&cublaslt::get_status_string);
  table["cublasLtMatmulDescCreate"] = reinterpret_cast<void*>(&cublaslt::matmul_desc_create);
  table["cublasLtMatmulDescDestroy"] = reinterpret_cast<void*>(&cublaslt::matmul_desc_destroy);
  table["cublasLtMatmulDescSetAttribute"] = reinterpret_cast<void*>(&cublaslt::matmul_desc_set_attribute);
  table["cublasLtMatmulDescGetAttribute"] = reinterpret_cast<void*>(&cublaslt::matmul_desc_get_attribute);
  table["cublasLtMatrixLayoutCreate"] = reinterpret_cast<void*>(&cublaslt::matrix_layout_create);
  table["cublasLtMatrixLayoutDestroy"] = reinterpret_cast<void*>(&cublaslt::matrix_layout_destroy);
  table["cublasLtMatrixLayoutSetAttribute"] = reinterpret_cast<void*>(&cublaslt::matrix_layout_set_attribute);
  table["cublasLtMatrixLayoutGetAttribute"] = reinterpret_cast<void*>(&cublaslt::matrix_layout_get_attribute);
  table["cublasLtMatmulPreferenceCreate"] = reinterpret_cast<void*>(&cublaslt::matmul_preference_create);
  table["cublasLtMatmulPreferenceDestroy"] = reinterpret_cast<void*>(&cublaslt::matmul_preference_destroy);
  table["cublasLtMatmulPreferenceSetAttribute"] = reinterpret_cast<void*>(&cublaslt::matmul_preference_set_attribute);
  table["cublasLtMatmulAlgoGetHeuristic"] = reinterpret_cast<void*>(&cublaslt::matmul_algo_get_heuristic);
  table["cublasLtMatmul"] = reinterpret_cast<void*>(&cublaslt::matmul);
}

}  // namespace emulator
