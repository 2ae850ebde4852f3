// The Redis backend of RemoteStore (hiredis, Debian libhiredis-dev): one server, or a Redis Cluster
// whose slot map is read with CLUSTER SLOTS. Every call is one pipeline per node: all commands are
// written to every node first, then the replies are read, so a call costs one round trip per node
// (plus one more for keys redirected by MOVED or ASK, which also refreshes the slot map).
#include <hiredis/hiredis.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/node_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "pagedkv/core/absl_compat.h"
#include "pagedkv/core/logging.h"
#include "remote/internal/cluster_slots.h"
#include "remote/internal/redis_store.h"

namespace pagedkv::internal {
namespace {

timeval SocketTimeout(absl::Duration d) {
  if (d < absl::Milliseconds(1)) d = absl::Milliseconds(1);
  const int64_t us = absl::ToInt64Microseconds(d);
  timeval tv;
  tv.tv_sec = static_cast<time_t>(us / 1000000);
  tv.tv_usec = static_cast<suseconds_t>(us % 1000000);
  return tv;
}

struct ReplyDeleter {
  void operator()(redisReply* r) const {
    if (r != nullptr) freeReplyObject(r);
  }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

class RedisStore final : public RemoteStore {
 public:
  explicit RedisStore(RemoteUrl url) : url_(std::move(url)) {
    for (const RemoteEndpoint& e : url_.endpoints)
      seeds_.push_back(absl::StrCat(e.host, ":", e.port));
  }
  ~RedisStore() override {
    for (auto& [addr, node] : nodes_) Drop(node);
  }

  void MultiGet(absl::Span<const std::string> keys, absl::Duration timeout,
                std::vector<Value>* out) override {
    out->assign(keys.size(), Value{});
    const absl::Time deadline = absl::Now() + timeout;
    std::vector<Request> reqs(keys.size());
    for (size_t i = 0; i < keys.size(); ++i) {
      reqs[i].args = {"GET", keys[i]};
      reqs[i].node = NodeOfKey(keys[i], deadline);
    }
    std::vector<Result> results;
    RunWithRedirects(reqs, deadline, &results);
    for (size_t i = 0; i < keys.size(); ++i) {
      Value& v = (*out)[i];
      const Result& r = results[i];
      if (r.outcome != Outcome::kHit) {
        v.outcome = r.outcome;
      } else if (r.reply->type == REDIS_REPLY_STRING) {
        v.outcome = Outcome::kHit;
        v.bytes.assign(r.reply->str, r.reply->len);
      } else if (r.reply->type == REDIS_REPLY_NIL) {
        v.outcome = Outcome::kMissing;
      } else {
        v.outcome = Outcome::kError;
      }
    }
  }

  absl::Status MultiSet(absl::Span<const Item> items, int64_t ttl_seconds,
                        absl::Duration timeout) override {
    const absl::Time deadline = absl::Now() + timeout;
    std::vector<Request> reqs(items.size());
    const std::string ttl = absl::StrCat(ttl_seconds);
    for (size_t i = 0; i < items.size(); ++i) {
      reqs[i].args = {"SET", items[i].key, items[i].bytes};
      if (ttl_seconds > 0) {
        reqs[i].args.push_back("EX");
        reqs[i].args.push_back(ttl);
      }
      reqs[i].node = NodeOfKey(items[i].key, deadline);
    }
    std::vector<Result> results;
    RunWithRedirects(reqs, deadline, &results);
    for (size_t i = 0; i < results.size(); ++i) {
      const Result& r = results[i];
      if (r.outcome == Outcome::kTimeout) {
        return absl::DeadlineExceededError(
            absl::StrCat(Describe(), ": no answer to a write within the deadline"));
      }
      if (r.outcome != Outcome::kHit) {
        return absl::UnavailableError(absl::StrCat(Describe(), ": ", r.error));
      }
      if (r.reply->type == REDIS_REPLY_ERROR) {
        return absl::InternalError(
            absl::StrCat(Describe(), ": SET answered ", std::string(r.reply->str, r.reply->len)));
      }
    }
    return absl::OkStatus();
  }

  std::string Describe() const override {
    if (url_.kind == RemoteUrl::Kind::kRedis) return absl::StrCat("redis://", seeds_[0]);
    return absl::StrCat("redis+cluster://", absl::StrJoin(seeds_, ","), " (", slots_.nodes.size(),
                        " masters known)");
  }

 private:
  struct Node {
    std::string host;
    int port = 0;
    redisContext* ctx = nullptr;
  };
  // One command of a pipeline. args are copied strings: a call's commands outlive no one.
  struct Request {
    std::vector<std::string> args;
    std::string node;     // "host:port"; empty = no node serves the key
    bool asking = false;  // ASK redirect: send ASKING first
  };
  // kHit here means "a reply arrived" (possibly an error reply); the others are transport
  // failures.
  struct Result {
    Outcome outcome = Outcome::kError;
    ReplyPtr reply;
    std::string error;
  };

  void Drop(Node& node) {
    if (node.ctx != nullptr) redisFree(node.ctx);
    node.ctx = nullptr;
  }

  Node& NodeAt(const std::string& addr) {
    auto [it, inserted] = nodes_.try_emplace(addr);
    if (inserted) {
      const size_t colon = addr.rfind(':');
      it->second.host = addr.substr(0, colon);
      (void)absl::SimpleAtoi(addr.substr(colon + 1), &it->second.port);
    }
    return it->second;
  }

  // A connected context, or null (the reason in *error).
  redisContext* Connect(Node& node, absl::Time deadline, std::string* error) {
    if (node.ctx != nullptr && node.ctx->err == 0) return node.ctx;
    Drop(node);
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      *error = "deadline passed before connecting";
      return nullptr;
    }
    node.ctx = redisConnectWithTimeout(node.host.c_str(), node.port, SocketTimeout(left));
    if (node.ctx != nullptr && node.ctx->err == 0) {
      // Keep the reader's buffer between replies: pages are megabytes, and hiredis would
      // otherwise free and regrow it for every one of them.
      node.ctx->reader->maxbuf = 0;
    }
    if (node.ctx == nullptr || node.ctx->err != 0) {
      *error = absl::StrCat("cannot connect to ", node.host, ":", node.port, ": ",
                            node.ctx != nullptr ? node.ctx->errstr : "out of memory");
      Drop(node);
      refresh_slots_ = true;  // a master may have failed over
      return nullptr;
    }
    return node.ctx;
  }

  std::string NodeOfKey(const std::string& key, absl::Time deadline) {
    if (url_.kind == RemoteUrl::Kind::kRedis) return seeds_[0];
    if (slots_.empty() || refresh_slots_) RefreshSlots(deadline);
    const int16_t owner = slots_.owner[KeySlot(key)];
    return owner < 0 ? std::string() : slots_.nodes[owner];
  }

  // Reads the slot map from the first node that answers CLUSTER SLOTS (seeds, then known masters).
  // Rate-limited: a failover storm costs one refresh per 50 ms.
  void RefreshSlots(absl::Time deadline) {
    const absl::Time now = absl::Now();
    if (!slots_.empty() && now - last_refresh_ < absl::Milliseconds(50)) return;
    last_refresh_ = now;
    std::vector<std::string> candidates = seeds_;
    for (const std::string& n : slots_.nodes) candidates.push_back(n);
    for (const std::string& addr : candidates) {
      std::string error;
      redisContext* c = Connect(NodeAt(addr), deadline, &error);
      if (c == nullptr) continue;
      redisSetTimeout(c, SocketTimeout(deadline - absl::Now()));
      ReplyPtr reply(static_cast<redisReply*>(redisCommand(c, "CLUSTER SLOTS")));
      if (reply == nullptr) {
        Drop(NodeAt(addr));
        continue;
      }
      if (reply->type != REDIS_REPLY_ARRAY) continue;
      SlotMap map;
      for (size_t i = 0; i < reply->elements; ++i) {
        const redisReply* range = reply->element[i];
        if (range->type != REDIS_REPLY_ARRAY || range->elements < 3) continue;
        const redisReply* master = range->element[2];
        if (master->type != REDIS_REPLY_ARRAY || master->elements < 2) continue;
        std::string host(master->element[0]->str, master->element[0]->len);
        if (host.empty()) host = NodeAt(addr).host;  // "" = the node we asked
        map.Assign(static_cast<int>(range->element[0]->integer),
                   static_cast<int>(range->element[1]->integer),
                   absl::StrCat(host, ":", master->element[1]->integer));
      }
      if (!map.empty()) {
        slots_ = std::move(map);
        refresh_slots_ = false;
        PAGEDKV_LOG_DEBUG("redis cluster slot map from {}: {} masters", addr, slots_.nodes.size());
        return;
      }
    }
  }

  // Bytes a node may have in flight (requests sent and replies expected but not read). Redis
  // slows down sharply when large replies pile up in its output buffer (measured: 64 pipelined
  // 2 MiB GETs took 7x longer than 64 in turn), so a node's pipeline slides: the next command is
  // sent as replies are read, keeping about this much on the wire.
  static constexpr size_t kMaxInFlightBytes = 4u << 20;

  struct NodeRun {
    Node* node = nullptr;
    std::vector<size_t> indices;  // requests for this node, in order
    size_t sent = 0;              // commands written
    size_t read = 0;              // replies read
    size_t in_flight_bytes = 0;   // estimate of what is on the wire
    size_t reply_estimate = 0;    // largest reply seen so far (bytes)
    std::vector<size_t> request_bytes;
    std::vector<size_t> counted_reply;  // reply bytes each sent command was counted for
  };

  static size_t RequestBytes(const Request& r) {
    size_t n = 16;
    for (const std::string& a : r.args) n += a.size() + 16;
    return n;
  }

  // Appends commands while the window allows (always at least one in flight) and flushes them.
  bool SendMore(NodeRun& run, std::vector<Request>& reqs) {
    redisContext* c = run.node->ctx;
    const size_t before = run.sent;
    while (run.sent < run.indices.size()) {
      const Request& r = reqs[run.indices[run.sent]];
      // Until the first reply shows how large they are, assume half the window each.
      const size_t reply = run.read == 0 ? kMaxInFlightBytes / 2 : run.reply_estimate;
      const size_t bytes = run.request_bytes[run.sent] + reply;
      if (run.sent > run.read && run.in_flight_bytes + bytes > kMaxInFlightBytes) break;
      if (r.asking && redisAppendCommand(c, "ASKING") != REDIS_OK) return false;
      std::vector<const char*> argv;
      std::vector<size_t> argvlen;
      for (const std::string& a : r.args) {
        argv.push_back(a.data());
        argvlen.push_back(a.size());
      }
      if (redisAppendCommandArgv(c, static_cast<int>(argv.size()), argv.data(), argvlen.data()) !=
          REDIS_OK) {
        return false;
      }
      run.in_flight_bytes += bytes;
      run.counted_reply.push_back(reply);
      ++run.sent;
    }
    if (run.sent == before) return true;
    int done = 0;
    while (!done) {
      if (redisBufferWrite(c, &done) != REDIS_OK) return false;
    }
    return true;
  }

  // One pipeline per node: every node gets its first window of commands before any reply is
  // read, so a call costs about one round trip per node plus the transfer.
  void Run(std::vector<Request>& reqs, absl::Time deadline, std::vector<Result>* out) {
    out->clear();
    out->resize(reqs.size());
    absl::flat_hash_map<std::string, size_t> run_of;
    std::vector<NodeRun> runs;
    for (size_t i = 0; i < reqs.size(); ++i) {
      if (reqs[i].node.empty()) {
        (*out)[i].error = "no node serves the key's slot (cluster down or not configured)";
        continue;
      }
      auto [it, inserted] = run_of.try_emplace(reqs[i].node, runs.size());
      if (inserted) runs.emplace_back();
      NodeRun& run = runs[it->second];
      run.indices.push_back(i);
      run.request_bytes.push_back(RequestBytes(reqs[i]));
    }
    for (const auto& [addr, r] : run_of) {
      NodeRun& run = runs[r];
      run.node = &NodeAt(addr);
      std::string error;
      redisContext* c = Connect(*run.node, deadline, &error);
      if (c != nullptr) redisSetTimeout(c, SocketTimeout(deadline - absl::Now()));
      if (c == nullptr || !SendMore(run, reqs)) {
        if (error.empty()) error = absl::StrCat("write to ", addr, " failed");
        FailRest(run, Outcome::kError, error, out);
      }
    }
    for (bool pending = true; pending;) {
      pending = false;
      for (NodeRun& run : runs) {
        if (run.read >= run.sent) continue;
        redisContext* c = run.node->ctx;
        redisSetTimeout(c, SocketTimeout(deadline - absl::Now()));
        const size_t i = run.indices[run.read];
        void* raw = nullptr;
        bool ok = true;
        if (reqs[i].asking) {
          ok = redisGetReply(c, &raw) == REDIS_OK;
          if (ok) freeReplyObject(raw);
          raw = nullptr;
        }
        ok = ok && redisGetReply(c, &raw) == REDIS_OK;
        if (!ok) {
          const bool timed_out =
              c->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK);
          FailRest(run, timed_out ? Outcome::kTimeout : Outcome::kError,
                   absl::StrCat(run.node->host, ":", run.node->port, ": ", c->errstr), out);
          continue;
        }
        auto* reply = static_cast<redisReply*>(raw);
        const size_t reply_bytes = reply->type == REDIS_REPLY_STRING ? reply->len + 16 : 16;
        run.reply_estimate = std::max(run.reply_estimate, reply_bytes);
        // What this command was counted as when sent (see SendMore).
        run.in_flight_bytes -= std::min(run.in_flight_bytes,
                                        run.request_bytes[run.read] + run.counted_reply[run.read]);
        (*out)[i].outcome = Outcome::kHit;
        (*out)[i].reply.reset(reply);
        ++run.read;
        if (!SendMore(run, reqs)) {
          FailRest(run, Outcome::kError, absl::StrCat("write to ", run.node->host, " failed"), out);
          continue;
        }
        pending |= run.read < run.sent;
      }
    }
  }

  // Fails the requests of `run` not answered yet and drops its connection.
  void FailRest(NodeRun& run, Outcome outcome, const std::string& error, std::vector<Result>* out) {
    std::vector<size_t> rest(run.indices.begin() + static_cast<ptrdiff_t>(run.read),
                             run.indices.end());
    run.read = run.sent = run.indices.size();
    FailAll(*run.node, rest, outcome, error, out);
  }

  void FailAll(Node& node, const std::vector<size_t>& indices, Outcome outcome,
               const std::string& error, std::vector<Result>* out) {
    for (size_t i : indices) {
      (*out)[i].outcome = outcome;
      (*out)[i].error = error;
    }
    Drop(node);
    if (outcome == Outcome::kError) refresh_slots_ = true;
  }

  // Run, then once more for the keys answered with MOVED (slot moved: refresh the map) or ASK
  // (slot migrating: ASKING on the named node).
  void RunWithRedirects(std::vector<Request>& reqs, absl::Time deadline, std::vector<Result>* out) {
    Run(reqs, deadline, out);
    if (url_.kind != RemoteUrl::Kind::kRedisCluster) return;
    std::vector<Request> again;
    std::vector<size_t> where;
    for (size_t i = 0; i < out->size(); ++i) {
      const Result& r = (*out)[i];
      if (r.outcome != Outcome::kHit || r.reply->type != REDIS_REPLY_ERROR) continue;
      const std::string_view text(r.reply->str, r.reply->len);
      const bool moved = absl::StartsWith(AbslView(text), "MOVED ");
      const bool ask = absl::StartsWith(AbslView(text), "ASK ");
      if (!moved && !ask) continue;
      std::vector<std::string> parts = absl::StrSplit(AbslView(text), ' ');
      if (parts.size() != 3) continue;
      if (moved) refresh_slots_ = true;
      Request req = reqs[i];
      req.node = parts[2];
      req.asking = ask;
      again.push_back(std::move(req));
      where.push_back(i);
    }
    if (again.empty() || absl::Now() >= deadline) return;
    if (refresh_slots_) RefreshSlots(deadline);
    std::vector<Result> second;
    Run(again, deadline, &second);
    for (size_t k = 0; k < where.size(); ++k) (*out)[where[k]] = std::move(second[k]);
  }

  RemoteUrl url_;
  std::vector<std::string> seeds_;
  absl::node_hash_map<std::string, Node> nodes_;  // stable addresses: Run keeps Node pointers
  SlotMap slots_;
  bool refresh_slots_ = true;
  absl::Time last_refresh_ = absl::InfinitePast();
};

}  // namespace

std::unique_ptr<RemoteStore> MakeRedisStore(const RemoteUrl& url) {
  return std::make_unique<RedisStore>(url);
}

}  // namespace pagedkv::internal
