// io/checkpoint.cpp — save_checkpoint(), load_checkpoint() and load_weights() of
// trainrt/checkpoint.hpp, on top of the safetensors reader and writer (io/safetensors.h).
//
// Metadata keys of a checkpoint (all values are strings, numbers in decimal; doubles in the
// shortest form that reads back to the same bits):
//   trainrt.format_version  kCheckpointFormat; a reader refuses larger versions
//   trainrt.version         libtrainrt version that wrote the file (informational)
//   trainrt.step, trainrt.seed, trainrt.base_lr, trainrt.epoch, trainrt.batch
//   user.<key>              CheckpointInfo::user
// The tensors are every persistent variable of the Program, whatever its kind. The loss scale
// and its growth tracker are not special-cased: the CUDA backend keeps them as variables, so
// they are saved and restored like the optimizer state once that backend exists.
#include "trainrt/checkpoint.hpp"

#include <charconv>
#include <cstring>
#include <set>

#include "core/error.h"
#include "io/json.h"
#include "io/safetensors.h"

#ifndef TRAINRT_VERSION_STRING
#define TRAINRT_VERSION_STRING "unknown"
#endif

namespace trainrt {
namespace {

using detail::cat;
using detail::fail;
using detail::json_quote;
using detail::SafetensorsEntry;
using detail::SafetensorsFile;

constexpr int kCheckpointFormat = 1;
constexpr const char* kUserPrefix = "user.";
constexpr VariableKind kAllKinds[] = {VariableKind::parameter, VariableKind::state, VariableKind::optimizer};

const char* kind_name(VariableKind k) {
  switch (k) {
    case VariableKind::parameter: return "parameter";
    case VariableKind::state: return "state variable";
    case VariableKind::optimizer: return "optimizer variable";
  }
  return "variable";
}

std::string format_double(double v) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return {buf, r.ptr};
}

/// Reads the metadata of a checkpoint; every problem names the file and the key.
class MetadataReader {
 public:
  MetadataReader(const SafetensorsFile& file) : file_(file), meta_(file.index().metadata) {}

  const std::string& text(const char* key) const {
    const auto it = meta_.find(key);
    if (it == meta_.end())
      fail(ErrorKind::Io,
           cat(file_.where(), ": checkpoint metadata lacks '", key, "' (damaged, or written by another tool)"));
    return it->second;
  }

  template <class T>
  T number(const char* key) const {
    const std::string& s = text(key);
    T v{};
    const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
    if (r.ec != std::errc() || r.ptr != s.data() + s.size() || s.empty())
      fail(ErrorKind::Io, cat(file_.where(), ": checkpoint metadata '", key, "' is ", json_quote(s), ", not a number"));
    return v;
  }

  std::int64_t non_negative(const char* key) const {
    const auto v = number<std::int64_t>(key);
    if (v < 0) fail(ErrorKind::Io, cat(file_.where(), ": checkpoint metadata '", key, "' is negative (", v, ")"));
    return v;
  }

 private:
  const SafetensorsFile& file_;
  const std::map<std::string, std::string>& meta_;
};

CheckpointInfo read_info(const SafetensorsFile& file) {
  const auto& meta = file.index().metadata;
  if (!meta.contains("trainrt.format_version"))
    fail(ErrorKind::InvalidArgument, cat(file.where(),
                                         ": not a libtrainrt checkpoint (no trainrt.format_version metadata); "
                                         "load weights from other tools with load_weights()"));
  const MetadataReader m(file);
  CheckpointInfo info;
  info.format_version = m.number<int>("trainrt.format_version");
  if (info.format_version < 1 || info.format_version > kCheckpointFormat)
    fail(ErrorKind::Unsupported,
         cat(file.where(), ": checkpoint format version ", info.format_version, " is not supported (this libtrainrt ",
             TRAINRT_VERSION_STRING, " reads version ", kCheckpointFormat, ")"));
  info.library_version = m.text("trainrt.version");
  info.step = m.non_negative("trainrt.step");
  info.seed = m.number<std::uint64_t>("trainrt.seed");
  info.base_learning_rate = m.number<double>("trainrt.base_lr");
  info.epoch = m.non_negative("trainrt.epoch");
  info.batch = m.non_negative("trainrt.batch");
  for (const auto& [key, value] : meta)
    if (key.starts_with(kUserPrefix)) info.user.emplace(key.substr(std::strlen(kUserPrefix)), value);
  return info;
}

/// Checks that a BOOL tensor holds only 0 and 1 (SafetensorsFile::read throws otherwise).
void check_values(const SafetensorsFile& file, const SafetensorsEntry& e) {
  if (e.dtype == DType::boolean) (void)file.read(e);
}

/// The file's bytes of `e` seen as a Tensor, without copying. Only read from: Program::set
/// copies out of it, Tensor::to converts out of it.
Tensor view(const SafetensorsFile& file, const SafetensorsEntry& e) {
  const std::span<const std::byte> bytes = file.bytes(e);
  return Tensor::borrow(const_cast<std::byte*>(bytes.data()), e.shape, e.dtype);
}

std::string type_of(DType dtype, const Shape& shape) { return cat(name(dtype), shape.to_string()); }

}  // namespace

void save_checkpoint(const Program& program, const std::filesystem::path& path, const CheckpointInfo& info) {
  if (info.epoch < 0 || info.batch < 0)
    fail(ErrorKind::InvalidArgument,
         cat("save_checkpoint(", path.string(), "): the data-loader position must be >= 0, got epoch ", info.epoch,
             " batch ", info.batch));
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (VariableKind kind : kAllKinds)
    for (std::string& name : program.variables(kind)) {
      Tensor t = program.get(name);
      tensors.emplace_back(std::move(name), std::move(t));
    }
  std::vector<std::pair<std::string, const Tensor*>> refs;
  refs.reserve(tensors.size());
  for (const auto& [name, t] : tensors) refs.emplace_back(name, &t);

  std::map<std::string, std::string> meta;
  for (const auto& [key, value] : info.user) meta.emplace(kUserPrefix + key, value);
  meta["trainrt.format_version"] = std::to_string(kCheckpointFormat);
  meta["trainrt.version"] = TRAINRT_VERSION_STRING;
  meta["trainrt.step"] = std::to_string(program.step_count());
  meta["trainrt.seed"] = std::to_string(program.seed());
  meta["trainrt.base_lr"] = format_double(program.base_learning_rate());
  meta["trainrt.epoch"] = std::to_string(info.epoch);
  meta["trainrt.batch"] = std::to_string(info.batch);
  detail::write_safetensors(path, refs, meta);
}

CheckpointInfo load_checkpoint(Program& program, const std::filesystem::path& path) {
  const SafetensorsFile file(path);
  CheckpointInfo info = read_info(file);
  if (info.seed != program.seed())
    fail(ErrorKind::InvalidArgument, cat(file.where(), ": the checkpoint was saved by a Program compiled with seed ",
                                         info.seed, ", this one has seed ", program.seed(),
                                         "; dropout would draw other masks after "
                                         "resuming. Compile with CompileOptions::seed = ",
                                         info.seed));

  // Validate everything before setting anything: on error the Program is unchanged.
  std::vector<std::pair<std::string, const SafetensorsEntry*>> plan;
  std::set<std::string_view> wanted;
  for (VariableKind kind : kAllKinds)
    for (std::string& name : program.variables(kind)) {
      const SafetensorsEntry* e = file.find(name);
      if (!e)
        fail(ErrorKind::NotFound, cat(file.where(), ": the checkpoint lacks ", kind_name(kind), " ", json_quote(name),
                                      " of the Program (a checkpoint of another model?)"));
      const Tensor current = program.get(name);
      if (e->dtype != current.dtype())
        fail(ErrorKind::DTypeMismatch,
             cat(file.where(), ": tensor ", json_quote(name), " is ", type_of(e->dtype, e->shape),
                 " in the checkpoint, but ", type_of(current.dtype(), current.shape()), " in the Program"));
      if (!(e->shape == current.shape()))
        fail(ErrorKind::ShapeMismatch,
             cat(file.where(), ": tensor ", json_quote(name), " is ", type_of(e->dtype, e->shape),
                 " in the checkpoint, but ", type_of(current.dtype(), current.shape()), " in the Program"));
      check_values(file, *e);
      plan.emplace_back(std::move(name), e);
    }
  for (const auto& [name, e] : plan) wanted.insert(name);
  for (const SafetensorsEntry& e : file.index().tensors)
    if (!wanted.contains(e.name))
      fail(ErrorKind::InvalidArgument, cat(file.where(), ": the checkpoint holds tensor ", json_quote(e.name),
                                           ", which the Program does not have (a checkpoint of another model? "
                                           "load_weights() loads matching parameters only)"));

  for (const auto& [name, e] : plan) program.set(name, view(file, *e));
  program.set_step_count(info.step);
  return info;
}

LoadWeightsReport load_weights(Program& program, const std::filesystem::path& path, const LoadWeightsOptions& options) {
  const SafetensorsFile file(path);
  // Program name -> file entry, after the prefix rules.
  std::map<std::string, const SafetensorsEntry*, std::less<>> by_target;
  for (const SafetensorsEntry& e : file.index().tensors) {
    std::string_view base = e.name;
    if (!options.strip_prefix.empty() && base.starts_with(options.strip_prefix))
      base.remove_prefix(options.strip_prefix.size());
    std::string target = options.add_prefix + std::string(base);
    const auto [it, inserted] = by_target.emplace(target, &e);
    if (!inserted)
      fail(ErrorKind::InvalidArgument,
           cat(file.where(), ": tensors ", json_quote(it->second->name), " and ", json_quote(e.name), " both map to ",
               json_quote(target), " after the prefix rules"));
  }

  LoadWeightsReport report;
  struct Load {
    std::string name;
    const SafetensorsEntry* entry;
    DType dtype;  // the variable's
  };
  std::vector<Load> plan;
  std::set<const SafetensorsEntry*> used;
  for (VariableKind kind : {VariableKind::parameter, VariableKind::state})
    for (std::string& name : program.variables(kind)) {
      const auto it = by_target.find(name);
      if (it == by_target.end()) {
        if (options.strict) {
          // The file name that would have matched, for the message.
          std::string expected = name;
          if (name.starts_with(options.add_prefix))
            expected = options.strip_prefix + name.substr(options.add_prefix.size());
          fail(ErrorKind::NotFound,
               cat(file.where(), ": no tensor ", json_quote(expected), " for the Program's ", kind_name(kind), " ",
                   json_quote(name), " (LoadWeightsOptions::strict = false skips missing variables)"));
        }
        report.missing.push_back(std::move(name));
        continue;
      }
      const SafetensorsEntry& e = *it->second;
      const Tensor current = program.get(name);
      const std::string which =
          e.name == name ? json_quote(name) : cat(json_quote(e.name), " (for ", json_quote(name), ")");
      if (!(e.shape == current.shape()))
        fail(ErrorKind::ShapeMismatch, cat(file.where(), ": tensor ", which, " is ", type_of(e.dtype, e.shape),
                                           " in the file, but the Program's ", kind_name(kind), " is ",
                                           type_of(current.dtype(), current.shape())));
      if (e.dtype != current.dtype() &&
          !(options.convert_dtypes && is_floating(e.dtype) && is_floating(current.dtype())))
        fail(ErrorKind::DTypeMismatch,
             cat(file.where(), ": tensor ", which, " is ", type_of(e.dtype, e.shape),
                 " in the file, but the Program's ", kind_name(kind), " is ", type_of(current.dtype(), current.shape()),
                 options.convert_dtypes ? "" : " (LoadWeightsOptions::convert_dtypes is off)"));
      check_values(file, e);
      used.insert(&e);
      plan.push_back({std::move(name), &e, current.dtype()});
    }
  for (const SafetensorsEntry& e : file.index().tensors)
    if (!used.contains(&e)) report.unused.push_back(e.name);

  for (const Load& l : plan) {
    const Tensor src = view(file, *l.entry);
    program.set(l.name, src.dtype() == l.dtype ? src : src.to(l.dtype));
    report.loaded.push_back(l.name);
  }
  return report;
}

}  // namespace trainrt
