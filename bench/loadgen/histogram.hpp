// A log-linear latency histogram in the spirit of HdrHistogram: values in nanoseconds, 64
// sub-buckets per power of two (under 1.6% relative error), from 1 ns to about 2^40 ns (18 min).
// Fixed size, no allocation per record, mergeable across processes through a compact text form.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace bench {

class Histogram {
 public:
  static constexpr int kSubBits = 6;                      // 64 sub-buckets per octave
  static constexpr std::size_t kBuckets = 64 * 36 + 128;  // up to 2^41 ns

  void record(std::uint64_t ns) {
    std::size_t idx = index_of(ns);
    if (idx >= kBuckets) idx = kBuckets - 1;
    ++counts_[idx];
    ++total_;
    sum_ += ns;
    max_ = std::max(max_, ns);
    min_ = std::min(min_, ns);
  }

  std::uint64_t count() const { return total_; }
  std::uint64_t max() const { return total_ ? max_ : 0; }
  std::uint64_t min() const { return total_ ? min_ : 0; }
  double mean() const {
    return total_ ? static_cast<double>(sum_) / static_cast<double>(total_) : 0;
  }

  // The value at quantile q (0..1): the upper edge of the bucket holding it, capped by the max.
  std::uint64_t quantile(double q) const {
    if (total_ == 0) return 0;
    auto rank = static_cast<std::uint64_t>(q * static_cast<double>(total_) + 0.5);
    rank = std::clamp<std::uint64_t>(rank, 1, total_);
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < kBuckets; ++i) {
      seen += counts_[i];
      if (seen >= rank) return std::min(upper_edge(i), max_);
    }
    return max_;
  }

  void merge(const Histogram& o) {
    for (std::size_t i = 0; i < kBuckets; ++i) counts_[i] += o.counts_[i];
    total_ += o.total_;
    sum_ += o.sum_;
    if (o.total_) {
      max_ = std::max(max_, o.max_);
      min_ = std::min(min_, o.min_);
    }
  }

  // "total,sum,min,max;idx:count;idx:count..." (only non-empty buckets).
  std::string serialize() const {
    std::string out = std::to_string(total_) + "," + std::to_string(sum_) + "," +
                      std::to_string(min()) + "," + std::to_string(max());
    for (std::size_t i = 0; i < kBuckets; ++i) {
      if (counts_[i] == 0) continue;
      out += ';';
      out += std::to_string(i);
      out += ':';
      out += std::to_string(counts_[i]);
    }
    return out;
  }

  static Histogram parse(std::string_view text) {
    Histogram h;
    unsigned long long total = 0, sum = 0, mn = 0, mx = 0;
    const std::string head(text.substr(0, text.find(';')));
    if (std::sscanf(head.c_str(), "%llu,%llu,%llu,%llu", &total, &sum, &mn, &mx) != 4) return h;
    h.total_ = total;
    h.sum_ = sum;
    h.min_ = total ? mn : UINT64_MAX;
    h.max_ = mx;
    std::size_t pos = text.find(';');
    while (pos != std::string_view::npos) {
      const std::size_t next = text.find(';', pos + 1);
      const std::string item(
          text.substr(pos + 1, next == std::string_view::npos ? next : next - pos - 1));
      unsigned long long idx = 0, cnt = 0;
      if (std::sscanf(item.c_str(), "%llu:%llu", &idx, &cnt) == 2 && idx < kBuckets) {
        h.counts_[idx] += cnt;
      }
      pos = next;
    }
    return h;
  }

 private:
  static std::size_t index_of(std::uint64_t v) {
    if (v < 128) return static_cast<std::size_t>(v);
    const int msb = 63 - std::countl_zero(v);
    const int shift = msb - kSubBits;  // v >> shift lies in [64, 127]
    return static_cast<std::size_t>(64 * shift) + static_cast<std::size_t>(v >> shift);
  }
  static std::uint64_t upper_edge(std::size_t idx) {
    if (idx < 128) return idx;
    const std::size_t shift = idx / 64 - 1;
    const std::uint64_t mantissa = idx % 64 + 64;
    return ((mantissa + 1) << shift) - 1;
  }

  std::array<std::uint64_t, kBuckets> counts_{};
  std::uint64_t total_ = 0;
  std::uint64_t sum_ = 0;
  std::uint64_t max_ = 0;
  std::uint64_t min_ = UINT64_MAX;
};

}  // namespace bench
