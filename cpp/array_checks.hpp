// Validation of NumPy arguments shared by the bindings: every malformed input
// becomes TypeError/ValueError before a raw pointer is taken.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>

namespace s2cv {

namespace py = pybind11;

inline std::string shape_str(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
  return s + (a.ndim() == 1 ? ",)" : ")");
}

inline std::string dtype_str(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

// Requires a native-endian, aligned, C-contiguous array of T with `ndim` dims.
template <class T>
void require_array(const py::array& a, const char* name, const char* expected_dtype, py::ssize_t ndim) {
  if (!py::array_t<T>::check_(a))
    throw py::type_error(std::string(name) + ": expected dtype " + expected_dtype + ", got " + dtype_str(a));
  if (a.ndim() != ndim)
    throw py::value_error(std::string(name) + ": expected " + std::to_string(ndim) + " dimensions, got shape " +
                          shape_str(a));
  constexpr int needed = py::array::c_style | py::detail::npy_api::NPY_ARRAY_ALIGNED_;
  if ((a.flags() & needed) != needed)
    throw py::value_error(std::string(name) + ": expected an aligned C-contiguous array");
}

}  // namespace s2cv
