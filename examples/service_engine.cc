// A toy inference engine loop against `pagedkv serve`, in C++: the server keeps the block tables,
// this process keeps the K/V, in the server's own shared pools (mapped through the pool socket).
// Each step the engine
//   1. sends one Step: admissions (add + prefill), forks for parallel samples, the decode batch
//      (append_batch), frees of finished requests, and the batch to lay out;
//   2. runs the returned CacheOps (copy-on-write copies, swaps) on the mapped pools;
//   3. writes the step's new K/V through the slot mapping (WriteKV);
//   4. runs paged attention (CPU, extend form) over the page table and checks every entry's
//      last row against dense fp64 attention over the sequence's own tokens;
//   5. "samples" the next tokens.
// The model is the toy shape of the service tests (2 layers, 2 KV heads of 16, fp32); K/V rows
// depend on (token, position, layer) only.
//
//   pagedkv serve --model toy.json --gpu-blocks 64 --host-blocks 32 --block-size 4 &
//   build/examples/service_engine --target unix:$XDG_RUNTIME_DIR/pagedkv/serve.sock
//   -> finished=16 steps=... forks=... cow_copies=... max_abs_err=...
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "pagedkv/attention/cache_ops.h"
#include "pagedkv/attention/paged_attention.h"
#include "pagedkv/service/client.h"

namespace {

using pagedkv::BatchLayout;
using pagedkv::BlockPair;
using pagedkv::TokenId;
using pagedkv::client::MappedPool;
using pagedkv::client::StepBuilder;
using pagedkv::client::StepResult;

struct Shape {
  int layers = 0, kv_heads = 0, q_heads = 0, head_dim = 0, block_size = 0;
};

// K (kv = 0) or V (kv = 1) element of a token: a function of (token, position, layer) only.
float KvValue(TokenId token, int pos, int layer, int kv, int head, int d) {
  const double base = token * 0.37 + pos * 0.011 + layer * 0.5;
  return kv == 0 ? static_cast<float>(std::sin(base + 0.3 * head + 0.07 * d))
                 : static_cast<float>(std::cos(base * 1.3 + 0.2 * head - 0.05 * d));
}

struct Request {
  uint64_t id = 0;
  std::vector<TokenId> tokens;  // prompt, then generated tokens
  int prompt_len = 0;
  int max_new = 0;
  bool fork_at_prefill = false;  // parallel sampling: a second sample shares the prompt's pages
};

int Fail(const char* what, const absl::Status& s) {
  std::fprintf(stderr, "service_engine: %s: %s\n", what, std::string(s.message()).c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string target;
  int num_requests = 16, max_running = 6, seed = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--target") target = argv[i + 1];
    if (flag == "--requests") num_requests = std::atoi(argv[i + 1]);
    if (flag == "--max-running") max_running = std::atoi(argv[i + 1]);
    if (flag == "--seed") seed = std::atoi(argv[i + 1]);
  }
  if (target.empty()) {
    std::fprintf(stderr, "usage: %s --target unix:PATH [--requests N] [--max-running N]\n",
                 argv[0]);
    return 2;
  }
  auto client = pagedkv::client::Client::Connect({.target = target});
  if (!client.ok()) return Fail("connect", client.status());
  pagedkv::v1::OpenSessionRequest open;
  open.set_client_name("service_engine.cc");
  auto session = pagedkv::client::Session::Open(**client, open);
  if (!session.ok()) return Fail("open session", session.status());
  const pagedkv::v1::ModelDescription& model = (*session)->model();
  const Shape shape{model.groups(0).layers_size(), model.num_kv_heads(), model.num_q_heads(),
                    model.head_dim(), model.block_size()};
  if (model.kv_dtype() != "fp32" || model.groups_size() != 1) {
    std::fprintf(stderr, "service_engine: needs a one-group fp32 model (got %s, %d groups)\n",
                 model.kv_dtype().c_str(), model.groups_size());
    return 2;
  }
  auto pools = (*session)->MapPools();
  if (!pools.ok()) return Fail("map pools", pools.status());
  MappedPool* gpu = pools->Find(0, pagedkv::Tier::kGpu);
  MappedPool* host = pools->Find(0, pagedkv::Tier::kHost);
  if (gpu == nullptr) return Fail("map pools", absl::NotFoundError("no shared GPU pool"));

  std::mt19937 rng(seed);
  std::deque<Request> waiting;
  for (int i = 0; i < num_requests; ++i) {
    Request r;
    r.id = 1 + 2 * static_cast<uint64_t>(i);  // odd ids; a fork child takes id + 1
    r.prompt_len = 1 + static_cast<int>(rng() % 11);
    for (int t = 0; t < r.prompt_len; ++t) r.tokens.push_back(static_cast<TokenId>(rng() % 500));
    r.max_new = 2 + static_cast<int>(rng() % 6);
    r.fork_at_prefill = i % 3 == 0;
    waiting.push_back(std::move(r));
  }
  std::map<uint64_t, Request> running;  // includes fork children
  std::vector<uint64_t> to_free;
  std::vector<uint64_t> computed;  // written in the last step: reported in the next
  std::vector<int64_t> computed_tokens;
  int finished = 0, steps = 0, forks = 0;
  size_t cow_copies = 0;
  double max_abs_err = 0;
  const uint64_t bpb = gpu->bytes_per_block();

  while ((finished < num_requests || !running.empty()) && steps < 10000) {
    ++steps;
    StepBuilder step;
    std::vector<uint64_t> decode;
    std::vector<TokenId> next;
    for (auto& [id, r] : running) {
      const TokenId t = static_cast<TokenId>(rng() % 500);
      decode.push_back(id);
      next.push_back(t);
    }
    // Commit on compute: the K/V written last step is reported, so full pages become shareable.
    if (!computed.empty()) step.MarkComputed(computed, computed_tokens);
    if (!to_free.empty()) step.Free(to_free);
    if (!decode.empty()) step.AppendBatch(decode, next);
    std::vector<Request> admitted;
    while (!waiting.empty() &&
           running.size() + admitted.size() * 2 < static_cast<size_t>(max_running)) {
      admitted.push_back(waiting.front());
      waiting.pop_front();
      step.Add(admitted.back().id, admitted.back().tokens);
    }
    for (uint64_t id : decode) step.Batch(id, 1);
    for (const Request& r : admitted) step.Batch(r.id, r.prompt_len);
    auto result = (*session)->Step(step);
    if (!result.ok()) return Fail("step", result.status());
    // Ops in order: [free], [append_batch], add...
    size_t op = 0;
    if (!computed.empty()) {
      if (!result->op_status[op].ok()) return Fail("mark_computed", result->op_status[op]);
      ++op;
    }
    computed.clear();
    computed_tokens.clear();
    if (!to_free.empty()) ++op;
    to_free.clear();
    if (!decode.empty()) {
      if (!result->op_status[op].ok()) return Fail("append_batch", result->op_status[op]);
      for (size_t i = 0; i < decode.size(); ++i) running[decode[i]].tokens.push_back(next[i]);
      ++op;
    }
    bool batch_stale = false;
    std::vector<Request> rejected;
    for (const Request& r : admitted) {
      const absl::Status& st = result->op_status[op++];
      if (st.ok()) {
        running[r.id] = r;
      } else if (st.code() == absl::StatusCode::kResourceExhausted) {
        rejected.push_back(r);  // try again later; the batch named it, so lay it out again
        batch_stale = true;
      } else {
        return Fail("add", st);
      }
    }
    for (auto it = rejected.rbegin(); it != rejected.rend(); ++it) waiting.push_front(*it);
    BatchLayout layout;
    if (batch_stale) {
      StepBuilder again;
      for (uint64_t id : decode) again.Batch(id, 1);
      for (const Request& r : admitted) {
        if (running.count(r.id)) again.Batch(r.id, r.prompt_len);
      }
      auto relaid = (*session)->Step(again);
      if (!relaid.ok() || !relaid->batch_status.ok()) return Fail("relayout", relaid.status());
      if (!relaid->layouts.empty()) layout = relaid->layouts[0];
    } else {
      if (!result->batch_status.ok()) return Fail("batch", result->batch_status);
      if (!result->layouts.empty()) layout = result->layouts[0];
    }

    // 2. CacheOps: swap out, swap in, then copies (CoW), before any write. With host-memory
    //    pools the server has already run them (in order with every other session's steps).
    const pagedkv::GroupCacheOps& ops = result->ops.groups[0];
    if (!result->ops_executed_by_server) {
      for (const BlockPair& p : ops.swap_out)
        std::memcpy(host->BlockData(p.dst), gpu->BlockData(p.src), bpb);
      for (const BlockPair& p : ops.swap_in)
        std::memcpy(gpu->BlockData(p.dst), host->BlockData(p.src), bpb);
      for (const BlockPair& p : ops.copies)
        std::memcpy(gpu->BlockData(p.dst), gpu->BlockData(p.src), bpb);
    }
    cow_copies += ops.copies.size();

    // 3. The new tokens' K/V through the slot mapping; the batch order is decode, then admitted.
    std::vector<uint64_t> order = decode;
    for (const Request& r : admitted) {
      if (running.count(r.id)) order.push_back(r.id);
    }
    for (uint64_t id : order) {
      computed.push_back(id);
      computed_tokens.push_back(static_cast<int64_t>(running[id].tokens.size()));
    }
    const int row = shape.kv_heads * shape.head_dim;
    for (int layer = 0; layer < shape.layers; ++layer) {
      std::vector<float> k, v;
      for (size_t b = 0; b < order.size(); ++b) {
        const Request& r = running[order[b]];
        const int n_new = layout.query_indptr[b + 1] - layout.query_indptr[b];
        for (int pos = static_cast<int>(r.tokens.size()) - n_new;
             pos < static_cast<int>(r.tokens.size()); ++pos) {
          for (int h = 0; h < shape.kv_heads; ++h) {
            for (int d = 0; d < shape.head_dim; ++d) {
              k.push_back(KvValue(r.tokens[pos], pos, layer, 0, h, d));
              v.push_back(KvValue(r.tokens[pos], pos, layer, 1, h, d));
            }
          }
        }
      }
      pagedkv::PagedKVView view = pagedkv::PagedKVView::ForLayer(
          gpu->base(), pagedkv::DType::kFp32, static_cast<int32_t>(gpu->num_blocks()), shape.layers,
          layer, shape.kv_heads, shape.head_dim, shape.block_size);
      view.num_slots = static_cast<int64_t>(layout.slot_mapping.size());
      view.slot_mapping = layout.slot_mapping.data();
      if (static_cast<int64_t>(k.size()) != view.num_slots * row) {
        return Fail("write", absl::InternalError("row count differs from the slot mapping"));
      }
      absl::Status st =
          pagedkv::WriteKV(view, k.data(), v.data(), {.backend = pagedkv::Backend::kCpu});
      if (!st.ok()) return Fail("WriteKV", st);

      // 4. Attention over the page table (extend: prefill chunks and decodes), checked in fp64.
      view.batch_size = layout.batch_size();
      view.page_indptr = layout.page_indptr.data();
      view.page_indices = layout.page_indices.data();
      view.last_page_len = layout.last_page_len.data();
      const int64_t num_q = layout.query_indptr.back();
      std::vector<float> q(num_q * shape.q_heads * shape.head_dim), out(q.size());
      for (float& x : q) x = static_cast<float>(rng() % 1000) / 500.0f - 1.0f;
      pagedkv::QueryBatch qb{.q = q.data(),
                             .out = out.data(),
                             .dtype = pagedkv::DType::kFp32,
                             .num_q_heads = shape.q_heads,
                             .num_tokens = num_q,
                             .qo_indptr = layout.query_indptr.data()};
      if (num_q > 0) {
        st = pagedkv::PagedAttentionExtend(view, qb, {.backend = pagedkv::Backend::kCpu});
        if (!st.ok()) return Fail("attention", st);
      }
      for (size_t b = 0; b < order.size(); ++b) {
        const Request& r = running[order[b]];
        const int rows = layout.query_indptr[b + 1] - layout.query_indptr[b];
        if (rows == 0) continue;
        const int64_t qi = layout.query_indptr[b + 1] - 1;  // the last row sees every token
        const int len = static_cast<int>(r.tokens.size());
        for (int hq = 0; hq < shape.q_heads; ++hq) {
          const int h = hq / (shape.q_heads / shape.kv_heads);
          const float* qv = &q[(qi * shape.q_heads + hq) * shape.head_dim];
          std::vector<double> score(len);
          double mx = -1e300;
          for (int t = 0; t < len; ++t) {
            double s = 0;
            for (int d = 0; d < shape.head_dim; ++d)
              s += qv[d] * static_cast<double>(KvValue(r.tokens[t], t, layer, 0, h, d));
            score[t] = s / std::sqrt(static_cast<double>(shape.head_dim));
            mx = std::max(mx, score[t]);
          }
          double sum = 0;
          for (double& s : score) sum += (s = std::exp(s - mx));
          for (int d = 0; d < shape.head_dim; ++d) {
            double want = 0;
            for (int t = 0; t < len; ++t)
              want += score[t] / sum * KvValue(r.tokens[t], t, layer, 1, h, d);
            max_abs_err = std::max(
                max_abs_err, std::abs(want - out[(qi * shape.q_heads + hq) * shape.head_dim + d]));
          }
        }
      }
    }

    // 5. Parallel samples fork after prefill; finished requests are freed in the next step.
    StepBuilder forks_step;
    for (const Request& r : admitted) {
      if (r.fork_at_prefill && running.count(r.id)) {
        forks_step.Fork(r.id, r.id + 1);
        Request child = running[r.id];
        child.id = r.id + 1;
        child.fork_at_prefill = false;
        running[child.id] = child;
        ++forks;
      }
    }
    if (!forks_step.request().ops().empty()) {
      auto forked = (*session)->Step(forks_step);
      if (!forked.ok() || !forked->FirstError().ok()) {
        return Fail("fork", forked.ok() ? forked->FirstError() : forked.status());
      }
    }
    for (auto it = running.begin(); it != running.end();) {
      if (static_cast<int>(it->second.tokens.size()) >=
          it->second.prompt_len + it->second.max_new) {
        to_free.push_back(it->first);
        if (it->first % 2 == 1) ++finished;  // a request counts once, with its first sample
        it = running.erase(it);
      } else {
        ++it;
      }
    }
  }
  if (!to_free.empty()) {
    StepBuilder last;
    last.Free(to_free);
    auto r = (*session)->Step(last);
    if (!r.ok() || !r->FirstError().ok())
      return Fail("free", r.ok() ? r->FirstError() : r.status());
  }
  auto stats = (*session)->Stats();
  if (!stats.ok()) return Fail("stats", stats.status());
  const uint32_t left = stats->session().gpu_blocks_used();
  auto closed = (*session)->Close();
  if (!closed.ok()) return Fail("close", closed.status());
  std::printf("finished=%d steps=%d forks=%d cow_copies=%zu blocks_left=%u max_abs_err=%.3g\n",
              finished, steps, forks, cow_copies, left, max_abs_err);
  return finished == num_requests && left == 0 && max_abs_err < 1e-4 ? 0 : 1;
}
