// A minimal test harness: TEST registers a function, CHECK records failures.
#pragma once

#include <functional>
#include <iostream>
#include <string>
#include <vector>

namespace meprop_test {

struct Registry {
    std::vector<std::pair<std::string, std::function<void()>>> tests;
    int failures = 0;
    static Registry& get() {
        static Registry registry;
        return registry;
    }
};

struct Register {
    Register(const char* name, std::function<void()> fn) {
        Registry::get().tests.emplace_back(name, std::move(fn));
    }
};

}  // namespace meprop_test

#define MEPROP_CONCAT_(a, b) a##b
#define MEPROP_CONCAT(a, b) MEPROP_CONCAT_(a, b)
#define TEST(name)                                                            \
    static void name();                                                       \
    static meprop_test::Register MEPROP_CONCAT(register_, name)(#name, name); \
    static void name()

#define CHECK(cond)                                                                    \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            ++meprop_test::Registry::get().failures;                                   \
            std::cerr << __FILE__ << ":" << __LINE__ << ": CHECK failed: " #cond "\n"; \
        }                                                                              \
    } while (0)

#define CHECK_THROWS(expr)                                            \
    do {                                                              \
        bool threw = false;                                           \
        try {                                                         \
            expr;                                                     \
        } catch (const std::invalid_argument&) {                      \
            threw = true;                                             \
        }                                                             \
        CHECK(threw && "expected std::invalid_argument from " #expr); \
    } while (0)
