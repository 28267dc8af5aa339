// codegen/cuda_host_source.cpp — the tokenizer and rewrite that turn a CUDA source into the
// kernel emulator's host translation unit.
#include "codegen/cuda_host_source.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <string_view>

#include "core/error.h"
#include "emulation_text.h"  // generated: the prelude and ABI header as strings

namespace trainrt::detail {

namespace {

enum class Tok : std::uint8_t { ident, number, string, punct };

struct Token {
  Tok kind;
  std::size_t begin, end;  // byte offsets in the source
  int line;
  std::string_view text;
};

/// The tokens of `s` outside comments and preprocessor lines (which pass through untouched).
std::vector<Token> tokenize(std::string_view s) {
  std::vector<Token> out;
  std::size_t i = 0;
  int line = 1;
  bool line_start = true;
  while (i < s.size()) {
    const char c = s[i];
    if (c == '\n') {
      ++line;
      ++i;
      line_start = true;
      continue;
    }
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
      continue;
    }
    if (c == '#' && line_start) {  // a directive, with its continuation lines
      while (i < s.size() && s[i] != '\n') {
        if (s[i] == '\\' && i + 1 < s.size() && s[i + 1] == '\n') {
          ++line;
          ++i;
        }
        ++i;
      }
      continue;
    }
    line_start = false;
    if (c == '/' && i + 1 < s.size() && s[i + 1] == '/') {
      while (i < s.size() && s[i] != '\n') ++i;
      continue;
    }
    if (c == '/' && i + 1 < s.size() && s[i + 1] == '*') {
      i += 2;
      while (i + 1 < s.size() && !(s[i] == '*' && s[i + 1] == '/')) {
        if (s[i] == '\n') ++line;
        ++i;
      }
      i += 2;
      continue;
    }
    const std::size_t begin = i;
    Tok kind = Tok::punct;
    if (c == 'R' && i + 1 < s.size() && s[i + 1] == '"') {  // a raw string literal
      const std::size_t open = s.find('(', i);
      const std::string delim = cat(")", s.substr(i + 2, open - i - 2), "\"");
      const std::size_t close = s.find(delim, open);
      const std::size_t end = close == std::string_view::npos ? s.size() : close + delim.size();
      line += static_cast<int>(
          std::count(s.begin() + static_cast<std::ptrdiff_t>(i), s.begin() + static_cast<std::ptrdiff_t>(end), '\n'));
      i = end;
      kind = Tok::string;
    } else if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      while (i < s.size() && (std::isalnum(static_cast<unsigned char>(s[i])) || s[i] == '_')) ++i;
      kind = Tok::ident;
    } else if (std::isdigit(static_cast<unsigned char>(c)) ||
               (c == '.' && i + 1 < s.size() && std::isdigit(static_cast<unsigned char>(s[i + 1])))) {
      while (i < s.size() && (std::isalnum(static_cast<unsigned char>(s[i])) || s[i] == '.' || s[i] == '\'' ||
                              ((s[i] == '+' || s[i] == '-') &&
                               (s[i - 1] == 'e' || s[i - 1] == 'E' || s[i - 1] == 'p' || s[i - 1] == 'P'))))
        ++i;
      kind = Tok::number;
    } else if (c == '"' || c == '\'') {
      ++i;
      while (i < s.size() && s[i] != c && s[i] != '\n') i += s[i] == '\\' ? 2 : 1;
      ++i;
      kind = Tok::string;
    } else {
      ++i;
    }
    i = std::min(i, s.size());
    out.push_back({kind, begin, i, line, s.substr(begin, i - begin)});
  }
  return out;
}

struct Replacement {
  std::size_t begin, end;
  std::string text;
};

[[noreturn]] void refuse(const std::string& name, int line, const std::string& what) {
  fail(ErrorKind::Unsupported, cat("the CUDA emulator cannot run ", name, ":", line, ": ", what));
}

constexpr std::array<std::string_view, 13> kSyncCalls = {
    "__syncthreads", "__syncthreads_count", "__syncthreads_and", "__syncthreads_or", "__syncwarp",
    "__shfl_sync",   "__shfl_up_sync",      "__shfl_down_sync",  "__shfl_xor_sync",  "__ballot_sync",
    "__any_sync",    "__all_sync",          "__activemask"};

// Identifiers the emulator refuses, and why.
struct Refused {
  std::string_view ident;
  const char* why;
};
constexpr std::array<Refused, 12> kRefused = {{
    {"asm", "inline PTX (asm) runs only on a GPU"},
    {"__asm__", "inline PTX (asm) runs only on a GPU"},
    {"__managed__", "managed (unified) memory is not emulated"},
    {"cooperative_groups", "cooperative groups are not emulated"},
    {"wmma", "tensor-core intrinsics (wmma) are not emulated: matrix work goes through cuBLASLt and cuDNN"},
    {"__shfl", "__shfl without _sync (removed in CUDA 9) is not emulated: use __shfl_sync"},
    {"__shfl_up", "__shfl_up without _sync is not emulated: use __shfl_up_sync"},
    {"__shfl_down", "__shfl_down without _sync is not emulated: use __shfl_down_sync"},
    {"__shfl_xor", "__shfl_xor without _sync is not emulated: use __shfl_xor_sync"},
    {"__ballot", "__ballot without _sync is not emulated: use __ballot_sync"},
    {"__any", "__any without _sync is not emulated: use __any_sync"},
    {"__all", "__all without _sync is not emulated: use __all_sync"},
}};

}  // namespace

const std::string& emulation_prelude() {
  static const std::string prelude = [] {
    // The prelude #includes the ABI header by name; the host build has neither file, so the
    // header's text takes the place of that line.
    std::string p(kEmulationPreludeText);
    const std::string include = "#include \"trk_emu_abi.h\"";
    const std::size_t at = p.find(include);
    check_internal(at != std::string::npos, "the emulation prelude includes trk_emu_abi.h");
    p.replace(at, include.size(), kEmulationAbiText);
    return p;
  }();
  return prelude;
}

HostSource emulated_source(const std::string& cuda, const std::string& name) {
  const std::vector<Token> t = tokenize(cuda);
  HostSource out;
  std::vector<Replacement> edits;
  // Brace scopes: true where the brace opens code (a function body or a block in one).
  std::vector<bool> scopes;
  std::vector<bool> extern_c_scopes;  // per scope: an extern "C" { } block
  int site = 0;
  auto in_code = [&] { return std::find(scopes.begin(), scopes.end(), true) != scopes.end(); };
  auto in_extern_c = [&] {
    return std::find(extern_c_scopes.begin(), extern_c_scopes.end(), true) != extern_c_scopes.end();
  };
  for (std::size_t i = 0; i < t.size(); ++i) {
    const Token& k = t[i];
    if (k.kind == Tok::punct && k.text == "{") {
      // Code: the brace follows ')' (perhaps with qualifiers), or is inside code already.
      bool code = in_code();
      bool extern_c = false;
      if (!code && i > 0) {
        std::size_t j = i - 1;
        while (j > 0 && t[j].kind == Tok::ident &&
               (t[j].text == "const" || t[j].text == "noexcept" || t[j].text == "override"))
          --j;
        code = t[j].text == ")";
        extern_c = i >= 2 && t[i - 1].text == "\"C\"" && t[i - 2].text == "extern";
      }
      scopes.push_back(code);
      extern_c_scopes.push_back(extern_c);
      continue;
    }
    if (k.kind == Tok::punct && k.text == "}") {
      if (!scopes.empty()) {
        scopes.pop_back();
        extern_c_scopes.pop_back();
      }
      continue;
    }
    if (k.kind != Tok::ident) continue;
    for (const Refused& r : kRefused)
      if (k.text == r.ident && (r.ident.rfind("__", 0) != 0 || i + 1 >= t.size() || t[i + 1].text == "(" ||
                                r.ident == "__managed__" || r.ident == "__asm__"))
        refuse(name, k.line, r.why);
    if (k.text == "mma" && i > 0 && t[i - 1].text == "::")
      refuse(name, k.line, "tensor-core intrinsics are not emulated");
    if (std::find(kSyncCalls.begin(), kSyncCalls.end(), k.text) != kSyncCalls.end()) out.uses_sync = true;

    if (k.text == "__global__") {
      std::size_t j = i + 1;
      while (j < t.size() && t[j].kind == Tok::ident &&
             (t[j].text == "void" || t[j].text == "static" || t[j].text == "inline" ||
              t[j].text == "__launch_bounds__" || t[j].text == "__noinline__")) {
        if (t[j].text == "__launch_bounds__" && j + 1 < t.size() && t[j + 1].text == "(") {
          int depth = 0;
          for (++j; j < t.size(); ++j) {
            if (t[j].text == "(") ++depth;
            if (t[j].text == ")" && --depth == 0) break;
          }
        }
        ++j;
      }
      if (j + 1 >= t.size() || t[j].kind != Tok::ident || t[j + 1].text != "(")
        refuse(name, k.line, "a __global__ declaration whose kernel name the emulator cannot find");
      const std::string kernel(t[j].text);
      // extern "C" before __global__ (perhaps with other specifiers between), or an enclosing
      // extern "C" { } block; a template kernel has "template <...>" before it.
      bool extern_c = in_extern_c();
      for (std::size_t b = i; b-- > 0;) {
        if (t[b].text == ";" || t[b].text == "}" || t[b].text == "{") break;
        if (t[b].text == "template")
          refuse(name, k.line, cat("the template kernel '", kernel, "' (kernels are found by unmangled names)"));
        if (t[b].text == "\"C\"" && b > 0 && t[b - 1].text == "extern") extern_c = true;
      }
      if (!extern_c)
        refuse(
            name, k.line,
            cat("the kernel '", kernel, "' is not extern \"C\" (the emulator finds kernels by their unmangled names)"));
      // A declaration without a body exports nothing.
      int depth = 0;
      std::size_t p = j + 1;
      for (; p < t.size(); ++p) {
        if (t[p].text == "(") ++depth;
        if (t[p].text == ")" && --depth == 0) break;
      }
      if (p + 1 < t.size() && t[p + 1].text != ";" &&
          std::find(out.kernels.begin(), out.kernels.end(), kernel) == out.kernels.end())
        out.kernels.push_back(kernel);
      continue;
    }

    if (k.text == "__shared__") {
      if (!in_code())
        refuse(name, k.line, "a __shared__ variable at file scope (declare it inside the kernel or device function)");
      const bool dynamic = i > 0 && t[i - 1].text == "extern";
      std::size_t begin = dynamic ? t[i - 1].begin : k.begin;
      if (!dynamic && i > 0 && t[i - 1].text == "static") begin = t[i - 1].begin;
      std::size_t end = i + 1;
      int depth = 0;
      std::size_t first_bracket = 0;
      for (; end < t.size(); ++end) {
        const std::string_view x = t[end].text;
        if (depth == 0 && x == ";") break;
        if (x == "(" || x == "[") {
          if (x == "[" && depth == 0 && first_bracket == 0) first_bracket = end;
          ++depth;
        }
        if (x == ")" || x == "]") --depth;
        if (depth == 0 && x == "=") refuse(name, k.line, "a __shared__ variable with an initializer");
        if (depth == 0 && x == ",")
          refuse(name, k.line, "several variables in one __shared__ declaration (declare each on its own)");
        if (x == "{" || x == "}") refuse(name, k.line, "a __shared__ declaration the emulator cannot read");
      }
      if (end >= t.size()) refuse(name, k.line, "a __shared__ declaration without its ';'");
      const std::size_t name_at = (first_bracket ? first_bracket : end) - 1;
      if (name_at <= i || t[name_at].kind != Tok::ident)
        refuse(name, k.line, "a __shared__ declaration the emulator cannot read");
      std::string type;
      for (std::size_t q = i + 1; q < name_at; ++q) {
        if (t[q].text == "volatile" || t[q].text == "static") continue;  // proxies load and store anyway
        type += cat(type.empty() ? "" : " ", t[q].text);
      }
      if (type.empty()) refuse(name, k.line, "a __shared__ declaration without a type");
      std::string dims;
      if (first_bracket) dims = std::string(cuda.substr(t[first_bracket].begin, t[end].begin - t[first_bracket].begin));
      const std::string var(t[name_at].text);
      std::string text;
      if (dynamic) {
        if (dims.find_first_not_of("[] \t") != std::string::npos || dims.empty())
          refuse(name, k.line, cat("extern __shared__ ", var, " must be an array of unknown size (T name[])"));
        text = cat("auto ", var, " = ::trk_emu::declare_dynamic<", type, ">(\"", var, "\");");
      } else {
        text = cat("auto ", var, " = ::trk_emu::declare_shared<", type, " ", dims, ">(", site++, ", \"", var, "\");");
      }
      edits.push_back({begin, t[end].end, std::move(text)});
      i = end;
    }
  }
  if (out.kernels.empty())
    fail(ErrorKind::InvalidArgument, cat("the CUDA source ", name, " defines no extern \"C\" __global__ kernel"));

  std::string body;
  std::size_t at = 0;
  for (const Replacement& r : edits) {
    body.append(cuda, at, r.begin - at);
    body += r.text;
    at = r.end;
  }
  body.append(cuda, at, std::string::npos);

  std::string label = name;
  std::replace(label.begin(), label.end(), '"', '\'');
  out.code =
      cat(emulation_prelude(), "\n#line 1 \"", label, "\"\n", body, "\n#line 1 \"", label, " (emulator exports)\"\n");
  for (const std::string& kernel : out.kernels)
    out.code += cat("TRK_EMU_EXPORT(", kernel, ", ", out.uses_sync ? 1 : 0, ")\n");
  return out;
}

}  // namespace trainrt::detail
