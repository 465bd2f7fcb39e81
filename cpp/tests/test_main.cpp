#include <iostream>
#include <set>
#include <string>

#include "harness.hpp"

// Runs every registered test; `-NAME` arguments skip tests by name (for a
// build whose compiler does not keep a contract a test checks, such as the
// floating-point exception flags under clang's default FP model).
int main(int argc, char** argv) {
    std::set<std::string> skipped;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg.size() > 1 && arg[0] == '-') {
            skipped.insert(arg.substr(1));
        } else {
            std::cerr << "usage: " << argv[0] << " [-TEST_NAME ...]\n";
            return 2;
        }
    }
    auto& registry = meprop_test::Registry::get();
    for (const auto& name : skipped) {  // a misspelt name would skip nothing, silently
        bool known = false;
        for (const auto& test : registry.tests) known = known || test.first == name;
        if (!known) {
            std::cerr << "no test named " << name << "\n";
            return 2;
        }
    }
    int failed_tests = 0, skipped_tests = 0;
    for (const auto& [name, fn] : registry.tests) {
        if (skipped.count(name)) {
            ++skipped_tests;
            std::cout << "skip " << name << "\n";
            continue;
        }
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
    const auto passed = registry.tests.size() - static_cast<std::size_t>(failed_tests + skipped_tests);
    std::cout << passed << " passed, " << failed_tests << " failed, " << skipped_tests << " skipped\n";
    return failed_tests == 0 ? 0 : 1;
}
