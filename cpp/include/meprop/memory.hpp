// Running out of memory with a message: scratch that would not fit is refused
// before it is allocated, rather than left to the kernel's OOM killer.
#pragma once

#include <cstddef>
#include <new>
#include <string>

namespace meprop {

// A std::bad_alloc that says what did not fit (Python: MemoryError with this
// message).
class OutOfMemory : public std::bad_alloc {
  public:
    explicit OutOfMemory(std::string message) : message_(std::move(message)) {}
    const char* what() const noexcept override { return message_.c_str(); }

  private:
    std::string message_;
};

// Bytes the system could give this process now without swapping: the
// environment variable MEPROP_MEMORY_AVAILABLE if set (a cap, and how the
// tests simulate a small machine), else Linux's MemAvailable; 0 if unknown
// (then nothing is refused up front).
std::size_t available_memory_bytes();

}  // namespace meprop
