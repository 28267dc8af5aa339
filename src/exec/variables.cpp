#include "exec/variables.h"

#include <cmath>

#include "core/element.h"
#include "core/error.h"
#include "core/hash.h"
#include "core/philox.h"

namespace trainrt::detail {

namespace {

double gain_of(const Init& init) {
  switch (init.nonlinearity) {
    case Init::Nonlinearity::linear:
    case Init::Nonlinearity::sigmoid: return 1.0;
    case Init::Nonlinearity::relu: return std::sqrt(2.0);
    case Init::Nonlinearity::leaky_relu: return std::sqrt(2.0 / (1.0 + init.a * init.a));
    case Init::Nonlinearity::tanh: return 5.0 / 3.0;
  }
  return 1.0;
}

}  // namespace

void initialize(void* data, const TensorType& type, const Init& init, std::uint64_t seed, std::string_view name) {
  const std::int64_t n = type.shape.numel();
  const Shape& s = type.shape;
  double fan_in = 0, fan_out = 0;
  const bool needs_fans = init.kind == Init::Kind::xavier_uniform || init.kind == Init::Kind::xavier_normal ||
                          init.kind == Init::Kind::kaiming_uniform || init.kind == Init::Kind::kaiming_normal;
  if (needs_fans) {
    if (s.rank() < 2)
      fail(ErrorKind::InvalidArgument,
           cat("'", name, "': Xavier and Kaiming initialization need a shape of rank >= 2, got ", s.to_string()));
    double receptive = 1;
    for (std::int64_t i = 2; i < s.rank(); ++i) receptive *= static_cast<double>(s[i]);
    fan_in = static_cast<double>(s[1]) * receptive;
    fan_out = static_cast<double>(s[0]) * receptive;
    if (fan_in == 0 || fan_out == 0)
      fail(ErrorKind::InvalidArgument, cat("'", name, "': a fan is zero for ", s.to_string()));
  }
  enum class Draw { none, uniform, normal } draw = Draw::none;
  double lo = 0, hi = 0, mean = 0, stddev = 0, value = 0;
  switch (init.kind) {
    case Init::Kind::zeros: value = 0; break;
    case Init::Kind::constant: value = init.a; break;
    case Init::Kind::normal: draw = Draw::normal, mean = init.a, stddev = init.b; break;
    case Init::Kind::uniform: draw = Draw::uniform, lo = init.a, hi = init.b; break;
    case Init::Kind::xavier_uniform: {
      const double b = init.a * std::sqrt(6.0 / (fan_in + fan_out));
      draw = Draw::uniform, lo = -b, hi = b;
      break;
    }
    case Init::Kind::xavier_normal: draw = Draw::normal, stddev = init.a * std::sqrt(2.0 / (fan_in + fan_out)); break;
    case Init::Kind::kaiming_uniform: {
      const double fan = init.mode == Init::FanMode::fan_in ? fan_in : fan_out;
      const double b = std::sqrt(3.0) * gain_of(init) / std::sqrt(fan);
      draw = Draw::uniform, lo = -b, hi = b;
      break;
    }
    case Init::Kind::kaiming_normal: {
      const double fan = init.mode == Init::FanMode::fan_in ? fan_in : fan_out;
      draw = Draw::normal, stddev = gain_of(init) / std::sqrt(fan);
      break;
    }
  }
  const std::uint64_t key = hash_combine(seed, fnv1a64(name));
  for (std::int64_t i = 0; i < n; ++i) {
    double v = value;
    if (draw != Draw::none) {
      const Philox4x32 r = philox4x32_10(key, static_cast<std::uint64_t>(i), 0);
      v = draw == Draw::uniform ? lo + (hi - lo) * uniform01_double(r.v[0], r.v[1]) : mean + stddev * normal01(r);
    }
    store_from_double(data, type.dtype, i, v);
  }
}

void VariableStore::add_from(const GraphImpl& graph, std::uint64_t seed) {
  for (const Node& n : graph.nodes()) {
    if (n.dead || n.kind != OpKind::Variable) continue;
    if (const VariableEntry* e = find(n.name)) {
      check_internal(e->type == n.outputs[0], "a variable changed type between plans");
      continue;
    }
    const auto& attrs = std::get<VariableAttrs>(n.attrs);
    VariableEntry e;
    e.name = n.name;
    e.type = n.outputs[0];
    e.kind = attrs.kind;
    e.data = aligned_alloc_bytes(e.bytes());
    initialize(e.data.get(), e.type, attrs.init, seed, e.name);
    entries_.push_back(std::move(e));
  }
}

VariableEntry* VariableStore::find(std::string_view name) {
  for (VariableEntry& e : entries_)
    if (e.name == name) return &e;
  return nullptr;
}

const VariableEntry* VariableStore::find(std::string_view name) const {
  for (const VariableEntry& e : entries_)
    if (e.name == name) return &e;
  return nullptr;
}

std::size_t VariableStore::total_bytes() const {
  std::size_t total = 0;
  for (const VariableEntry& e : entries_) total += e.bytes();
  return total;
}

void VariableStore::not_found(std::string_view name) const {
  std::string known;
  for (const VariableEntry& e : entries_) known += (known.empty() ? "" : ", ") + e.name;
  fail(ErrorKind::NotFound, cat("no parameter or state tensor named '", name, "' (known: ", known, ")"));
}

}  // namespace trainrt::detail
