#include "ir/op_kind.h"

namespace trainrt::detail {

namespace {
struct OpInfo {
  std::string_view name;
  OpFamily family;
};
constexpr OpInfo kOps[] = {
#define TRAINRT_OP_INFO(name, str, family) {str, OpFamily::family},
    TRAINRT_OP_LIST(TRAINRT_OP_INFO)
#undef TRAINRT_OP_INFO
};
}  // namespace

std::string_view op_name(OpKind kind) noexcept { return kOps[static_cast<std::size_t>(kind)].name; }
OpFamily op_family(OpKind kind) noexcept { return kOps[static_cast<std::size_t>(kind)].family; }

bool is_elementwise(OpKind kind) noexcept {
  const OpFamily f = op_family(kind);
  return f == OpFamily::Unary || f == OpFamily::Binary || f == OpFamily::Ternary || kind == OpKind::DropoutApply;
}

bool is_predicate(OpKind kind) noexcept {
  switch (kind) {
    case OpKind::Eq:
    case OpKind::Ne:
    case OpKind::Lt:
    case OpKind::Le:
    case OpKind::Gt:
    case OpKind::Ge:
    case OpKind::LogicalAnd:
    case OpKind::LogicalOr:
    case OpKind::LogicalNot: return true;
    default: return false;
  }
}

bool checks_data(OpKind kind) noexcept {
  return kind == OpKind::CrossEntropy || kind == OpKind::CrossEntropyBackward || kind == OpKind::Embedding ||
         kind == OpKind::EmbeddingBackward;
}

}  // namespace trainrt::detail
