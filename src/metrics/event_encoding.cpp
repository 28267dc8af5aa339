// metrics/event_encoding.cpp — protobuf wire format for the fields TensorBoard reads.
//
// A field is a key varint ((field number << 3) | wire type) followed by its value: a varint
// (type 0: int64, enums), 8 little-endian bytes (type 1: double), a length varint and the
// bytes (type 2: strings and nested messages) or 4 little-endian bytes (type 5: float).
// Field numbers are those of tensorflow/core/util/event.proto and
// tensorflow/core/framework/{summary,tensor,tensor_shape}.proto.
#include "metrics/event_encoding.h"

#include <array>
#include <bit>
#include <span>

#include "metrics/crc32c.h"

namespace trainrt::detail {
namespace {

enum class Wire : std::uint8_t { Varint = 0, Fixed64 = 1, Bytes = 2, Fixed32 = 5 };

// tensorflow.Event
constexpr int kEventWallTime = 1, kEventStep = 2, kEventFileVersion = 3, kEventSummary = 5;
// tensorflow.Summary and Summary.Value
constexpr int kSummaryValue = 1;
constexpr int kValueTag = 1, kValueSimpleValue = 2, kValueTensor = 8, kValueMetadata = 9;
// tensorflow.SummaryMetadata and its PluginData
constexpr int kMetadataPluginData = 1, kPluginName = 1;
// tensorflow.TensorProto (DT_STRING is 7 in tensorflow/core/framework/types.proto)
constexpr int kTensorDtype = 1, kTensorShape = 2, kTensorStringVal = 8;
constexpr std::uint64_t kDtString = 7;

void put_varint(std::string& out, std::uint64_t v) {
  while (v >= 0x80u) {
    out.push_back(static_cast<char>((v & 0x7Fu) | 0x80u));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

void put_key(std::string& out, int field, Wire wire) {
  put_varint(out, (static_cast<std::uint64_t>(field) << 3) | static_cast<std::uint64_t>(wire));
}

template <class U>
void put_little_endian(std::string& out, U v) {
  for (std::size_t i = 0; i < sizeof(U); ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFFu));
}

void put_double(std::string& out, int field, double v) {
  put_key(out, field, Wire::Fixed64);
  put_little_endian(out, std::bit_cast<std::uint64_t>(v));
}

void put_float(std::string& out, int field, float v) {
  put_key(out, field, Wire::Fixed32);
  put_little_endian(out, std::bit_cast<std::uint32_t>(v));
}

// int64 fields are varints of the two's-complement value (a negative one takes 10 bytes).
void put_int64(std::string& out, int field, std::int64_t v) {
  put_key(out, field, Wire::Varint);
  put_varint(out, static_cast<std::uint64_t>(v));
}

void put_bytes(std::string& out, int field, std::string_view bytes) {
  put_key(out, field, Wire::Bytes);
  put_varint(out, bytes.size());
  out.append(bytes);
}

// An Event with wall_time, step and a Summary holding one serialized Summary.Value.
std::string event_with_value(double wall_time, std::int64_t step, const std::string& value) {
  std::string summary;
  put_bytes(summary, kSummaryValue, value);
  std::string event;
  put_double(event, kEventWallTime, wall_time);
  put_int64(event, kEventStep, step);
  put_bytes(event, kEventSummary, summary);
  return event;
}

std::uint32_t masked_crc(std::string_view bytes) {
  return mask_crc32c(crc32c(std::span(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size())));
}

}  // namespace

std::string encode_file_version_event(double wall_time) {
  std::string event;
  put_double(event, kEventWallTime, wall_time);
  put_bytes(event, kEventFileVersion, "brain.Event:2");
  return event;
}

std::string encode_scalar_event(double wall_time, std::int64_t step, std::string_view tag, float value) {
  std::string v;
  put_bytes(v, kValueTag, tag);
  put_float(v, kValueSimpleValue, value);
  return event_with_value(wall_time, step, v);
}

std::string encode_text_event(double wall_time, std::int64_t step, std::string_view tag, std::string_view text) {
  std::string plugin_data;
  put_bytes(plugin_data, kPluginName, "text");
  std::string metadata;
  put_bytes(metadata, kMetadataPluginData, plugin_data);
  std::string tensor;
  put_key(tensor, kTensorDtype, Wire::Varint);
  put_varint(tensor, kDtString);
  put_bytes(tensor, kTensorShape, "");  // no dims: a scalar string
  put_bytes(tensor, kTensorStringVal, text);
  std::string v;
  put_bytes(v, kValueTag, tag);
  put_bytes(v, kValueTensor, tensor);
  put_bytes(v, kValueMetadata, metadata);
  return event_with_value(wall_time, step, v);
}

std::string frame_record(std::string_view data) {
  std::string length;
  put_little_endian(length, static_cast<std::uint64_t>(data.size()));
  std::string record;
  record.reserve(data.size() + 16);
  record += length;
  put_little_endian(record, masked_crc(length));
  record.append(data);
  put_little_endian(record, masked_crc(data));
  return record;
}

}  // namespace trainrt::detail
