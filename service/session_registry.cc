// SessionRegistry: open sessions, their secrets and counters.
#include "service/internal/session_registry.h"

#include <sys/random.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "pagedkv/core/check.h"

namespace pagedkv::service::internal {
namespace {

Secret RandomSecret() {
  Secret secret{};
  size_t got = 0;
  while (got < secret.size()) {
    const ssize_t n = getrandom(secret.data() + got, secret.size() - got, 0);
    if (n < 0 && errno == EINTR) continue;
    PAGEDKV_CHECK_MSG(n > 0, "getrandom failed: no source of session secrets");
    got += static_cast<size_t>(n);
  }
  return secret;
}

}  // namespace

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  // The length is not secret (secrets have a fixed length; a token's length leaks nothing useful
  // against a constant-time content compare of a high-entropy token).
  if (a.size() != b.size()) return false;
  volatile uint8_t diff = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = diff | static_cast<uint8_t>(a[i] ^ b[i]);
  }
  return diff == 0;
}

absl::StatusOr<std::shared_ptr<Session>> SessionRegistry::Add(std::shared_ptr<Session> session,
                                                              int64_t max_sessions) {
  session->secret = RandomSecret();
  std::lock_guard lock(mu_);
  if (static_cast<int64_t>(sessions_.size()) >= max_sessions) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the server holds ", sessions_.size(), " open sessions, its limit (--max-sessions ",
        max_sessions, "); close idle sessions or raise the limit"));
  }
  session->id = next_id_++;
  sessions_.emplace(session->id, session);
  ++counters_.opened;
  return session;
}

absl::StatusOr<std::shared_ptr<Session>> SessionRegistry::Authenticate(
    const v1::SessionRef& ref) const {
  std::shared_ptr<Session> found;
  {
    std::lock_guard lock(mu_);
    auto it = sessions_.find(ref.session_id());
    if (it != sessions_.end()) found = it->second;
  }
  const std::string_view want(reinterpret_cast<const char*>(found ? found->secret.data() : nullptr),
                              found ? found->secret.size() : 0);
  if (found == nullptr || !ConstantTimeEquals(ref.secret(), want)) {
    return absl::NotFoundError(absl::StrCat(
        "session ", ref.session_id(),
        ": no open session with this id and secret (it was closed, its lease expired, or it never "
        "existed); open a new session"));
  }
  return found;
}

void SessionRegistry::Remove(uint64_t id, bool expired) {
  std::lock_guard lock(mu_);
  if (sessions_.erase(id) == 0) return;
  ++(expired ? counters_.expired : counters_.closed);
}

std::vector<std::shared_ptr<Session>> SessionRegistry::Expired(int64_t now_ns) const {
  std::vector<std::shared_ptr<Session>> out;
  std::lock_guard lock(mu_);
  for (const auto& [id, s] : sessions_) {
    if (s->deadline_ns.load(std::memory_order_relaxed) <= now_ns) out.push_back(s);
  }
  return out;
}

std::vector<std::shared_ptr<Session>> SessionRegistry::All() const {
  std::vector<std::shared_ptr<Session>> out;
  std::lock_guard lock(mu_);
  out.reserve(sessions_.size());
  for (const auto& [id, s] : sessions_) out.push_back(s);
  return out;
}

void SessionRegistry::CountQuarantineReleases(int64_t n) {
  std::lock_guard lock(mu_);
  counters_.quarantines_released += static_cast<uint64_t>(n);
}

SessionCounters SessionRegistry::counters() const {
  std::lock_guard lock(mu_);
  return counters_;
}

int64_t SessionRegistry::size() const {
  std::lock_guard lock(mu_);
  return static_cast<int64_t>(sessions_.size());
}

}  // namespace pagedkv::service::internal
