// fuzz/make_corpus.cpp — writes the seed corpus of every fuzz target (fuzz/corpus/<target>/)
// with the library's own writers: valid inputs small enough to mutate quickly, plus a few edge
// cases each (empty, truncated, wrong version, bad label). Run by hand after a format change:
//   build/fuzz/trainrt_fuzz_make_corpus fuzz/corpus
// The files it writes are checked in; it never touches fuzz/regressions/.
#define ZLIB_CONST
#include <zlib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "compile/cache_format.h"
#include "compile/disk_cache.h"
#include "compile/serialize_graph.h"
#include "core/error.h"
#include "core/sha256.h"
#include "ir/builder.h"
#include "optim/build_optimizer.h"
#include "passes/lower_mode.h"
#include "trainrt/trainrt.hpp"

namespace {

using namespace trainrt;
using namespace trainrt::detail;
namespace fs = std::filesystem;

fs::path g_root;

void write(const std::string& target, const std::string& name, std::string_view bytes) {
  const fs::path dir = g_root / target;
  fs::create_directories(dir);
  std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) fail(ErrorKind::Io, cat("make_corpus: cannot write ", (dir / name).string()));
}

std::string gzip(std::string_view in) {
  z_stream zs{};
  if (deflateInit2(&zs, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    fail(ErrorKind::Internal, "make_corpus: deflateInit2");
  std::string out(deflateBound(&zs, in.size()), '\0');
  zs.next_in = reinterpret_cast<const Bytef*>(in.data());
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) fail(ErrorKind::Internal, "make_corpus: deflate");
  return out;
}

// ---- kernel-cache entries and archives ------------------------------------------------------

std::string entry(CacheKind kind, std::string_view payload, double seconds) {
  EntryHeader h;
  h.kind = kind;
  h.key = sha256(cat("make_corpus ", kind_name(kind), " ", payload));
  h.payload_bytes = payload.size();
  h.compile_seconds = seconds;
  h.checksum = sha256(payload);
  return encode_entry_header(h) + std::string(payload);
}

void cache_corpus() {
  const std::string cpu = entry(CacheKind::cpu_module,
                                "\x7f"
                                "ELF a shared object would be here",
                                0.61);
  write("cache_entry", "cpu_module", cpu);
  write("cache_entry", "cuda_module", entry(CacheKind::cuda_module, "CUBIN bytes", 0.04));
  write("cache_entry", "program_empty_payload", entry(CacheKind::program, "", 0));
  write("cache_entry", "truncated_header", cpu.substr(0, 40));
  write("cache_entry", "truncated_payload", cpu.substr(0, cpu.size() - 3));
  std::string version = cpu;
  version[8] = 2;
  write("cache_entry", "version_2", version);

  // Archives: exported from a real cache directory.
  const fs::path dir = fs::temp_directory_path() / cat("trainrt-make-corpus-", ::getpid());
  {
    DiskCache cache(dir / "cache");
    cache.put(sha256("a"), CacheKind::cpu_module, "module a", 0.5);
    cache.put(sha256("b"), CacheKind::program, "program b", 0.25);
    cache.export_archive(dir / "two.trtarchive");
    cache.clear();
    cache.export_archive(dir / "empty.trtarchive");
  }
  auto slurp = [](const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  };
  const std::string two = slurp(dir / "two.trtarchive");
  write("cache_archive", "two_entries", two);
  write("cache_archive", "empty", slurp(dir / "empty.trtarchive"));
  write("cache_archive", "truncated", two.substr(0, two.size() - 5));
  fs::remove_all(dir);
}

// ---- IDX and CIFAR-10 ---------------------------------------------------------------------------

std::string idx(std::uint32_t magic, const std::vector<std::uint32_t>& dims, const std::string& values) {
  std::string out;
  for (std::uint32_t v : std::vector<std::uint32_t>{magic}) {
    for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<char>((v >> s) & 0xff));
  }
  for (std::uint32_t d : dims)
    for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<char>((d >> s) & 0xff));
  return out + values;
}

void data_corpus() {
  const std::string images =
      idx(0x00000803, {2, 3, 2}, std::string("\x00\x10\x20\x40\x80\xff\x01\x02\x03\x04\x05\x06", 12));
  const std::string labels = idx(0x00000801, {5}, std::string("\x03\x00\x09\x01\x09", 5));
  write("idx", "images", images);
  write("idx", "labels", labels);
  write("idx", "images.gz", gzip(images));
  write("idx", "labels_two_members.gz", gzip(labels.substr(0, 6)) + gzip(labels.substr(6)));
  write("idx", "no_images", idx(0x00000803, {0, 28, 28}, ""));
  write("idx", "float_labels", idx(0x00000D01, {1}, std::string(4, '\0')));
  write("idx", "truncated", images.substr(0, images.size() - 1));

  std::string record(1 + 3 * 32 * 32, '\0');
  for (std::size_t i = 1; i < record.size(); ++i) record[i] = static_cast<char>(i * 7);
  record[0] = 3;
  std::string second = record;
  second[0] = 9;
  write("cifar", "one_record", record);
  write("cifar", "two_records", record + second);
  std::string bad = record;
  bad[0] = 10;
  write("cifar", "label_10", bad);
  write("cifar", "truncated", record.substr(0, 100));
}

// ---- serialized graphs and compiled programs -------------------------------------------------

void graph_corpus() {
  Graph g;
  auto x = g.input("x", {4, 6});
  auto y = g.input("y", {4}, i64);
  nn::Linear fc1(g, "fc1", 6, 8), fc2(g, "fc2", 8, 3);
  const Value loss = cross_entropy(fc2(gelu(fc1(x)) * 0.5), y);
  optimizer_variable(g.impl_ptr(), kStepVariable, Shape{}, init::zeros(), i64);
  write("program_graph", "user_graph", serialize_graph(g.impl()));
  const ScheduledGraph fused = compile_training_graph(g.impl(), {id_of(loss), {}, optim::SGD{}, 7, 0, true});
  write("program_graph", "training_fused", serialize_scheduled_graph(fused));
  const ScheduledGraph eval = compile_evaluation_graph(g.impl(), {id_of(loss)}, false, DType::f32);
  write("program_graph", "evaluation_unfused", serialize_scheduled_graph(eval));
  Graph empty;
  write("program_graph", "empty_graph", serialize_graph(empty.impl()));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <fuzz/corpus folder>\n", argv[0]);
    return 2;
  }
  g_root = argv[1];
  try {
    cache_corpus();
    data_corpus();
    graph_corpus();
  } catch (const Error& e) {
    std::fprintf(stderr, "make_corpus: %s\n", e.what());
    return 1;
  }
  return 0;
}
