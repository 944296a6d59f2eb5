// CPU descriptor sampling: bilinear taps on a (D, h, w) or (h, w, D) map, then
// per-row L2 normalisation.
//
// Channels-last maps (what oneDNN convolutions produce on CPU) are the easy
// case: a keypoint's four taps are four contiguous runs of D floats.
// In a channel-major map, gathering one keypoint's D values touches D
// far-apart cache lines. Instead each channel plane is sampled for all
// keypoints into a (D, N) scratch, visiting keypoints in raster order so the
// plane streams through the cache once; the scratch is then transposed, in
// cache-line blocks, into the result rows (input order) and normalised.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "cpu.hpp"
#include "parallel.hpp"

namespace s2cv::cpu {
namespace {

constexpr int64_t kBlock = 16;  // keypoints per transpose block: one cache line of floats

// Bilinear taps of every keypoint, stored in raster order of their top-left
// cell; origin[j] is the input row of entry j.
struct Taps {
  std::vector<int64_t> o00, o01, o10, o11, origin;
  std::vector<float> tx, ty;
};

Taps make_taps(const float* kpts, int64_t N, float stride, int64_t h, int64_t w) {
  std::vector<Tap> xs(static_cast<size_t>(N)), ys(static_cast<size_t>(N));
  std::vector<int64_t> order(static_cast<size_t>(N));
  for (int64_t n = 0; n < N; ++n) {
    xs[n] = bilinear_tap(kpts[2 * n], stride, w);
    ys[n] = bilinear_tap(kpts[2 * n + 1], stride, h);
    order[n] = n;
  }
  auto cell = [&](int64_t n) { return ys[n].i0 * w + xs[n].i0; };
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return cell(a) < cell(b); });

  Taps t;
  for (auto* v : {&t.o00, &t.o01, &t.o10, &t.o11, &t.origin}) v->resize(static_cast<size_t>(N));
  t.tx.resize(static_cast<size_t>(N));
  t.ty.resize(static_cast<size_t>(N));
  for (int64_t j = 0; j < N; ++j) {
    const Tap& x = xs[order[j]];
    const Tap& y = ys[order[j]];
    t.o00[j] = y.i0 * w + x.i0;
    t.o01[j] = y.i0 * w + x.i1;
    t.o10[j] = y.i1 * w + x.i0;
    t.o11[j] = y.i1 * w + x.i1;
    t.tx[j] = x.t;
    t.ty[j] = y.t;
    t.origin[j] = order[j];
  }
  return t;
}

// Eight interleaved partial sums: a fixed summation order that the compiler
// can still vectorise (a single running sum is one long dependency chain).
float sum_of_squares(const float* v, int64_t n) {
  float acc[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) acc[k] += v[i + k] * v[i + k];
  for (; i < n; ++i) acc[0] += v[i] * v[i];
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

void normalize_row(float* row, int64_t D) {
  const float norm = std::sqrt(sum_of_squares(row, D));
  if (norm > 0.0f)
    for (int64_t d = 0; d < D; ++d) row[d] /= norm;
}

void sample_channels_last(const float* desc, int64_t D, int64_t h, int64_t w, const float* kpts, int64_t N,
                          float stride, float* out) {
  const int threads = choose_threads(N * D, int64_t{1} << 15);
  parallel_bands(N, threads, [&](int, int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      const Tap x = bilinear_tap(kpts[2 * n], stride, w);
      const Tap y = bilinear_tap(kpts[2 * n + 1], stride, h);
      const float* m00 = desc + (y.i0 * w + x.i0) * D;
      const float* m01 = desc + (y.i0 * w + x.i1) * D;
      const float* m10 = desc + (y.i1 * w + x.i0) * D;
      const float* m11 = desc + (y.i1 * w + x.i1) * D;
      float* row = out + n * D;
      for (int64_t d = 0; d < D; ++d) row[d] = bilinear(m00[d], m01[d], m10[d], m11[d], x.t, y.t);
      normalize_row(row, D);
    }
  });
}

}  // namespace

void sample_descriptors(const float* desc, int64_t D, int64_t h, int64_t w, const float* kpts, int64_t N,
                        float stride, float* out, bool channels_last) {
  validate_sample(D, h, w, N, stride);
  for (int64_t i = 0; i < 2 * N; ++i)
    if (!std::isfinite(kpts[i]))
      throw std::invalid_argument("keypoints contain NaN or Inf (row " + std::to_string(i / 2) + ")");
  if (N == 0) return;
  if (channels_last) {
    sample_channels_last(desc, D, h, w, kpts, N, stride, out);
    return;
  }

  const Taps t = make_taps(kpts, N, stride, h, w);
  const int threads = choose_threads(N * D, int64_t{1} << 15);
  std::vector<float> by_channel(static_cast<size_t>(D * N));
  const int64_t plane = h * w;
  parallel_bands(D, threads, [&](int, int64_t d0, int64_t d1) {
    for (int64_t d = d0; d < d1; ++d) {
      const float* m = desc + d * plane;
      float* dst = by_channel.data() + d * N;
      for (int64_t j = 0; j < N; ++j)
        dst[j] = bilinear(m[t.o00[j]], m[t.o01[j]], m[t.o10[j]], m[t.o11[j]], t.tx[j], t.ty[j]);
    }
  });

  const int64_t blocks = (N + kBlock - 1) / kBlock;
  parallel_bands(blocks, threads, [&](int, int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t j0 = b * kBlock, j1 = std::min(N, j0 + kBlock);
      for (int64_t d = 0; d < D; ++d)
        for (int64_t j = j0; j < j1; ++j) out[t.origin[j] * D + d] = by_channel[d * N + j];
      for (int64_t j = j0; j < j1; ++j) normalize_row(out + t.origin[j] * D, D);
    }
  });
}

}  // namespace s2cv::cpu
