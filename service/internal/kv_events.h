// KV events for KV-aware routers: a model's prefix-index changes (BlockManager's
// PrefixIndexListener) batched per Step and published over ZeroMQ in the wire format vLLM
// publishes, so routers that consume vLLM's events (llm-d's KV-cache indexer, Dynamo's router)
// read pagedkv's unchanged. docs/service.md#kv-events-for-routers describes the format.
//
//   KvEventCollector collector(block_size);          // bm.SetPrefixIndexListener(&collector)
//   PAGEDKV_ASSIGN_OR_RETURN(auto pub, KvEventPublisher::Start(endpoints, "kv@host@chat", opts));
//   if (!collector.empty()) pub->Publish(collector.Take(WallSeconds()));   // once per Step
//
// Wire (one ZeroMQ PUB message per batch): frames [topic, 8-byte big-endian sequence number,
// msgpack payload]. Payload = [ts (float64 seconds), [event, ...]], each event an array whose first
// element is its type name: ["BlockStored", block_hashes, parent_block_hash | nil, token_ids,
// block_size, lora_id (nil), medium], ["BlockRemoved", block_hashes, medium], ["AllBlocksCleared"].
// Replay (ZeroMQ ROUTER): a DEALER/REQ sends [empty, 8-byte big-endian start seq]; it gets
// [empty, seq, payload] for every buffered batch from start on, then [empty, -1 (8 bytes), empty].
#ifndef PAGEDKV_SERVICE_INTERNAL_KV_EVENTS_H_
#define PAGEDKV_SERVICE_INTERNAL_KV_EVENTS_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "pagedkv/block_manager/prefix_events.h"
#include "pagedkv/service/server.h"

namespace pagedkv::service::internal {

// One event in vLLM's terms. A BlockStored names a run of consecutive pages of one sequence:
// parent_block_hash is the parent of the first, token_ids their tokens concatenated.
struct KvEvent {
  enum class Kind : uint8_t { kBlockStored, kBlockRemoved, kAllBlocksCleared };
  Kind kind = Kind::kBlockStored;
  Tier tier = Tier::kGpu;  // medium "GPU" (kGpu) or "CPU" (kHost)
  std::vector<uint64_t> block_hashes;
  std::optional<uint64_t> parent_block_hash;
  std::vector<TokenId> token_ids;
};

struct KvEventBatch {
  double ts = 0;  // seconds since the Unix epoch
  std::vector<KvEvent> events;
};

// The 64-bit block hash routers see: the low half of the page's 128-bit chain hash.
inline uint64_t WireHash(const BlockHash& h) { return h.lo; }
// "GPU" or "CPU".
std::string_view MediumName(Tier tier);
// Seconds since the Unix epoch.
double WallSeconds();

// The msgpack payload of a batch (the layout above).
std::string EncodeKvEventBatch(const KvEventBatch& batch, int32_t block_size);

// Collects a manager's prefix-index events into the next batch, joining a store that continues
// the previous store's run (same tier, its parent is the run's last hash) and consecutive
// removals of one tier. Called under the model's lock; Take() too.
class KvEventCollector final : public PrefixIndexListener {
 public:
  void OnPrefixIndexEvent(const PrefixIndexEvent& event) override;
  bool empty() const { return pending_.events.empty(); }
  KvEventBatch Take(double ts);

 private:
  KvEventBatch pending_;
};

struct KvEventPublisherCounters {
  uint64_t batches = 0;          // batches sent
  uint64_t events = 0;           // events in them
  uint64_t dropped_batches = 0;  // refused because the queue was full (a gap in the sequence)
  uint64_t replay_requests = 0;
  uint64_t replayed_batches = 0;
};

// One model's publisher: a PUB socket, an optional ROUTER replay socket, a bounded queue and a
// thread that encodes, sends and keeps the last buffer_batches batches for replay. Publish never
// waits for the network.
class KvEventPublisher {
 public:
  // Binds `endpoint` (and `replay_endpoint` unless empty): tcp://HOST:PORT (PORT * or 0 = any),
  // ipc://PATH. InvalidArgument for a malformed endpoint, Unavailable when it cannot be bound.
  static absl::StatusOr<std::unique_ptr<KvEventPublisher>> Start(const std::string& endpoint,
                                                                 const std::string& replay_endpoint,
                                                                 std::string topic,
                                                                 int32_t block_size,
                                                                 const KvEventsOptions& options);
  ~KvEventPublisher();
  KvEventPublisher(const KvEventPublisher&) = delete;
  KvEventPublisher& operator=(const KvEventPublisher&) = delete;

  // Queues the batch under the next sequence number (0, 1, ...). A full queue drops it (counted;
  // subscribers see the gap and replay cannot fill it).
  void Publish(KvEventBatch batch);
  // Sends what is queued (up to drain_seconds), then closes the sockets. Idempotent.
  void Stop(double drain_seconds);

  const std::string& endpoint() const { return endpoint_; }  // as bound (the actual port)
  const std::string& replay_endpoint() const { return replay_endpoint_; }
  const std::string& topic() const { return topic_; }
  KvEventPublisherCounters counters() const;

 private:
  struct Queued {
    uint64_t seq;
    KvEventBatch batch;
  };
  KvEventPublisher() = default;
  void Run();
  void ServeReplay();

  std::string endpoint_, replay_endpoint_, topic_;
  KvEventsOptions options_;
  int32_t block_size_ = 0;
  void* context_ = nullptr;  // zmq context and sockets (owned by the thread once it runs)
  void* pub_ = nullptr;
  void* replay_ = nullptr;
  int wake_fd_ = -1;  // eventfd: Publish -> the thread

  mutable std::mutex mu_;
  std::deque<Queued> queue_;  // guarded by mu_
  uint64_t next_seq_ = 0;     // guarded by mu_
  bool stopping_ = false;     // guarded by mu_
  std::condition_variable drained_;
  // The thread's own: the last batches sent, for replay.
  std::deque<std::pair<uint64_t, std::string>> sent_;
  std::atomic<uint64_t> batches_{0}, events_{0}, dropped_{0}, replay_requests_{0}, replayed_{0};
  std::thread thread_;
  std::mutex stop_mu_;
  bool stopped_ = false;  // guarded by stop_mu_
};

// The endpoint of model `index`: tcp ports are offset by the index (like vLLM's data-parallel
// ranks), ipc paths get ".<index>" (index > 0); "*" and 0 ports stay "any port".
absl::StatusOr<std::string> ModelEndpoint(const std::string& endpoint, int index);

}  // namespace pagedkv::service::internal

#endif  // PAGEDKV_SERVICE_INTERNAL_KV_EVENTS_H_
