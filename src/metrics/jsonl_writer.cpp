// metrics/jsonl_writer.cpp — metrics::JsonlWriter: one JSON object per line, flushed per
// record. Numbers use std::to_chars' shortest round-trip form; NaN and infinities become null.
#include <array>
#include <charconv>
#include <cmath>
#include <string>
#include <unordered_set>

#include "core/error.h"
#include "io/json.h"
#include "metrics/output_file.h"
#include "trainrt/metrics.hpp"

namespace trainrt::detail {

/// The open file behind a metrics::JsonlWriter.
class JsonlFile {
 public:
  JsonlFile(std::filesystem::path path, bool append) : path_(std::move(path)), who_("metrics::JsonlWriter") {
    // "a+" appends every write and lets the last byte be read; "w" truncates.
    file_ = open_output(path_, append ? "a+" : "w", who_);
    if (append) end_unfinished_line();
  }

  const std::filesystem::path& path() const noexcept { return path_; }

  // Writes one line (without its '\n') and flushes it.
  void write_line(std::string line) {
    line.push_back('\n');
    write_output(file_.get(), line, path_, who_);
    flush_output(file_.get(), path_, who_);
  }

  // "metrics::JsonlWriter(<path>)", for messages about the caller's arguments.
  std::string who_with_path() const { return cat(who_, "('", path_.string(), "')"); }

 private:
  // A process that died while writing may have left a line without its '\n': end it, so the
  // records that follow are lines of their own (the broken line stays; readers skip it).
  void end_unfinished_line() {
    std::FILE* f = file_.get();
    if (std::fseek(f, -1, SEEK_END) != 0) return;  // empty file
    const int last = std::fgetc(f);
    // Reading then writing needs a positioning call in between (C11 7.21.5.3); "a+" writes at
    // the end wherever the position is.
    if (std::fseek(f, 0, SEEK_END) != 0) return;
    if (last != EOF && last != '\n') write_line("");
  }

  std::filesystem::path path_;
  std::string who_;
  FilePtr file_;
};

namespace {

// The shortest decimal that reads back as `v`, or null for NaN and infinities (JSON has no
// literal for them).
void append_number(std::string& out, double v) {
  if (!std::isfinite(v)) {
    out += "null";
    return;
  }
  std::array<char, 32> buffer{};  // the shortest form of a double is at most 24 characters
  const auto result = std::to_chars(buffer.data(), buffer.data() + buffer.size(), v);
  check_internal(result.ec == std::errc{}, "to_chars of a double overflowed its buffer");
  out.append(buffer.data(), result.ptr);
}

}  // namespace
}  // namespace trainrt::detail

namespace trainrt::metrics {

using detail::cat;
using detail::fail;

JsonlWriter::JsonlWriter(const std::filesystem::path& path, bool append)
    : file_(std::make_unique<detail::JsonlFile>(path, append)) {}
JsonlWriter::~JsonlWriter() = default;
JsonlWriter::JsonlWriter(JsonlWriter&&) noexcept = default;
JsonlWriter& JsonlWriter::operator=(JsonlWriter&&) noexcept = default;

const std::filesystem::path& JsonlWriter::path() const noexcept { return file_->path(); }

void JsonlWriter::write(std::int64_t step, std::string_view split, const Values& values) {
  const std::string who = file_->who_with_path();
  if (step < 0) fail(ErrorKind::InvalidArgument, cat(who, ".write: step ", step, " is negative"));
  if (split.empty()) fail(ErrorKind::InvalidArgument, cat(who, ".write: the split name is empty"));
  std::unordered_set<std::string_view> seen{"step", "split", "wall_time"};
  for (std::size_t i = 0; i < values.size(); ++i) {
    const std::string& name = values[i].first;
    if (name.empty()) fail(ErrorKind::InvalidArgument, cat(who, ".write: value ", i, " has an empty name"));
    if (!seen.insert(name).second)
      fail(ErrorKind::InvalidArgument,
           cat(who, ".write: the name \"", name, "\" is given twice or is one of step, split, wall_time"));
  }
  std::string line = cat("{\"step\":", step, ",\"split\":", detail::json_quote(split), ",\"wall_time\":");
  detail::append_number(line, detail::unix_time_now());
  for (const auto& [name, value] : values) {
    line += ',';
    line += detail::json_quote(name);
    line += ':';
    detail::append_number(line, value);
  }
  line += '}';
  file_->write_line(std::move(line));
}

void JsonlWriter::write_raw(std::string_view json_object_line) {
  const std::string who = file_->who_with_path() + ".write_raw";
  std::string_view text = json_object_line;
  if (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  if (const auto pos = text.find_first_of("\r\n"); pos != std::string_view::npos)
    fail(ErrorKind::InvalidArgument, cat(who, ": the text is more than one line (a line break at byte ", pos, ")"));
  detail::JsonValue parsed;
  try {
    parsed = detail::parse_json(text, who);
  } catch (const Error& e) {
    fail(ErrorKind::InvalidArgument, cat(e.what(), " (the text is not valid JSON)"));
  }
  if (parsed.type != detail::JsonValue::Type::object)
    fail(ErrorKind::InvalidArgument,
         cat(who, ": the text is a JSON ", detail::json_type_name(parsed.type), ", not an object"));
  file_->write_line(std::string(text));
}

}  // namespace trainrt::metrics
