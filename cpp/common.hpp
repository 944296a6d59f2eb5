// Arithmetic shared by the CPU and CUDA back ends, so both produce the same
// floats (the CUDA target is compiled with --fmad=false for the same reason).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#ifdef __CUDACC__
#define S2CV_HD __host__ __device__ __forceinline__
#else
#define S2CV_HD inline
#endif

namespace s2cv {

struct DetectParams {
  int64_t nms_radius = 2;
  float threshold = 0.0f;
  int64_t border = 4;
  int64_t max_keypoints = 0;  // 0 = keep all
  bool subpixel = true;
};

// One output row of detect(): (x, y, score).
struct Keypoint {
  float x, y, score;
};
static_assert(sizeof(Keypoint) == 3 * sizeof(float), "Keypoint must be a packed (x, y, score) row");

// Rejects bad parameters before any work; std::invalid_argument -> ValueError.
inline void validate_detect(int64_t H, int64_t W, const DetectParams& p) {
  if (H <= 0 || W <= 0)
    throw std::invalid_argument("scores must be non-empty, got shape (" + std::to_string(H) + ", " +
                                std::to_string(W) + ")");
  if (H * W >= (int64_t{1} << 31))
    throw std::invalid_argument("scores must have fewer than 2^31 pixels, got " + std::to_string(H * W));
  if (p.nms_radius < 0)
    throw std::invalid_argument("nms_radius must be >= 0, got " + std::to_string(p.nms_radius));
  if (p.border < 0) throw std::invalid_argument("border must be >= 0, got " + std::to_string(p.border));
  if (p.max_keypoints < 0)
    throw std::invalid_argument("max_keypoints must be >= 0 (0 = all), got " + std::to_string(p.max_keypoints));
  if (p.threshold != p.threshold) throw std::invalid_argument("threshold must not be NaN");
}

inline void validate_sample(int64_t D, int64_t h, int64_t w, int64_t N, float stride) {
  if (D <= 0 || h <= 0 || w <= 0)
    throw std::invalid_argument("descriptors must be a non-empty (D, h, w) map, got (" + std::to_string(D) + ", " +
                                std::to_string(h) + ", " + std::to_string(w) + ")");
  if (N < 0) throw std::invalid_argument("number of keypoints must be >= 0, got " + std::to_string(N));
  if (!(stride > 0.0f) || stride - stride != 0.0f)
    throw std::invalid_argument("stride must be a finite number > 0, got " + std::to_string(stride));
}

// Vertex offset of the parabola through (-1, l), (0, c), (1, r), clamped to
// [-0.5, 0.5]; 0 when the curve is not strictly concave (flat plateau).
S2CV_HD float parabola_offset(float l, float c, float r) {
  const float denom = l - 2.0f * c + r;
  if (!(denom < 0.0f)) return 0.0f;
  const float off = 0.5f * (l - r) / denom;
  return off < -0.5f ? -0.5f : (off > 0.5f ? 0.5f : off);
}

// One axis of a bilinear tap: image coordinate -> map cells i0, i1 and the
// weight of i1, using grid_sample(align_corners=False, padding_mode="border").
struct Tap {
  int64_t i0, i1;
  float t;
};

S2CV_HD Tap bilinear_tap(float x, float stride, int64_t size) {
  float u = (x + 0.5f) / stride - 0.5f;
  const float hi = static_cast<float>(size - 1);
  u = u > 0.0f ? u : 0.0f;  // written so NaN lands on 0: never an out-of-range index
  u = u < hi ? u : hi;
  const int64_t i0 = static_cast<int64_t>(u);  // u >= 0, so truncation == floor
  const int64_t i1 = i0 + 1 < size ? i0 + 1 : size - 1;
  return Tap{i0, i1, u - static_cast<float>(i0)};
}

// Bilinear blend in a fixed operation order shared by every back end.
S2CV_HD float bilinear(float v00, float v01, float v10, float v11, float tx, float ty) {
  const float top = v00 + tx * (v01 - v00);
  const float bottom = v10 + tx * (v11 - v10);
  return top + ty * (bottom - top);
}

}  // namespace s2cv
