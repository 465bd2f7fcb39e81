// A weight gradient that is not computed yet: the plan of a meProp backward
// (the kept entries of dy grouped by the row of W they update) and the layer
// input x it multiplies. The fused optimizer updates take it instead of the
// gradient rows and compute each row in cache while updating it; anything
// else that needs the rows gets them from materialize(), bit for bit the
// rows the unfused backward returns.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <memory>

#include "arrays.hpp"

namespace meprop_bindings {

class WeightGradient {
  public:
    template <class T>
    WeightGradient(meprop::WeightGradPlan<T>&& plan, py::array x);

    Precision precision() const { return precision_; }
    // The touched rows of W, ascending (int64, read-only).
    const py::array& rows() const { return rows_; }
    // The input the plan multiplies; it must not change before the update.
    const py::array& x() const { return x_; }
    py::ssize_t cols() const { return x_.shape(1); }
    // The plan, in the precision given (which must be precision()).
    template <class T>
    const meprop::WeightGradPlan<T>& plan() const;
    // The gradient rows, (len(rows), n_in), in a new array.
    py::array materialize() const;

  private:
    Precision precision_;
    py::array x_, rows_;
    std::shared_ptr<const meprop::WeightGradPlan<float>> f32_;
    std::shared_ptr<const meprop::WeightGradPlan<double>> f64_;
};

void register_weight_gradient(py::module_& m);

}  // namespace meprop_bindings
