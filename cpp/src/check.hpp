// Argument checks that throw std::invalid_argument with a readable message.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace meprop::detail {

template <class... Parts>
[[noreturn]] void fail(const Parts&... parts) {
    std::ostringstream message;
    message << "meprop: ";
    (message << ... << parts);
    throw std::invalid_argument(message.str());
}

}  // namespace meprop::detail
