// CUDA back end on raw device buffers owned by the caller (s2cv.runtime.postprocess
// allocates them with torch). Plain C++ types only: the pybind11 module is
// compiled by the host compiler and nvcc never sees Python headers.
#pragma once

#include <cstddef>
#include <cstdint>

#include "../common.hpp"

namespace s2cv::cuda {

// Number of visible CUDA devices; 0 when there is no driver or no GPU.
int device_count();

// Bytes of scratch detect() needs for an H x W map on `device`.
size_t detect_workspace_bytes(int64_t H, int64_t W, int device);

// Writes the best keypoints, best first, to `out` (capacity rows, at least
// min(max_keypoints or H*W, H*W)) and returns how many. Synchronises `stream`
// once to learn the candidate count; the final kernel is left in flight.
// Throws std::invalid_argument on bad parameters or non-finite scores.
int64_t detect(const float* scores, const uint8_t* mask, int64_t H, int64_t W, const DetectParams& p, Keypoint* out,
               int64_t capacity, void* workspace, size_t workspace_bytes, int device, uintptr_t stream);

// out (N, D) = L2-normalised bilinear samples; asynchronous on `stream`.
// Non-finite keypoints are clamped to the map (callers reject them first).
void sample_descriptors(const float* desc, int64_t D, int64_t h, int64_t w, const float* kpts, int64_t N,
                        float stride, float* out, int device, uintptr_t stream);

}  // namespace s2cv::cuda
