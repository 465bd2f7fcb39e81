// The module: each subject's bindings (top-k, linear, optimizers, LSTM) in a
// file of its own, registered here, and the library-wide functions (version,
// threads, ISA). The bindings are the only code that knows Python: they
// convert and check arrays, release the GIL and call the C++ core; C++
// std::invalid_argument surfaces as ValueError.
#include <pybind11/pybind11.h>

#include <string>

#include "meprop/meprop.hpp"
#include "register.hpp"

namespace py = pybind11;

PYBIND11_MODULE(_core, m) {
    m.doc() = "meprop-native compiled core: top-k selection and sparse linear backward.";
    m.attr("__version__") = meprop::version;
    m.def("isa_target", &meprop::isa_target,
          "The instruction-set build of the hot loops that runs here: x86-64-v4, x86-64-v3, baseline or "
          "native.");
    m.def("set_num_threads", &meprop::set_num_threads, py::arg("n"),
          "Sets the number of OpenMP threads the kernels use.");
    m.def("get_num_threads", &meprop::num_threads, "The number of threads the kernels use.");
    meprop_bindings::register_weight_gradient(m);
    meprop_bindings::register_topk(m);
    meprop_bindings::register_linear(m);
    meprop_bindings::register_optimizers(m);
    meprop_bindings::register_lstm(m);
    meprop_bindings::register_pointwise(m);
}
