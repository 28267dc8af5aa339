// tests/safetensors_test.cpp — the safetensors format (src/io/safetensors.h, src/io/json.h):
// round trips of every dtype, every kind of damaged file the parser must name, random
// mutations that must give trainrt::Error (never a crash), the atomic writer's failure paths,
// and a file written by Python's safetensors package.
//
// Contents: helpers; JSON reader; round trip; damaged files; mutations; atomic writer; Python.
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "io/json.h"
#include "io/safetensors.h"
#include "test_util.h"

namespace trainrt {
namespace {

using detail::parse_safetensors;
using detail::SafetensorsFile;
using detail::SafetensorsIndex;
namespace fs = std::filesystem;

// ---- helpers ---------------------------------------------------------------------------------

/// A safetensors file: the 8-byte length (the header's, unless `length` is given), header, data.
std::string make_file(const std::string& header, const std::string& data, std::uint64_t length = ~std::uint64_t{0}) {
  const std::uint64_t n = length == ~std::uint64_t{0} ? header.size() : length;
  std::string out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  return out + header + data;
}

SafetensorsIndex parse(const std::string& bytes) {
  return parse_safetensors({reinterpret_cast<const std::byte*>(bytes.data()), bytes.size()}, "bad.safetensors");
}

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_all(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() && std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0;
}

// A valid two-tensor file: "a" f32[2] at [0, 8), "b" i64[1] at [8, 16).
const std::string kTwoTensors =
    R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"I64","shape":[1],"data_offsets":[8,16]}})";
const std::string kSixteenBytes(16, '\0');

// ---- JSON reader -----------------------------------------------------------------------------

TEST(Json, DecodesEscapesAndKeepsOrderAndOffsets) {
  const auto v = detail::parse_json(R"( {"k\"1": ["a\n\u00e9\ud83d\ude00", 12, -0.5e3, true, null], "z": {}} )", "t");
  ASSERT_EQ(v.type, detail::JsonValue::Type::object);
  ASSERT_EQ(v.members.size(), 2u);
  EXPECT_EQ(v.members[0].key, "k\"1");
  const auto& arr = v.members[0].value;
  ASSERT_EQ(arr.items.size(), 5u);
  EXPECT_EQ(arr.items[0].text, "a\n\xc3\xa9\xf0\x9f\x98\x80");
  EXPECT_EQ(arr.items[1].text, "12");
  EXPECT_EQ(arr.items[1].offset, 36u);
  std::uint64_t n = 0;
  EXPECT_TRUE(detail::json_to_u64(arr.items[1], n));
  EXPECT_EQ(n, 12u);
  EXPECT_FALSE(detail::json_to_u64(arr.items[2], n)) << "-0.5e3 is no unsigned integer";
  EXPECT_TRUE(arr.items[3].boolean);
  EXPECT_EQ(arr.items[4].type, detail::JsonValue::Type::null);
  EXPECT_EQ(v.members[1].key, "z");
}

TEST(Json, QuoteRoundTrips) {
  const std::string s = std::string("a\"b\\c\n\t") + '\x01' + "\xc3\xa9";
  const auto v = detail::parse_json(detail::json_quote(s), "t");
  EXPECT_EQ(v.text, s);
}

TEST(Json, RejectsBadInputNamingTheOffset) {
  struct Case {
    std::string text, part;
  };
  const std::vector<Case> cases = {
      {R"({"a":1,"a":2})", "duplicate key \"a\" at byte 7"},
      {R"({"a":1,})", "expected a string key"},
      {R"([01])", "leading zero"},
      {"[\"a\x01\"]", "raw control character"},
      {R"(["\x"])", "unknown escape"},
      {R"(["\ud800"])", "high surrogate"},
      {R"(["\udc00"])", "lone low surrogate"},
      {R"({"a":1} x)", "after the end of the document at byte 8"},
      {R"({"a":tru})", "expected a value"},
      {R"(["abc)", "never closed"},
      {R"([1, 2)", "unexpected end"},
      {std::string(40, '[') + std::string(40, ']'), "nesting deeper than 32 levels"},
      {"", "unexpected end"},
  };
  for (const Case& c : cases)
    test::expect_error([&] { detail::parse_json(c.text, "h.json"); }, ErrorKind::Io, {"h.json", "JSON header", c.part});
}

TEST(Json, BoundsTheNumberOfValues) {
  std::string many = "[";
  for (int i = 0; i < 200; ++i) many += i ? ",0" : "0";
  many += "]";
  test::expect_error([&] { detail::parse_json(many, "h", {.max_depth = 4, .max_values = 100}); }, ErrorKind::Io,
                     {"more than 100 values"});
}

// ---- round trip ------------------------------------------------------------------------------

TEST(Safetensors, RoundTripsEveryDTypeAndTheMetadata) {
  test::TempDir dir;
  std::mt19937 rng(5);
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (DType dt : {f32, f64, f16, bf16, i32, i64, boolean})
    tensors.emplace_back("t_" + std::string(name(dt)), test::random_tensor({3, 5}, dt, rng, -10, 10));
  tensors.emplace_back("scalar", Tensor::full({}, 2.5, f64));
  tensors.emplace_back("empty", Tensor::zeros({0, 4}, f32));
  tensors.emplace_back("odd \"name\"\n/é", test::random_tensor({7}, f16, rng));  // misaligns what follows
  tensors.emplace_back("after_odd", test::random_tensor({2, 2}, i64, rng, -1000, 1000));
  std::vector<std::pair<std::string, const Tensor*>> refs;
  for (const auto& [n, t] : tensors) refs.emplace_back(n, &t);
  const std::map<std::string, std::string> meta = {{"k", "v"}, {"quote\"", "line\nbreak é"}, {"empty", ""}};
  const std::string path = dir.file("all.safetensors");
  detail::write_safetensors(path, refs, meta);

  const SafetensorsFile f(path);
  EXPECT_EQ(f.index().metadata, meta);
  EXPECT_EQ(f.index().data_offset % 8, 0u) << "the header is padded to 8 bytes";
  ASSERT_EQ(f.index().tensors.size(), tensors.size());
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    EXPECT_EQ(f.index().tensors[i].name, tensors[i].first) << "header order is the order given";
    const auto* e = f.find(tensors[i].first);
    ASSERT_NE(e, nullptr) << tensors[i].first;
    EXPECT_TRUE(same_bytes(f.read(*e), tensors[i].second)) << tensors[i].first;
  }
  EXPECT_EQ(f.find("nope"), nullptr);
  EXPECT_EQ(list_dir(dir.path()), std::vector<std::string>{"all.safetensors"}) << "no temporary is left";

  // A move keeps the mapping and the name lookup valid.
  SafetensorsFile moved = SafetensorsFile(path);
  SafetensorsFile other(std::move(moved));
  ASSERT_NE(other.find("scalar"), nullptr);
  EXPECT_EQ(other.read(*other.find("scalar")).item(), 2.5);
}

TEST(Safetensors, WriterRejectsBadNames) {
  test::TempDir dir;
  const Tensor t = Tensor::zeros({1}, f32);
  const std::string path = dir.file("x.safetensors");
  test::expect_error(
      [&] {
        detail::write_safetensors(path, {{"a", &t}, {"a", &t}}, {});
      },
      ErrorKind::InvalidArgument, {"x.safetensors", "\"a\" is given twice"});
  test::expect_error(
      [&] {
        detail::write_safetensors(path, {{"", &t}}, {});
      },
      ErrorKind::InvalidArgument, {"not allowed"});
  test::expect_error(
      [&] {
        detail::write_safetensors(path, {{"__metadata__", &t}}, {});
      },
      ErrorKind::InvalidArgument, {"__metadata__"});
  const Tensor undefined;
  test::expect_error(
      [&] {
        detail::write_safetensors(path, {{"u", &undefined}}, {});
      },
      ErrorKind::InvalidArgument, {"\"u\" is undefined"});
  EXPECT_TRUE(list_dir(dir.path()).empty());
}

// ---- damaged files ---------------------------------------------------------------------------

TEST(Safetensors, ParsesAValidHandMadeFile) {
  const SafetensorsIndex idx = parse(make_file(kTwoTensors, kSixteenBytes));
  ASSERT_EQ(idx.tensors.size(), 2u);
  EXPECT_EQ(idx.tensors[1].name, "b");
  EXPECT_EQ(idx.tensors[1].dtype, i64);
  EXPECT_EQ(idx.tensors[1].begin, 8u);
  EXPECT_EQ(idx.tensors[1].end, 16u);
  EXPECT_EQ(idx.data_offset, 8 + kTwoTensors.size());
  // Trailing spaces in the header (Python's padding) and an empty file of no tensors are fine.
  EXPECT_EQ(parse(make_file(kTwoTensors + "     ", kSixteenBytes)).tensors.size(), 2u);
  EXPECT_TRUE(parse(make_file("{}", "")).tensors.empty());
}

struct Damage {
  const char* what;
  std::string bytes;
  ErrorKind kind;
  std::vector<std::string> parts;
};

std::string entry(const std::string& name, const std::string& dtype, const std::string& shape,
                  const std::string& offsets) {
  return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":" + offsets + "}";
}

TEST(Safetensors, DamagedFilesNameWhatIsWrong) {
  const std::string valid = make_file(kTwoTensors, kSixteenBytes);
  const std::vector<Damage> cases = {
      {"truncated data",
       valid.substr(0, valid.size() - 4),
       ErrorKind::Io,
       {"tensor \"b\"", "run past the end of the data section (12 bytes)", "truncated"}},
      {"truncated length", valid.substr(0, 5), ErrorKind::Io, {"5 bytes, fewer than the 8-byte header length"}},
      {"truncated header",
       valid.substr(0, 30),
       ErrorKind::Io,
       {"header length at byte 0", "beyond the end of the file (30 bytes)"}},
      {"huge header length",
       make_file(kTwoTensors, kSixteenBytes, std::uint64_t{1} << 40),
       ErrorKind::Io,
       {"more than the limit of 104857600"}},
      {"not JSON", make_file("{\"a\" 1}", ""), ErrorKind::Io, {"JSON header", "expected ':'", "at byte 13"}},
      {"not an object", make_file("[1]", ""), ErrorKind::Io, {"does not start with '{'"}},
      {"offsets out of range",
       make_file("{" + entry("w", "F32", "[2]", "[0,8]") + "}", std::string(4, '\0')),
       ErrorKind::Io,
       {"tensor \"w\"", "[0, 8] run past the end of the data section (4 bytes)"}},
      {"offsets backwards",
       make_file("{" + entry("w", "F32", "[0]", "[8,0]") + "}", ""),
       ErrorKind::Io,
       {"tensor \"w\"", "end before they begin"}},
      {"overlap",
       make_file("{" + entry("p", "F32", "[2]", "[0,8]") + "," + entry("q", "F32", "[2]", "[4,12]") + "}",
                 std::string(12, '\0')),
       ErrorKind::Io,
       {"tensor \"q\" (data bytes [4, 12]) overlaps tensor \"p\""}},
      {"gap",
       make_file("{" + entry("p", "F32", "[1]", "[4,8]") + "}", std::string(8, '\0')),
       ErrorKind::Io,
       {"data bytes [0, 4)", "belong to no tensor", "\"p\""}},
      {"trailing bytes",
       make_file(kTwoTensors, kSixteenBytes + "xy"),
       ErrorKind::Io,
       {"2 trailing bytes belong to no tensor"}},
      {"wrong shape product",
       make_file("{" + entry("w", "F32", "[3]", "[0,8]") + "}", std::string(8, '\0')),
       ErrorKind::Io,
       {"tensor \"w\"", "hold 8 bytes, but F32[3] needs 12"}},
      {"unknown dtype",
       make_file("{" + entry("w", "F99", "[1]", "[0,4]") + "}", std::string(4, '\0')),
       ErrorKind::Io,
       {"tensor \"w\"", "unknown dtype \"F99\""}},
      {"unsupported dtype",
       make_file("{" + entry("w", "U8", "[4]", "[0,4]") + "}", std::string(4, '\0')),
       ErrorKind::Unsupported,
       {"tensor \"w\"", "dtype U8 is not supported"}},
      {"duplicate name",
       make_file("{" + entry("w", "F32", "[1]", "[0,4]") + "," + entry("w", "F32", "[1]", "[4,8]") + "}",
                 std::string(8, '\0')),
       ErrorKind::Io,
       {"duplicate key \"w\""}},
      {"negative dimension",
       make_file("{" + entry("w", "F32", "[-1]", "[0,0]") + "}", ""),
       ErrorKind::Io,
       {"tensor \"w\"", "shape dimension 0 is not an integer", "-1"}},
      {"fractional dimension",
       make_file("{" + entry("w", "F32", "[1.0]", "[0,4]") + "}", std::string(4, '\0')),
       ErrorKind::Io,
       {"tensor \"w\"", "shape dimension 0"}},
      {"element count overflow",
       make_file("{" + entry("w", "F32", "[4294967296,4294967296]", "[0,0]") + "}", ""),
       ErrorKind::Io,
       {"tensor \"w\"", "element count overflows"}},
      {"byte size overflow",
       make_file("{" + entry("w", "F64", "[4611686018427387904]", "[0,0]") + "}", ""),
       ErrorKind::Io,
       {"tensor \"w\"", "byte size overflows"}},
      {"offset beyond 2^64",
       make_file("{" + entry("w", "F32", "[0]", "[0,18446744073709551616]") + "}", ""),
       ErrorKind::Io,
       {"tensor \"w\"", "non-negative integers"}},
      {"missing key",
       make_file(R"({"w":{"dtype":"F32","shape":[0]}})", ""),
       ErrorKind::Io,
       {"tensor \"w\"", "missing key 'data_offsets'"}},
      {"unknown key",
       make_file(R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[0,0],"x":1}})", ""),
       ErrorKind::Io,
       {"tensor \"w\"", "unknown key \"x\""}},
      {"entry not an object",
       make_file(R"({"w":[1]})", ""),
       ErrorKind::Io,
       {"tensor \"w\"", "expected an object, found: array"}},
      {"metadata not strings",
       make_file(R"({"__metadata__":{"k":1}})", ""),
       ErrorKind::Io,
       {"__metadata__ \"k\"", "is a number, expected a string"}},
      {"empty name",
       make_file("{" + entry("", "F32", "[0]", "[0,0]") + "}", ""),
       ErrorKind::Io,
       {"an empty tensor name"}},
      {"nesting bomb",
       make_file("{\"w\":" + std::string(100, '[') + std::string(100, ']') + "}", ""),
       ErrorKind::Io,
       {"nesting deeper than 8 levels"}},
  };
  for (const Damage& d : cases) {
    SCOPED_TRACE(d.what);
    std::vector<std::string> parts = d.parts;
    parts.push_back("bad.safetensors");
    test::expect_error([&] { parse(d.bytes); }, d.kind, parts);
  }
}

TEST(Safetensors, BoolBytesMustBeZeroOrOne) {
  test::TempDir dir;
  const std::string path = dir.file("b.safetensors");
  write_all(path, make_file("{" + entry("flags", "BOOL", "[3]", "[0,3]") + "}", std::string("\x01\x00\x02", 3)));
  const SafetensorsFile f(path);
  test::expect_error([&] { f.read(*f.find("flags")); }, ErrorKind::Io,
                     {"b.safetensors", "tensor \"flags\"", "BOOL element 2 is 2"});
}

TEST(Safetensors, OpeningNamesTheFile) {
  test::TempDir dir;
  test::expect_error([&] { SafetensorsFile f(dir.file("missing.safetensors")); }, ErrorKind::NotFound,
                     {"missing.safetensors"});
  test::expect_error([&] { SafetensorsFile f(dir.path()); }, ErrorKind::Io, {"is a directory"});
  write_all(dir.file("empty"), "");
  test::expect_error([&] { SafetensorsFile f(dir.file("empty")); }, ErrorKind::Io, {"empty", "0 bytes"});
}

// ---- random mutations: every outcome is a parse or a trainrt::Error ----------------------------

TEST(Safetensors, MutatedFilesNeverCrash) {
  const std::string valid =
      make_file(R"({"__metadata__":{"format":"pt"},)" + entry("a", "F16", "[2,3]", "[0,12]") + "," +
                    entry("b", "BOOL", "[4]", "[12,16]") + "," + entry("c", "I32", "[]", "[16,20]") + "}",
                std::string(20, '\x01'));
  ASSERT_EQ(parse(valid).tensors.size(), 3u);
  std::mt19937 rng(11);
  int parsed = 0, rejected = 0;
  for (int i = 0; i < 4000; ++i) {
    std::string m = valid;
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int k = 0; k < edits; ++k) {
      const std::size_t at = rng() % m.size();
      switch (rng() % 4) {
        case 0: m[at] = static_cast<char>(rng()); break;                     // overwrite a byte
        case 1: m.erase(at, 1 + rng() % 4); break;                           // delete bytes
        case 2: m.insert(at, 1, "{}[]\",:0123456789e-"[rng() % 19]); break;  // insert JSON syntax
        case 3: m.resize(at); break;                                         // truncate
      }
      if (m.empty()) m = "x";
    }
    try {
      parse(m);
      ++parsed;
    } catch (const Error&) {
      ++rejected;
    }
  }
  EXPECT_GT(rejected, 3000) << "most mutations damage the file";
  EXPECT_EQ(parsed + rejected, 4000);
}

// ---- the atomic writer -----------------------------------------------------------------------

/// Restores RLIMIT_FSIZE and SIGXFSZ's disposition when it goes out of scope.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    getrlimit(RLIMIT_FSIZE, &old_);
    old_handler_ = signal(SIGXFSZ, SIG_IGN);  // a write past the limit then fails with EFBIG
    rlimit lim = old_;
    lim.rlim_cur = bytes;
    setrlimit(RLIMIT_FSIZE, &lim);
  }
  ~FileSizeLimit() {
    setrlimit(RLIMIT_FSIZE, &old_);
    signal(SIGXFSZ, old_handler_);
  }

 private:
  rlimit old_{};
  sighandler_t old_handler_{};
};

TEST(SafetensorsWriter, AFailedWriteKeepsThePreviousFileAndLeavesNoTemporary) {
  test::TempDir dir;
  const std::string path = dir.file("ckpt.safetensors");
  const Tensor small = Tensor::full({4}, 1.0, f32);
  detail::write_safetensors(path, {{"w", &small}}, {{"v", "1"}});
  const std::string before = read_all(path);

  const Tensor big = Tensor::full({1 << 18}, 2.0, f32);  // 1 MiB, far past the limit below
  {
    FileSizeLimit limit(64 * 1024);
    test::expect_error(
        [&] {
          detail::write_safetensors(path, {{"w", &big}}, {{"v", "2"}});
        },
        ErrorKind::Io, {"cannot write", "ckpt.safetensors", "File too large"});
  }
  EXPECT_EQ(read_all(path), before) << "the previous file is untouched";
  EXPECT_EQ(list_dir(dir.path()), std::vector<std::string>{"ckpt.safetensors"}) << "the temporary is removed";
  EXPECT_EQ(SafetensorsFile(path).index().metadata.at("v"), "1");

  // And the same write succeeds once the limit is gone, replacing the file.
  detail::write_safetensors(path, {{"w", &big}}, {{"v", "2"}});
  EXPECT_EQ(SafetensorsFile(path).index().metadata.at("v"), "2");
  EXPECT_EQ(list_dir(dir.path()), std::vector<std::string>{"ckpt.safetensors"});
}

TEST(SafetensorsWriter, ARenameOntoADirectoryFailsCleanly) {
  test::TempDir dir;
  fs::create_directory(dir.file("taken"));
  write_all(dir.file("taken/inside"), "keep");
  const Tensor t = Tensor::full({2}, 1.0, f32);
  test::expect_error(
      [&] {
        detail::write_safetensors(dir.file("taken"), {{"w", &t}}, {});
      },
      ErrorKind::Io, {"cannot rename", "taken"});
  EXPECT_EQ(list_dir(dir.path()), std::vector<std::string>{"taken"}) << "the temporary is removed";
  EXPECT_EQ(read_all(dir.file("taken/inside")), "keep");
}

TEST(SafetensorsWriter, AMissingDirectoryIsAnIoError) {
  test::TempDir dir;
  const Tensor t = Tensor::full({2}, 1.0, f32);
  test::expect_error(
      [&] {
        detail::write_safetensors(dir.file("no/such/dir/x.safetensors"), {{"w", &t}}, {});
      },
      ErrorKind::Io, {"cannot create the temporary file", "x.safetensors", "No such file or directory"});
}

TEST(SafetensorsWriter, AnUnwritableDirectoryKeepsThePreviousFile) {
  if (::geteuid() == 0) GTEST_SKIP() << "running as root, whom directory permissions do not stop";
  test::TempDir dir;
  const std::string path = dir.file("ckpt.safetensors");
  const Tensor t = Tensor::full({2}, 1.0, f32);
  detail::write_safetensors(path, {{"w", &t}}, {{"v", "1"}});
  const std::string before = read_all(path);
  ::chmod(dir.path().c_str(), 0555);
  test::expect_error(
      [&] {
        detail::write_safetensors(path, {{"w", &t}}, {{"v", "2"}});
      },
      ErrorKind::Io, {"cannot create the temporary file", "Permission denied"});
  ::chmod(dir.path().c_str(), 0755);
  EXPECT_EQ(read_all(path), before);
  EXPECT_EQ(list_dir(dir.path()), std::vector<std::string>{"ckpt.safetensors"});
}

// ---- a file written by Python's safetensors package --------------------------------------------

TEST(Safetensors, ReadsAFileWrittenByPythonSafetensors) {
  test::TempDir dir;
  const std::string script = dir.file("make.py"), path = dir.file("py.safetensors");
  write_all(script, R"PY(
import sys
try:
    import numpy as np
    from safetensors.numpy import save_file
except ImportError as e:
    print(e)
    sys.exit(3)
save_file({
    "f32": (np.arange(6, dtype=np.float32) * 0.5).reshape(2, 3),
    "f64": np.array([1.0 / 3, -2.5], dtype=np.float64),
    "f16": np.array([0.1, 65504, -1], dtype=np.float16),
    "i32": np.array([[-7], [9]], dtype=np.int32),
    "i64": np.array([2**40, -3], dtype=np.int64),
    "flags": np.array([True, False, True]),
    "scalar": np.array(3.25, dtype=np.float32),
}, sys.argv[1], metadata={"format": "np", "quote": 'a"b'})
)PY");
  const int rc = std::system(("python3 " + script + " " + path + " > " + dir.file("log") + " 2>&1").c_str());
  if (rc != 0)
    GTEST_SKIP() << "python3 with numpy and safetensors is not available (exit " << rc
                 << "): " << read_all(dir.file("log"));

  const SafetensorsFile f(path);
  EXPECT_EQ(f.index().metadata.at("format"), "np");
  EXPECT_EQ(f.index().metadata.at("quote"), "a\"b");
  auto get = [&](const char* n) {
    const auto* e = f.find(n);
    if (!e) ADD_FAILURE() << "missing " << n;
    return e ? f.read(*e) : Tensor();
  };
  EXPECT_EQ(get("f32").shape(), (Shape{2, 3}));
  EXPECT_EQ(get("f32").to_vector<float>(), (std::vector<float>{0, 0.5f, 1, 1.5f, 2, 2.5f}));
  EXPECT_EQ(get("f64").to_vector<double>(), (std::vector<double>{1.0 / 3, -2.5}));
  EXPECT_EQ(test::values(get("f16")), (std::vector<double>{static_cast<double>(to_float(to_half(0.1f))), 65504, -1}));
  EXPECT_EQ(get("i32").shape(), (Shape{2, 1}));
  EXPECT_EQ(get("i32").to_vector<std::int32_t>(), (std::vector<std::int32_t>{-7, 9}));
  EXPECT_EQ(get("i64").to_vector<std::int64_t>(), (std::vector<std::int64_t>{std::int64_t{1} << 40, -3}));
  EXPECT_EQ(test::values(get("flags")), (std::vector<double>{1, 0, 1}));
  EXPECT_EQ(get("scalar").shape(), Shape{});
  EXPECT_EQ(get("scalar").item(), 3.25);
}

}  // namespace
}  // namespace trainrt
