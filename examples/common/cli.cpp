// examples/common/cli.cpp — parsing and usage text of the trainers' flags.
#include "cli.h"

#include <cmath>
#include <cstdio>
#include <exception>
#include <sstream>

namespace examples {

std::int64_t parse_int(const std::string& flag, const std::string& text, std::int64_t lo, std::int64_t hi) {
  std::size_t used = 0;
  long long v = 0;
  try {
    v = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size() || v < lo || v > hi)
    throw UsageError(flag + " expects an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got '" +
                     text + "'");
  return v;
}

double parse_number(const std::string& flag, const std::string& text, double lo, double hi) {
  std::size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size() || !std::isfinite(v) || v < lo || v > hi) {
    std::ostringstream os;
    os << flag << " expects a number in [" << lo << ", " << hi << "], got '" << text << "'";
    throw UsageError(os.str());
  }
  return v;
}

Cli::Cli(std::string program, std::string summary) : program_(std::move(program)), summary_(std::move(summary)) {}

void Cli::add_string(const std::string& name, const std::string& value_name, const std::string& help,
                     std::string& target) {
  flags_.push_back({name, value_name, help, target.empty() ? "none" : target, false,
                    [&target](const std::string& v) { target = v; }});
}

void Cli::add_choice(const std::string& name, const std::vector<std::string>& choices, const std::string& help,
                     std::string& target) {
  std::string value_name;
  for (const std::string& c : choices) value_name += (value_name.empty() ? "" : "|") + c;
  flags_.push_back({name, value_name, help, target, false, [name, choices, value_name, &target](const std::string& v) {
                      for (const std::string& c : choices)
                        if (c == v) {
                          target = v;
                          return;
                        }
                      throw UsageError(name + " expects " + value_name + ", got '" + v + "'");
                    }});
}

void Cli::add_int(const std::string& name, const std::string& value_name, const std::string& help, std::int64_t& target,
                  std::int64_t lo, std::int64_t hi) {
  flags_.push_back({name, value_name, help, std::to_string(target), false,
                    [name, lo, hi, &target](const std::string& v) { target = parse_int(name, v, lo, hi); }});
}

void Cli::add_int(const std::string& name, const std::string& value_name, const std::string& help,
                  std::optional<std::int64_t>& target, std::int64_t lo, std::int64_t hi,
                  const std::string& unset_text) {
  flags_.push_back({name, value_name, help, target ? std::to_string(*target) : unset_text, false,
                    [name, lo, hi, &target](const std::string& v) { target = parse_int(name, v, lo, hi); }});
}

void Cli::add_number(const std::string& name, const std::string& value_name, const std::string& help, double& target,
                     double lo, double hi) {
  std::ostringstream def;
  def << target;
  flags_.push_back({name, value_name, help, def.str(), false,
                    [name, lo, hi, &target](const std::string& v) { target = parse_number(name, v, lo, hi); }});
}

void Cli::add_switch(const std::string& name, const std::string& help, bool& target) {
  flags_.push_back(
      {name, "", help, target ? "on" : "off", true, [&target](const std::string& v) { target = v == "1"; }});
}

const Cli::Flag* Cli::find(const std::string& name) const {
  for (const Flag& f : flags_)
    if (f.name == name) return &f;
  return nullptr;
}

bool Cli::parse(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string name = argv[i];
    std::optional<std::string> value;
    if (name == "--help" || name == "-h") {
      std::fputs(usage().c_str(), stdout);
      return false;
    }
    if (name.rfind("--", 0) != 0) throw UsageError("unexpected argument '" + name + "' (flags start with --)");
    if (const std::size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
    }
    const Flag* flag = find(name);
    if (flag == nullptr && name.rfind("--no-", 0) == 0) {
      const Flag* positive = find("--" + name.substr(5));
      if (positive != nullptr && positive->is_switch) {
        if (value) throw UsageError(name + " takes no value");
        positive->set("0");
        continue;
      }
    }
    if (flag == nullptr) throw UsageError("unknown flag '" + name + "'");
    if (flag->is_switch) {
      if (value) throw UsageError(name + " takes no value (use " + "--no-" + name.substr(2) + " to turn it off)");
      flag->set("1");
      continue;
    }
    if (!value) {
      if (i + 1 >= argc) throw UsageError(name + " needs a value (" + flag->value_name + ")");
      value = argv[++i];
    }
    flag->set(*value);
  }
  return true;
}

std::string Cli::usage() const {
  std::ostringstream os;
  os << "usage: " << program_ << " [flags]\n" << summary_ << "\n\nflags:\n";
  for (const Flag& f : flags_) {
    std::string head = "  " + f.name + (f.value_name.empty() ? "" : " " + f.value_name);
    if (head.size() < 28) head.resize(28, ' ');
    else head += "\n" + std::string(28, ' ');
    os << head << f.help << " (default " << f.default_text << ")\n";
  }
  os << "  --help                    this text\n";
  if (!epilog_.empty()) os << "\n" << epilog_ << "\n";
  return os.str();
}

}  // namespace examples
