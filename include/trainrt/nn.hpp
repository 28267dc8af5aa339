// trainrt/nn.hpp — every nn module: layers that create their parameters in a Graph, and the
// models built from them.
//
// Parameter names follow PyTorch, torchvision and Hugging Face ("<name>.weight",
// "<name>.bias", "<name>.running_mean", "layer1.0.conv1.weight", "bert.encoder.layer.0...."),
// and so do the default initializations, so weights map one to one (see load_weights()).
#pragma once

#include "trainrt/nn/bert.hpp"
#include "trainrt/nn/layers.hpp"
#include "trainrt/nn/resnet.hpp"
#include "trainrt/nn/transformer.hpp"
