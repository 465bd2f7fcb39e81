// The whole public C++ API of meprop-native.
#pragma once

#include "meprop/error_feedback.hpp"
#include "meprop/isa.hpp"
#include "meprop/linear_backward.hpp"
#include "meprop/linear_forward.hpp"
#include "meprop/lstm.hpp"
#include "meprop/matrix.hpp"
#include "meprop/memory.hpp"
#include "meprop/optimizers.hpp"
#include "meprop/pointwise.hpp"
#include "meprop/threading.hpp"
#include "meprop/topk.hpp"
#include "meprop/version.hpp"
