// metrics/event_encoding.h — TensorBoard event records encoded by hand: the few protobuf
// messages TensorBoard reads (tensorflow.Event, Summary, SummaryMetadata, TensorProto), and
// the TFRecord framing around each. No protobuf library: the wire format of these fields is
// small and fixed (tensorflow/core/util/event.proto, tensorflow/core/framework/summary.proto).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace trainrt::detail {

/// The serialized tensorflow.Event{wall_time, file_version = "brain.Event:2"} that opens
/// every event file. Never throws beyond std::bad_alloc.
std::string encode_file_version_event(double wall_time);

/// The serialized Event{wall_time, step, summary{value{tag, simple_value = value}}}.
/// Never throws beyond std::bad_alloc.
std::string encode_scalar_event(double wall_time, std::int64_t step, std::string_view tag, float value);

/// The serialized Event{wall_time, step, summary{value{tag, metadata{plugin_data{plugin_name
/// = "text"}}, tensor{dtype = DT_STRING, tensor_shape = {} (a scalar), string_val = text}}}},
/// which TensorBoard's text plugin shows. Never throws beyond std::bad_alloc.
std::string encode_text_event(double wall_time, std::int64_t step, std::string_view tag, std::string_view text);

/// One TFRecord: the length of `data` as little-endian u64, the masked CRC-32C of those 8
/// bytes (u32 LE), `data`, and the masked CRC-32C of `data` (u32 LE).
/// Never throws beyond std::bad_alloc.
std::string frame_record(std::string_view data);

}  // namespace trainrt::detail
