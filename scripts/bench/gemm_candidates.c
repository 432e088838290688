// The GEMM candidates of issue 18 side by side, at the shapes a MobileNetV2 training step
// on 28×28 images really multiplies (docs/compute-core.md, "Which GEMM kernels").
//
// Built once per library (the libraries export the same BLAS symbols, so one binary links
// one): -DUSE_OPENBLAS, -DUSE_BLIS or -DUSE_ONEDNN. scripts/bench/gemm_candidates.sh builds
// and runs them alternated. Each binary prints JSON lines: the seconds of every GEMM of one
// step (forward, input gradient, weight gradient of each 1×1 convolution, the stem's im2col
// product and the classifier) summed over the step, and a 512³ sgemm's GFLOP/s.
// Arguments: preset, width, threads, repeats, and "chunked" (the CPU backend's way: each
// product split over threads of our own, the library on one) or "native" (its threads).
//
// The shapes follow MobileNetV2Configuration: stem 3×3 (stride of the preset) to 32·w
// channels, the seven inverted-residual stages, the 1×1 head to 1280·max(1, w) channels and
// the classifier, NHWC, so a 1×1 convolution is [batch·H·W × Cin]·[Cin × Cout].
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(USE_ONEDNN)
#include <dnnl.h>
static const char *engine = "onednn";
static void gemm(int ta, int tb, long m, long n, long k, const float *a, long lda, const float *b, long ldb, float *c, long ldc) {
  dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c, ldc);
}
extern void omp_set_num_threads(int);
static void set_threads(int threads) { omp_set_num_threads(threads); }
static const char *kernels(void) {
  switch (dnnl_get_effective_cpu_isa()) {
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    default: return "other";
  }
}
#else
#include <cblas.h>
#if defined(USE_BLIS)
#include <blis.h>
static const char *engine = "blis";
static void set_threads(int threads) { bli_thread_set_num_threads(threads); }
static const char *kernels(void) { return bli_arch_string(bli_arch_query_id()); }
#else
static const char *engine = "openblas";
extern void openblas_set_num_threads(int);
extern char *openblas_get_corename(void);
static void set_threads(int threads) { openblas_set_num_threads(threads); }
static const char *kernels(void) { return openblas_get_corename(); }
#endif
static void gemm(int ta, int tb, long m, long n, long k, const float *a, long lda, const float *b, long ldb, float *c, long ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k, 1.0f, a,
    (int)lda, b, (int)ldb, 0.0f, c, (int)ldc);
}
#endif

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int compare(const void *x, const void *y) {
  double a = *(const double *)x, b = *(const double *)y;
  return (a > b) - (a < b);
}

// One product of the step: C[m×n] = op(A)·op(B), row major.
typedef struct { int ta, tb; long m, n, k; } Product;

static Product products[256];
static int productCount = 0;

// A layer multiplying [rows × in]·[in × out] forward adds its three products: the output,
// the input's gradient dY·Wᵀ (skipped for the first layer, whose input is the image) and
// the weight's gradient Xᵀ·dY.
static void layer(long rows, long in, long out, int first) {
  products[productCount++] = (Product){0, 0, rows, out, in};
  if (!first) products[productCount++] = (Product){0, 1, rows, in, out};
  products[productCount++] = (Product){1, 0, in, out, rows};
}

static long channels(double base, double width) {
  // torchvision's _make_divisible(·, 8), as MobileNetV2Configuration rounds.
  double scaled = base * width;
  long rounded = (long)(scaled + 4) / 8 * 8;
  if (rounded < 8) rounded = 8;
  if ((double)rounded < 0.9 * scaled) rounded += 8;
  return rounded;
}

static void mobilenet(const char *preset, double width, long batch, long size) {
  int imagenet = strcmp(preset, "imagenet") == 0;
  int stemStride = imagenet ? 2 : 1;
  int strides[7] = {1, imagenet ? 2 : 1, 2, 2, 1, 2, 1};
  int expansion[7] = {1, 6, 6, 6, 6, 6, 6}, base[7] = {16, 24, 32, 64, 96, 160, 320}, blocks[7] = {1, 2, 3, 4, 3, 3, 1};
  long h = stemStride == 2 ? (size - 1) / 2 + 1 : size;
  long c = channels(32, width);
  layer(batch * h * h, 9, c, 1);  // the stem's im2col product (one input channel)
  for (int s = 0; s < 7; s++) {
    long out = channels(base[s], width);
    for (int b = 0; b < blocks[s]; b++) {
      long hidden = c * expansion[s];
      if (expansion[s] != 1) layer(batch * h * h, c, hidden, 0);
      if (b == 0 && strides[s] == 2) h = (h - 1) / 2 + 1;  // the depthwise strides
      layer(batch * h * h, hidden, out, 0);
      c = out;
    }
  }
  long head = width > 1 ? channels(1280, width) : 1280;
  layer(batch * h * h, c, head, 0);
  layer(batch, head, 10, 0);  // the classifier after global pooling
}

// Quorum's way (CPUBackend.gemm): the library on one thread, the output split into one
// block of rows (or of columns, when wider than tall) per thread of our own. The other
// threads wait at a barrier for each product.
static pthread_barrier_t barrier;
static Product current;
static const float *currentA, *currentB;
static float *currentC;
static int chunkThreads = 1, stopping = 0;

static void chunk(int index) {
  Product p = current;
  long lda = p.ta ? p.m : p.k, ldb = p.tb ? p.k : p.n;
  int rows = p.m >= p.n;
  long count = rows ? p.m : p.n, low = count * index / chunkThreads, high = count * (index + 1) / chunkThreads;
  if (high <= low) return;
  if (rows) {
    const float *a = p.ta ? currentA + low : currentA + low * lda;
    gemm(p.ta, p.tb, high - low, p.n, p.k, a, lda, currentB, ldb, currentC + low * p.n, p.n);
  } else {
    const float *b = p.tb ? currentB + low * ldb : currentB + low;
    gemm(p.ta, p.tb, p.m, high - low, p.k, currentA, lda, b, ldb, currentC + low, p.n);
  }
}

static void *helper(void *argument) {
  int index = (int)(long)argument;
  set_threads(1);
  for (;;) {
    pthread_barrier_wait(&barrier);
    if (stopping) return NULL;
    chunk(index);
    pthread_barrier_wait(&barrier);
  }
}

// One product, the library's own threads (native) or split as Quorum splits (chunked).
static void product(Product p, const float *a, const float *b, float *c) {
  current = p, currentA = a, currentB = b, currentC = c;
  // Below ~2 MFLOP one thread does it all, as in CPUBackend.gemm.
  if (chunkThreads == 1 || p.m * p.n * p.k < (1L << 20)) {
    long lda = p.ta ? p.m : p.k, ldb = p.tb ? p.k : p.n;
    gemm(p.ta, p.tb, p.m, p.n, p.k, a, lda, b, ldb, c, p.n);
    return;
  }
  pthread_barrier_wait(&barrier);
  chunk(0);
  pthread_barrier_wait(&barrier);
}

static float *filled(long count) {
  float *p = malloc(sizeof(float) * (size_t)count);
  for (long i = 0; i < count; i++) p[i] = (float)((i * 7919) % 1000) * 1e-3f - 0.5f;
  return p;
}

int main(int argc, char **argv) {
  const char *preset = argc > 1 ? argv[1] : "imagenet";
  double width = argc > 2 ? atof(argv[2]) : 1.0;
  int threads = argc > 3 ? atoi(argv[3]) : 2;
  int repeats = argc > 4 ? atoi(argv[4]) : 7;
  // native: the library's own threads; chunked: Quorum's split over threads of its own.
  const char *mode = argc > 5 ? argv[5] : "native";
  int split = strcmp(mode, "chunked") == 0 && threads > 1;
  long batch = 128, size = 28;
  pthread_t helpers[64];
  if (split) {
    chunkThreads = threads;
    set_threads(1);
    pthread_barrier_init(&barrier, NULL, (unsigned)threads);
    for (int t = 1; t < threads; t++) pthread_create(&helpers[t], NULL, helper, (void *)(long)t);
  } else {
    set_threads(threads);
  }
  mobilenet(preset, width, batch, size);

  long largest = 0;
  for (int i = 0; i < productCount; i++) {
    Product p = products[i];
    long sizes[3] = {p.m * p.k, p.k * p.n, p.m * p.n};
    for (int j = 0; j < 3; j++) if (sizes[j] > largest) largest = sizes[j];
  }
  float *a = filled(largest), *b = filled(largest), *c = filled(largest);

  // A step: every product once. The median over repeats of the whole step, after a warm-up.
  double *steps = malloc(sizeof(double) * (size_t)repeats);
  double flops = 0;
  for (int i = 0; i < productCount; i++) flops += 2.0 * (double)products[i].m * (double)products[i].n * (double)products[i].k;
  for (int r = -1; r < repeats; r++) {
    double start = now();
    for (int i = 0; i < productCount; i++) {
      product(products[i], a, b, c);
    }
    if (r >= 0) steps[r] = now() - start;
  }
  qsort(steps, (size_t)repeats, sizeof(double), compare);
  double step = steps[repeats / 2];
  printf("{\"engine\":\"%s\",\"kernels\":\"%s\",\"threads\":%d,\"mode\":\"%s\",\"preset\":\"%s\",\"width\":%g,\"batch\":%ld,"
         "\"products\":%d,\"step_gemm_seconds\":%.6f,\"step_gemm_gflops\":%.2f}\n",
    engine, kernels(), threads, mode, preset, width, batch, productCount, step, flops / step / 1e9);

  // The square reference, as `quorum bench sgemm` and PyTorch's torch.mm measure it.
  long n = 512;
  float *x = filled(n * n), *y = filled(n * n), *z = filled(n * n);
  double *times = malloc(sizeof(double) * 20);
  for (int r = -2; r < 20; r++) {
    double start = now();
    product((Product){0, 0, n, n, n}, x, y, z);
    if (r >= 0) times[r] = now() - start;
  }
  qsort(times, 20, sizeof(double), compare);
  printf("{\"engine\":\"%s\",\"kernels\":\"%s\",\"threads\":%d,\"mode\":\"%s\",\"size\":512,\"gflops\":%.2f}\n", engine,
    kernels(), threads, mode,
    2.0 * pow((double)n, 3) / times[10] / 1e9);
  if (split) {
    stopping = 1;
    pthread_barrier_wait(&barrier);
    for (int t = 1; t < threads; t++) pthread_join(helpers[t], NULL);
  }
  return 0;
}
