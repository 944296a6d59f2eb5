// Python module s2cv._C: NumPy front end of the CPU back end. Arrays must
// already be float32/uint8 C-contiguous (s2cv.feature.postprocess converts them);
// anything else raises instead of being reinterpreted.
#include <cstring>

#include "array_checks.hpp"
#include "cpu.hpp"

namespace py = pybind11;
using s2cv::require_array;

namespace {

py::array_t<float> detect(const py::array& scores, const py::object& mask, int64_t nms_radius, float threshold,
                          int64_t border, int64_t max_keypoints, bool subpixel) {
  require_array<float>(scores, "scores", "float32", 2);
  const int64_t H = scores.shape(0), W = scores.shape(1);
  const uint8_t* mask_ptr = nullptr;
  py::array mask_arr;
  if (!mask.is_none()) {
    mask_arr = py::array::ensure(mask);
    if (!mask_arr) throw py::type_error("mask: expected a NumPy array or None");
    if (py::array_t<bool>::check_(mask_arr))
      require_array<bool>(mask_arr, "mask", "uint8 or bool", 2);
    else
      require_array<uint8_t>(mask_arr, "mask", "uint8 or bool", 2);
    if (mask_arr.shape(0) != H || mask_arr.shape(1) != W)
      throw py::value_error("mask: expected shape " + s2cv::shape_str(scores) + " like scores, got " +
                            s2cv::shape_str(mask_arr));
    mask_ptr = static_cast<const uint8_t*>(mask_arr.data());
  }
  const s2cv::DetectParams params{nms_radius, threshold, border, max_keypoints, subpixel};
  const auto* s = static_cast<const float*>(scores.data());

  std::vector<s2cv::Keypoint> kps;
  {
    py::gil_scoped_release nogil;
    kps = s2cv::cpu::detect(s, mask_ptr, H, W, params);
  }
  py::array_t<float> out({static_cast<py::ssize_t>(kps.size()), py::ssize_t{3}});
  if (!kps.empty()) std::memcpy(out.mutable_data(), kps.data(), kps.size() * sizeof(s2cv::Keypoint));
  return out;
}

py::array_t<float> sample_descriptors(const py::array& descriptors, const py::array& keypoints, float stride,
                                      bool channels_last) {
  require_array<float>(descriptors, "descriptors", "float32", 3);
  require_array<float>(keypoints, "keypoints_xy", "float32", 2);
  if (keypoints.shape(1) != 2)
    throw py::value_error("keypoints_xy: expected shape (N, 2), got " + s2cv::shape_str(keypoints));
  const int first = channels_last ? 0 : 1;  // axis of h; D is the axis before (D, h, w) or after (h, w, D)
  const int64_t D = descriptors.shape(channels_last ? 2 : 0);
  const int64_t h = descriptors.shape(first), w = descriptors.shape(first + 1);
  const int64_t N = keypoints.shape(0);
  py::array_t<float> out({static_cast<py::ssize_t>(N), static_cast<py::ssize_t>(D)});
  const auto* desc = static_cast<const float*>(descriptors.data());
  const auto* kpts = static_cast<const float*>(keypoints.data());
  float* dst = out.mutable_data();
  {
    py::gil_scoped_release nogil;
    s2cv::cpu::sample_descriptors(desc, D, h, w, kpts, N, stride, dst, channels_last);
  }
  return out;
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "CPU post-processing kernels of s2cv (use s2cv.feature.postprocess, which converts inputs).";
  m.def("detect", &detect, py::arg("scores"), py::arg("mask"), py::arg("nms_radius"), py::arg("threshold"),
        py::arg("border"), py::arg("max_keypoints"), py::arg("subpixel"),
        "Keypoints (N, 3) = (x, y, score) from a float32 (H, W) score map, best first.");
  m.def("sample_descriptors", &sample_descriptors, py::arg("descriptors"), py::arg("keypoints_xy"),
        py::arg("stride"), py::arg("channels_last"),
        "L2-normalised bilinear samples (N, D) of a float32 (D, h, w) map, or (h, w, D) when channels_last.");
}
