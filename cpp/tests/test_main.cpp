#include <iostream>

#include "check.hpp"

int main() {
    auto& registry = meprop_test::Registry::get();
    int failed_tests = 0;
    for (const auto& [name, fn] : registry.tests) {
        const int before = registry.failures;
        try {
            fn();
        } catch (const std::exception& e) {
            ++registry.failures;
            std::cerr << name << ": unexpected exception: " << e.what() << "\n";
        }
        const bool ok = registry.failures == before;
        failed_tests += !ok;
        std::cout << (ok ? "ok   " : "FAIL ") << name << "\n";
    }
    const auto passed = registry.tests.size() - static_cast<std::size_t>(failed_tests);
    std::cout << passed << " passed, " << failed_tests << " failed\n";
    return failed_tests == 0 ? 0 : 1;
}
