// A client process for the data-through-table test: random operations through `pagedkv serve`
// (add, decode batches, multi-token appends, fork, beam reorder, rewind, swap out and in, free),
// with the engine's side done for real on the server's shared pools: CacheOps executed, every new
// token's K/V written through the slot mapping. Every few steps each resident sequence is read
// back through its page table and compared with the values of its own tokens; at the end paged
// attention on the shared pool is compared with fp64 attention over the expected K/V.
//   service_data_client --target unix:PATH [--seed N] [--steps N] [--namespace NAME]
//   -> "ok steps=... ops_ok=... ops_failed=... verified_tokens=... max_abs_err=..."; exit 0
// A value is a hash of the token's whole prefix, as real K/V would be, so a page holding the
// right token ids after another prefix is caught too.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "pagedkv/attention/paged_attention.h"
#include "pagedkv/service/client.h"

namespace {

using pagedkv::BatchLayout;
using pagedkv::BlockPair;
using pagedkv::TokenId;
using pagedkv::client::MappedPool;
using pagedkv::client::StepBuilder;
using pagedkv::client::StepResult;

uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

struct RefSeq {
  std::vector<TokenId> tokens;
  std::vector<uint64_t> prefix;  // prefix[p]: hash of tokens[0..p]
  bool swapped = false;
  void Recompute(size_t from) {
    prefix.resize(tokens.size());
    for (size_t p = from; p < tokens.size(); ++p) {
      prefix[p] = Mix((p == 0 ? 0x1234 : prefix[p - 1]) ^ Mix(static_cast<uint64_t>(tokens[p])));
    }
  }
};

class DataClient {
 public:
  DataClient(int layers, int heads, int dim, int block_size, MappedPool* gpu, MappedPool* host)
      : layers_(layers), heads_(heads), dim_(dim), bs_(block_size), gpu_(gpu), host_(host) {}

  // K (kv 0) / V (kv 1) element of the token at position p of a sequence with prefix hash h.
  static float Value(uint64_t h, int layer, int kv, int head, int d) {
    const uint64_t m = Mix(h ^ Mix((uint64_t(layer) << 32) | (uint64_t(kv) << 24) |
                                   (uint64_t(head) << 12) | uint64_t(d)));
    return static_cast<float>((m >> 40) & 0xffffff) / static_cast<float>(1 << 23) - 1.0f;
  }

  float* Element(MappedPool* pool, int32_t block, int layer, int kv, int head, int slot) const {
    auto* base = reinterpret_cast<float*>(pool->BlockData(static_cast<pagedkv::BlockId>(block)));
    return base + ((((layer * 2 + kv) * heads_ + head) * bs_ + slot) * dim_);
  }

  void RunCacheOps(const pagedkv::CacheOps& ops) {
    for (const pagedkv::GroupCacheOps& g : ops.groups) {
      for (const BlockPair& p : g.swap_out) {
        std::memcpy(host_->BlockData(p.dst), gpu_->BlockData(p.src), g.bytes_per_block);
      }
      for (const BlockPair& p : g.swap_in) {
        std::memcpy(gpu_->BlockData(p.dst), host_->BlockData(p.src), g.bytes_per_block);
      }
      for (const BlockPair& p : g.copies) {
        std::memcpy(gpu_->BlockData(p.dst), gpu_->BlockData(p.src), g.bytes_per_block);
      }
    }
  }
  void CountCacheOps(const pagedkv::CacheOps& ops) {
    for (const pagedkv::GroupCacheOps& g : ops.groups) {
      copies_ += g.copies.size();
      swaps_ += g.swap_out.size() + g.swap_in.size();
    }
  }

  // Writes entry b's new tokens (skipping the first `skip`, already in cached pages).
  void Write(const BatchLayout& layout, int b, const RefSeq& r, int skip) {
    const int begin = layout.query_indptr[b], end = layout.query_indptr[b + 1];
    const int n = end - begin;
    for (int i = skip; i < n; ++i) {
      const int pos = static_cast<int>(r.tokens.size()) - n + i;
      const int64_t slot = layout.slot_mapping[begin + i];
      const int32_t block = static_cast<int32_t>(slot / bs_);
      const int off = static_cast<int>(slot % bs_);
      for (int l = 0; l < layers_; ++l) {
        for (int kv = 0; kv < 2; ++kv) {
          for (int h = 0; h < heads_; ++h) {
            float* e = Element(gpu_, block, l, kv, h, off);
            for (int d = 0; d < dim_; ++d) e[d] = Value(r.prefix[pos], l, kv, h, d);
          }
        }
      }
    }
  }

  // Every token of entry b read back through the page table.
  absl::Status Verify(const BatchLayout& layout, int b, uint64_t id, const RefSeq& r) {
    const int pages = layout.page_indptr[b + 1] - layout.page_indptr[b];
    if (static_cast<int>(r.tokens.size()) !=
        (pages == 0 ? 0 : (pages - 1) * bs_ + layout.last_page_len[b])) {
      return absl::InternalError(absl::StrCat("sequence ", id, ": the table holds ", pages,
                                              " pages for ", r.tokens.size(), " tokens"));
    }
    for (size_t pos = 0; pos < r.tokens.size(); ++pos) {
      const int32_t block = layout.page_indices[layout.page_indptr[b] + pos / bs_];
      for (int l = 0; l < layers_; ++l) {
        for (int kv = 0; kv < 2; ++kv) {
          for (int h = 0; h < heads_; ++h) {
            const float* e = Element(gpu_, block, l, kv, h, static_cast<int>(pos % bs_));
            for (int d = 0; d < dim_; ++d) {
              if (e[d] != Value(r.prefix[pos], l, kv, h, d)) {
                return absl::InternalError(absl::StrCat("sequence ", id, " token ", pos, " (block ",
                                                        block, ") layer ", l, " kv ", kv,
                                                        ": wrong data"));
              }
            }
          }
        }
      }
      ++verified_;
    }
    return absl::OkStatus();
  }

  size_t copies_ = 0, swaps_ = 0, verified_ = 0;

 private:
  int layers_, heads_, dim_, bs_;
  MappedPool* gpu_;
  MappedPool* host_;
};

int Fail(const std::string& what) {
  std::fprintf(stderr, "service_data_client: %s\n", what.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string target, ns;
  int seed = 1, steps = 400;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--target") target = argv[i + 1];
    if (flag == "--seed") seed = std::atoi(argv[i + 1]);
    if (flag == "--steps") steps = std::atoi(argv[i + 1]);
    if (flag == "--namespace") ns = argv[i + 1];
  }
  auto client = pagedkv::client::Client::Connect({.target = target});
  if (!client.ok()) return Fail(std::string(client.status().message()));
  pagedkv::v1::OpenSessionRequest open;
  open.set_client_name(absl::StrCat("data-", seed));
  open.set_cache_namespace(ns);
  auto session = pagedkv::client::Session::Open(**client, open);
  if (!session.ok()) return Fail(std::string(session.status().message()));
  const pagedkv::v1::ModelDescription& m = (*session)->model();
  auto pools = (*session)->MapPools();
  if (!pools.ok()) return Fail(std::string(pools.status().message()));
  MappedPool* gpu = pools->Find(0, pagedkv::Tier::kGpu);
  MappedPool* host = pools->Find(0, pagedkv::Tier::kHost);
  const int bs = m.block_size();
  DataClient dc(m.groups(0).layers_size(), m.num_kv_heads(), m.head_dim(), bs, gpu, host);

  std::mt19937 rng(seed);
  std::map<uint64_t, RefSeq> seqs;
  uint64_t next_id = 1;
  int ops_ok = 0, ops_failed = 0;
  int64_t cached_tokens = 0;  // prompt tokens served by prefix-cache pages
  const std::vector<std::vector<TokenId>> shared = {{1, 2, 3, 4, 5, 6, 7, 8, 9},
                                                    {11, 12, 13, 14, 15}};
  const auto resident = [&] {
    std::vector<uint64_t> out;
    for (const auto& [id, r] : seqs) {
      if (!r.swapped) out.push_back(id);
    }
    return out;
  };
  const auto pick = [&](const std::vector<uint64_t>& from) { return from[rng() % from.size()]; };
  // Reads every resident sequence back through a read-only batch (num_new_tokens 0).
  const auto verify_all = [&]() -> absl::Status {
    StepBuilder check;
    const std::vector<uint64_t> res = resident();
    if (res.empty()) return absl::OkStatus();
    for (uint64_t id : res) check.Batch(id, 0);
    auto r = (*session)->Step(check);
    if (!r.ok()) return r.status();
    if (!r->batch_status.ok()) return r->batch_status;
    for (size_t b = 0; b < res.size(); ++b) {
      if (absl::Status s = dc.Verify(r->layouts[0], static_cast<int>(b), res[b], seqs[res[b]]);
          !s.ok()) {
        return s;
      }
    }
    return absl::OkStatus();
  };

  // Sequences written in the previous step: reported computed at the start of the next one
  // (commit on compute: only then are their full pages shared).
  std::vector<uint64_t> written;
  std::vector<int64_t> written_tokens;
  for (int step = 0; step < steps; ++step) {
    StepBuilder sb;
    const int main_op = written.empty() ? 0 : 1;
    if (!written.empty()) sb.MarkComputed(written, written_tokens);
    const std::vector<uint64_t> res = resident();
    const int kind = static_cast<int>(rng() % 10);
    // The batch to write after the op: (id, tokens written from `skip` on).
    std::vector<uint64_t> batch;
    std::map<uint64_t, RefSeq> after = seqs;  // the reference if the op succeeds
    bool is_add = false;
    if (kind <= 1 || res.empty()) {
      const uint64_t id = next_id++;
      RefSeq r;
      if (rng() % 3 == 0) r.tokens = shared[rng() % shared.size()];
      const int extra = static_cast<int>(rng() % 8);
      for (int i = 0; i < extra; ++i) r.tokens.push_back(static_cast<TokenId>(rng() % 300));
      r.Recompute(0);
      sb.Add(id, r.tokens);
      after[id] = r;
      if (!r.tokens.empty()) batch.push_back(id);
      is_add = true;
    } else if (kind <= 3) {
      std::vector<uint64_t> some;
      std::vector<TokenId> toks;
      for (uint64_t id : res) {
        if (rng() % 2 == 0) continue;
        some.push_back(id);
        toks.push_back(static_cast<TokenId>(rng() % 300));
        RefSeq& r = after[id];
        r.tokens.push_back(toks.back());
        r.Recompute(r.tokens.size() - 1);
        batch.push_back(id);
      }
      if (some.empty()) {
        some.push_back(res.front());
        toks.push_back(7);
        RefSeq& r = after[res.front()];
        r.tokens.push_back(7);
        r.Recompute(r.tokens.size() - 1);
        batch.push_back(res.front());
      }
      sb.AppendBatch(some, toks);
    } else if (kind == 4) {
      const uint64_t id = pick(res);
      std::vector<TokenId> toks(1 + rng() % 5);
      for (TokenId& t : toks) t = static_cast<TokenId>(rng() % 300);
      sb.Append(id, toks);
      RefSeq& r = after[id];
      const size_t from = r.tokens.size();
      r.tokens.insert(r.tokens.end(), toks.begin(), toks.end());
      r.Recompute(from);
      batch.push_back(id);
    } else if (kind == 5) {
      const uint64_t parent = pick(res), child = next_id++;
      sb.Fork(parent, child);
      after[child] = seqs[parent];
    } else if (kind == 6) {
      std::vector<uint64_t> beams;
      const size_t len = seqs[pick(res)].tokens.size();
      for (uint64_t id : res) {
        if (seqs[id].tokens.size() == len && beams.size() < 4) beams.push_back(id);
      }
      std::vector<int32_t> parents(beams.size());
      for (int32_t& p : parents) p = static_cast<int32_t>(rng() % beams.size());
      sb.ReorderBeams(beams, parents);
      for (size_t i = 0; i < beams.size(); ++i) after[beams[i]] = seqs[beams[parents[i]]];
    } else if (kind == 7) {
      const uint64_t id = pick(res);
      const int n = static_cast<int>(rng() % (seqs[id].tokens.size() + 1));
      sb.Rewind(id, n);
      after[id].tokens.resize(n);
      after[id].Recompute(0);
    } else if (kind == 8 && host != nullptr) {
      std::vector<uint64_t> swapped;
      for (const auto& [id, r] : seqs) {
        if (r.swapped) swapped.push_back(id);
      }
      if (!swapped.empty() && rng() % 2 == 0) {
        const uint64_t id = pick(swapped);
        sb.SwapIn(std::vector<uint64_t>{id});
        after[id].swapped = false;
      } else {
        const uint64_t id = pick(res);
        sb.SwapOut(std::vector<uint64_t>{id});
        after[id].swapped = true;
      }
    } else {
      const uint64_t id = pick(std::vector<uint64_t>(res.begin(), res.end()));
      sb.Free(std::vector<uint64_t>{id});
      after.erase(id);
    }
    for (uint64_t id : batch) {
      const int n =
          static_cast<int>(after[id].tokens.size() - (is_add ? 0 : seqs[id].tokens.size()));
      sb.Batch(id, n);
    }
    auto r = (*session)->Step(sb);
    if (!r.ok()) return Fail(absl::StrCat("step ", step, ": ", r.status().message()));
    if (main_op == 1 && !r->op_status[0].ok()) {
      return Fail(absl::StrCat("step ", step, ": mark_computed: ", r->op_status[0].ToString()));
    }
    written.clear();
    written_tokens.clear();
    const absl::Status& op = r->op_status[main_op];
    if (!op.ok()) {
      // Running out of blocks is expected under this pressure; anything else is a bug.
      if (op.code() != absl::StatusCode::kResourceExhausted) {
        return Fail(absl::StrCat("step ", step, ": unexpected ", op.ToString()));
      }
      ++ops_failed;
      if (!r->ops.empty()) return Fail("a failed op returned CacheOps");
      continue;
    }
    ++ops_ok;
    if (!r->ops_executed_by_server) dc.RunCacheOps(r->ops);
    dc.CountCacheOps(r->ops);
    seqs = std::move(after);
    if (!batch.empty()) {
      if (!r->batch_status.ok()) return Fail(absl::StrCat("batch: ", r->batch_status.ToString()));
      for (size_t b = 0; b < batch.size(); ++b) {
        const int skip = is_add ? r->op_results[main_op].num_cached_tokens() : 0;
        cached_tokens += skip;
        dc.Write(r->layouts[0], static_cast<int>(b), seqs[batch[b]], skip);
        written.push_back(batch[b]);
        written_tokens.push_back(static_cast<int64_t>(seqs[batch[b]].tokens.size()));
      }
    }
    if (step % 8 == 7) {
      if (absl::Status s = verify_all(); !s.ok()) {
        return Fail(absl::StrCat("step ", step, ": ", s.message()));
      }
    }
  }
  if (absl::Status s = verify_all(); !s.ok()) return Fail(std::string(s.message()));

  // Paged attention on the shared pool against fp64 over the expected K/V.
  double max_abs_err = 0;
  const std::vector<uint64_t> res = resident();
  std::vector<uint64_t> live;
  for (uint64_t id : res) {
    if (!seqs[id].tokens.empty()) live.push_back(id);
  }
  if (!live.empty()) {
    StepBuilder sb;
    for (uint64_t id : live) sb.Batch(id, 0);
    auto r = (*session)->Step(sb);
    if (!r.ok() || !r->batch_status.ok()) return Fail("attention batch");
    const BatchLayout& layout = r->layouts[0];
    const int hq = m.num_q_heads(), hk = m.num_kv_heads(), d = m.head_dim();
    for (int l = 0; l < m.groups(0).layers_size(); ++l) {
      pagedkv::PagedKVView view = pagedkv::PagedKVView::ForLayer(
          gpu->base(), pagedkv::DType::kFp32, static_cast<int32_t>(gpu->num_blocks()),
          m.groups(0).layers_size(), l, hk, d, bs);
      view.batch_size = layout.batch_size();
      view.page_indptr = layout.page_indptr.data();
      view.page_indices = layout.page_indices.data();
      view.last_page_len = layout.last_page_len.data();
      std::vector<float> q(live.size() * hq * d), out(q.size());
      for (float& x : q) x = static_cast<float>(rng() % 2000) / 1000.0f - 1.0f;
      pagedkv::QueryBatch qb{.q = q.data(),
                             .out = out.data(),
                             .dtype = pagedkv::DType::kFp32,
                             .num_q_heads = hq,
                             .num_tokens = static_cast<int64_t>(live.size())};
      if (absl::Status s =
              pagedkv::PagedAttentionDecode(view, qb, {.backend = pagedkv::Backend::kCpu});
          !s.ok()) {
        return Fail(std::string(s.message()));
      }
      for (size_t b = 0; b < live.size(); ++b) {
        const RefSeq& ref = seqs[live[b]];
        for (int h = 0; h < hq; ++h) {
          const int kvh = h / (hq / hk);
          const float* qv = &q[(b * hq + h) * d];
          std::vector<double> p(ref.tokens.size());
          double mx = -1e300, sum = 0;
          for (size_t t = 0; t < p.size(); ++t) {
            double s = 0;
            for (int e = 0; e < d; ++e)
              s += qv[e] * double(DataClient::Value(ref.prefix[t], l, 0, kvh, e));
            p[t] = s / std::sqrt(double(d));
            mx = std::max(mx, p[t]);
          }
          for (double& x : p) sum += (x = std::exp(x - mx));
          for (int e = 0; e < d; ++e) {
            double want = 0;
            for (size_t t = 0; t < p.size(); ++t)
              want += p[t] / sum * DataClient::Value(ref.prefix[t], l, 1, kvh, e);
            max_abs_err = std::max(max_abs_err, std::abs(want - out[(b * hq + h) * d + e]));
          }
        }
      }
    }
  }
  std::vector<uint64_t> all;
  for (const auto& [id, r] : seqs) all.push_back(id);
  if (!all.empty()) {
    StepBuilder sb;
    sb.Free(all);
    auto r = (*session)->Step(sb);
    if (!r.ok() || !r->FirstError().ok()) return Fail("final free");
  }
  auto stats = (*session)->Stats();
  if (!stats.ok() || stats->session().gpu_blocks_used() != 0 ||
      stats->session().host_blocks_used() != 0) {
    return Fail("blocks left after freeing everything");
  }
  if (!(*session)->Close().ok()) return Fail("close");
  std::printf(
      "ok steps=%d ops_ok=%d ops_failed=%d copies=%zu swaps=%zu cached_tokens=%lld "
      "verified_tokens=%zu "
      "max_abs_err=%.3g\n",
      steps, ops_ok, ops_failed, dc.copies_, dc.swaps_, static_cast<long long>(cached_tokens),
      dc.verified_, max_abs_err);
  return max_abs_err < 1e-4 ? 0 : 1;
}
