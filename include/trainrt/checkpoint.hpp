// trainrt/checkpoint.hpp — saving and resuming training, and loading weights exported from
// PyTorch, in the safetensors format.
//
// A checkpoint is one safetensors file: every persistent tensor of the Program (parameters,
// running statistics, optimizer state, the step counter and learning-rate variables, and the
// loss scale where the backend keeps one) under its own name, plus string metadata: the
// checkpoint format version, the libtrainrt version, the step count, the seed, the base
// learning rate, the data-loader position and the application's own key/values. Random-number
// state needs nothing more: dropout is Philox keyed by (seed, step, node), so a Program
// compiled with the same seed and set to the same step draws the same masks. Files are written
// atomically (a temporary file renamed into place), so a crash while saving keeps the previous
// checkpoint. Usage: tests/checkpoint_test.cpp (resuming bit for bit, PyTorch weights).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "trainrt/program.hpp"

namespace trainrt {

/// What a checkpoint records besides the tensors. save_checkpoint() reads the first three
/// fields; load_checkpoint() returns every field as stored.
struct CheckpointInfo {
  /// Data-loader position to resume from: the epoch the next step reads (pass it and `batch`
  /// to DataLoader::seek() after loading). Must be >= 0.
  std::int64_t epoch = 0;
  /// The batch within `epoch` that the next step reads. Must be >= 0.
  std::int64_t batch = 0;
  /// The application's own key/values (any strings), stored and returned unchanged.
  std::map<std::string, std::string> user{};

  // Filled by load_checkpoint(); save_checkpoint() ignores them and records the Program's.
  std::int64_t step = 0;          ///< Program::step_count() when saved
  std::uint64_t seed = 0;         ///< Program::seed() when saved
  double base_learning_rate = 0;  ///< Program::base_learning_rate() when saved
  int format_version = 0;         ///< checkpoint format version of the file
  std::string library_version{};  ///< libtrainrt version that wrote it
};

/// Writes every persistent tensor of `program` and the metadata above to `path` (the file is
/// replaced atomically; the directory must exist). Throws trainrt::Error: InvalidArgument for a
/// negative epoch or batch, Io naming the path and the system's reason when writing fails (the
/// previous file at `path`, if any, is then unchanged and no temporary file is left behind).
void save_checkpoint(const Program& program, const std::filesystem::path& path, const CheckpointInfo& info = {});

/// Restores a checkpoint written by save_checkpoint() into `program`, which must have been
/// compiled from the same model and optimizer with the same seed: every persistent tensor, and
/// with them the step count and learning rate. Everything is validated before anything is
/// set, so on error the Program is unchanged. Returns the stored CheckpointInfo. Throws
/// trainrt::Error naming the file and, where one is at fault, the tensor: NotFound for a
/// missing file or a tensor the file lacks; ShapeMismatch / DTypeMismatch for a tensor whose
/// shape or dtype differs from the Program's; InvalidArgument for a tensor the Program does not
/// have, a different seed, or a file that is not a libtrainrt checkpoint (use load_weights()
/// for those); Unsupported for a newer format version; Io for a damaged file.
CheckpointInfo load_checkpoint(Program& program, const std::filesystem::path& path);

/// Options of load_weights(). Designated initializers must follow this member order.
struct LoadWeightsOptions {
  /// Require every parameter and state variable (e.g. batch-norm running statistics) of the
  /// Program to be found in the file; false loads those present and leaves the others.
  bool strict = true;
  /// Removed from the start of file names that have it ("model." of a wrapped module); names
  /// without it are used as they are.
  std::string strip_prefix{};
  /// Then prepended to every file name (to load a sub-model's weights into a larger Program).
  std::string add_prefix{};
  /// Convert floating tensors of another floating dtype (f16, bf16, f64, f32) to the
  /// variable's dtype, rounding to nearest even; false requires the exact dtype. Integer and
  /// boolean tensors always need the exact dtype.
  bool convert_dtypes = true;
};

/// What load_weights() did, by Program name (loaded, missing) and file name (unused).
struct LoadWeightsReport {
  std::vector<std::string> loaded;   ///< variables set from the file
  std::vector<std::string> missing;  ///< variables the file lacks (empty when strict)
  std::vector<std::string> unused;   ///< file tensors that match no variable (e.g. PyTorch's num_batches_tracked)
};

/// Loads parameters and state variables by name from any safetensors file (such as one
/// written by PyTorch's `safetensors.torch.save_file(model.state_dict(), path)`; libtrainrt's
/// nn layers use PyTorch's names and layouts: "fc1.weight" is [out, in]). File tensors that
/// match no variable are reported, not an error; optimizer state and the step are untouched.
/// Everything is validated before anything is set. Throws trainrt::Error naming the file and
/// the tensor: NotFound for a missing file or (strict) a missing variable, ShapeMismatch for a
/// shape that differs, DTypeMismatch for a dtype that cannot be converted, Io or Unsupported
/// for a damaged file or a dtype trainrt lacks (e.g. U8).
LoadWeightsReport load_weights(Program& program, const std::filesystem::path& path,
                               const LoadWeightsOptions& options = {});

}  // namespace trainrt
