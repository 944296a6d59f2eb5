// CPU back end: plain pointers in, no Python types, so it can run without the GIL.
#pragma once

#include <cstdint>
#include <vector>

#include "common.hpp"

namespace s2cv::cpu {

// scores: H*W row-major; mask: H*W (nonzero = allowed) or nullptr.
// Throws std::invalid_argument on bad parameters or non-finite scores.
std::vector<Keypoint> detect(const float* scores, const uint8_t* mask, int64_t H, int64_t W, const DetectParams& p);

// desc: D*h*w (channel-major) or h*w*D (channels_last); kpts: N*2 (x, y) image pixels;
// out: N*D, rows L2-normalised. Same values for both layouts.
// Throws std::invalid_argument on bad parameters or non-finite keypoints.
void sample_descriptors(const float* desc, int64_t D, int64_t h, int64_t w, const float* kpts, int64_t N,
                        float stride, float* out, bool channels_last = false);

}  // namespace s2cv::cpu
