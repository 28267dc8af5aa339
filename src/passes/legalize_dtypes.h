// passes/legalize_dtypes.h — make every op's dtypes ones the target backend computes in.
//
// The CPU backend computes f16 and bf16 in f32: ops over those storage types are wrapped in
// casts to f32 and back. Data movement (shape ops, casts, state) works on any dtype and is
// left alone. Run after autodiff and the optimizer, before scheduling.
#pragma once

#include <memory>

#include "passes/rewrite.h"

namespace trainrt::detail {

std::shared_ptr<GraphImpl> legalize_dtypes_for_cpu(const GraphImpl& graph, ValueMap& map, bool& changed);

}  // namespace trainrt::detail
