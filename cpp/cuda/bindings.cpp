// Python module s2cv._C_cuda: device pointers and the stream travel as
// integers (torch's data_ptr() / cuda_stream), so this module links no torch.
#include <pybind11/pybind11.h>

#include "cuda_api.hpp"

namespace py = pybind11;

namespace {

int64_t detect(uintptr_t scores, uintptr_t mask, int64_t H, int64_t W, int64_t nms_radius, float threshold,
               int64_t border, int64_t max_keypoints, bool subpixel, uintptr_t out, int64_t capacity,
               uintptr_t workspace, size_t workspace_bytes, int device, uintptr_t stream) {
  const s2cv::DetectParams params{nms_radius, threshold, border, max_keypoints, subpixel};
  py::gil_scoped_release nogil;
  return s2cv::cuda::detect(reinterpret_cast<const float*>(scores), reinterpret_cast<const uint8_t*>(mask), H, W,
                            params, reinterpret_cast<s2cv::Keypoint*>(out), capacity,
                            reinterpret_cast<void*>(workspace), workspace_bytes, device, stream);
}

void sample_descriptors(uintptr_t desc, int64_t D, int64_t h, int64_t w, uintptr_t kpts, int64_t N, float stride,
                        uintptr_t out, int device, uintptr_t stream) {
  py::gil_scoped_release nogil;
  s2cv::cuda::sample_descriptors(reinterpret_cast<const float*>(desc), D, h, w, reinterpret_cast<const float*>(kpts),
                                 N, stride, reinterpret_cast<float*>(out), device, stream);
}

}  // namespace

PYBIND11_MODULE(_C_cuda, m) {
  m.doc() = "CUDA post-processing kernels of s2cv on raw device pointers (use s2cv.feature.postprocess).";
  m.def("device_count", &s2cv::cuda::device_count, "Visible CUDA devices; 0 without driver or GPU.");
  m.def("detect_workspace_bytes", &s2cv::cuda::detect_workspace_bytes, py::arg("H"), py::arg("W"),
        py::arg("device"), py::call_guard<py::gil_scoped_release>(), "Scratch bytes detect() needs.");
  m.def("detect", &detect, py::arg("scores"), py::arg("mask"), py::arg("H"), py::arg("W"), py::arg("nms_radius"),
        py::arg("threshold"), py::arg("border"), py::arg("max_keypoints"), py::arg("subpixel"), py::arg("out"),
        py::arg("capacity"), py::arg("workspace"), py::arg("workspace_bytes"), py::arg("device"), py::arg("stream"),
        "Writes (x, y, score) rows, best first, to out; returns the row count.");
  m.def("sample_descriptors", &sample_descriptors, py::arg("descriptors"), py::arg("D"), py::arg("h"), py::arg("w"),
        py::arg("keypoints"), py::arg("N"), py::arg("stride"), py::arg("out"), py::arg("device"), py::arg("stream"),
        "Writes L2-normalised bilinear samples (N, D) to out.");
}
