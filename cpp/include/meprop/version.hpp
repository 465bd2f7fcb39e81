#pragma once

#define MEPROP_VERSION_MAJOR 0
#define MEPROP_VERSION_MINOR 1
#define MEPROP_VERSION_PATCH 0

namespace meprop {
inline constexpr const char* version = "0.1.0";
}
