// examples/common/cli.h — command-line flags of the example trainers.
//
// Each flag is bound to a variable that already holds its default; parse() fills the variables
// and usage() prints every flag with its default, so the two cannot disagree:
//
//   Cli cli("resnet", "trains a ResNet on Fashion-MNIST or CIFAR-10");
//   cli.add_int("--batch", "N", "mini-batch size", o.batch, 1, 65536);
//   cli.add_switch("--resume", "continue from the newest checkpoint", o.resume);
//   if (!cli.parse(argc, argv)) return 0;  // --help printed the usage
//
// Flags are `--name value` or `--name=value`; switches take no value (`--no-name` clears them).
// Bad flags throw UsageError, whose message names the flag and what it expects.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace examples {

/// A command line the trainer cannot accept; main() prints it with the usage.
class UsageError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

/// `text` as an integer in [lo, hi]; UsageError naming `flag` otherwise.
std::int64_t parse_int(const std::string& flag, const std::string& text, std::int64_t lo, std::int64_t hi);
/// `text` as a finite number in [lo, hi]; UsageError naming `flag` otherwise.
double parse_number(const std::string& flag, const std::string& text, double lo, double hi);

/// The flags of one program.
class Cli {
 public:
  /// `program` and `summary` open the usage text.
  Cli(std::string program, std::string summary);
  /// A flag with a string value.
  void add_string(const std::string& name, const std::string& value_name, const std::string& help, std::string& target);
  /// A flag whose value must be one of `choices`.
  void add_choice(const std::string& name, const std::vector<std::string>& choices, const std::string& help,
                  std::string& target);
  /// An integer flag in [lo, hi].
  void add_int(const std::string& name, const std::string& value_name, const std::string& help, std::int64_t& target,
               std::int64_t lo, std::int64_t hi);
  /// An optional integer flag in [lo, hi] (its default is "unset", described by `unset_text`).
  void add_int(const std::string& name, const std::string& value_name, const std::string& help,
               std::optional<std::int64_t>& target, std::int64_t lo, std::int64_t hi, const std::string& unset_text);
  /// A number flag in [lo, hi].
  void add_number(const std::string& name, const std::string& value_name, const std::string& help, double& target,
                  double lo, double hi);
  /// A switch: `--name` sets it, `--no-name` clears it.
  void add_switch(const std::string& name, const std::string& help, bool& target);
  /// Text printed after the flags (examples, notes).
  void set_epilog(std::string text) { epilog_ = std::move(text); }

  /// Parses argv into the bound variables. Returns false after printing the usage for --help.
  /// Throws UsageError for an unknown flag, a missing value or a bad value.
  bool parse(int argc, char** argv);
  /// Every flag with its value name, help and default.
  std::string usage() const;

 private:
  struct Flag {
    std::string name, value_name, help, default_text;
    bool is_switch = false;
    std::function<void(const std::string&)> set;
  };
  const Flag* find(const std::string& name) const;
  std::string program_, summary_, epilog_;
  std::vector<Flag> flags_;
};

}  // namespace examples
