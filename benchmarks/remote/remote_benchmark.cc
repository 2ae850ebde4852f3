// Loading prefix pages from the remote tier on a loopback Redis server: 64 pages of Llama-3-8B's
// page size (block size 16: 2 MiB each), fetched and verified in one pipelined round trip, against
// one round trip per page. Each run also reports, from the simulator's step-time model, how long
// an H100 takes to recompute the same tokens instead (compute, not measured) and, at the load
// rate this run measured, the shortest prefix (tokens) from which loading beats recomputing for
// Llama-3-8B and Llama-3-70B (docs/performance.md).
//
// The benchmark starts its own redis-server on 127.0.0.1 (tests/remote/redis_servers.cc) and
// reports an error for each benchmark when redis-server is not installed.
#include <cstdlib>
#include <memory>
#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "benchmark/benchmark.h"
#include "pagedkv/remote/remote_tier.h"
#include "pagedkv/scheduler/step_time_model.h"
#include "tests/remote/redis_servers.h"

namespace pagedkv {
namespace {

constexpr int32_t kBlockSize = 16;

struct Fixture {
  std::unique_ptr<testing::RedisServers> servers;
  std::unique_ptr<RemoteTier> tier;
  std::vector<BlockHash> chain;
  uint64_t page_bytes = 0;
  std::string error;
};

ModelSpec Llama3() {
  absl::StatusOr<ModelSpec> spec = ModelSpec::Preset("llama-3-8b");
  if (!spec.ok()) std::abort();
  return *spec;
}

// One server and 64 stored pages, shared by every benchmark of the run.
Fixture& Shared() {
  static Fixture* f = [] {
    auto* fx = new Fixture;
    if (auto why = testing::RedisServers::MissingBinaries()) {
      fx->error = *why;
      return fx;
    }
    fx->servers = std::make_unique<testing::RedisServers>();
    absl::StatusOr<int> port = fx->servers->StartStandalone();
    if (!port.ok()) {
      fx->error = std::string(port.status().message());
      return fx;
    }
    const ModelSpec spec = Llama3();
    RemoteTierConfig cfg;
    cfg.url = absl::StrCat("redis://127.0.0.1:", *port);
    cfg.timeout_us = 10'000'000;
    cfg.queue_bytes = 1ull << 30;
    absl::StatusOr<std::unique_ptr<RemoteTier>> tier = RemoteTier::Create(cfg, spec, kBlockSize);
    if (!tier.ok()) {
      fx->error = std::string(tier.status().message());
      return fx;
    }
    fx->tier = std::move(*tier);
    fx->page_bytes =
        static_cast<uint64_t>(spec.num_layers()) * spec.BytesPerTokenPerLayer() * kBlockSize;
    fx->tier->SetGroup(0, fx->page_bytes);
    std::vector<std::byte> page(fx->page_bytes);
    std::vector<TokenId> tokens(kBlockSize);
    for (uint64_t i = 0; i < 64; ++i) {
      for (size_t b = 0; b < page.size(); b += 4096) page[b] = static_cast<std::byte>(i + b);
      for (int32_t t = 0; t < kBlockSize; ++t) tokens[t] = static_cast<TokenId>(i * 100 + t);
      fx->chain.push_back({i * 0x9e3779b97f4a7c15ull + 1, i + 7});
      if (!fx->tier->Enqueue(0, fx->chain.back(), tokens, page.data())) fx->error = "queue full";
    }
    if (!fx->tier->Flush(absl::Seconds(60))) fx->error = "writing the pages took over 60 s";
    return fx;
  }();
  return *f;
}

// The simulator's step-time model of `preset` on an H100, or nullopt when a preset is missing.
std::optional<StepTimeModel> H100Model(const char* preset) {
  absl::StatusOr<ModelSpec> spec = ModelSpec::Preset(preset);
  absl::StatusOr<GpuSpec> gpu = GpuSpec::Preset("h100");
  if (!spec.ok() || !gpu.ok()) return std::nullopt;
  absl::StatusOr<ModelCompute> mc = ModelCompute::ForModel(*spec);
  if (!mc.ok()) return std::nullopt;
  return StepTimeModel(*gpu, *mc);
}

// What the simulator's roofline says an H100 spends recomputing `tokens` prefix tokens of
// Llama-3-8B (one prefill chunk: weights read once, compute-bound beyond a few hundred tokens),
// minus the fixed per-step overhead.
double RecomputeSeconds(int64_t tokens) {
  const std::optional<StepTimeModel> model = H100Model("llama-3-8b");
  if (!model) return 0;
  return model->StepSeconds({{.query_tokens = tokens, .context_tokens = 0}}, {}) -
         model->StepSeconds({}, {});
}

// The shortest cached prefix (tokens, powers of two up to 1M) that loads faster at
// `bytes_per_s` than an H100 recomputes it, under the simulator's step-time model, for a request
// whose prompt adds kSuffixTokens new tokens to the prefix: recomputing costs
// step(prefill prefix + suffix) - step(prefill suffix over the cached prefix); loading costs the
// prefix's KV bytes at the measured rate. -1 when no length up to 1M tokens does.
constexpr int64_t kSuffixTokens = 256;
double BreakevenTokens(const char* preset, double bytes_per_s) {
  const std::optional<StepTimeModel> model = H100Model(preset);
  if (!model || bytes_per_s <= 0) return -1;
  const ModelSpec spec = *ModelSpec::Preset(preset);
  const double bytes_per_token =
      static_cast<double>(spec.num_layers()) * static_cast<double>(spec.BytesPerTokenPerLayer());
  for (int64_t n = kBlockSize; n <= (int64_t{1} << 20); n *= 2) {
    const double recompute =
        model->StepSeconds({{.query_tokens = n + kSuffixTokens, .context_tokens = 0}}, {}) -
        model->StepSeconds({{.query_tokens = kSuffixTokens, .context_tokens = n}}, {});
    if (static_cast<double>(n) * bytes_per_token / bytes_per_s < recompute) {
      return static_cast<double>(n);
    }
  }
  return -1;
}

void Report(benchmark::State& state, int64_t pages) {
  Fixture& f = Shared();
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * pages *
                          static_cast<int64_t>(f.page_bytes));
  state.counters["pages"] = static_cast<double>(pages);
  state.counters["tokens"] = static_cast<double>(pages * kBlockSize);
  state.counters["h100_recompute_s"] = RecomputeSeconds(pages * kBlockSize);
}

// Report plus, from this run's load rate, the break-even prefix lengths of two models.
void ReportBreakeven(benchmark::State& state, int64_t pages, double seconds) {
  Report(state, pages);
  const double rate = static_cast<double>(pages) * static_cast<double>(Shared().page_bytes) *
                      static_cast<double>(state.iterations()) / seconds;
  state.counters["breakeven_tokens_llama3_8b"] = BreakevenTokens("llama-3-8b", rate);
  state.counters["breakeven_tokens_llama3_70b"] = BreakevenTokens("llama-3-70b", rate);
}

// All pages in one MultiGet (one pipelined round trip), each verified (header and checksum).
void BM_LoadPipelined(benchmark::State& state) {
  Fixture& f = Shared();
  if (!f.error.empty()) return state.SkipWithError(f.error.c_str());
  const int64_t pages = state.range(0);
  std::vector<RemoteTier::Hit> hits;
  const absl::Time start = absl::Now();
  for (auto _ : state) {
    const int32_t n = f.tier->LookupPrefix(0, absl::MakeConstSpan(f.chain).first(pages), &hits);
    if (n != pages) return state.SkipWithError("pages missing from the store");
  }
  ReportBreakeven(state, pages, absl::ToDoubleSeconds(absl::Now() - start));
}
BENCHMARK(BM_LoadPipelined)->Arg(1)->Arg(8)->Arg(64)->Unit(benchmark::kMillisecond)->UseRealTime();

// 64 pages in round trips of `window` pages each (experiment).
void BM_LoadWindowed(benchmark::State& state) {
  Fixture& f = Shared();
  if (!f.error.empty()) return state.SkipWithError(f.error.c_str());
  const int64_t pages = 64, window = state.range(0);
  std::vector<RemoteTier::Hit> hits;
  const absl::Time start = absl::Now();
  for (auto _ : state) {
    for (int64_t i = 0; i < pages; i += window) {
      f.tier->LookupPrefix(0, absl::MakeConstSpan(&f.chain[i], window), &hits);
    }
  }
  ReportBreakeven(state, pages, absl::ToDoubleSeconds(absl::Now() - start));
}
BENCHMARK(BM_LoadWindowed)
    ->Arg(2)
    ->Arg(4)
    ->Arg(8)
    ->Arg(16)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// The naive design: one round trip per page.
void BM_LoadOneRoundTripPerPage(benchmark::State& state) {
  Fixture& f = Shared();
  if (!f.error.empty()) return state.SkipWithError(f.error.c_str());
  const int64_t pages = state.range(0);
  std::vector<RemoteTier::Hit> hits;
  const absl::Time start = absl::Now();
  for (auto _ : state) {
    for (int64_t i = 0; i < pages; ++i) {
      if (f.tier->LookupPrefix(0, absl::MakeConstSpan(&f.chain[i], 1), &hits) != 1) {
        return state.SkipWithError("page missing from the store");
      }
    }
  }
  ReportBreakeven(state, pages, absl::ToDoubleSeconds(absl::Now() - start));
}
BENCHMARK(BM_LoadOneRoundTripPerPage)
    ->Arg(8)
    ->Arg(64)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace pagedkv

BENCHMARK_MAIN();
