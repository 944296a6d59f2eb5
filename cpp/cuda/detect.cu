// GPU keypoint detection: one thread per pixel for threshold/border/mask/NMS,
// compaction through an atomic counter, CUB radix sort on a 64-bit key
// (score, then raster order), then sub-pixel refinement of the top K.
#include <cub/device/device_radix_sort.cuh>

#include <algorithm>
#include <string>

#include "check.cuh"
#include "cuda_api.hpp"

namespace s2cv::cuda {
namespace {

constexpr size_t kAlign = 256;
constexpr int kThreads = 256;

size_t align_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

// Workspace: [count, nonfinite flag] | keys in | keys out | CUB scratch.
struct Layout {
  size_t keys_in, keys_out, temp, temp_bytes, total;
};

Layout layout(int64_t H, int64_t W) {
  const auto n = static_cast<int>(H * W);
  size_t temp_bytes = 0;
  check(cub::DeviceRadixSort::SortKeysDescending(nullptr, temp_bytes, static_cast<const uint64_t*>(nullptr),
                                                 static_cast<uint64_t*>(nullptr), n),
        "DeviceRadixSort (size query)");
  Layout l{};
  l.keys_in = align_up(2 * sizeof(int));
  l.keys_out = l.keys_in + align_up(static_cast<size_t>(n) * sizeof(uint64_t));
  l.temp = l.keys_out + align_up(static_cast<size_t>(n) * sizeof(uint64_t));
  l.temp_bytes = temp_bytes;
  l.total = l.temp + align_up(temp_bytes);
  return l;
}

// Descending order of the key == score descending, then index ascending,
// the same strict order as the CPU back end (-0 is folded onto +0 so the two
// zeros tie as they do under float comparison).
__device__ __forceinline__ uint64_t sort_key(float v, uint32_t index) {
  uint32_t bits = __float_as_uint(v + 0.0f);
  bits = (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
  return (static_cast<uint64_t>(bits) << 32) | (0xFFFFFFFFu - index);
}

__global__ void candidates_kernel(const float* __restrict__ s, const uint8_t* __restrict__ mask, int H, int W,
                                  int r, int border, float threshold, int* __restrict__ counters,
                                  uint64_t* __restrict__ keys) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<int64_t>(H) * W) return;
  const int idx = static_cast<int>(i);
  const float v = s[idx];
  if (!isfinite(v)) {
    counters[1] = 1;
    return;
  }
  const int x = idx % W, y = idx / W;
  if (!(v > threshold) || x < border || x > W - 1 - border || y < border || y > H - 1 - border) return;
  if (mask && !mask[idx]) return;
  const int x0 = max(0, x - r), x1 = min(W - 1, x + r), y0 = max(0, y - r), y1 = min(H - 1, y + r);
  for (int yy = y0; yy <= y1; ++yy)
    for (int xx = x0; xx <= x1; ++xx)
      if (s[yy * W + xx] > v) return;  // >= all neighbours survives: plateaus keep every pixel
  keys[atomicAdd(&counters[0], 1)] = sort_key(v, static_cast<uint32_t>(idx));
}

__global__ void refine_kernel(const float* __restrict__ s, int H, int W, bool subpixel,
                              const uint64_t* __restrict__ keys, int n, Keypoint* __restrict__ out) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const int idx = static_cast<int>(0xFFFFFFFFu - static_cast<uint32_t>(keys[i]));
  const int x = idx % W, y = idx / W;
  const float* c = s + idx;
  const float dx = subpixel && x > 0 && x < W - 1 ? parabola_offset(c[-1], c[0], c[1]) : 0.0f;
  const float dy = subpixel && y > 0 && y < H - 1 ? parabola_offset(c[-W], c[0], c[W]) : 0.0f;
  out[i] = Keypoint{static_cast<float>(x) + dx, static_cast<float>(y) + dy, c[0]};
}

}  // namespace

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // no driver / no GPU is an answer, not an error
    return 0;
  }
  return n;
}

size_t detect_workspace_bytes(int64_t H, int64_t W, int device) {
  validate_detect(H, W, DetectParams{});
  const DeviceGuard guard(device);
  return layout(H, W).total;
}

int64_t detect(const float* scores, const uint8_t* mask, int64_t H, int64_t W, const DetectParams& p, Keypoint* out,
               int64_t capacity, void* workspace, size_t workspace_bytes, int device, uintptr_t stream) {
  validate_detect(H, W, p);
  if (!scores || !out || !workspace) throw std::invalid_argument("scores, out and workspace must be device pointers");
  const int64_t most = p.max_keypoints > 0 ? std::min(p.max_keypoints, H * W) : H * W;
  if (capacity < most)
    throw std::invalid_argument("out: expected room for " + std::to_string(most) + " rows, got " +
                                std::to_string(capacity));
  const DeviceGuard guard(device);
  const Layout l = layout(H, W);
  if (workspace_bytes < l.total)
    throw std::invalid_argument("workspace: expected " + std::to_string(l.total) + " bytes, got " +
                                std::to_string(workspace_bytes));

  auto* st = reinterpret_cast<cudaStream_t>(stream);
  auto* ws = static_cast<char*>(workspace);
  auto* counters = reinterpret_cast<int*>(ws);
  auto* keys_in = reinterpret_cast<uint64_t*>(ws + l.keys_in);
  auto* keys_out = reinterpret_cast<uint64_t*>(ws + l.keys_out);
  const int n_pix = static_cast<int>(H * W);
  const int extent = static_cast<int>(std::max(H, W));  // larger radii/borders behave the same
  const int r = static_cast<int>(std::min<int64_t>(p.nms_radius, extent));
  const int border = static_cast<int>(std::min<int64_t>(p.border, extent));

  check(cudaMemsetAsync(counters, 0, 2 * sizeof(int), st), "cudaMemsetAsync");
  candidates_kernel<<<static_cast<unsigned>((int64_t{n_pix} + kThreads - 1) / kThreads), kThreads, 0, st>>>(
      scores, mask, static_cast<int>(H), static_cast<int>(W), r, border, p.threshold, counters, keys_in);
  check(cudaGetLastError(), "candidates_kernel launch");
  int host_counters[2] = {0, 0};
  check(cudaMemcpyAsync(host_counters, counters, sizeof(host_counters), cudaMemcpyDeviceToHost, st),
        "cudaMemcpyAsync");
  check(cudaStreamSynchronize(st), "candidates_kernel");
  if (host_counters[1]) throw std::invalid_argument("scores contain NaN or Inf");
  const int n = host_counters[0];
  if (n == 0) return 0;

  size_t temp_bytes = 0;
  check(cub::DeviceRadixSort::SortKeysDescending(nullptr, temp_bytes, keys_in, keys_out, n, 0, 64, st),
        "DeviceRadixSort (size query)");
  if (temp_bytes > l.temp_bytes) throw std::runtime_error("DeviceRadixSort needs more scratch than reserved");
  check(cub::DeviceRadixSort::SortKeysDescending(ws + l.temp, temp_bytes, keys_in, keys_out, n, 0, 64, st),
        "DeviceRadixSort");

  const int n_out = static_cast<int>(std::min<int64_t>(most, n));
  refine_kernel<<<static_cast<unsigned>((int64_t{n_out} + kThreads - 1) / kThreads), kThreads, 0, st>>>(
      scores, static_cast<int>(H), static_cast<int>(W), p.subpixel, keys_out, n_out, out);
  check(cudaGetLastError(), "refine_kernel launch");
  return n_out;
}

}  // namespace s2cv::cuda
