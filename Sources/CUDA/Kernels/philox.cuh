// Philox4x32-10 keyed exactly as the CPU backend's RandomStream (Sources/Tensor/Philox.swift):
// counter (index lo, index hi, stream, purpose), key (seed lo, seed hi). The same seed gives
// the same dropout masks, depth drops and augmentations on either backend.
#pragma once

struct PhiloxWord { unsigned int x, y, z, w; };

__device__ __forceinline__ PhiloxWord philox(unsigned long long index, unsigned int stream, unsigned int purpose,
                                             unsigned long long seed) {
  unsigned int c0 = (unsigned int)index, c1 = (unsigned int)(index >> 32), c2 = stream, c3 = purpose;
  unsigned int k0 = (unsigned int)seed, k1 = (unsigned int)(seed >> 32);
#pragma unroll
  for (int round = 0; round < 10; ++round) {
    if (round > 0) { k0 += 0x9E3779B9u; k1 += 0xBB67AE85u; }
    unsigned long long p0 = (unsigned long long)0xD2511F53u * c0;
    unsigned long long p1 = (unsigned long long)0xCD9E8D57u * c2;
    unsigned int n0 = (unsigned int)(p1 >> 32) ^ c1 ^ k0;
    unsigned int n1 = (unsigned int)p1;
    unsigned int n2 = (unsigned int)(p0 >> 32) ^ c3 ^ k1;
    unsigned int n3 = (unsigned int)p0;
    c0 = n0; c1 = n1; c2 = n2; c3 = n3;
  }
  PhiloxWord word = {c0, c1, c2, c3};
  return word;
}

// Uniform in [0, 1) from the top 24 bits of the first word, as RandomStream.uniform(at:).
__device__ __forceinline__ float philox_uniform(unsigned long long index, unsigned int stream, unsigned int purpose,
                                                unsigned long long seed) {
  return (float)(philox(index, stream, purpose, seed).x >> 8) * (1.0f / 16777216.0f);
}
