#include "meprop/memory.hpp"

#include <cstdlib>
#include <fstream>
#include <string>

namespace meprop {

std::size_t available_memory_bytes() {
    if (const char* cap = std::getenv("MEPROP_MEMORY_AVAILABLE")) {
        char* end = nullptr;
        const unsigned long long bytes = std::strtoull(cap, &end, 10);
        if (end != cap && *end == '\0') return static_cast<std::size_t>(bytes);
    }
    std::ifstream meminfo("/proc/meminfo");
    std::string key;
    unsigned long long kib = 0;
    std::string unit;
    while (meminfo >> key >> kib >> unit) {
        if (key == "MemAvailable:") return static_cast<std::size_t>(kib) * 1024;
    }
    return 0;
}

}  // namespace meprop
