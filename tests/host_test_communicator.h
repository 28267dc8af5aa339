// tests/host_test_communicator.h — an in-test bootstrap Communicator over host memory: one
// process playing rank `rank` of `size`. With size 1 it is a real single-rank communicator
// (every collective is a copy or nothing); with size > 1 it stands in for the other ranks,
// answering all_reduce(max) of one i32 with `peer_max` (what the others contributed) and
// recording what this rank sent, so that tests can check the NCCL bootstrap protocol.
#pragma once

#include <cstring>
#include <vector>

#include "trainrt/dist.hpp"

namespace trainrt::test {

class HostTestCommunicator final : public dist::Communicator {
 public:
  explicit HostTestCommunicator(int rank = 0, int size = 1, bool device_memory = false)
      : rank_(rank), size_(size), device_memory_(device_memory) {}

  int rank() const noexcept override { return rank_; }
  int size() const noexcept override { return size_; }
  std::string_view backend() const noexcept override { return "host-test"; }
  bool device_memory() const noexcept override { return device_memory_; }
  std::chrono::milliseconds default_timeout() const noexcept override { return std::chrono::seconds(10); }

  void all_reduce(void* data, std::size_t count, DType dtype, dist::ReduceOp op, std::chrono::milliseconds) override {
    ++all_reduces;
    if (count == 1 && dtype == DType::i32) {
      std::int32_t v = 0;
      std::memcpy(&v, data, sizeof v);
      sent_i32.push_back(v);
      if (size_ > 1 && op == dist::ReduceOp::max && peer_max > v) std::memcpy(data, &peer_max, sizeof v);
    }
  }
  void reduce_scatter(const void* send, void* recv, std::size_t recv_count, DType dtype, dist::ReduceOp,
                      std::chrono::milliseconds) override {
    if (send != recv) std::memmove(recv, send, recv_count * size_of(dtype));
  }
  void all_gather(const void* send, void* recv, std::size_t send_count, DType dtype,
                  std::chrono::milliseconds) override {
    if (send != recv) std::memmove(recv, send, send_count * size_of(dtype));
  }
  void broadcast(void* data, std::size_t count, DType dtype, int root, std::chrono::milliseconds) override {
    ++broadcasts;
    broadcast_bytes += count * size_of(dtype);
    (void)data;
    (void)root;
  }
  void barrier(std::chrono::milliseconds) override {}

  std::int32_t peer_max = 0;  // what the other ranks contribute to all_reduce(max)
  int all_reduces = 0;        // calls seen
  int broadcasts = 0;
  std::size_t broadcast_bytes = 0;
  std::vector<std::int32_t> sent_i32;  // this rank's single-i32 all_reduce contributions

 private:
  int rank_;
  int size_;
  bool device_memory_;
};

}  // namespace trainrt::test
