// data/dataset.cpp — TensorDataset: samples that are rows of tensors already in memory.
#include <cstring>
#include <set>

#include "core/error.h"
#include "trainrt/data.hpp"

namespace trainrt::data {

using detail::cat;
using detail::fail;

TensorDataset::TensorDataset(std::vector<std::pair<std::string, Tensor>> columns) : columns_(std::move(columns)) {
  if (columns_.empty()) fail(ErrorKind::InvalidArgument, "TensorDataset: no columns (give at least one named tensor)");
  std::set<std::string> names;
  for (const auto& [name, t] : columns_) {
    if (name.empty()) fail(ErrorKind::InvalidArgument, "TensorDataset: a column has an empty name");
    if (!names.insert(name).second)
      fail(ErrorKind::InvalidArgument, cat("TensorDataset: the column name '", name, "' is used twice"));
    if (!t.defined())
      fail(ErrorKind::InvalidArgument, cat("TensorDataset: column '", name, "' is an undefined tensor"));
    if (t.shape().rank() == 0)
      fail(ErrorKind::InvalidArgument,
           cat("TensorDataset: column '", name, "' is a scalar; it needs a leading dimension of samples"));
    const std::int64_t n = t.shape()[0];
    const auto& first = columns_.front();
    if (n != first.second.shape()[0])
      fail(ErrorKind::InvalidArgument,
           cat("TensorDataset: columns disagree in their number of samples: '", first.first, "' is ",
               first.second.shape().to_string(), " but '", name, "' is ", t.shape().to_string()));
  }
  size_ = columns_.front().second.shape()[0];
}

std::vector<Field> TensorDataset::fields() const {
  std::vector<Field> out;
  for (const auto& [name, t] : columns_) {
    const std::vector<std::int64_t>& dims = t.shape().dims();
    out.push_back({name, t.dtype(), Shape(std::vector<std::int64_t>(dims.begin() + 1, dims.end()))});
  }
  return out;
}

void TensorDataset::read(std::int64_t index, std::span<void* const> out) const {
  for (std::size_t i = 0; i < columns_.size(); ++i) {
    const Tensor& t = columns_[i].second;
    const std::size_t row = t.nbytes() / static_cast<std::size_t>(size_);  // size_ > 0 whenever read is called
    std::memcpy(out[i], static_cast<const unsigned char*>(t.raw_data()) + static_cast<std::size_t>(index) * row, row);
  }
}

const Tensor& TensorDataset::column(std::string_view name) const {
  std::string known;
  for (const auto& [n, t] : columns_) {
    if (n == name) return t;
    known += cat(known.empty() ? "" : ", ", n);
  }
  fail(ErrorKind::NotFound, cat("TensorDataset::column: no column '", name, "'; the columns are: ", known));
}

}  // namespace trainrt::data
