// ir/node.h — nodes and values of the IR.
#pragma once

#include <compare>
#include <cstdint>
#include <string>
#include <vector>

#include "ir/attrs.h"
#include "ir/op_kind.h"
#include "trainrt/dtype.hpp"
#include "trainrt/shape.hpp"

namespace trainrt::detail {

/// One output of one node. node == -1 marks an absent optional operand.
struct ValueId {
  std::int32_t node = -1;
  std::int32_t output = 0;
  bool valid() const noexcept { return node >= 0; }
  // NOLINTNEXTLINE(modernize-use-nullptr): clang 14 sees the synthesized 0 of <=>
  auto operator<=>(const ValueId&) const = default;
};

struct TensorType {
  DType dtype = DType::f32;
  Shape shape;
  bool operator==(const TensorType&) const = default;
  std::string to_string() const;  // "f32[128,10]"
};

/// Which part of the training step a node belongs to; set from the graph's build phase.
enum class Phase : std::uint8_t { forward, backward, update };

/// Where a node came from in the application's source (static strings from
/// std::source_location; file is null when unknown).
struct SourceLoc {
  const char* file = nullptr;
  std::uint32_t line = 0;
};

struct Node {
  OpKind kind{};
  std::vector<ValueId> inputs;
  std::vector<TensorType> outputs;
  Attrs attrs;
  std::string name;  // inputs, variables: their unique name; other nodes: empty
  SourceLoc loc;
  Phase phase = Phase::forward;
  bool dead = false;  // removed by a pass; indices of live nodes never change
};

}  // namespace trainrt::detail
