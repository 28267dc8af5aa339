#include "exec/data_parallel.h"

#include <algorithm>
#include <cstring>
#include <sstream>
#include <vector>

#include "core/error.h"

namespace trainrt::detail {

namespace {

constexpr std::size_t kDigestWords = sizeof(Digest::bytes) / sizeof(std::int32_t);

/// Rank 0's text on every rank (length first, then the bytes packed in i32 words).
std::string broadcast_text(dist::Communicator& comm, const std::string& text) {
  std::int64_t length = comm.rank() == 0 ? static_cast<std::int64_t>(text.size()) : 0;
  comm.broadcast(&length, 1, DType::i64, 0);
  std::vector<std::int32_t> words(static_cast<std::size_t>(length + 3) / 4, 0);
  if (comm.rank() == 0 && length > 0) std::memcpy(words.data(), text.data(), text.size());
  comm.broadcast(words.data(), words.size(), DType::i32, 0);
  return {reinterpret_cast<const char*>(words.data()), static_cast<std::size_t>(length)};
}

/// "line 12: here `...`, on rank 0 `...`" for the first line that differs.
std::string first_difference(const std::string& mine, const std::string& theirs) {
  std::istringstream a(mine), b(theirs);
  std::string la, lb;
  for (int line = 1;; ++line) {
    const bool ha = static_cast<bool>(std::getline(a, la)), hb = static_cast<bool>(std::getline(b, lb));
    if (!ha && !hb) return "";
    if (!ha) la = "(end of graph)";
    if (!hb) lb = "(end of graph)";
    if (la != lb) return cat("line ", line, " of the printed graph: here `", la, "`, on rank 0 `", lb, "`");
  }
}

}  // namespace

void check_same_program(dist::Communicator& comm, const Digest& fingerprint, const std::string& graph_text) {
  const auto n = static_cast<std::size_t>(comm.size());
  std::vector<std::int32_t> mine(kDigestWords), all(kDigestWords * n);
  std::memcpy(mine.data(), fingerprint.bytes.data(), fingerprint.bytes.size());
  comm.all_gather(mine.data(), all.data(), kDigestWords, DType::i32, comm.default_timeout());
  std::vector<int> differ;
  for (std::size_t r = 1; r < n; ++r)
    if (!std::equal(all.begin() + static_cast<std::ptrdiff_t>(r * kDigestWords),
                    all.begin() + static_cast<std::ptrdiff_t>((r + 1) * kDigestWords), all.begin()))
      differ.push_back(static_cast<int>(r));
  if (differ.empty()) return;
  const std::string rank0 = broadcast_text(comm, graph_text);  // every rank knows: all take part
  const std::string who = cat("compile (data-parallel, rank ", comm.rank(), " of ", comm.size(), "): ");
  if (std::find(differ.begin(), differ.end(), comm.rank()) != differ.end()) {
    const std::string diff = first_difference(graph_text, rank0);
    fail(ErrorKind::InvalidArgument,
         cat(who, "this rank built a different training step than rank 0: ",
             diff.empty() ? "the graphs are the same, but the compile options differ (optimizer, seed, outputs, "
                            "memory budget, fusion or bucket size)"
                          : diff));
  }
  std::string list;
  for (int r : differ) list += cat(list.empty() ? "" : ", ", r);
  fail(ErrorKind::InvalidArgument, cat(who, "rank(s) ", list,
                                       " built a different training step than rank 0 (their "
                                       "errors name the difference); every rank must compile the same graph "
                                       "with the same options"));
}

void broadcast_variables(dist::Communicator& comm, VariableStore& variables) {
  for (VariableEntry& entry : variables.entries()) {
    comm.broadcast(entry.data.get(), static_cast<std::size_t>(entry.type.shape.numel()), entry.type.dtype, 0);
  }
}

}  // namespace trainrt::detail
