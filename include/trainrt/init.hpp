// trainrt/init.hpp — how parameters and state tensors get their first values.
#pragma once

#include <cstdint>

namespace trainrt {

/// A recipe for a tensor's initial values. Values are drawn from a counter-based Philox
/// stream keyed by (CompileOptions::seed, the tensor's name), so they do not depend on the
/// order in which parameters were created. Fans follow PyTorch: for a shape
/// [out, in, k...], fan_in = in * prod(k) and fan_out = out * prod(k).
struct Init {
  /// The distribution; see the functions of namespace trainrt::init for each one's meaning.
  enum class Kind { zeros, constant, normal, uniform, xavier_uniform, xavier_normal, kaiming_uniform, kaiming_normal };
  /// Which fan scales a Kaiming initialization.
  enum class FanMode { fan_in, fan_out };
  /// The activation that follows, which sets a Kaiming initialization's gain (as in
  /// torch.nn.init.calculate_gain).
  enum class Nonlinearity { linear, relu, leaky_relu, tanh, sigmoid };
  Kind kind = Kind::zeros;         ///< the distribution
  double a = 0.0;                  ///< constant value, mean, lower bound, gain or negative slope (by kind)
  double b = 0.0;                  ///< standard deviation or upper bound (by kind)
  FanMode mode = FanMode::fan_in;  ///< Kaiming: the fan used
  Nonlinearity nonlinearity = Nonlinearity::leaky_relu;  ///< Kaiming: the gain's activation
};

/// Constructors of Init recipes: zeros, constants, random and fan-scaled initializations.
namespace init {
/// All zeros (the default of Graph::parameter and Graph::state).
inline Init zeros() { return {}; }
/// Every element equal to `value`.
inline Init constant(double value) { return {Init::Kind::constant, value, 0.0}; }
/// Every element 1.
inline Init ones() { return constant(1.0); }
/// Normal N(mean, std^2).
inline Init normal(double mean = 0.0, double std = 1.0) { return {Init::Kind::normal, mean, std}; }
/// Uniform U(low, high).
inline Init uniform(double low = 0.0, double high = 1.0) { return {Init::Kind::uniform, low, high}; }
/// Glorot: U(-g*sqrt(6/(fan_in+fan_out)), +...). Needs rank >= 2.
inline Init xavier_uniform(double gain = 1.0) { return {Init::Kind::xavier_uniform, gain, 0.0}; }
/// Glorot: N(0, g*sqrt(2/(fan_in+fan_out))). Needs rank >= 2.
inline Init xavier_normal(double gain = 1.0) { return {Init::Kind::xavier_normal, gain, 0.0}; }
/// He: U(-b, b) with b = gain*sqrt(3/fan), gain from `nonlinearity` and slope `a` as in
/// torch.nn.init. Needs rank >= 2. kaiming_uniform(std::sqrt(5.0)) is PyTorch's Linear default.
inline Init kaiming_uniform(double a = 0.0, Init::FanMode mode = Init::FanMode::fan_in,
                            Init::Nonlinearity nl = Init::Nonlinearity::leaky_relu) {
  return {Init::Kind::kaiming_uniform, a, 0.0, mode, nl};
}
/// He: N(0, gain/sqrt(fan)). Needs rank >= 2.
inline Init kaiming_normal(double a = 0.0, Init::FanMode mode = Init::FanMode::fan_in,
                           Init::Nonlinearity nl = Init::Nonlinearity::leaky_relu) {
  return {Init::Kind::kaiming_normal, a, 0.0, mode, nl};
}
}  // namespace init

}  // namespace trainrt
