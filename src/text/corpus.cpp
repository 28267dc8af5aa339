// text/corpus.cpp — reading a text corpus (a file or a directory of files) into documents,
// and the train/evaluation split.
#include <algorithm>

#include "core/error.h"
#include "data/files.h"
#include "text/unicode.h"
#include "trainrt/text.hpp"

namespace trainrt::text {

using detail::cat;
using detail::fail;

namespace {

/// `s` without leading and trailing ASCII whitespace.
std::string_view trim(std::string_view s) {
  const auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

void add_document(std::string_view text, std::vector<std::string>& out) {
  const std::string_view t = trim(text);
  if (!t.empty()) out.emplace_back(t);
}

/// Cuts the (already UTF-8-clean) text of one file into documents.
void split_text(std::string_view text, CorpusFormat format, std::vector<std::string>& out) {
  std::string current;  // paragraphs and fortune entries collect lines
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    switch (format) {
      case CorpusFormat::lines: add_document(line, out); break;
      case CorpusFormat::paragraphs:
        if (trim(line).empty()) {
          add_document(current, out);
          current.clear();
        } else {
          current.append(line).push_back('\n');
        }
        break;
      case CorpusFormat::fortune:
        if (line == "%") {
          add_document(current, out);
          current.clear();
        } else {
          current.append(line).push_back('\n');
        }
        break;
    }
    pos = end + 1;
  }
  add_document(current, out);
}

std::vector<std::filesystem::path> corpus_files(const std::filesystem::path& path) {
  std::error_code ec;
  const auto st = std::filesystem::status(path, ec);
  if (!std::filesystem::exists(st)) fail(ErrorKind::NotFound, cat("read_corpus: not found: '", path.string(), "'"));
  if (!std::filesystem::is_directory(st)) return {path};
  std::vector<std::filesystem::path> files;
  std::filesystem::directory_iterator it(path, ec);
  if (ec) fail(ErrorKind::Io, cat("read_corpus: cannot list '", path.string(), "': ", ec.message()));
  for (const auto& entry : it) {
    // symlink_status: fortune's .u8 names are links to the files themselves.
    const auto entry_status = entry.symlink_status(ec);
    if (ec || !std::filesystem::is_regular_file(entry_status)) continue;
    if (entry.path().extension() == ".dat") continue;  // strfile(1)'s binary index
    files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

const char* format_name(CorpusFormat format) {
  switch (format) {
    case CorpusFormat::lines: return "lines";
    case CorpusFormat::paragraphs: return "paragraphs";
    case CorpusFormat::fortune: return "fortune";
  }
  return "?";
}

}  // namespace

std::vector<std::string> read_corpus(const std::filesystem::path& path, CorpusFormat format) {
  const auto files = corpus_files(path);
  std::vector<std::string> documents;
  for (const auto& file : files) {
    const detail::Bytes bytes = detail::read_file_bytes(file.string(), "read_corpus", "a text file");
    const std::string_view raw(reinterpret_cast<const char*>(bytes.data()), bytes.size());  // NOLINT: bytes as chars
    split_text(detail::sanitize_utf8(raw), format, documents);
  }
  if (documents.empty())
    fail(ErrorKind::InvalidArgument, cat("read_corpus: '", path.string(), "' holds no document (", files.size(),
                                         " files read as '", format_name(format), "')"));
  return documents;
}

CorpusSplit split_documents(const std::vector<std::string>& documents, std::int64_t eval_every) {
  if (eval_every < 2)
    fail(ErrorKind::InvalidArgument, cat("split_documents: eval_every must be >= 2, got ", eval_every));
  if (static_cast<std::int64_t>(documents.size()) < eval_every)
    fail(ErrorKind::InvalidArgument, cat("split_documents: ", documents.size(),
                                         " documents leave the evaluation part empty (eval_every = ", eval_every, ")"));
  CorpusSplit split;
  for (std::size_t i = 0; i < documents.size(); ++i)
    ((static_cast<std::int64_t>(i) + 1) % eval_every == 0 ? split.eval : split.train).push_back(documents[i]);
  return split;
}

}  // namespace trainrt::text
