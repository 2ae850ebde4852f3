// The in-process store (memory://NAME): a locked hash map per name, with injected faults.
#include "pagedkv/remote/memory_store.h"

#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"

namespace pagedkv {
namespace {

std::mutex& RegistryMutex() {
  static std::mutex mu;
  return mu;
}
absl::flat_hash_map<std::string, std::weak_ptr<MemoryStore::Shared>>& Registry() {
  static auto* registry = new absl::flat_hash_map<std::string, std::weak_ptr<MemoryStore::Shared>>;
  return *registry;
}

}  // namespace

std::shared_ptr<MemoryStore::Shared> MemoryStore::Named(const std::string& name) {
  std::lock_guard<std::mutex> lock(RegistryMutex());
  std::weak_ptr<Shared>& slot = Registry()[name];
  std::shared_ptr<Shared> shared = slot.lock();
  if (shared == nullptr) {
    shared = std::make_shared<Shared>();
    slot = shared;
  }
  return shared;
}

size_t MemoryStore::Shared::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return values_.size();
}

std::vector<std::string> MemoryStore::Shared::Keys() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> keys;
  for (const auto& [k, v] : values_) keys.push_back(k);
  return keys;
}

std::string MemoryStore::Shared::Get(const std::string& key) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = values_.find(key);
  return it == values_.end() ? std::string() : it->second;
}

void MemoryStore::Shared::TEST_SetDown(bool down) {
  std::lock_guard<std::mutex> lock(mu_);
  down_ = down;
}

void MemoryStore::Shared::TEST_SetDelay(absl::Duration delay) {
  std::lock_guard<std::mutex> lock(mu_);
  delay_ = delay;
}

bool MemoryStore::Shared::TEST_Corrupt(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = values_.find(key);
  if (it == values_.end() || it->second.empty()) return false;
  it->second[it->second.size() - 1] ^= 0x5a;  // the last payload byte
  return true;
}

bool MemoryStore::Shared::TEST_Truncate(const std::string& key, size_t keep_bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = values_.find(key);
  if (it == values_.end() || keep_bytes >= it->second.size()) return false;
  it->second.resize(keep_bytes);
  return true;
}

void MemoryStore::Shared::TEST_Put(const std::string& key, std::string bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  values_[key] = std::move(bytes);
}

void MemoryStore::Shared::Clear() {
  std::lock_guard<std::mutex> lock(mu_);
  values_.clear();
}

MemoryStore::MemoryStore(std::string name) : name_(std::move(name)), shared_(Named(name_)) {}

void MemoryStore::MultiGet(absl::Span<const std::string> keys, absl::Duration timeout,
                           std::vector<Value>* out) {
  out->assign(keys.size(), Value{});
  absl::Duration delay;
  {
    std::lock_guard<std::mutex> lock(shared_->mu_);
    if (shared_->down_) {
      for (Value& v : *out) v.outcome = Outcome::kError;
      return;
    }
    delay = shared_->delay_;
  }
  if (delay > absl::ZeroDuration()) {
    // A slow store: the caller gives up at its deadline.
    std::this_thread::sleep_for(absl::ToChronoNanoseconds(std::min(delay, timeout)));
    if (delay >= timeout) {
      for (Value& v : *out) v.outcome = Outcome::kTimeout;
      return;
    }
  }
  std::lock_guard<std::mutex> lock(shared_->mu_);
  for (size_t i = 0; i < keys.size(); ++i) {
    auto it = shared_->values_.find(keys[i]);
    if (it == shared_->values_.end()) continue;
    (*out)[i].outcome = Outcome::kHit;
    (*out)[i].bytes = it->second;
  }
}

absl::Status MemoryStore::MultiSet(absl::Span<const Item> items, int64_t ttl_seconds,
                                   absl::Duration timeout) {
  absl::Duration delay;
  {
    std::lock_guard<std::mutex> lock(shared_->mu_);
    if (shared_->down_) {
      return absl::UnavailableError(absl::StrCat("memory://", name_, " is down (test fault)"));
    }
    delay = shared_->delay_;
  }
  if (delay > absl::ZeroDuration()) {
    std::this_thread::sleep_for(absl::ToChronoNanoseconds(std::min(delay, timeout)));
    if (delay >= timeout) {
      return absl::DeadlineExceededError(
          absl::StrCat("memory://", name_, " is slower than the write timeout (test fault)"));
    }
  }
  std::lock_guard<std::mutex> lock(shared_->mu_);
  for (const Item& item : items) shared_->values_[item.key] = item.bytes;
  return absl::OkStatus();
}

std::string MemoryStore::Describe() const { return absl::StrCat("memory://", name_); }

}  // namespace pagedkv
