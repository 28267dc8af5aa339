// ir/verifier.h — checks the invariants every pass must keep. Runs after each pass in debug
// builds and tests (and when TRAINRT_VERIFY=1), so a broken pass is caught where it broke.
#pragma once

#include <string_view>

#include "ir/graph_impl.h"

namespace trainrt::detail {

/// Throws trainrt::Error(Internal) naming the node and the broken rule, after `pass`:
///  - live nodes use only outputs of earlier live nodes (absent operands where optional);
///  - stored output types equal what inference computes from the operands;
///  - an assign targets a variable, and each variable is assigned at most once.
void verify(const GraphImpl& graph, std::string_view pass);

}  // namespace trainrt::detail
