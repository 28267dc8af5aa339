// tests/metrics_test.cpp — trainrt/metrics.hpp: CRC-32C, JSONL records read back with the
// library's JSON parser, TensorBoard event files checked by a reader of their own (framing,
// both CRCs of every record, the protobuf fields), and the progress bar's output on a forced
// terminal and in plain mode, driven by a fake clock.
//
// Contents: helpers; CRC-32C; JsonlWriter; event file reader; TensorBoardWriter; formats;
// ProgressBar. TensorBoard itself reads the files in tests/python/read_tensorboard.py.
#include <unistd.h>

#include <bit>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <span>

#include "io/json.h"
#include "metrics/crc32c.h"
#include "metrics/event_encoding.h"
#include "metrics/output_file.h"
#include "test_util.h"
#include "trainrt/metrics.hpp"

namespace trainrt {
namespace {

namespace fs = std::filesystem;
using metrics::format_duration;
using metrics::format_rate;
using metrics::JsonlWriter;
using metrics::ProgressBar;
using metrics::TensorBoardWriter;

// ---- helpers ---------------------------------------------------------------------------------

std::string read_all(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_all(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  for (std::size_t nl = text.find('\n'); nl != std::string::npos; nl = text.find('\n', start)) {
    lines.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  EXPECT_EQ(start, text.size()) << "the text does not end with a newline";
  return lines;
}

const detail::JsonValue& member(const detail::JsonValue& object, const std::string& key) {
  for (const auto& m : object.members)
    if (m.key == key) return m.value;
  ADD_FAILURE() << "no member " << key;
  static const detail::JsonValue missing;
  return missing;
}

double number(const detail::JsonValue& object, const std::string& key) {
  const detail::JsonValue& v = member(object, key);
  EXPECT_EQ(v.type, detail::JsonValue::Type::number) << key;
  return std::stod(v.text);
}

std::uint32_t crc_of(std::string_view s) {
  return detail::crc32c(std::span(reinterpret_cast<const std::uint8_t*>(s.data()), s.size()));
}

// ---- CRC-32C -----------------------------------------------------------------------------------

TEST(Crc32c, StandardVectors) {
  EXPECT_EQ(crc_of("123456789"), 0xE3069283u);  // the check value of the CRC-32C catalogue entry
  EXPECT_EQ(crc_of(""), 0u);
  // RFC 3720 (iSCSI) appendix B.4: 32 bytes of zeros, of ones, ascending.
  EXPECT_EQ(crc_of(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(crc_of(std::string(32, '\xFF')), 0x62A8AB43u);
  std::string ascending;
  for (int i = 0; i < 32; ++i) ascending.push_back(static_cast<char>(i));
  EXPECT_EQ(crc_of(ascending), 0x46DD794Eu);
}

TEST(Crc32c, ContinuesAcrossPieces) {
  const std::string text = "The quick brown fox jumps over the lazy dog";
  const auto bytes = std::span(reinterpret_cast<const std::uint8_t*>(text.data()), text.size());
  EXPECT_EQ(detail::crc32c(bytes.subspan(10), detail::crc32c(bytes.first(10))), crc_of(text));
  EXPECT_EQ(crc_of(text), 0x22620404u);
}

TEST(Crc32c, MaskIsTensorFlows) {
  // masked = rotate right by 15, plus 0xA282EAD8 (tensorflow/tsl/lib/hash/crc32c.h).
  EXPECT_EQ(detail::mask_crc32c(0u), 0xA282EAD8u);
  EXPECT_EQ(detail::mask_crc32c(0x8000u), 0xA282EAD9u);
  EXPECT_EQ(detail::mask_crc32c(0xE3069283u), ((0xE3069283u >> 15) | (0xE3069283u << 17)) + 0xA282EAD8u);
}

// ---- JsonlWriter -------------------------------------------------------------------------------

TEST(JsonlWriter, LinesParseBack) {
  test::TempDir dir;
  const fs::path path = fs::path(dir.path()) / "sub" / "dir" / "metrics.jsonl";  // parents are created
  const double before = detail::unix_time_now();
  {
    JsonlWriter w(path, false);
    EXPECT_EQ(w.path(), path);
    w.write(0, "train", {{"loss", 2.5}, {"lr", 0.1}});
    w.write(120, "eval", {{"acc", 0.875}, {"tiny", 1e-300}, {"huge", 1.7976931348623157e308}, {"neg", -3.0}});
    // Flushed per record: the file holds both lines while the writer is open.
    EXPECT_EQ(split_lines(read_all(path)).size(), 2u);
  }
  const auto lines = split_lines(read_all(path));
  ASSERT_EQ(lines.size(), 2u);
  const auto first = detail::parse_json(lines[0], "line 1");
  ASSERT_EQ(first.members.size(), 5u);
  EXPECT_EQ(first.members[0].key, "step");
  EXPECT_EQ(first.members[1].key, "split");
  EXPECT_EQ(first.members[2].key, "wall_time");
  EXPECT_EQ(first.members[3].key, "loss");
  EXPECT_EQ(member(first, "step").text, "0");
  EXPECT_EQ(member(first, "split").text, "train");
  EXPECT_GE(number(first, "wall_time"), before - 1);
  EXPECT_LE(number(first, "wall_time"), detail::unix_time_now() + 1);
  EXPECT_EQ(number(first, "loss"), 2.5);
  EXPECT_EQ(number(first, "lr"), 0.1);  // shortest round-trip form: exactly 0.1 again
  const auto second = detail::parse_json(lines[1], "line 2");
  EXPECT_EQ(member(second, "step").text, "120");
  EXPECT_EQ(member(second, "split").text, "eval");
  EXPECT_EQ(number(second, "acc"), 0.875);
  EXPECT_EQ(number(second, "tiny"), 1e-300);
  EXPECT_EQ(number(second, "huge"), 1.7976931348623157e308);
  EXPECT_EQ(number(second, "neg"), -3.0);
}

TEST(JsonlWriter, NonFiniteIsNullAndNamesAreEscaped) {
  test::TempDir dir;
  const fs::path path = fs::path(dir.path()) / "m.jsonl";
  {
    JsonlWriter w(path, false);
    w.write(3, "train \"a\"", {{"nan", std::nan("")}, {"inf", INFINITY}, {"-inf", -INFINITY}, {"quote\"\n", 1.0}});
  }
  const auto lines = split_lines(read_all(path));
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find("\"nan\":null,\"inf\":null,\"-inf\":null"), std::string::npos) << lines[0];
  const auto v = detail::parse_json(lines[0], "line");
  EXPECT_EQ(member(v, "split").text, "train \"a\"");
  EXPECT_EQ(member(v, "nan").type, detail::JsonValue::Type::null);
  EXPECT_EQ(member(v, "-inf").type, detail::JsonValue::Type::null);
  EXPECT_EQ(number(v, "quote\"\n"), 1.0);
}

TEST(JsonlWriter, AppendKeepsRecordsTruncateDropsThem) {
  test::TempDir dir;
  const fs::path path = fs::path(dir.path()) / "m.jsonl";
  { JsonlWriter(path, false).write(1, "train", {{"loss", 1.0}}); }
  { JsonlWriter(path, true).write(2, "train", {{"loss", 0.5}}); }
  auto lines = split_lines(read_all(path));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(member(detail::parse_json(lines[1], "l"), "step").text, "2");
  // A crash left half a line: appending ends it first, so the new record is a line of its own.
  write_all(path, read_all(path) + "{\"step\":3,\"lo");
  { JsonlWriter(path, true).write(4, "train", {{"loss", 0.25}}); }
  lines = split_lines(read_all(path));
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[2], "{\"step\":3,\"lo");
  EXPECT_EQ(number(detail::parse_json(lines[3], "l"), "loss"), 0.25);
  // Append to a file that does not exist creates it; truncate empties an existing one.
  { JsonlWriter(fs::path(dir.path()) / "new.jsonl", true).write(0, "train", {}); }
  EXPECT_EQ(split_lines(read_all(fs::path(dir.path()) / "new.jsonl")).size(), 1u);
  { JsonlWriter w(path, false); }
  EXPECT_EQ(read_all(path), "");
}

TEST(JsonlWriter, WriteRaw) {
  test::TempDir dir;
  const fs::path path = fs::path(dir.path()) / "m.jsonl";
  JsonlWriter w(path, false);
  w.write_raw(R"({"config":{"lr":0.1,"layers":[1,2]}})");
  w.write_raw("{\"a\":1}\n");  // one trailing newline is allowed
  test::expect_error([&] { w.write_raw("[1,2]"); }, ErrorKind::InvalidArgument, {"m.jsonl", "array, not an object"});
  test::expect_error([&] { w.write_raw("{\"a\":\n1}"); }, ErrorKind::InvalidArgument, {"more than one line", "byte 5"});
  test::expect_error([&] { w.write_raw("{\"a\":}"); }, ErrorKind::InvalidArgument, {"write_raw", "not valid JSON"});
  test::expect_error([&] { w.write_raw("{\"a\":1,\"a\":2}"); }, ErrorKind::InvalidArgument, {"\"a\""});
  const auto lines = split_lines(read_all(path));
  ASSERT_EQ(lines.size(), 2u);  // nothing of the rejected texts
  EXPECT_EQ(lines[0], R"({"config":{"lr":0.1,"layers":[1,2]}})");
  EXPECT_EQ(lines[1], "{\"a\":1}");
}

TEST(JsonlWriter, BadArgumentsWriteNothing) {
  test::TempDir dir;
  const fs::path path = fs::path(dir.path()) / "m.jsonl";
  JsonlWriter w(path, false);
  const ErrorKind bad = ErrorKind::InvalidArgument;
  test::expect_error([&] { w.write(-1, "train", {}); }, bad, {"m.jsonl", "step -1 is negative"});
  test::expect_error([&] { w.write(0, "", {}); }, bad, {"split name is empty"});
  test::expect_error([&] { w.write(0, "train", {{"a", 1}, {"", 2}}); }, bad, {"value 1 has an empty name"});
  test::expect_error([&] { w.write(0, "train", {{"a", 1}, {"a", 2}}); }, bad, {"\"a\" is given twice"});
  test::expect_error([&] { w.write(0, "train", {{"step", 1}}); }, bad, {"\"step\""});
  test::expect_error([&] { w.write(0, "train", {{"wall_time", 1}}); }, bad, {"\"wall_time\""});
  EXPECT_EQ(read_all(path), "");
}

TEST(JsonlWriter, UnwritablePathNamesItAndTheReason) {
  test::TempDir dir;
  // A directory cannot be opened as a file (root too is refused, unlike with permissions).
  test::expect_error([&] { JsonlWriter w(dir.path(), false); }, ErrorKind::Io,
                     {"metrics::JsonlWriter", dir.path(), "Is a directory"});
  // A parent that is a regular file.
  write_all(dir.file("plain"), "x");
  const fs::path below_file = fs::path(dir.file("plain")) / "sub" / "m.jsonl";
  test::expect_error([&] { JsonlWriter w(below_file, true); }, ErrorKind::Io,
                     {"cannot create directory", dir.file("plain")});
}

TEST(JsonlWriter, FullDeviceIsAnIoError) {
  if (!fs::exists("/dev/full")) GTEST_SKIP() << "/dev/full does not exist on this system";
  JsonlWriter w("/dev/full", false);
  test::expect_error(
      [&] {
        w.write(0, "train", {{"loss", 1}});
      },
      ErrorKind::Io, {"cannot write to '/dev/full'", "No space left on device"});
}

// ---- an event file reader of the test's own ------------------------------------------------------

/// One protobuf field as read from the wire.
struct Field {
  int number = 0;
  int wire = 0;
  std::uint64_t scalar = 0;  // varint, fixed64 or fixed32 bits
  std::string bytes;         // wire type 2
};

std::uint64_t read_varint(std::string_view data, std::size_t& pos) {
  std::uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (pos >= data.size()) throw std::runtime_error("varint runs past the end");
    const auto b = static_cast<std::uint8_t>(data[pos++]);
    v |= static_cast<std::uint64_t>(b & 0x7Fu) << shift;
    if ((b & 0x80u) == 0) return v;
  }
  throw std::runtime_error("varint longer than 10 bytes");
}

std::uint64_t read_fixed(std::string_view data, std::size_t& pos, int bytes) {
  if (pos + static_cast<std::size_t>(bytes) > data.size()) throw std::runtime_error("fixed field runs past the end");
  std::uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= static_cast<std::uint64_t>(static_cast<std::uint8_t>(data[pos++])) << (8 * i);
  return v;
}

/// Every field of a message, in order; throws std::runtime_error on a malformed message.
std::vector<Field> parse_message(std::string_view data) {
  std::vector<Field> fields;
  std::size_t pos = 0;
  while (pos < data.size()) {
    const std::uint64_t key = read_varint(data, pos);
    Field f;
    f.number = static_cast<int>(key >> 3);
    f.wire = static_cast<int>(key & 7u);
    if (f.wire == 0) f.scalar = read_varint(data, pos);
    else if (f.wire == 1) f.scalar = read_fixed(data, pos, 8);
    else if (f.wire == 5) f.scalar = read_fixed(data, pos, 4);
    else if (f.wire == 2) {
      const std::uint64_t n = read_varint(data, pos);
      if (n > data.size() - pos) throw std::runtime_error("length-delimited field runs past the end");
      f.bytes = std::string(data.substr(pos, n));
      pos += n;
    } else {
      throw std::runtime_error("unexpected wire type " + std::to_string(f.wire));
    }
    fields.push_back(std::move(f));
  }
  return fields;
}

/// The only field `number` of `fields` (a test failure if there is not exactly one).
Field only(const std::vector<Field>& fields, int number) {
  std::vector<Field> found;
  for (const auto& f : fields)
    if (f.number == number) found.push_back(f);
  EXPECT_EQ(found.size(), 1u) << "field " << number;
  return found.empty() ? Field{} : found[0];
}

/// The records of a TFRecord file; throws std::runtime_error naming the record whose framing
/// or CRC is wrong.
std::vector<std::string> read_records(const std::string& file) {
  std::vector<std::string> records;
  std::size_t pos = 0;
  while (pos < file.size()) {
    const std::string where = "record " + std::to_string(records.size()) + " at byte " + std::to_string(pos);
    if (file.size() - pos < 12) throw std::runtime_error(where + ": truncated header");
    const std::string length_bytes = file.substr(pos, 8);
    const std::uint64_t length = read_fixed(file, pos, 8);
    if (read_fixed(file, pos, 4) != detail::mask_crc32c(crc_of(length_bytes)))
      throw std::runtime_error(where + ": length CRC mismatch");
    if (file.size() - pos < length + 4) throw std::runtime_error(where + ": truncated data");
    std::string data = file.substr(pos, length);
    pos += length;
    if (read_fixed(file, pos, 4) != detail::mask_crc32c(crc_of(data)))
      throw std::runtime_error(where + ": data CRC mismatch");
    records.push_back(std::move(data));
  }
  return records;
}

/// What the test checks of one tensorflow.Event.
struct Event {
  double wall_time = 0;
  std::int64_t step = 0;
  std::string file_version;
  std::string tag;
  std::optional<float> simple_value;
  std::string plugin_name;
  std::string text;
};

Event decode_event(const std::string& record) {
  const auto fields = parse_message(record);
  Event e;
  for (const auto& f : fields) {
    if (f.number == 1 && f.wire == 1) e.wall_time = std::bit_cast<double>(f.scalar);
    else if (f.number == 2 && f.wire == 0) e.step = static_cast<std::int64_t>(f.scalar);
    else if (f.number == 3 && f.wire == 2) e.file_version = f.bytes;
    else if (f.number == 5 && f.wire == 2) {
      const auto value = parse_message(only(parse_message(f.bytes), 1).bytes);  // Summary.value
      for (const auto& v : value) {
        if (v.number == 1) e.tag = v.bytes;
        else if (v.number == 2 && v.wire == 5)
          e.simple_value = std::bit_cast<float>(static_cast<std::uint32_t>(v.scalar));
        else if (v.number == 9) e.plugin_name = only(parse_message(only(parse_message(v.bytes), 1).bytes), 1).bytes;
        else if (v.number == 8) {
          const auto tensor = parse_message(v.bytes);
          EXPECT_EQ(only(tensor, 1).scalar, 7u);  // DT_STRING
          EXPECT_EQ(only(tensor, 2).bytes, "");   // scalar shape
          e.text = only(tensor, 8).bytes;
        } else {
          ADD_FAILURE() << "unexpected Summary.Value field " << v.number;
        }
      }
    } else {
      ADD_FAILURE() << "unexpected Event field " << f.number << " wire " << f.wire;
    }
  }
  return e;
}

std::vector<Event> read_events(const fs::path& file) {
  std::vector<Event> events;
  for (const auto& r : read_records(read_all(file))) events.push_back(decode_event(r));
  return events;
}

// ---- TensorBoardWriter ---------------------------------------------------------------------------

TEST(TensorBoardWriter, ScalarsAndTextReadBack) {
  test::TempDir dir;
  const fs::path logdir = fs::path(dir.path()) / "runs" / "a";  // created
  fs::path file;
  const double before = detail::unix_time_now();
  {
    TensorBoardWriter w(logdir);
    file = w.file();
    EXPECT_EQ(file.parent_path(), logdir);
    for (int step = 0; step < 5; ++step) w.add_scalar("train/loss", step, 1.0 / (step + 1));
    w.add_scalar("eval/acc", 4, 0.8125, 1700000000.25);
    w.add_scalar("big_step", std::int64_t{1} << 40, std::nan(""));
    w.add_text("config", 0, "lr: **0.1**\nbatch: 64");
  }
  const auto events = read_events(file);
  ASSERT_EQ(events.size(), 9u);
  EXPECT_EQ(events[0].file_version, "brain.Event:2");
  EXPECT_GE(events[0].wall_time, before - 1);
  for (int step = 0; step < 5; ++step) {
    const Event& e = events[1 + step];
    EXPECT_EQ(e.tag, "train/loss");
    EXPECT_EQ(e.step, step);
    ASSERT_TRUE(e.simple_value.has_value());
    EXPECT_EQ(*e.simple_value, static_cast<float>(1.0 / (step + 1)));
    EXPECT_GE(e.wall_time, before - 1);
    EXPECT_LE(e.wall_time, detail::unix_time_now() + 1);
  }
  EXPECT_EQ(events[6].tag, "eval/acc");
  EXPECT_EQ(events[6].wall_time, 1700000000.25);
  EXPECT_EQ(*events[6].simple_value, 0.8125f);
  EXPECT_EQ(events[7].step, std::int64_t{1} << 40);
  EXPECT_TRUE(std::isnan(*events[7].simple_value));
  EXPECT_EQ(events[8].tag, "config");
  EXPECT_EQ(events[8].plugin_name, "text");
  EXPECT_EQ(events[8].text, "lr: **0.1**\nbatch: 64");
  EXPECT_FALSE(events[8].simple_value.has_value());
}

TEST(TensorBoardWriter, FileNameAndANewFilePerWriter) {
  test::TempDir dir;
  TensorBoardWriter a(dir.path());
  TensorBoardWriter b(dir.path());  // a resumed run: a new file beside the first
  EXPECT_NE(a.file(), b.file());
  for (const fs::path& f : {a.file(), b.file()}) {
    const std::string name = f.filename().string();
    // events.out.tfevents.<unix seconds>.<hostname>.<pid>.<counter>
    ASSERT_EQ(name.rfind("events.out.tfevents.", 0), 0u) << name;
    const std::string rest = name.substr(20);
    const auto seconds = std::stoll(rest.substr(0, rest.find('.')));
    EXPECT_NEAR(static_cast<double>(seconds), detail::unix_time_now(), 60.0);
    const std::string tail = "." + std::to_string(::getpid()) + ".";
    EXPECT_NE(name.find(tail), std::string::npos) << name;
  }
}

TEST(TensorBoardWriter, FlushMakesEventsVisible) {
  test::TempDir dir;
  TensorBoardWriter w(dir.path());
  EXPECT_EQ(read_events(w.file()).size(), 1u);  // the version event is flushed at once
  w.add_scalar("x", 1, 2.0);
  w.add_text("t", 1, "hello");
  w.flush();
  const auto events = read_events(w.file());
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(*events[1].simple_value, 2.0f);
  EXPECT_EQ(events[2].text, "hello");
}

TEST(TensorBoardWriter, ReaderRejectsDamagedRecords) {
  // The reader above must be able to fail, or the tests that use it prove nothing.
  const std::string good = detail::frame_record(detail::encode_scalar_event(1.0, 2, "tag", 3.0f));
  ASSERT_EQ(read_records(good).size(), 1u);
  for (std::size_t i = 0; i < good.size(); ++i) {
    std::string bad = good;
    bad[i] = static_cast<char>(bad[i] ^ 0x10);
    EXPECT_THROW(read_records(bad), std::runtime_error) << "flipped a bit of byte " << i;
  }
  EXPECT_THROW(read_records(good.substr(0, good.size() - 1)), std::runtime_error);
}

TEST(TensorBoardWriter, EmptyRecordFraming) {
  // An empty record is the 8 zero length bytes, their masked CRC, and the masked CRC of nothing.
  const std::string r = detail::frame_record("");
  ASSERT_EQ(r.size(), 16u);
  EXPECT_EQ(r.substr(0, 8), std::string(8, '\0'));
  std::size_t pos = 8;
  EXPECT_EQ(read_fixed(r, pos, 4), detail::mask_crc32c(crc_of(std::string(8, '\0'))));
  EXPECT_EQ(read_fixed(r, pos, 4), detail::mask_crc32c(0u));
}

TEST(TensorBoardWriter, Errors) {
  test::TempDir dir;
  write_all(dir.file("plain"), "x");
  test::expect_error([&] { TensorBoardWriter w(dir.file("plain")); }, ErrorKind::Io,
                     {"metrics::TensorBoardWriter", "cannot create directory", dir.file("plain")});
  TensorBoardWriter w(dir.path());
  test::expect_error([&] { w.add_scalar("", 0, 1.0); }, ErrorKind::InvalidArgument, {"add_scalar", "tag is empty"});
  test::expect_error([&] { w.add_scalar("loss", -3, 1.0); }, ErrorKind::InvalidArgument,
                     {"step -3 of tag 'loss' is negative"});
  test::expect_error([&] { w.add_text("", 0, "x"); }, ErrorKind::InvalidArgument, {"add_text", "tag is empty"});
  w.flush();
  EXPECT_EQ(read_events(w.file()).size(), 1u);  // nothing of the rejected events
}

// ---- formats -------------------------------------------------------------------------------------

TEST(MetricsFormat, Duration) {
  EXPECT_EQ(format_duration(0), "0:00");
  EXPECT_EQ(format_duration(42), "0:42");
  EXPECT_EQ(format_duration(41.6), "0:42");
  EXPECT_EQ(format_duration(59.6), "1:00");
  EXPECT_EQ(format_duration(754), "12:34");
  EXPECT_EQ(format_duration(3599.5), "1:00:00");
  EXPECT_EQ(format_duration(3723), "1:02:03");
  EXPECT_EQ(format_duration(100 * 3600 + 5), "100:00:05");
  EXPECT_EQ(format_duration(-1), "--:--");
  EXPECT_EQ(format_duration(std::nan("")), "--:--");
  EXPECT_EQ(format_duration(INFINITY), "--:--");
  EXPECT_EQ(format_duration(1e300), "--:--");
}

TEST(MetricsFormat, Rate) {
  EXPECT_EQ(format_rate(0.523, "img"), "0.52 img/s");
  EXPECT_EQ(format_rate(25.64, "img"), "25.6 img/s");
  EXPECT_EQ(format_rate(1843.2, "img/s"), "1843 img/s");  // a unit ending in /s is kept as is
  EXPECT_EQ(format_rate(124500, "tok"), "124.5k tok/s");
  EXPECT_EQ(format_rate(3.214e6, "tok"), "3.21M tok/s");
  EXPECT_EQ(format_rate(1.5e9, "tok"), "1.50G tok/s");
  EXPECT_EQ(format_rate(12, ""), "12.0/s");
  EXPECT_EQ(format_rate(std::nan(""), "img"), "-- img/s");
  EXPECT_EQ(format_rate(-1, "img"), "-- img/s");
}

// ---- ProgressBar -----------------------------------------------------------------------------------

/// A temporary stream and a fake clock for a bar.
struct BarOutput {
  BarOutput() : file(std::tmpfile()) { EXPECT_NE(file, nullptr); }
  ~BarOutput() {
    if (file != nullptr) std::fclose(file);
  }
  BarOutput(const BarOutput&) = delete;
  BarOutput& operator=(const BarOutput&) = delete;

  /// Everything written so far.
  std::string text() const {
    std::fflush(file);
    std::rewind(file);
    std::string s;
    for (int c = std::fgetc(file); c != EOF; c = std::fgetc(file)) s.push_back(static_cast<char>(c));
    return s;  // the position is at the end again: later writes append
  }
  metrics::ProgressOptions options(std::optional<bool> terminal, std::string unit, std::int64_t plain_every = 100) {
    metrics::ProgressOptions o;
    o.terminal = terminal;
    o.unit = std::move(unit);
    o.plain_every = plain_every;
    o.clock = [this] { return now; };
    return o;
  }

  std::FILE* file;
  double now = 0;
};

TEST(ProgressBar, PlainLinesEveryNUpdatesAndAtTheEnd) {
  BarOutput out;
  ProgressBar bar(out.file, "epoch 1/2", 10, out.options(false, "img", 4));
  for (int step = 1; step <= 10; ++step) {
    out.now = 0.5 * step;  // 2 steps/s, 32 images each: 64 img/s
    bar.update(step, 32, {{"loss", 1.0 / step}});
    if (step == 8) bar.message("eval acc 0.9");
  }
  bar.finish();
  bar.finish();  // does nothing
  EXPECT_EQ(out.text(),
            "epoch 1/2 4/10 40.0%  loss 0.25  64.0 img/s  ETA 0:03\n"
            "epoch 1/2 8/10 80.0%  loss 0.125  64.0 img/s  ETA 0:01\n"
            "eval acc 0.9\n"
            "epoch 1/2 10/10 100.0%  loss 0.1  64.0 img/s  took 0:05\n");
}

TEST(ProgressBar, FinishPrintsTheLastStateOnce) {
  BarOutput out;
  {
    ProgressBar bar(out.file, "e", 10, out.options(false, "img", 4));
    for (int step = 1; step <= 5; ++step) {
      out.now = step;
      bar.update(step, 10, {});
    }
    bar.finish();
    test::expect_error([&] { bar.update(6, 10, {}); }, ErrorKind::InvalidArgument, {"ProgressBar('e')", "finished"});
  }  // the destructor prints nothing more
  EXPECT_EQ(out.text(), "e 4/10 40.0%  10.0 img/s  ETA 0:06\ne 5/10 50.0%  10.0 img/s  ETA 0:05\n");
}

TEST(ProgressBar, NotATerminalByDefaultForAFile) {
  BarOutput out;
  auto options = out.options(std::nullopt, "img", 1);
  ProgressBar bar(out.file, "e", 2, options);
  out.now = 1;
  bar.update(1, 5, {});
  EXPECT_EQ(out.text(), "e 1/2 50.0%  5.00 img/s  ETA 0:01\n");
}

TEST(ProgressBar, TerminalRedrawsInPlace) {
  BarOutput out;
  auto options = out.options(true, "tok");
  options.width = 8;
  ProgressBar bar(out.file, "ep", 4, options);
  out.now = 1;
  bar.update(1, 100, {{"loss", 1.23456}});
  const std::string line1 = "ep [##......] 1/4 25.0%  loss 1.235  100.0 tok/s  ETA 0:03";
  EXPECT_EQ(out.text(), "\r" + line1);
  out.now = 2;
  bar.update(2, 100, {{"loss", 1.23456}});
  const std::string line2 = "ep [####....] 2/4 50.0%  loss 1.235  100.0 tok/s  ETA 0:02";
  bar.message("eval: acc 0.5");  // cleared, printed, redrawn below
  out.now = 3;
  bar.update(3, 100, {});  // a shorter line is padded over the longer one
  const std::string line3 = "ep [######..] 3/4 75.0%  100.0 tok/s  ETA 0:01";
  out.now = 4;
  bar.update(4, 100, {});
  const std::string line4 = "ep [########] 4/4 100.0%  100.0 tok/s  took 0:04";
  bar.finish();  // the last state is on screen: only the line end
  EXPECT_EQ(out.text(), "\r" + line1 + "\r" + line2 + "\r" + std::string(line2.size(), ' ') + "\reval: acc 0.5\n\r" +
                            line2 + "\r" + line3 + std::string(line2.size() - line3.size(), ' ') + "\r" + line4 + "\n");
}

TEST(ProgressBar, TerminalRedrawsAtMostTenTimesASecond) {
  BarOutput out;
  ProgressBar bar(out.file, "e", 16, out.options(true, "img"));
  for (int k = 1; k <= 16; ++k) {
    out.now = k / 32.0;  // exact in binary: 1/32 s per step
    bar.update(k, 1, {});
  }
  bar.finish();
  const std::string text = out.text();
  // Drawn at k = 1 (the first), 5, 9, 13 (0.125 s apart, the first >= 0.1 s) and 16 (the last).
  EXPECT_EQ(std::count(text.begin(), text.end(), '\r'), 5) << text;
  EXPECT_NE(text.find("16/16 100.0%  32.0 img/s  took 0:01\n"), std::string::npos) << text;
  EXPECT_EQ(text.back(), '\n');
}

TEST(ProgressBar, ThroughputOverASlidingWindow) {
  BarOutput out;
  ProgressBar bar(out.file, "warmup", 0, out.options(false, "img", 1));  // total unknown: no bar, %, ETA
  std::int64_t step = 0;
  for (int k = 1; k <= 20; ++k) {  // 20 s at 10 img/s
    out.now = k;
    bar.update(++step, 10, {});
  }
  for (int k = 1; k <= 40; ++k) {  // then 20 s at 20 img/s
    out.now = 20 + 0.5 * k;
    bar.update(++step, 10, {});
  }
  const auto lines = split_lines(out.text());
  ASSERT_EQ(lines.size(), 60u);
  EXPECT_EQ(lines[19], "warmup 20  10.0 img/s");
  EXPECT_EQ(lines[59], "warmup 60  20.0 img/s");  // the slow start has left the 10 s window
}

TEST(ProgressBar, ResumedRunMeasuresFromItsFirstUpdate) {
  BarOutput out;
  ProgressBar bar(out.file, "epoch 3/5", 469, out.options(false, "img", 1));
  out.now = 2;
  bar.update(201, 64, {});  // one step in 2 s, not 201
  // 0.5 steps/s for the 268 steps left: 536 s.
  EXPECT_EQ(out.text(), "epoch 3/5 201/469 42.9%  32.0 img/s  ETA 8:56\n");
}

TEST(ProgressBar, BadArguments) {
  BarOutput out;
  const ErrorKind bad = ErrorKind::InvalidArgument;
  test::expect_error([&] { ProgressBar b(nullptr, "x", 1); }, bad, {"ProgressBar('x')", "stream is null"});
  test::expect_error([&] { ProgressBar b(out.file, "x", -1); }, bad, {"total_steps -1 is negative"});
  test::expect_error([&] { ProgressBar b(out.file, "x", 1, out.options(false, "img", 0)); }, bad,
                     {"plain_every 0 is below 1"});
  auto narrow = out.options(true, "img");
  narrow.width = 0;
  test::expect_error([&] { ProgressBar b(out.file, "x", 1, narrow); }, bad, {"width 0 is below 1"});
  ProgressBar bar(out.file, "y", 5, out.options(false, "img", 100));
  bar.update(2, 1, {});
  test::expect_error([&] { bar.update(2, 1, {}); }, bad,
                     {"ProgressBar('y').update", "step 2 is not above the previous step 2"});
  test::expect_error([&] { bar.update(6, 1, {}); }, bad, {"step 6 is beyond total_steps 5"});
  test::expect_error([&] { bar.update(3, -1, {}); }, bad, {"items_in_step -1 is negative"});
}

}  // namespace
}  // namespace trainrt
