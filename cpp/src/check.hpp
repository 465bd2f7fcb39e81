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

// A view (ConstMatrix or Matrix) with elements but no data is a caller's bug:
// reject it before any kernel dereferences it.
template <class View>
void check_view(const View& m, const char* name) {
    if (m.data == nullptr && m.rows > 0 && m.cols > 0) {
        fail(name, " is a null view of ", m.rows, " x ", m.cols, " elements");
    }
}

}  // namespace meprop::detail
