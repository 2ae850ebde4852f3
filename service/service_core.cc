// ServiceCore: sessions, leases and quarantine around each model's StepRunner.
#include "service/internal/service_core.h"

#include <algorithm>
#include <cmath>
#include <mutex>
#include <thread>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "pagedkv/core/check.h"
#include "pagedkv/core/logging.h"
#include "pagedkv/core/status.h"
#include "pagedkv/service/wire.h"
#include "service/internal/step_runner.h"

namespace pagedkv::service::internal {
namespace {

// Longest a call waits for a model's lock when its client set no deadline.
constexpr auto kMaxLockWait = std::chrono::seconds(60);

int64_t SecondsToNs(double seconds) { return static_cast<int64_t>(std::llround(seconds * 1e9)); }

absl::StatusOr<std::unique_lock<std::timed_mutex>> LockModel(ModelHost& host, Deadline deadline) {
  const auto now = std::chrono::steady_clock::now();
  deadline = std::min(deadline, now + kMaxLockWait);
  std::unique_lock lock(host.mu(), std::defer_lock);
  // A system_clock deadline: libstdc++ then waits with pthread_mutex_timedlock, which
  // ThreadSanitizer understands (with a steady_clock deadline it uses pthread_mutex_clocklock,
  // which this toolchain's TSan does not intercept, so every Step would look unlocked to it).
  const auto until =
      std::chrono::system_clock::now() +
      std::chrono::duration_cast<std::chrono::system_clock::duration>(deadline - now);
  if (!lock.try_lock_until(until)) {
    return absl::DeadlineExceededError(
        absl::StrCat("model '", host.name(),
                     "' stayed busy past the call's deadline; retry with a longer "
                     "deadline or fewer concurrent clients"));
  }
  return lock;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ServiceCore>> ServiceCore::Create(const ServerOptions& options) {
  if (options.models.empty()) {
    return absl::InvalidArgumentError("no model to serve; give --model or a --config with models");
  }
  const SessionLimits& l = options.limits;
  if (!(l.min_lease_seconds > 0 && l.min_lease_seconds <= l.default_lease_seconds &&
        l.default_lease_seconds <= l.max_lease_seconds) ||
      !(l.quarantine_seconds >= 0) || l.max_sessions < 1 || l.max_ops_per_step < 1 ||
      l.max_batch_entries < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("session limits: need 0 < min_lease (", l.min_lease_seconds,
                     ") <= default_lease (", l.default_lease_seconds, ") <= max_lease (",
                     l.max_lease_seconds, "), quarantine >= 0 (", l.quarantine_seconds,
                     "), and max_sessions, max_ops_per_step, "
                     "max_batch_entries >= 1"));
  }
  std::unique_ptr<ServiceCore> core(new ServiceCore());
  core->limits_ = options.limits;
  core->testing_step_delay_ms_ = options.testing_step_delay_ms;
  core->clock_ns_ = options.clock_ns;
  absl::flat_hash_set<std::string> names;
  for (const ModelOptions& m : options.models) {
    PAGEDKV_ASSIGN_OR_RETURN(std::unique_ptr<ModelHost> host, ModelHost::Create(m));
    if (!names.insert(host->name()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("model name '", host->name(), "' is served twice; give each a name"));
    }
    core->models_.push_back(std::move(host));
  }
  return core;
}

int64_t ServiceCore::NowNs() const {
  if (clock_ns_) return clock_ns_();
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

absl::StatusOr<ModelHost*> ServiceCore::FindModel(const std::string& name) const {
  if (name.empty()) {
    if (models_.size() == 1) return models_.front().get();
    std::vector<std::string> all;
    for (const auto& m : models_) all.push_back(m->name());
    return absl::InvalidArgumentError(absl::StrCat("no model named; this server serves ",
                                                   absl::StrJoin(all, ", "), ": name one"));
  }
  for (const auto& m : models_) {
    if (m->name() == name) return m.get();
  }
  std::vector<std::string> all;
  for (const auto& m : models_) all.push_back(m->name());
  return absl::NotFoundError(
      absl::StrCat("model '", name, "' is not served here; served: ", absl::StrJoin(all, ", ")));
}

absl::StatusOr<std::shared_ptr<Session>> ServiceCore::Touch(const v1::SessionRef& ref) {
  PAGEDKV_ASSIGN_OR_RETURN(std::shared_ptr<Session> session, registry_.Authenticate(ref));
  session->deadline_ns.store(NowNs() + session->lease_ns, std::memory_order_relaxed);
  return session;
}

absl::Status ServiceCore::OpenSession(const v1::OpenSessionRequest& request,
                                      v1::OpenSessionResponse* response) {
  if (draining()) {
    return absl::UnavailableError(
        "the server is shutting down (SIGTERM); open the session on "
        "another server or after the restart");
  }
  PAGEDKV_ASSIGN_OR_RETURN(ModelHost * host, FindModel(request.model()));
  const double asked = request.lease_seconds();
  if (!(asked >= 0) || std::isinf(asked)) {
    return absl::InvalidArgumentError(
        absl::StrCat("lease_seconds must be >= 0 (0 = the server's default), got ", asked));
  }
  const double lease =
      asked == 0 ? limits_.default_lease_seconds
                 : std::clamp(asked, limits_.min_lease_seconds, limits_.max_lease_seconds);
  const uint32_t gpu_total = host->gpu_blocks() * static_cast<uint32_t>(host->num_groups());
  const uint32_t host_total = host->host_blocks() * static_cast<uint32_t>(host->num_groups());
  auto session = std::make_shared<Session>();
  // Printable ASCII only, at most 128 bytes: the name goes into log lines.
  for (char c : request.client_name().substr(0, 128)) {
    session->client_name.push_back(c >= 0x20 && c < 0x7f ? c : '?');
  }
  session->model = host;
  session->gpu_quota =
      request.gpu_block_quota() == 0 ? gpu_total : std::min(request.gpu_block_quota(), gpu_total);
  session->host_quota = request.host_block_quota() == 0
                            ? host_total
                            : std::min(request.host_block_quota(), host_total);
  session->lease_ns = SecondsToNs(lease);
  session->deadline_ns.store(NowNs() + session->lease_ns);
  {
    std::lock_guard lock(host->mu());
    PAGEDKV_ASSIGN_OR_RETURN(session, registry_.Add(std::move(session), limits_.max_sessions));
    session->cache_salt = NamespaceSalt(request.cache_namespace(), session->id);
    ++host->open_sessions;
  }
  response->mutable_session()->set_session_id(session->id);
  response->mutable_session()->set_secret(
      std::string(reinterpret_cast<const char*>(session->secret.data()), session->secret.size()));
  response->set_lease_seconds(lease);
  response->set_gpu_block_quota(session->gpu_quota);
  response->set_host_block_quota(session->host_quota);
  response->set_pool_socket(pool_socket_path_);
  *response->mutable_model() = host->description();
  PAGEDKV_LOG_INFO(
      "session_open id={} client='{}' model={} lease_s={} gpu_quota={} host_quota={} "
      "namespace={}",
      session->id, session->client_name, host->name(), lease, session->gpu_quota,
      session->host_quota, request.cache_namespace().empty() ? "(private)" : "(named)");
  return absl::OkStatus();
}

absl::Status ServiceCore::Step(const v1::StepRequest& request, Deadline deadline,
                               v1::StepResponse* response) {
  PAGEDKV_ASSIGN_OR_RETURN(std::shared_ptr<Session> session, Touch(request.session()));
  ModelHost& host = *session->model;
  StepRunner runner(host, *session, limits_);
  PAGEDKV_RETURN_IF_ERROR(runner.Validate(request));
  PAGEDKV_ASSIGN_OR_RETURN(std::unique_lock<std::timed_mutex> lock, LockModel(host, deadline));
  if (!session->open) {
    return absl::NotFoundError(absl::StrCat("session ", session->id,
                                            ": closed or expired while this step waited; open "
                                            "a new session"));
  }
  if (testing_step_delay_ms_ > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(testing_step_delay_ms_));
  }
  runner.Run(request, response);
  return absl::OkStatus();
}

absl::Status ServiceCore::KeepAlive(const v1::KeepAliveRequest& request,
                                    v1::KeepAliveResponse* response) {
  PAGEDKV_ASSIGN_OR_RETURN(std::shared_ptr<Session> session, Touch(request.session()));
  response->set_lease_seconds(static_cast<double>(session->lease_ns) * 1e-9);
  return absl::OkStatus();
}

bool ServiceCore::Release(Session& session, bool expired, int64_t now_ns, int64_t* freed,
                          int64_t* quarantined) {
  ModelHost& host = *session.model;
  if (!session.open) return false;
  // A call renewed the lease after the reaper looked: not expired after all.
  if (expired && session.deadline_ns.load(std::memory_order_relaxed) > now_ns) return false;
  session.open = false;
  --host.open_sessions;
  const int64_t release_ns = now_ns + SecondsToNs(limits_.quarantine_seconds);
  for (const auto& [client_id, seq] : session.seqs) {
    if (expired && limits_.quarantine_seconds > 0 &&
        std::binary_search(session.last_step_seqs.begin(), session.last_step_seqs.end(), seq)) {
      host.Quarantine(seq, session.ledger, release_ns);
      ++*quarantined;
    } else {
      absl::Status s = host.bm().Free(seq);
      PAGEDKV_CHECK_MSG(s.ok(), "a session's sequence vanished from the manager");
      session.ledger.Drop(seq);
      ++*freed;
    }
  }
  session.seqs.clear();
  session.last_step_seqs.clear();
  return true;
}

absl::Status ServiceCore::CloseSession(const v1::CloseSessionRequest& request, Deadline deadline,
                                       v1::CloseSessionResponse* response) {
  PAGEDKV_ASSIGN_OR_RETURN(std::shared_ptr<Session> session,
                           registry_.Authenticate(request.session()));
  ModelHost& host = *session->model;
  int64_t freed = 0, quarantined = 0;
  bool released;
  {
    PAGEDKV_ASSIGN_OR_RETURN(std::unique_lock<std::timed_mutex> lock, LockModel(host, deadline));
    released = Release(*session, /*expired=*/false, NowNs(), &freed, &quarantined);
  }
  if (!released) {
    return absl::NotFoundError(
        absl::StrCat("session ", session->id, ": already closed or expired; nothing to close"));
  }
  registry_.Remove(session->id, /*expired=*/false);
  response->set_freed_sequences(freed);
  PAGEDKV_LOG_INFO("session_close id={} client='{}' model={} freed_seqs={}", session->id,
                   session->client_name, host.name(), freed);
  return absl::OkStatus();
}

void ServiceCore::Reap() {
  const int64_t now = NowNs();
  for (const std::shared_ptr<Session>& session : registry_.Expired(now)) {
    ModelHost& host = *session->model;
    int64_t freed = 0, quarantined = 0;
    uint32_t held_gpu = 0, held_host = 0;
    bool released;
    {
      std::lock_guard lock(host.mu());
      released = Release(*session, /*expired=*/true, now, &freed, &quarantined);
      held_gpu = host.quarantine_ledger().used(Tier::kGpu);
      held_host = host.quarantine_ledger().used(Tier::kHost);
    }
    if (!released) continue;
    registry_.Remove(session->id, /*expired=*/true);
    PAGEDKV_LOG_WARN(
        "session_expired id={} client='{}' model={} lease_s={} freed_seqs={} "
        "quarantined_seqs={} quarantine_s={} model_quarantined_gpu_blocks={} "
        "model_quarantined_host_blocks={}",
        session->id, session->client_name, host.name(),
        static_cast<double>(session->lease_ns) * 1e-9, freed, quarantined,
        limits_.quarantine_seconds, held_gpu, held_host);
  }
  for (const auto& host : models_) {
    int64_t released;
    {
      std::lock_guard lock(host->mu());
      released = host->ReleaseDue(now);
    }
    if (released > 0) {
      registry_.CountQuarantineReleases(released);
      PAGEDKV_LOG_INFO("quarantine_end model={} released_seqs={}", host->name(), released);
    }
  }
}

absl::Status ServiceCore::Stats(const v1::StatsRequest& request, Deadline deadline,
                                v1::StatsResponse* response) {
  std::shared_ptr<Session> session;
  if (request.has_session()) {
    PAGEDKV_ASSIGN_OR_RETURN(session, Touch(request.session()));
  }
  absl::Status invariants;
  for (const auto& host : models_) {
    if (!request.model().empty() && host->name() != request.model()) continue;
    PAGEDKV_ASSIGN_OR_RETURN(std::unique_lock<std::timed_mutex> lock, LockModel(*host, deadline));
    host->FillStats(response->add_models());
    if (request.check_invariants() && invariants.ok()) {
      const std::vector<std::shared_ptr<Session>> all = registry_.All();
      std::vector<const Session*> sessions;
      for (const auto& s : all) sessions.push_back(s.get());
      invariants = host->CheckInvariants(sessions);
    }
    if (session != nullptr && session->model == host.get()) {
      v1::SessionStats* s = response->mutable_session();
      s->set_session_id(session->id);
      s->set_client_name(session->client_name);
      s->set_model(host->name());
      s->set_num_sequences(static_cast<int64_t>(session->seqs.size()));
      s->set_gpu_blocks_used(session->ledger.used(Tier::kGpu));
      s->set_host_blocks_used(session->ledger.used(Tier::kHost));
      s->set_gpu_block_quota(session->gpu_quota);
      s->set_host_block_quota(session->host_quota);
      s->set_steps(session->steps);
      s->set_lease_seconds(static_cast<double>(session->lease_ns) * 1e-9);
      s->set_seconds_until_expiry(
          static_cast<double>(session->deadline_ns.load(std::memory_order_relaxed) - NowNs()) *
          1e-9);
    }
  }
  if (!request.model().empty() && response->models_size() == 0) {
    return FindModel(request.model()).status();
  }
  const SessionCounters c = registry_.counters();
  response->set_open_sessions(registry_.size());
  response->set_sessions_opened(c.opened);
  response->set_sessions_closed(c.closed);
  response->set_sessions_expired(c.expired);
  response->set_quarantines_released(c.quarantines_released);
  response->set_draining(draining());
  if (request.check_invariants()) ToProto(invariants, response->mutable_invariants());
  return absl::OkStatus();
}

absl::Status ServiceCore::DescribeModel(const v1::DescribeModelRequest& request,
                                        v1::DescribeModelResponse* response) const {
  PAGEDKV_ASSIGN_OR_RETURN(ModelHost * host, FindModel(request.model()));
  *response->mutable_model() = host->description();
  for (const auto& m : models_) response->add_served_models(m->name());
  return absl::OkStatus();
}

absl::Status ServiceCore::PoolHandles(const v1::PoolHandlesRequest& request,
                                      v1::PoolHandles* handles, std::vector<int>* fds) const {
  PAGEDKV_ASSIGN_OR_RETURN(std::shared_ptr<Session> session,
                           registry_.Authenticate(request.session()));
  session->model->FillPoolHandles(handles, fds);
  return absl::OkStatus();
}

}  // namespace pagedkv::service::internal
