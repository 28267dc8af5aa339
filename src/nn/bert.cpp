// nn/bert.cpp — BERT as Hugging Face's BertModel, BertForMaskedLM and
// BertForSequenceClassification define it (post-norm layers, exact GELU, N(0, 0.02) init).
#include <array>
#include <utility>

#include "core/error.h"
#include "nn/common.h"
#include "trainrt/nn/bert.hpp"

namespace trainrt::nn {

using detail::cat;
using detail::fail;
using detail::join_name;
using detail::require_positive;
using detail::require_probability;
using detail::where;

namespace {

/// Hugging Face's BertPreTrainedModel._init_weights: Linear and Embedding N(0, 0.02), biases zero.
Init weight_init() { return init::normal(0.0, 0.02); }

Linear dense(Graph& graph, const std::string& name, std::int64_t in, std::int64_t out, const Loc& loc) {
  return {graph, name, in, out, weight_init(), init::zeros(), true, loc};
}

const BertConfig& checked_config(const BertConfig& c, const std::string& name, const Loc& loc) {
  require_positive("BertModel", name, "vocab_size", c.vocab_size, loc);
  require_positive("BertModel", name, "hidden", c.hidden, loc);
  require_positive("BertModel", name, "layers", c.layers, loc);
  require_positive("BertModel", name, "heads", c.heads, loc);
  require_positive("BertModel", name, "intermediate", c.intermediate, loc);
  require_positive("BertModel", name, "max_position", c.max_position, loc);
  require_positive("BertModel", name, "type_vocab", c.type_vocab, loc);
  detail::require_divisible("BertModel", name, c.hidden, c.heads, loc);
  require_probability("BertModel", name, "dropout", c.dropout, loc);
  require_probability("BertModel", name, "attention_dropout", c.attention_dropout, loc);
  if (!(c.layer_norm_eps > 0.0))
    fail(ErrorKind::InvalidArgument,
         cat("BertModel '", name, "' at ", where(loc), ": layer_norm_eps must be > 0, got ", c.layer_norm_eps));
  return c;
}

/// Throws unless `v` is an integer [batch, length] tensor (batch/length checked when > 0).
void check_ids(std::string_view layer, const std::string& name, std::string_view what, const Value& v,
               std::int64_t batch, std::int64_t length, const Loc& loc) {
  if (!v.valid())
    fail(ErrorKind::InvalidArgument, cat(layer, " '", name, "' at ", where(loc), ": ", what, " is absent"));
  if (!is_integer(v.dtype()))
    fail(ErrorKind::DTypeMismatch, cat(layer, " '", name, "' at ", where(loc), ": ", what, " must be i32 or i64, got ",
                                       trainrt::name(v.dtype())));
  if (v.rank() != 2 || (batch > 0 && v.shape()[0] != batch) || (length > 0 && v.shape()[1] != length))
    fail(ErrorKind::ShapeMismatch,
         cat(layer, " '", name, "' at ", where(loc), ": ", what, " must be [",
             batch > 0 ? std::to_string(batch) : std::string("B"), ", ",
             length > 0 ? std::to_string(length) : std::string("L"), "], got ", v.shape().to_string()));
}

/// A constant integer tensor of `dtype` (i32 or i64) with the given values.
Value int_constant(Graph graph, const Shape& shape, const std::vector<std::int64_t>& values, DType dtype,
                   const Loc& loc) {
  if (dtype == i64) return graph.constant(Tensor::from_vector<std::int64_t>(shape, values), loc);
  std::vector<std::int32_t> narrow(values.begin(), values.end());
  return graph.constant(Tensor::from_vector<std::int32_t>(shape, narrow), loc);
}

}  // namespace

BertConfig bert_config(std::string_view size, std::int64_t vocab_size) {
  struct Size {
    std::string_view name;
    std::int64_t layers, hidden, heads;
  };
  static constexpr std::array<Size, 5> kSizes{{
      {"tiny", 2, 128, 2},
      {"mini", 4, 256, 4},
      {"small", 4, 512, 8},
      {"medium", 8, 512, 8},
      {"base", 12, 768, 12},
  }};
  if (vocab_size <= 0) fail(ErrorKind::InvalidArgument, cat("bert_config: vocab_size must be > 0, got ", vocab_size));
  for (const Size& s : kSizes)
    if (s.name == size) {
      BertConfig c;
      c.vocab_size = vocab_size;
      c.layers = s.layers;
      c.hidden = s.hidden;
      c.heads = s.heads;
      c.intermediate = 4 * s.hidden;
      return c;
    }
  fail(ErrorKind::InvalidArgument,
       cat("bert_config: unknown size '", size, "'; the sizes are tiny, mini, small, medium and base"));
}

// ---- BertLayer -------------------------------------------------------------------------------------

BertLayer::BertLayer(Graph& graph, const std::string& name, const BertConfig& c, Loc loc)
    : query(dense(graph, name + ".attention.self.query", c.hidden, c.hidden, loc)),
      key(dense(graph, name + ".attention.self.key", c.hidden, c.hidden, loc)),
      value(dense(graph, name + ".attention.self.value", c.hidden, c.hidden, loc)),
      attention_output(dense(graph, name + ".attention.output.dense", c.hidden, c.hidden, loc)),
      attention_norm(graph, name + ".attention.output.LayerNorm", Shape{c.hidden}, c.layer_norm_eps, loc),
      intermediate(dense(graph, name + ".intermediate.dense", c.hidden, c.intermediate, loc)),
      output(dense(graph, name + ".output.dense", c.intermediate, c.hidden, loc)),
      output_norm(graph, name + ".output.LayerNorm", Shape{c.hidden}, c.layer_norm_eps, loc),
      config(c) {}

Value BertLayer::operator()(const Value& x, const Value& mask4, Loc loc) const {
  const Dropout drop(config.dropout, loc);
  const Value context = detail::multi_head_attention(query(x, loc), key(x, loc), value(x, loc), config.heads, mask4,
                                                     false, config.attention_dropout, loc);
  const Value a = attention_norm(add(x, drop(attention_output(context, loc), loc), loc), loc);
  const Value i = gelu(intermediate(a, loc), GeluApproximation::none, loc);
  return output_norm(add(a, drop(output(i, loc), loc), loc), loc);
}

// ---- BertModel -------------------------------------------------------------------------------------

BertModel::BertModel(Graph& graph, const BertConfig& cfg, const std::string& name_prefix, bool with_pooler, Loc loc)
    : config(checked_config(cfg, name_prefix, loc)),
      word_embeddings(graph, join_name(name_prefix, "embeddings.word_embeddings"), cfg.vocab_size, cfg.hidden,
                      weight_init(), loc),
      position_embeddings(graph, join_name(name_prefix, "embeddings.position_embeddings"), cfg.max_position, cfg.hidden,
                          weight_init(), loc),
      token_type_embeddings(graph, join_name(name_prefix, "embeddings.token_type_embeddings"), cfg.type_vocab,
                            cfg.hidden, weight_init(), loc),
      embeddings_norm(graph, join_name(name_prefix, "embeddings.LayerNorm"), Shape{cfg.hidden}, cfg.layer_norm_eps,
                      loc),
      prefix(name_prefix) {
  layers.reserve(static_cast<std::size_t>(cfg.layers));
  for (std::int64_t i = 0; i < cfg.layers; ++i)
    layers.emplace_back(graph, join_name(name_prefix, cat("encoder.layer.", i)), cfg, loc);
  if (with_pooler) pooler.push_back(dense(graph, join_name(name_prefix, "pooler.dense"), cfg.hidden, cfg.hidden, loc));
}

BertModel::Output BertModel::operator()(const Value& input_ids, const Value& token_type_ids,
                                        const Value& attention_mask, Loc loc) const {
  check_ids("BertModel", prefix, "input_ids", input_ids, 0, 0, loc);
  const std::int64_t batch = input_ids.shape()[0], length = input_ids.shape()[1];
  if (length > config.max_position)
    fail(ErrorKind::ShapeMismatch, cat("BertModel '", prefix, "' at ", where(loc), ": the sequence length ", length,
                                       " exceeds max_position ", config.max_position));
  if (token_type_ids.valid()) {
    check_ids("BertModel", prefix, "token_type_ids", token_type_ids, batch, length, loc);
    if (token_type_ids.dtype() != input_ids.dtype())
      fail(ErrorKind::DTypeMismatch,
           cat("BertModel '", prefix, "' at ", where(loc), ": token_type_ids must have the dtype of input_ids (",
               trainrt::name(input_ids.dtype()), "), got ", trainrt::name(token_type_ids.dtype())));
  }
  const Value mask4 = detail::key_mask("BertModel", prefix, attention_mask, batch, length, loc);

  // Embeddings: word + position + token type, then LayerNorm and dropout (BertEmbeddings).
  std::vector<std::int64_t> arange(static_cast<std::size_t>(length));
  for (std::int64_t i = 0; i < length; ++i) arange[static_cast<std::size_t>(i)] = i;
  const Value positions = int_constant(input_ids.graph(), Shape{length}, arange, input_ids.dtype(), loc);
  const Value types = token_type_ids.valid() ? token_type_embeddings(token_type_ids, loc)
                                             : slice(token_type_embeddings.weight, 0, 0, 1, 1, loc);  // type 0
  Value h = add(add(word_embeddings(input_ids, loc), position_embeddings(positions, loc), loc), types, loc);
  h = Dropout(config.dropout, loc)(embeddings_norm(h, loc), loc);

  for (const BertLayer& layer : layers) h = layer(h, mask4, loc);
  Output out{h, {}};
  if (!pooler.empty()) out.pooled = tanh(pooler[0](squeeze(slice(h, 1, 0, 1, 1, loc), 1, loc), loc), loc);
  return out;
}

// ---- heads -----------------------------------------------------------------------------------------

BertForMaskedLM::BertForMaskedLM(Graph& graph, const BertConfig& config, Loc loc)
    : bert(graph, config, "bert", false, loc),
      transform(dense(graph, "cls.predictions.transform.dense", config.hidden, config.hidden, loc)),
      transform_norm(graph, "cls.predictions.transform.LayerNorm", Shape{config.hidden}, config.layer_norm_eps, loc),
      decoder_bias(graph.parameter("cls.predictions.bias", {config.vocab_size}, init::zeros(), f32, loc)) {}

Value BertForMaskedLM::logits(const Value& input_ids, const Value& token_type_ids, const Value& attention_mask,
                              const Value& positions, Loc loc) const {
  const Value seq = bert(input_ids, token_type_ids, attention_mask, loc).sequence;
  const std::int64_t batch = seq.shape()[0], length = seq.shape()[1], hidden = seq.shape()[2];
  check_ids("BertForMaskedLM", "bert", "positions", positions, batch, 0, loc);
  const std::int64_t count = positions.shape()[1];

  // Gather the hidden states at the positions: row b*L + pos of the flattened [B*L, H].
  std::vector<std::int64_t> offsets(static_cast<std::size_t>(batch));
  for (std::int64_t b = 0; b < batch; ++b) offsets[static_cast<std::size_t>(b)] = b * length;
  const Value rows =
      add(positions, int_constant(input_ids.graph(), Shape{batch, 1}, offsets, positions.dtype(), loc), loc);
  Value h = embedding(reshape(seq, {batch * length, hidden}, loc), rows, loc);  // [B, P, H]

  // BertLMPredictionHead: dense, GELU, LayerNorm, then the tied decoder and its bias.
  h = transform_norm(gelu(transform(h, loc), GeluApproximation::none, loc), loc);
  const Value flat = matmul(reshape(h, {batch * count, hidden}, loc), bert.word_embeddings.weight,
                            {.transpose_a = false, .transpose_b = true}, loc);
  return reshape(add(flat, decoder_bias, loc), {batch, count, bert.config.vocab_size}, loc);
}

Value BertForMaskedLM::loss(const Value& input_ids, const Value& token_type_ids, const Value& attention_mask,
                            const Value& positions, const Value& labels, Loc loc) const {
  const Value l = logits(input_ids, token_type_ids, attention_mask, positions, loc);
  check_ids("BertForMaskedLM", "bert", "labels", labels, positions.shape()[0], positions.shape()[1], loc);
  return cross_entropy(l, labels, {}, loc);
}

BertForSequenceClassification::BertForSequenceClassification(Graph& graph, const BertConfig& config,
                                                             std::int64_t num_labels, Loc loc)
    : bert(graph, config, "bert", true, loc),
      classifier(graph, "classifier", config.hidden, num_labels, weight_init(), init::zeros(), true, loc) {}

Value BertForSequenceClassification::logits(const Value& input_ids, const Value& token_type_ids,
                                            const Value& attention_mask, Loc loc) const {
  const Value pooled = bert(input_ids, token_type_ids, attention_mask, loc).pooled;
  return classifier(Dropout(bert.config.dropout, loc)(pooled, loc), loc);
}

}  // namespace trainrt::nn
