// RemoteTier: key building, the synchronous prefix lookup with page verification, and the bounded
// write queue drained by one background thread.
#include "pagedkv/remote/remote_tier.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "pagedkv/core/logging.h"
#include "pagedkv/core/status.h"
#include "remote/internal/page_codec.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace pagedkv {
namespace {

using internal::DecodedPage;
using internal::PageDecodeError;
using internal::PageGeometry;

// Causes that are logged once each (bit index in logged_causes_).
enum Cause : int {
  kCauseMissing = 0,
  kCauseTimeout,
  kCauseError,
  kCauseCorrupt,
  kCauseForeign,
  kCauseDropped,
  kCauseWriteError
};

// Pages per write round trip: large enough to amortize it, small enough that a lookup waiting
// behind the writer's connection is not starved (they use separate connections anyway).
constexpr size_t kMaxWriteBatch = 32;

}  // namespace

uint64_t RemoteModelFingerprint(const ModelSpec& spec, int32_t block_size_tokens) {
  std::string text = absl::StrCat(
      "pagedkv-kv-v1|", spec.name, "|kv_heads=", spec.num_kv_heads, "|head_dim=", spec.head_dim,
      "|dtype=", static_cast<int>(spec.kv_dtype), "|block=", block_size_tokens, "|layers=");
  for (const LayerSpec& layer : spec.layers) absl::StrAppend(&text, LayerSpecName(layer), ",");
  return XXH3_64bits(text.data(), text.size());
}

absl::StatusOr<std::unique_ptr<RemoteTier>> RemoteTier::Create(const RemoteTierConfig& config,
                                                               const ModelSpec& spec,
                                                               int32_t block_size_tokens) {
  PAGEDKV_RETURN_IF_ERROR(config.Validate());
  if (!config.enabled()) {
    return absl::InvalidArgumentError("remote tier: no url configured (remote.url is empty)");
  }
  PAGEDKV_ASSIGN_OR_RETURN(const RemoteUrl url, ParseRemoteUrl(config.url));
  PAGEDKV_ASSIGN_OR_RETURN(std::unique_ptr<RemoteStore> lookup, OpenRemoteStore(url));
  PAGEDKV_ASSIGN_OR_RETURN(std::unique_ptr<RemoteStore> write, OpenRemoteStore(url));
  return CreateWithStores(config, spec, block_size_tokens, std::move(lookup), std::move(write));
}

absl::StatusOr<std::unique_ptr<RemoteTier>> RemoteTier::CreateWithStores(
    const RemoteTierConfig& config, const ModelSpec& spec, int32_t block_size_tokens,
    std::unique_ptr<RemoteStore> lookup_store, std::unique_ptr<RemoteStore> write_store) {
  PAGEDKV_RETURN_IF_ERROR(config.Validate());
  if (lookup_store == nullptr || write_store == nullptr || block_size_tokens < 1) {
    return absl::InvalidArgumentError("remote tier: two stores and a block size >= 1 are needed");
  }
  return std::unique_ptr<RemoteTier>(
      new RemoteTier(config, RemoteModelFingerprint(spec, block_size_tokens), block_size_tokens,
                     spec.kv_dtype, std::move(lookup_store), std::move(write_store)));
}

RemoteTier::RemoteTier(const RemoteTierConfig& config, uint64_t fingerprint, int32_t block_size,
                       DType dtype, std::unique_ptr<RemoteStore> lookup_store,
                       std::unique_ptr<RemoteStore> write_store)
    : config_(config),
      fingerprint_(fingerprint),
      block_size_(block_size),
      dtype_(dtype),
      lookup_store_(std::move(lookup_store)),
      write_store_(std::move(write_store)) {
  writer_ = std::thread([this] { WriterLoop(); });
  PAGEDKV_LOG_INFO("remote tier {} model fingerprint {:016x} ttl={}s admit_hits={}",
                   lookup_store_->Describe(), fingerprint_, config_.ttl_seconds,
                   config_.admit_hits);
}

RemoteTier::~RemoteTier() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    write_stats_.writes_dropped += queue_.size();
    queue_.clear();
    queue_bytes_ = 0;
  }
  work_.notify_all();
  writer_.join();
}

void RemoteTier::SetGroup(int32_t group, uint64_t bytes_per_block) {
  if (static_cast<size_t>(group) >= bytes_per_block_.size()) {
    bytes_per_block_.resize(static_cast<size_t>(group) + 1, 0);
  }
  bytes_per_block_[group] = bytes_per_block;
}

std::string RemoteTier::Key(int32_t group, const BlockHash& chain) const {
  return absl::StrFormat("pagedkv:%016x:%d:%016x%016x", fingerprint_, group, chain.hi, chain.lo);
}

std::string RemoteTier::Describe() const { return lookup_store_->Describe(); }

void RemoteTier::LogOnce(int cause, const std::string& message) {
  const uint32_t bit = 1u << cause;
  if ((logged_causes_.fetch_or(bit) & bit) == 0) {
    PAGEDKV_LOG_WARN("remote tier {}: {} (logged once; counted in stats)",
                     lookup_store_->Describe(), message);
  }
}

bool RemoteTier::WorthLookup(int32_t remaining_pages) {
  if (remaining_pages >= config_.min_hit_pages) return true;
  ++lookup_stats_.lookups_skipped;
  return false;
}

int32_t RemoteTier::LookupPrefix(int32_t group, absl::Span<const BlockHash> chain,
                                 std::vector<Hit>* hits) {
  hits->clear();
  if (chain.empty()) return 0;
  keys_.resize(chain.size());
  for (size_t i = 0; i < chain.size(); ++i) keys_[i] = Key(group, chain[i]);
  ++lookup_stats_.lookups;
  lookup_stats_.lookup_pages += chain.size();
  lookup_store_->MultiGet(keys_, absl::Microseconds(config_.timeout_us), &values_);
  PageGeometry geometry;
  geometry.model_fingerprint = fingerprint_;
  geometry.group = static_cast<uint32_t>(group);
  geometry.block_size = static_cast<uint32_t>(block_size_);
  geometry.bytes_per_block = bytes_per_block_[group];
  geometry.dtype = static_cast<uint32_t>(dtype_);
  bool prefix = true;  // still in the leading run of verified pages
  for (size_t i = 0; i < chain.size(); ++i) {
    const RemoteStore::Value& v = values_[i];
    switch (v.outcome) {
      case RemoteStore::Outcome::kHit: {
        DecodedPage page;
        const PageDecodeError e =
            internal::DecodePage(v.bytes, geometry, chain[i].lo, chain[i].hi, &page);
        if (e == PageDecodeError::kNone) {
          if (prefix) {
            hits->push_back({page.tokens, page.page});
            ++lookup_stats_.hit_pages;
            lookup_stats_.bytes_read += geometry.bytes_per_block;
          }
          continue;
        }
        if (e == PageDecodeError::kForeign) {
          ++lookup_stats_.miss_foreign;
          LogOnce(kCauseForeign,
                  absl::StrCat("key ", keys_[i], " holds a page of another model or geometry"));
        } else {
          ++lookup_stats_.miss_corrupt;
          LogOnce(kCauseCorrupt, absl::StrCat("key ", keys_[i], " failed its ",
                                              internal::PageDecodeErrorName(e), " check"));
        }
        break;
      }
      case RemoteStore::Outcome::kMissing:
        ++lookup_stats_.miss_missing;
        break;
      case RemoteStore::Outcome::kTimeout:
        ++lookup_stats_.miss_timeout;
        LogOnce(kCauseTimeout,
                absl::StrCat("a lookup of ", chain.size(), " pages missed its deadline of ",
                             config_.timeout_us, " us"));
        break;
      case RemoteStore::Outcome::kError:
        ++lookup_stats_.miss_error;
        LogOnce(kCauseError, "a lookup failed (store unreachable or an error reply)");
        break;
    }
    prefix = false;
  }
  return static_cast<int32_t>(hits->size());
}

bool RemoteTier::Enqueue(int32_t group, const BlockHash& chain, absl::Span<const TokenId> tokens,
                         const std::byte* page) {
  const uint64_t bytes =
      internal::kPageHeaderBytes + tokens.size() * sizeof(TokenId) + bytes_per_block_[group];
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (queue_bytes_ + bytes > config_.queue_bytes) {
      ++write_stats_.writes_dropped;
    } else {
      QueuedPage q;
      q.key = Key(group, chain);
      PageGeometry geometry;
      geometry.model_fingerprint = fingerprint_;
      geometry.group = static_cast<uint32_t>(group);
      geometry.block_size = static_cast<uint32_t>(block_size_);
      geometry.bytes_per_block = bytes_per_block_[group];
      geometry.dtype = static_cast<uint32_t>(dtype_);
      internal::EncodePage(geometry, chain.lo, chain.hi, tokens, page, &q.value);
      queue_bytes_ += q.value.size();
      queue_.push_back(std::move(q));
      ++write_stats_.writes_queued;
      work_.notify_one();
      return true;
    }
  }
  LogOnce(kCauseDropped, absl::StrCat("the write queue (", config_.queue_bytes,
                                      " bytes) is full; pages are dropped, not waited for"));
  return false;
}

void RemoteTier::WriterLoop() {
  std::vector<RemoteStore::Item> batch;
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    work_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (stopping_) break;
    batch.clear();
    uint64_t batch_bytes = 0;
    while (!queue_.empty() && batch.size() < kMaxWriteBatch) {
      batch_bytes += queue_.front().value.size();
      batch.push_back({std::move(queue_.front().key), std::move(queue_.front().value)});
      queue_.pop_front();
    }
    queue_bytes_ -= batch_bytes;
    in_flight_ = true;
    lock.unlock();
    const absl::Status st =
        write_store_->MultiSet(batch, config_.ttl_seconds, absl::Microseconds(config_.timeout_us));
    uint64_t page_bytes = 0;
    for (const RemoteStore::Item& item : batch) {
      page_bytes += item.bytes.size() - internal::kPageHeaderBytes -
                    static_cast<uint64_t>(block_size_) * sizeof(TokenId);
    }
    if (!st.ok()) LogOnce(kCauseWriteError, absl::StrCat("a write failed: ", st.message()));
    lock.lock();
    in_flight_ = false;
    if (st.ok()) {
      write_stats_.writes_done += batch.size();
      write_stats_.bytes_written += page_bytes;
    } else {
      write_stats_.write_errors += batch.size();
    }
    if (queue_.empty()) idle_.notify_all();
  }
  in_flight_ = false;
  idle_.notify_all();
}

bool RemoteTier::Flush(absl::Duration timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return idle_.wait_for(lock, absl::ToChronoNanoseconds(timeout),
                        [&] { return (queue_.empty() && !in_flight_) || stopping_; });
}

RemoteTierStats RemoteTier::stats() const {
  RemoteTierStats s = lookup_stats_;
  std::lock_guard<std::mutex> lock(mu_);
  s.writes_queued = write_stats_.writes_queued;
  s.writes_done = write_stats_.writes_done;
  s.writes_dropped = write_stats_.writes_dropped;
  s.write_errors = write_stats_.write_errors;
  s.bytes_written = write_stats_.bytes_written;
  s.queue_bytes = queue_bytes_;
  return s;
}

}  // namespace pagedkv
