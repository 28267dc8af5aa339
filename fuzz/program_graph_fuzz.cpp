// fuzz/program_graph_fuzz.cpp — the serialized graph and program-cache format
// (compile/serialize_graph.h; the program cache stores ScheduledGraphs in it). One input
// is read both as a graph and as a scheduled graph (the magic picks at most one). What reads
// back has passed the IR verifier inside the reader, and must serialize to exactly the
// input bytes: the format has one spelling per graph, so a difference means the reader
// accepted something it does not represent.
#include <cstdint>

#include "compile/serialize_graph.h"
#include "core/error.h"
#include "fuzz_util.h"

namespace {

using namespace trainrt::detail;

constexpr const char* kTarget = "program_graph";

template <class Read, class Write>
void round_trip(std::string_view bytes, const char* what, const Read& read, const Write& write) {
  try {
    const auto parsed = read(bytes);
    if (write(parsed) != bytes)
      fuzz::property_failed(kTarget, cat(what, ": the bytes read back differ from the input"));
  } catch (const trainrt::Error& e) {
    if (e.kind() != trainrt::ErrorKind::Io)
      fuzz::property_failed(kTarget, cat(what, ": an error of kind ", trainrt::to_string(e.kind()), ": ", e.what()));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes = fuzz::as_text(data, size);
  fuzz::expect_clean(kTarget, [&] {
    round_trip(bytes, "deserialize_graph", deserialize_graph,
               [](const std::shared_ptr<GraphImpl>& g) { return serialize_graph(*g); });
    round_trip(bytes, "deserialize_scheduled_graph", deserialize_scheduled_graph,
               [](const ScheduledGraph& s) { return serialize_scheduled_graph(s); });
  });
  return 0;
}
