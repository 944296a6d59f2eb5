// CPU keypoint detection: threshold + border + mask + local-max NMS, sorted
// top-K and sub-pixel refinement. Row bands run on separate threads.
#include <algorithm>
#include <limits>
#include <vector>

#include "cpu.hpp"
#include "parallel.hpp"

namespace s2cv::cpu {
namespace {

struct Candidate {
  float score;
  int64_t index;  // y * W + x
};

// Score descending, then raster order: a strict total order, so the result
// does not depend on the thread count or the selection algorithm.
bool better(const Candidate& a, const Candidate& b) {
  return a.score > b.score || (a.score == b.score && a.index < b.index);
}

bool all_finite(const float* p, int64_t n) {
  int bad = 0;  // int, not bool, so the loop vectorises
  for (int64_t i = 0; i < n; ++i) bad |= !(p[i] - p[i] == 0.0f);  // x - x is NaN for NaN and +-Inf
  return bad == 0;
}

// out[x] = max(row[x - r .. x + r]) clipped at the row ends; `padded` is
// scratch of W + 2r floats. Branch-free inner loop so it vectorises.
void row_max(const float* row, int64_t W, int64_t r, float* padded, float* out) {
  constexpr float lowest = -std::numeric_limits<float>::infinity();
  std::fill(padded, padded + r, lowest);
  std::copy(row, row + W, padded + r);
  std::fill(padded + r + W, padded + W + 2 * r, lowest);
  std::copy(padded, padded + W, out);
  for (int64_t k = 1; k <= 2 * r; ++k) {
    const float* src = padded + k;
    for (int64_t x = 0; x < W; ++x) out[x] = out[x] < src[x] ? src[x] : out[x];
  }
}

// Candidates among rows [y0, y1), in raster order. A pixel survives NMS when
// it is >= every pixel of its clipped window, so plateaus keep all pixels.
std::vector<Candidate> search_band(const float* s, const uint8_t* mask, int64_t H, int64_t W, const DetectParams& p,
                                   int64_t y0, int64_t y1) {
  const int64_t b = p.border, r = p.nms_radius;
  const int64_t ylo = std::max(y0, b), yhi = std::min(y1, H - b);
  const int64_t xlo = b, xhi = W - b;
  std::vector<Candidate> out;
  if (ylo >= yhi || xlo >= xhi) return out;

  // Horizontal window maxima of every row the band's vertical windows touch.
  const int64_t hy0 = std::max<int64_t>(0, ylo - r), hy1 = std::min(H, yhi + r);
  std::vector<float> hmax;
  if (r > 0) {
    hmax.resize(static_cast<size_t>((hy1 - hy0) * W));
    std::vector<float> padded(static_cast<size_t>(W + 2 * r));
    for (int64_t y = hy0; y < hy1; ++y) row_max(s + y * W, W, r, padded.data(), hmax.data() + (y - hy0) * W);
  }

  // Full window maxima of one output row (vertical max of the horizontal
  // ones), computed branch-free so the test below is the only branch.
  std::vector<float> wmax(static_cast<size_t>(W), -std::numeric_limits<float>::infinity());
  for (int64_t y = ylo; y < yhi; ++y) {
    const float* row = s + y * W;
    const uint8_t* mrow = mask ? mask + y * W : nullptr;
    if (r > 0) {
      const int64_t wy0 = std::max<int64_t>(0, y - r) - hy0, wy1 = std::min(H - 1, y + r) - hy0;
      std::copy(hmax.data() + wy0 * W + xlo, hmax.data() + wy0 * W + xhi, wmax.data() + xlo);
      for (int64_t yy = wy0 + 1; yy <= wy1; ++yy) {
        const float* h = hmax.data() + yy * W;
        for (int64_t x = xlo; x < xhi; ++x) wmax[x] = wmax[x] < h[x] ? h[x] : wmax[x];
      }
    }
    for (int64_t x = xlo; x < xhi; ++x) {
      const float v = row[x];
      if ((v > p.threshold) & (v >= wmax[x]) && (!mrow || mrow[x])) out.push_back({v, y * W + x});
    }
  }
  return out;
}

}  // namespace

std::vector<Keypoint> detect(const float* s, const uint8_t* mask, int64_t H, int64_t W, const DetectParams& p) {
  validate_detect(H, W, p);
  // Windows are clipped at the map's edges, so any radius >= max(H, W) means "the whole map"
  // (the CUDA back end clamps the same way). Clamping bounds the W + 2r scratch buffer and
  // keeps y +- r and W + 2r free of signed overflow for every int64 radius.
  DetectParams q = p;
  q.nms_radius = std::min(p.nms_radius, std::max(H, W));

  const int bands = choose_threads(H * W, int64_t{1} << 16);
  std::vector<std::vector<Candidate>> found(bands);
  std::vector<char> finite(bands, 1);
  parallel_bands(H, bands, [&](int band, int64_t y0, int64_t y1) {
    finite[band] = all_finite(s + y0 * W, (y1 - y0) * W);
    if (finite[band]) found[band] = search_band(s, mask, H, W, q, y0, y1);
  });
  if (std::find(finite.begin(), finite.end(), 0) != finite.end())
    throw std::invalid_argument("scores contain NaN or Inf");

  std::vector<Candidate> cand;
  size_t total = 0;
  for (const auto& f : found) total += f.size();
  cand.reserve(total);
  for (const auto& f : found) cand.insert(cand.end(), f.begin(), f.end());

  const auto k = static_cast<size_t>(p.max_keypoints);
  if (k > 0 && k < cand.size()) {
    std::nth_element(cand.begin(), cand.begin() + static_cast<std::ptrdiff_t>(k), cand.end(), better);
    cand.resize(k);
  }
  std::sort(cand.begin(), cand.end(), better);

  std::vector<Keypoint> kps(cand.size());
  for (size_t i = 0; i < cand.size(); ++i) {
    const int64_t x = cand[i].index % W, y = cand[i].index / W;
    const float* c = s + cand[i].index;
    float dx = 0.0f, dy = 0.0f;
    if (p.subpixel && x > 0 && x < W - 1) dx = parabola_offset(c[-1], c[0], c[1]);
    if (p.subpixel && y > 0 && y < H - 1) dy = parabola_offset(c[-W], c[0], c[W]);
    kps[i] = {static_cast<float>(x) + dx, static_cast<float>(y) + dy, cand[i].score};
  }
  return kps;
}

}  // namespace s2cv::cpu
