// trainrt/trainrt.hpp — the whole public API of libtrainrt.
#pragma once

#include "trainrt/checkpoint.hpp"
#include "trainrt/data.hpp"
#include "trainrt/dist.hpp"
#include "trainrt/dtype.hpp"
#include "trainrt/errors.hpp"
#include "trainrt/graph.hpp"
#include "trainrt/init.hpp"
#include "trainrt/metrics.hpp"
#include "trainrt/nn.hpp"
#include "trainrt/ops.hpp"
#include "trainrt/optim.hpp"
#include "trainrt/program.hpp"
#include "trainrt/shape.hpp"
#include "trainrt/tensor.hpp"
#include "trainrt/text.hpp"

/// \namespace trainrt
/// The public API of libtrainrt: build a Graph of Values with the ops, compile() it with an
/// optimizer into a Program, and call Program::step() with Feeds. Every failure is thrown as
/// a trainrt::Error. The pages under docs/ (docs/README.md) explain each part with tested
/// examples.
