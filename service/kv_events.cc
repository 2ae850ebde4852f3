// KV events: msgpack encoding of vLLM's event batches, the collector of a manager's prefix-index
// events, and the ZeroMQ publisher with its replay socket.
#include "service/internal/kv_events.h"

#include <sys/eventfd.h>
#include <unistd.h>
#include <zmq.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "msgpack/pack.hpp"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "pagedkv/core/absl_compat.h"
#include "pagedkv/core/logging.h"
#include "pagedkv/core/status.h"

namespace pagedkv::service::internal {
namespace {

// ---- msgpack (Debian's msgpack-cxx packer; compact encodings, as vLLM's msgspec writes) ------

// The packer's output stream: appends to a string.
struct StringSink {
  std::string* out;
  void write(const char* data, size_t size) { out->append(data, size); }
};
using Packer = msgpack::packer<StringSink>;

void PackString(Packer& pk, std::string_view s) {
  pk.pack_str(static_cast<uint32_t>(s.size()));
  pk.pack_str_body(s.data(), static_cast<uint32_t>(s.size()));
}

void PackHashes(Packer& pk, const std::vector<uint64_t>& hashes) {
  pk.pack_array(static_cast<uint32_t>(hashes.size()));
  for (uint64_t h : hashes) pk.pack_uint64(h);
}

void PackEvent(Packer& pk, const KvEvent& e, int32_t block_size) {
  switch (e.kind) {
    case KvEvent::Kind::kBlockStored:
      pk.pack_array(7);
      PackString(pk, "BlockStored");
      PackHashes(pk, e.block_hashes);
      if (e.parent_block_hash.has_value()) {
        pk.pack_uint64(*e.parent_block_hash);
      } else {
        pk.pack_nil();
      }
      pk.pack_array(static_cast<uint32_t>(e.token_ids.size()));
      for (TokenId t : e.token_ids) pk.pack_int32(t);
      pk.pack_int32(block_size);
      pk.pack_nil();  // lora_id: adapters are part of the hash (extra_key), not named here
      PackString(pk, MediumName(e.tier));
      return;
    case KvEvent::Kind::kBlockRemoved:
      pk.pack_array(3);
      PackString(pk, "BlockRemoved");
      PackHashes(pk, e.block_hashes);
      PackString(pk, MediumName(e.tier));
      return;
    case KvEvent::Kind::kAllBlocksCleared:
      pk.pack_array(1);
      PackString(pk, "AllBlocksCleared");
      return;
  }
}

std::string ZmqError(std::string_view what) {
  return absl::StrCat(AbslView(what), ": ", zmq_strerror(zmq_errno()));
}

std::string LastEndpoint(void* socket) {
  char buffer[512];
  size_t size = sizeof(buffer);
  if (zmq_getsockopt(socket, ZMQ_LAST_ENDPOINT, buffer, &size) != 0) return "";
  return std::string(buffer, strnlen(buffer, size));
}

// One frame of a multipart message; false when no more frames follow.
bool ReceiveFrame(void* socket, std::string* frame) {
  zmq_msg_t msg;
  zmq_msg_init(&msg);
  const int n = zmq_msg_recv(&msg, socket, ZMQ_DONTWAIT);
  bool more = false;
  if (n >= 0) {
    frame->assign(static_cast<const char*>(zmq_msg_data(&msg)), static_cast<size_t>(n));
    more = zmq_msg_more(&msg) != 0;
  } else {
    frame->clear();
  }
  zmq_msg_close(&msg);
  return more;
}

// A batch's sequence number as vLLM sends it: 8 bytes, big-endian.
std::string SeqBytes(int64_t seq) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i)
    out[7 - i] = static_cast<char>((static_cast<uint64_t>(seq) >> (8 * i)) & 0xff);
  return out;
}

}  // namespace

std::string_view MediumName(Tier tier) { return tier == Tier::kHost ? "CPU" : "GPU"; }

double WallSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string EncodeKvEventBatch(const KvEventBatch& batch, int32_t block_size) {
  std::string out;
  StringSink sink{&out};
  Packer pk(sink);
  pk.pack_array(2);
  pk.pack_double(batch.ts);
  pk.pack_array(static_cast<uint32_t>(batch.events.size()));
  for (const KvEvent& e : batch.events) PackEvent(pk, e, block_size);
  return out;
}

// ---- Collector ---------------------------------------------------------------------------------

void KvEventCollector::OnPrefixIndexEvent(const PrefixIndexEvent& event) {
  std::vector<KvEvent>& events = pending_.events;
  const uint64_t hash = WireHash(event.hash);
  KvEvent* last = events.empty() ? nullptr : &events.back();
  if (event.kind == PrefixIndexEvent::Kind::kRemoved) {
    if (last != nullptr && last->kind == KvEvent::Kind::kBlockRemoved && last->tier == event.tier) {
      last->block_hashes.push_back(hash);
      return;
    }
    KvEvent e;
    e.kind = KvEvent::Kind::kBlockRemoved;
    e.tier = event.tier;
    e.block_hashes.push_back(hash);
    events.push_back(std::move(e));
    return;
  }
  const std::optional<uint64_t> parent =
      event.parent.has_value() ? std::optional<uint64_t>(WireHash(*event.parent)) : std::nullopt;
  if (last != nullptr && last->kind == KvEvent::Kind::kBlockStored && last->tier == event.tier &&
      parent.has_value() && *parent == last->block_hashes.back()) {
    last->block_hashes.push_back(hash);
    last->token_ids.insert(last->token_ids.end(), event.tokens.begin(), event.tokens.end());
    return;
  }
  KvEvent e;
  e.kind = KvEvent::Kind::kBlockStored;
  e.tier = event.tier;
  e.block_hashes.push_back(hash);
  e.parent_block_hash = parent;
  e.token_ids.assign(event.tokens.begin(), event.tokens.end());
  events.push_back(std::move(e));
}

KvEventBatch KvEventCollector::Take(double ts) {
  KvEventBatch out = std::move(pending_);
  pending_ = KvEventBatch{};
  out.ts = ts;
  return out;
}

// ---- Endpoints ---------------------------------------------------------------------------------

absl::StatusOr<std::string> ModelEndpoint(const std::string& endpoint, int index) {
  const std::string_view e = endpoint;
  if (e.substr(0, 6) == "ipc://" && e.size() > 6) {
    return index == 0 ? endpoint : absl::StrCat(endpoint, ".", index);
  }
  const size_t colon = e.rfind(':');
  if (e.substr(0, 6) != "tcp://" || colon == std::string_view::npos || colon <= 6) {
    return absl::InvalidArgumentError(
        absl::StrCat("event endpoint '", endpoint,
                     "': use tcp://HOST:PORT (PORT * or 0 = any free port) or ipc://PATH"));
  }
  const std::string_view port = e.substr(colon + 1);
  if (port == "*" || port == "0") return endpoint;
  int value = 0;
  if (!absl::SimpleAtoi(AbslView(port), &value) || value < 1 || value + index > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("event endpoint '", endpoint, "': port '",
                                                   AbslView(port),
                                                   "' is not a number in [1, 65535] (with one "
                                                   "port per served model after it)"));
  }
  return absl::StrCat(AbslView(e.substr(0, colon + 1)), value + index);
}

// ---- Publisher ---------------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<KvEventPublisher>> KvEventPublisher::Start(
    const std::string& endpoint, const std::string& replay_endpoint, std::string topic,
    int32_t block_size, const KvEventsOptions& options) {
  PAGEDKV_RETURN_IF_ERROR(ModelEndpoint(endpoint, 0).status());
  if (!replay_endpoint.empty()) PAGEDKV_RETURN_IF_ERROR(ModelEndpoint(replay_endpoint, 0).status());
  std::unique_ptr<KvEventPublisher> p(new KvEventPublisher());
  p->topic_ = std::move(topic);
  p->options_ = options;
  p->block_size_ = block_size;
  p->context_ = zmq_ctx_new();
  if (p->context_ == nullptr) return absl::InternalError(ZmqError("zmq_ctx_new"));
  // From here the destructor cleans up whatever was made.
  p->pub_ = zmq_socket(p->context_, ZMQ_PUB);
  if (p->pub_ == nullptr) return absl::InternalError(ZmqError("zmq_socket(PUB)"));
  const int hwm = static_cast<int>(std::min<int64_t>(options.high_water_mark, INT32_MAX));
  zmq_setsockopt(p->pub_, ZMQ_SNDHWM, &hwm, sizeof(hwm));
  if (zmq_bind(p->pub_, endpoint.c_str()) != 0) {
    return absl::UnavailableError(
        ZmqError(absl::StrCat("cannot bind the event endpoint ", endpoint,
                              " (is the port in use? pick another or use port *)")));
  }
  p->endpoint_ = LastEndpoint(p->pub_);
  if (!replay_endpoint.empty()) {
    p->replay_ = zmq_socket(p->context_, ZMQ_ROUTER);
    if (p->replay_ == nullptr) return absl::InternalError(ZmqError("zmq_socket(ROUTER)"));
    // A replay answers with up to buffer_batches messages at once: room for all of them.
    const int replay_hwm =
        static_cast<int>(std::min<int64_t>(options.buffer_batches * 2 + 16, INT32_MAX));
    zmq_setsockopt(p->replay_, ZMQ_SNDHWM, &replay_hwm, sizeof(replay_hwm));
    if (zmq_bind(p->replay_, replay_endpoint.c_str()) != 0) {
      return absl::UnavailableError(ZmqError(absl::StrCat(
          "cannot bind the event replay endpoint ", replay_endpoint, " (pick another port)")));
    }
    p->replay_endpoint_ = LastEndpoint(p->replay_);
  }
  p->wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (p->wake_fd_ < 0) {
    return absl::InternalError(absl::StrCat("eventfd: ", std::strerror(errno)));
  }
  KvEventPublisher* raw = p.get();
  p->thread_ = std::thread([raw] { raw->Run(); });
  return p;
}

KvEventPublisher::~KvEventPublisher() {
  Stop(0);
  if (pub_ != nullptr) zmq_close(pub_);
  if (replay_ != nullptr) zmq_close(replay_);
  if (context_ != nullptr) zmq_ctx_term(context_);
  if (wake_fd_ >= 0) close(wake_fd_);
}

void KvEventPublisher::Publish(KvEventBatch batch) {
  {
    std::lock_guard lock(mu_);
    const uint64_t seq = next_seq_++;
    if (stopping_ || static_cast<int64_t>(queue_.size()) >= options_.max_queue_batches) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    queue_.push_back({seq, std::move(batch)});
  }
  const uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof(one));
}

void KvEventPublisher::Stop(double drain_seconds) {
  std::lock_guard stop_lock(stop_mu_);
  if (stopped_) return;
  stopped_ = true;
  if (!thread_.joinable()) return;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  const uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof(one));
  thread_.join();
  // Let queued messages leave before the sockets close (zmq_ctx_term waits up to the linger).
  const int linger_ms = static_cast<int>(std::clamp(drain_seconds, 0.0, 5.0) * 1000);
  if (pub_ != nullptr) zmq_setsockopt(pub_, ZMQ_LINGER, &linger_ms, sizeof(linger_ms));
  const int zero = 0;
  if (replay_ != nullptr) zmq_setsockopt(replay_, ZMQ_LINGER, &zero, sizeof(zero));
}

KvEventPublisherCounters KvEventPublisher::counters() const {
  KvEventPublisherCounters c;
  c.batches = batches_.load(std::memory_order_relaxed);
  c.events = events_.load(std::memory_order_relaxed);
  c.dropped_batches = dropped_.load(std::memory_order_relaxed);
  c.replay_requests = replay_requests_.load(std::memory_order_relaxed);
  c.replayed_batches = replayed_.load(std::memory_order_relaxed);
  return c;
}

void KvEventPublisher::Run() {
  std::deque<Queued> work;
  while (true) {
    zmq_pollitem_t items[2] = {{nullptr, wake_fd_, ZMQ_POLLIN, 0}, {replay_, 0, ZMQ_POLLIN, 0}};
    // The timeout only bounds how long a missed wake-up could delay a batch.
    zmq_poll(items, replay_ != nullptr ? 2 : 1, 200);
    if (items[0].revents != 0) {
      uint64_t value;
      (void)!read(wake_fd_, &value, sizeof(value));
    }
    bool stopping;
    {
      std::lock_guard lock(mu_);
      work.swap(queue_);
      stopping = stopping_;
    }
    for (Queued& q : work) {
      std::string payload = EncodeKvEventBatch(q.batch, block_size_);
      const std::string seq = SeqBytes(static_cast<int64_t>(q.seq));
      // A PUB socket never blocks: past its high-water mark a subscriber misses the message (and
      // sees the gap in the sequence numbers).
      zmq_send(pub_, topic_.data(), topic_.size(), ZMQ_SNDMORE | ZMQ_DONTWAIT);
      zmq_send(pub_, seq.data(), seq.size(), ZMQ_SNDMORE | ZMQ_DONTWAIT);
      zmq_send(pub_, payload.data(), payload.size(), ZMQ_DONTWAIT);
      batches_.fetch_add(1, std::memory_order_relaxed);
      events_.fetch_add(q.batch.events.size(), std::memory_order_relaxed);
      sent_.emplace_back(q.seq, std::move(payload));
      while (static_cast<int64_t>(sent_.size()) > options_.buffer_batches) sent_.pop_front();
    }
    work.clear();
    if (replay_ != nullptr && items[1].revents != 0) ServeReplay();
    if (stopping) {
      std::lock_guard lock(mu_);
      if (queue_.empty()) break;
    }
  }
}

void KvEventPublisher::ServeReplay() {
  // Bounded: at most 64 requests per wake-up, so publishing never starves.
  for (int request = 0; request < 64; ++request) {
    int events = 0;
    size_t size = sizeof(events);
    if (zmq_getsockopt(replay_, ZMQ_EVENTS, &events, &size) != 0 || !(events & ZMQ_POLLIN)) return;
    std::vector<std::string> frames;
    std::string frame;
    bool more = true;
    while (more) {
      more = ReceiveFrame(replay_, &frame);
      if (frames.size() < 4) frames.push_back(frame);  // a longer message is malformed anyway
    }
    replay_requests_.fetch_add(1, std::memory_order_relaxed);
    if (frames.size() != 3 || !frames[1].empty() || frames[2].size() != 8) {
      PAGEDKV_LOG_WARN(
          "kv_events replay: ignored a malformed request ({} frames); send [empty, 8-byte "
          "big-endian start sequence] from a DEALER socket",
          frames.size());
      continue;
    }
    uint64_t start = 0;
    for (char c : frames[2]) start = (start << 8) | static_cast<uint8_t>(c);
    const std::string& id = frames[0];
    for (const auto& [seq, payload] : sent_) {
      if (seq < start) continue;
      const std::string seq_bytes = SeqBytes(static_cast<int64_t>(seq));
      zmq_send(replay_, id.data(), id.size(), ZMQ_SNDMORE | ZMQ_DONTWAIT);
      zmq_send(replay_, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT);
      zmq_send(replay_, seq_bytes.data(), seq_bytes.size(), ZMQ_SNDMORE | ZMQ_DONTWAIT);
      zmq_send(replay_, payload.data(), payload.size(), ZMQ_DONTWAIT);
      replayed_.fetch_add(1, std::memory_order_relaxed);
    }
    const std::string end = SeqBytes(-1);
    zmq_send(replay_, id.data(), id.size(), ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(replay_, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(replay_, end.data(), end.size(), ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(replay_, "", 0, ZMQ_DONTWAIT);
  }
}

}  // namespace pagedkv::service::internal
