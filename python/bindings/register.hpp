// Each subject's bindings add their functions to the module.
#pragma once

#include <pybind11/pybind11.h>

namespace meprop_bindings {

void register_topk(pybind11::module_& m);
void register_linear(pybind11::module_& m);
void register_optimizers(pybind11::module_& m);
void register_lstm(pybind11::module_& m);
void register_weight_gradient(pybind11::module_& m);
void register_pointwise(pybind11::module_& m);

}  // namespace meprop_bindings
