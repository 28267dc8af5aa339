// trainrt/trainrt.hpp — the whole public API of libtrainrt.
#pragma once

#include "trainrt/checkpoint.hpp"
#include "trainrt/data.hpp"
#include "trainrt/dist.hpp"
#include "trainrt/dtype.hpp"
#include "trainrt/errors.hpp"
#include "trainrt/graph.hpp"
#include "trainrt/init.hpp"
#include "trainrt/nn.hpp"
#include "trainrt/ops.hpp"
#include "trainrt/optim.hpp"
#include "trainrt/program.hpp"
#include "trainrt/shape.hpp"
#include "trainrt/tensor.hpp"
