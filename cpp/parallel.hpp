// Minimal band-parallel loop: the work here is a few milliseconds, so a
// thread pool or OpenMP dependency would cost more than it saves.
#pragma once

#include <algorithm>
#include <cstdint>
#include <exception>
#include <thread>
#include <vector>

namespace s2cv {

// Threads worth starting for `work` items when each thread should get at
// least `min_per_thread` of them.
inline int choose_threads(int64_t work, int64_t min_per_thread) {
  const int64_t hw = std::max<int64_t>(1, std::thread::hardware_concurrency());
  const int64_t useful = std::max<int64_t>(1, work / std::max<int64_t>(1, min_per_thread));
  return static_cast<int>(std::min({hw, useful, int64_t{16}}));
}

// Calls body(band, begin, end) for `bands` contiguous slices of [0, n), one
// thread per slice (the caller's thread takes band 0). Rethrows the first
// exception after all threads joined.
template <class Body>
void parallel_bands(int64_t n, int bands, Body&& body) {
  bands = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(bands, n)));
  std::vector<std::exception_ptr> errors(bands);
  auto run = [&](int b) {
    try {
      body(b, n * b / bands, n * (b + 1) / bands);
    } catch (...) {
      errors[b] = std::current_exception();
    }
  };
  std::vector<std::thread> threads;
  threads.reserve(bands - 1);
  for (int b = 1; b < bands; ++b) threads.emplace_back(run, b);
  run(0);
  for (auto& t : threads) t.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace s2cv
