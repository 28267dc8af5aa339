// data/files.h — whole-file reading and gzip decompression for the dataset readers.
#pragma once

#include <string>
#include <vector>

namespace trainrt::detail {

using Bytes = std::vector<unsigned char>;

/// The whole file `path`. `who` prefixes messages ("read_idx_images") and `what` names the
/// kind of file expected ("an IDX file"). Throws trainrt::Error: NotFound for a missing file,
/// Io for a directory or a read error, each naming the file.
Bytes read_file_bytes(const std::string& path, const char* who, const char* what);

/// True when `bytes` start with gzip's magic bytes (compression is recognized by content,
/// never by name).
bool is_gzip(const Bytes& bytes);

/// Decompresses a gzip file held in memory. Concatenated members (as `cat a.gz b.gz` makes)
/// are one stream, as gzip(1) reads them. A stream that ends early, fails its CRC or has
/// bytes after its last member throws trainrt::Error (Io) naming `path`.
Bytes gunzip(const Bytes& in, const std::string& path, const char* who);

}  // namespace trainrt::detail
