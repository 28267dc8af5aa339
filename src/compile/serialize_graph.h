// compile/serialize_graph.h — compiled graphs as bytes, for the program cache (DESIGN
// decision 4): a warm process reads the optimized, scheduled graph back instead of running
// the passes again.
//
// The format is ours and versioned: a magic string, a format version, then explicit
// little-endian fields, with every count and length checked against the bytes that remain
// before anything is allocated. Bump kGraphFormatVersion (serialize_graph.cpp) whenever the
// IR (ops, attributes, node fields) or the encoding changes: old entries then read as a
// clear Io error, which the cache treats as a miss.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "core/sha256.h"
#include "passes/pipeline.h"

namespace trainrt::detail {

/// The bytes of `graph`: every node (kind, inputs, output types, attributes, name, source
/// location with its file as text, phase, dead flag) and the graph's current phase.
/// Deterministic: equal graphs give equal bytes, in any process. Throws Internal only for a
/// graph that breaks the IR's own invariants (a fused node without a body).
std::string serialize_graph(const GraphImpl& graph);

/// Reads bytes written by serialize_graph() into a new graph (a new identity) that prints
/// identically and passes the IR verifier. Source file names are interned for the life of
/// the process (SourceLoc::file stays valid). Throws Error(ErrorKind::Io) naming what is
/// wrong and the byte offset for truncated, damaged or foreign bytes and for another format
/// version; never allocates more than the input's size justifies.
std::shared_ptr<GraphImpl> deserialize_graph(std::string_view bytes);

/// The bytes of a compiled graph: its graph (as serialize_graph), the from_source map, the
/// schedule and the pass counters. Deterministic like serialize_graph().
std::string serialize_scheduled_graph(const ScheduledGraph& s);

/// Reads bytes written by serialize_scheduled_graph(); besides deserialize_graph()'s checks,
/// the schedule and the map must name live nodes and existing outputs of the graph.
/// Throws Error(ErrorKind::Io) as deserialize_graph() does.
ScheduledGraph deserialize_scheduled_graph(std::string_view bytes);

/// A fingerprint of `graph`: the SHA-256 of serialize_graph(graph). Graphs built the same
/// way from the same source lines have the same fingerprint (source locations count, as
/// they appear in error messages). Throws as serialize_graph().
Digest fingerprint_graph(const GraphImpl& graph);

}  // namespace trainrt::detail
