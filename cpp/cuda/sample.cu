// GPU descriptor sampling: one warp per keypoint, lanes stride over the D
// channels, a shuffle reduction gives the L2 norm.
#include <algorithm>

#include "check.cuh"
#include "cuda_api.hpp"

namespace s2cv::cuda {
namespace {

constexpr int kWarpsPerBlock = 4;

__global__ void sample_kernel(const float* __restrict__ desc, int D, int h, int w, const float* __restrict__ kpts,
                              int64_t N, float stride, float* __restrict__ out) {
  const int64_t n = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (n >= N) return;  // uniform per warp, so the shuffles below see full warps
  const Tap tx = bilinear_tap(kpts[2 * n], stride, w);
  const Tap ty = bilinear_tap(kpts[2 * n + 1], stride, h);
  const int64_t o00 = ty.i0 * w + tx.i0, o01 = ty.i0 * w + tx.i1;
  const int64_t o10 = ty.i1 * w + tx.i0, o11 = ty.i1 * w + tx.i1;
  const int64_t plane = static_cast<int64_t>(h) * w;
  float* row = out + n * D;
  float sq = 0.0f;
  for (int d = lane; d < D; d += 32) {
    const float* m = desc + d * plane;
    const float v = bilinear(m[o00], m[o01], m[o10], m[o11], tx.t, ty.t);
    row[d] = v;
    sq += v * v;
  }
  for (int offset = 16; offset > 0; offset >>= 1) sq += __shfl_xor_sync(0xFFFFFFFFu, sq, offset);
  const float norm = sqrtf(sq);
  if (norm > 0.0f)
    for (int d = lane; d < D; d += 32) row[d] /= norm;
}

}  // namespace

void sample_descriptors(const float* desc, int64_t D, int64_t h, int64_t w, const float* kpts, int64_t N,
                        float stride, float* out, int device, uintptr_t stream) {
  validate_sample(D, h, w, N, stride);
  if (D * h * w >= (int64_t{1} << 31))
    throw std::invalid_argument("descriptors must have fewer than 2^31 elements");
  if (N == 0) return;
  if (!desc || !kpts || !out) throw std::invalid_argument("descriptors, keypoints and out must be device pointers");
  const DeviceGuard guard(device);
  const int64_t blocks = (N + kWarpsPerBlock - 1) / kWarpsPerBlock;
  if (blocks > 0x7FFFFFFF) throw std::invalid_argument("too many keypoints for one launch");
  sample_kernel<<<static_cast<unsigned>(blocks), kWarpsPerBlock * 32, 0, reinterpret_cast<cudaStream_t>(stream)>>>(
      desc, static_cast<int>(D), static_cast<int>(h), static_cast<int>(w), kpts, N, stride, out);
  check(cudaGetLastError(), "sample_kernel launch");
}

}  // namespace s2cv::cuda
