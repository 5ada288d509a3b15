#include "wsbridge/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <stdexcept>
#include <variant>

namespace wsbridge::metrics {

namespace {

std::string escape_label(std::string_view v) {
  std::string out;
  for (const char c : v) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string render_labels(const Labels& labels, const std::string& extra = "") {
  if (labels.empty() && extra.empty()) return "";
  std::string out = "{";
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (i > 0) out += ',';
    out += labels[i].first + "=\"" + escape_label(labels[i].second) + "\"";
  }
  if (!extra.empty()) out += (labels.empty() ? "" : ",") + extra;
  return out + "}";
}

std::string number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  std::ostringstream s;
  s.precision(12);
  s << v;
  return s.str();
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)),
      buckets_(std::make_unique<std::atomic<std::uint64_t>[]>(bounds_.size())) {
  std::sort(bounds_.begin(), bounds_.end());
}

void Histogram::observe(double seconds) {
  const auto it = std::lower_bound(bounds_.begin(), bounds_.end(), seconds);
  if (it != bounds_.end()) {
    buckets_[static_cast<std::size_t>(it - bounds_.begin())].fetch_add(1,
                                                                       std::memory_order_relaxed);
  }
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(static_cast<std::uint64_t>(std::max(0.0, seconds) * 1e9),
                    std::memory_order_relaxed);
}

std::vector<double> latency_buckets() {
  return {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
          0.025,   0.05,   0.1,     0.25,   0.5,   1,      2.5,   5};
}

struct Registry::Family {
  std::string help;
  std::string type;
  // One series per label set, in insertion order of first use.
  std::vector<std::pair<Labels, std::variant<std::unique_ptr<Counter>, std::unique_ptr<Gauge>,
                                             std::unique_ptr<Histogram>>>>
      series;
};

Registry& Registry::global() {
  static Registry instance;
  return instance;
}

Registry::Family& Registry::family(std::string_view name, std::string_view help,
                                   std::string_view type) {
  auto it = families_.find(name);
  if (it == families_.end()) {
    auto f = std::make_unique<Family>();
    f->help = std::string(help);
    f->type = std::string(type);
    it = families_.emplace(std::string(name), std::move(f)).first;
  } else if (it->second->type != type) {
    throw std::logic_error("metric " + std::string(name) + " registered with two types");
  }
  return *it->second;
}

Counter& Registry::counter(std::string_view name, std::string_view help, const Labels& labels) {
  std::lock_guard lock(mutex_);
  Family& f = family(name, help, "counter");
  for (auto& [l, s] : f.series) {
    if (l == labels) return *std::get<std::unique_ptr<Counter>>(s);
  }
  auto& s = f.series.emplace_back(labels, std::make_unique<Counter>()).second;
  return *std::get<std::unique_ptr<Counter>>(s);
}

Gauge& Registry::gauge(std::string_view name, std::string_view help, const Labels& labels) {
  std::lock_guard lock(mutex_);
  Family& f = family(name, help, "gauge");
  for (auto& [l, s] : f.series) {
    if (l == labels) return *std::get<std::unique_ptr<Gauge>>(s);
  }
  auto& s = f.series.emplace_back(labels, std::make_unique<Gauge>()).second;
  return *std::get<std::unique_ptr<Gauge>>(s);
}

Histogram& Registry::histogram(std::string_view name, std::string_view help, const Labels& labels,
                               std::vector<double> bounds) {
  std::lock_guard lock(mutex_);
  Family& f = family(name, help, "histogram");
  for (auto& [l, s] : f.series) {
    if (l == labels) return *std::get<std::unique_ptr<Histogram>>(s);
  }
  auto& s = f.series.emplace_back(labels, std::make_unique<Histogram>(std::move(bounds))).second;
  return *std::get<std::unique_ptr<Histogram>>(s);
}

std::string Registry::render() const {
  std::lock_guard lock(mutex_);
  std::string out;
  for (const auto& [name, f] : families_) {
    out += "# HELP " + name + " " + f->help + "\n# TYPE " + name + " " + f->type + "\n";
    for (const auto& [labels, s] : f->series) {
      if (auto* c = std::get_if<std::unique_ptr<Counter>>(&s)) {
        out += name + render_labels(labels) + " " + std::to_string((*c)->value()) + "\n";
      } else if (auto* g = std::get_if<std::unique_ptr<Gauge>>(&s)) {
        out += name + render_labels(labels) + " " + std::to_string((*g)->value()) + "\n";
      } else {
        const Histogram& h = *std::get<std::unique_ptr<Histogram>>(s);
        std::uint64_t cumulative = 0;
        for (std::size_t i = 0; i < h.bounds().size(); ++i) {
          cumulative += h.bucket(i);
          out += name + "_bucket" + render_labels(labels, "le=\"" + number(h.bounds()[i]) + "\"") +
                 " " + std::to_string(cumulative) + "\n";
        }
        out += name + "_bucket" + render_labels(labels, "le=\"+Inf\"") + " " +
               std::to_string(h.count()) + "\n";
        out += name + "_sum" + render_labels(labels) + " " + number(h.sum()) + "\n";
        out += name + "_count" + render_labels(labels) + " " + std::to_string(h.count()) + "\n";
      }
    }
  }
  return out;
}

}  // namespace wsbridge::metrics
