// ir/printer.h — the IR in text form, one node per line:
//   %7 = matmul(%3, %5) {transpose_b} : f32[128,512]        # main.cpp:31 [forward]
// A multi-output node prints its outputs as %n.0, %n.1, ... Dead nodes are left out.
#pragma once

#include <string>

#include "ir/graph_impl.h"

namespace trainrt::detail {

std::string print_graph(const GraphImpl& graph);
std::string print_node(const GraphImpl& graph, std::int32_t index);
/// "%7" or "%7.1", as the printer names the value.
std::string value_name(const GraphImpl& graph, ValueId v);
/// "f32[128,512] = matmul at main.cpp:31" or "parameter 'fc1.weight' f32[512,784]".
std::string describe_value(const GraphImpl& graph, ValueId v);
/// The attributes in text form ("{transpose_b}"), empty when there are none.
std::string print_attrs(const Node& node);

}  // namespace trainrt::detail
