// trainrt/nn/bert.hpp — BERT (encoder, pooler, masked-LM and sequence-classification heads)
// with Hugging Face's parameter names, semantics and initialization, so that Hugging Face
// weights load one to one.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "trainrt/nn/layers.hpp"
#include "trainrt/nn/transformer.hpp"

namespace trainrt::nn {

/// The sizes of a BERT (Hugging Face's BertConfig; defaults: bert-base-uncased).
struct BertConfig {
  std::int64_t vocab_size = 30522;   ///< rows of the word embeddings
  std::int64_t hidden = 768;         ///< hidden size H
  std::int64_t layers = 12;          ///< encoder layers
  std::int64_t heads = 12;           ///< attention heads; must divide hidden
  std::int64_t intermediate = 3072;  ///< width of the feed-forward block
  std::int64_t max_position = 512;   ///< longest sequence (rows of the position embeddings)
  std::int64_t type_vocab = 2;       ///< token types (segments)
  double dropout = 0.1;              ///< hidden_dropout_prob: embeddings, residual branches, classifier
  double attention_dropout = 0.1;    ///< attention_probs_dropout_prob: on the attention weights
  double layer_norm_eps = 1e-12;     ///< of every LayerNorm
};

/// Google's BERT sizes: "tiny" (L2/H128/A2), "mini" (L4/H256/A4), "small" (L4/H512/A8),
/// "medium" (L8/H512/A8), "base" (L12/H768/A12); intermediate 4H, the other fields as
/// BertConfig's defaults, with `vocab_size`. Throws trainrt::Error (InvalidArgument) for
/// another name, listing the valid ones, or a vocab_size < 1.
BertConfig bert_config(std::string_view size, std::int64_t vocab_size = 30522);

/// One encoder layer (Hugging Face's BertLayer, post-norm, exact GELU). Names under
/// "<name>.": attention.self.query/key/value, attention.output.dense,
/// attention.output.LayerNorm, intermediate.dense, output.dense, output.LayerNorm.
class BertLayer {
 public:
  /// Creates the parameters (N(0, 0.02) weights, zero biases, LayerNorm ones/zeros).
  BertLayer(Graph& graph, const std::string& name, const BertConfig& config, Loc loc = Loc::current());
  /// Applies the layer to x[B, L, H]; `mask4` is absent or bool [B, 1, 1, L] (true = attend).
  Value operator()(const Value& x, const Value& mask4, Loc loc = Loc::current()) const;
  Linear query;              ///< attention.self.query
  Linear key;                ///< attention.self.key
  Linear value;              ///< attention.self.value
  Linear attention_output;   ///< attention.output.dense
  LayerNorm attention_norm;  ///< attention.output.LayerNorm
  Linear intermediate;       ///< intermediate.dense (H -> intermediate)
  Linear output;             ///< output.dense (intermediate -> H)
  LayerNorm output_norm;     ///< output.LayerNorm
  BertConfig config;         ///< sizes and dropouts
};

/// The BERT encoder (Hugging Face's BertModel). Names under `prefix` ("bert"):
/// "embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight",
/// "embeddings.token_type_embeddings.weight", "embeddings.LayerNorm.*",
/// "encoder.layer.N.*" (BertLayer) and "pooler.dense.*". Differences from Hugging Face: the
/// word embeddings' padding row 0 is initialized and trained like the others; a query row whose
/// keys are all masked out yields zeros (Hugging Face: a uniform average) when attention dropout
/// is 0.
class BertModel {
 public:
  /// Creates the parameters. Throws trainrt::Error (InvalidArgument) naming the model for a
  /// size < 1, hidden not divisible by heads, or a dropout outside [0, 1).
  BertModel(Graph& graph, const BertConfig& cfg, const std::string& name_prefix = "bert", bool with_pooler = true,
            Loc loc = Loc::current());
  /// What the encoder returns.
  struct Output {
    Value sequence;  ///< the last layer's hidden states [B, L, H]
    Value pooled;    ///< tanh(pooler.dense(sequence[:, 0])) [B, H]; absent without the pooler
  };
  /// Encodes input_ids (i32 or i64 [B, L], L <= max_position). token_type_ids: the same
  /// shape and dtype, or absent (all type 0). attention_mask: bool [B, L], true for real
  /// tokens, or absent (all attend). Throws trainrt::Error naming the model for other shapes
  /// or dtypes; an id out of range makes the step throw.
  Output operator()(const Value& input_ids, const Value& token_type_ids = {}, const Value& attention_mask = {},
                    Loc loc = Loc::current()) const;
  BertConfig config;                ///< sizes
  Embedding word_embeddings;        ///< [vocab_size, H]
  Embedding position_embeddings;    ///< [max_position, H]
  Embedding token_type_embeddings;  ///< [type_vocab, H]
  LayerNorm embeddings_norm;        ///< embeddings.LayerNorm
  std::vector<BertLayer> layers;    ///< encoder.layer.N
  std::vector<Linear> pooler;       ///< pooler.dense, or empty without the pooler
  std::string prefix;               ///< for messages
};

/// BERT with the masked-language-model head (Hugging Face's BertForMaskedLM, no pooler):
/// "cls.predictions.transform.dense", "cls.predictions.transform.LayerNorm" and
/// "cls.predictions.bias"; the decoder's weight is the word embeddings (tied, as Hugging Face
/// does: its state_dict's "cls.predictions.decoder.*" copies load as unused).
class BertForMaskedLM {
 public:
  /// Creates the encoder under "bert" and the head. Throws as BertModel does.
  BertForMaskedLM(Graph& graph, const BertConfig& config, Loc loc = Loc::current());
  /// Logits [B, P, vocab] at positions (i32 or i64 [B, P], each an index into L of its row),
  /// computed only there as BERT's pre-training does. Throws trainrt::Error naming the model
  /// for other shapes or dtypes; a position outside [0, L) makes the step throw.
  Value logits(const Value& input_ids, const Value& token_type_ids, const Value& attention_mask, const Value& positions,
               Loc loc = Loc::current()) const;
  /// Mean cross-entropy of logits() against labels ([B, P], the dtype of positions; -100 marks
  /// a padding position, which is ignored but must still hold a valid position).
  Value loss(const Value& input_ids, const Value& token_type_ids, const Value& attention_mask, const Value& positions,
             const Value& labels, Loc loc = Loc::current()) const;
  BertModel bert;            ///< "bert.*"
  Linear transform;          ///< cls.predictions.transform.dense
  LayerNorm transform_norm;  ///< cls.predictions.transform.LayerNorm
  Value decoder_bias;        ///< cls.predictions.bias [vocab]
};

/// BERT with a classifier on the pooled output (Hugging Face's
/// BertForSequenceClassification): "bert.*" and "classifier.weight/bias".
class BertForSequenceClassification {
 public:
  /// Creates the encoder (with pooler) under "bert" and the classifier. Throws as BertModel
  /// does, and for num_labels < 1.
  BertForSequenceClassification(Graph& graph, const BertConfig& config, std::int64_t num_labels,
                                Loc loc = Loc::current());
  /// Logits [B, num_labels]: classifier(dropout(pooled)); arguments as BertModel's.
  Value logits(const Value& input_ids, const Value& token_type_ids = {}, const Value& attention_mask = {},
               Loc loc = Loc::current()) const;
  BertModel bert;     ///< "bert.*"
  Linear classifier;  ///< H -> num_labels
};

}  // namespace trainrt::nn
