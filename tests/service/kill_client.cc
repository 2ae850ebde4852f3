// A client process for the lease-expiry test: opens a session with a short lease, admits
// sequences 1..N, then runs decode steps on 1..N-1 (so sequence N is not in the last step),
// printing after each step the pages its batch names. After the last step it stops "mid-step"
// (as if running the forward pass) until the test kills it with SIGKILL.
//   service_kill_client TARGET LEASE_SECONDS NUM_SEQS NUM_STEPS
//   -> "step K pages B1,B2,...", one line per step
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "pagedkv/service/client.h"

using pagedkv::client::Client;
using pagedkv::client::Session;
using pagedkv::client::StepBuilder;

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s TARGET LEASE_SECONDS NUM_SEQS NUM_STEPS\n", argv[0]);
    return 2;
  }
  const int num_seqs = std::atoi(argv[3]);
  const int num_steps = std::atoi(argv[4]);
  auto client = Client::Connect({.target = argv[1]});
  if (!client.ok()) return 3;
  pagedkv::v1::OpenSessionRequest open;
  open.set_client_name("doomed");
  open.set_lease_seconds(std::atof(argv[2]));
  auto session = Session::Open(**client, open);
  if (!session.ok()) {
    std::fprintf(stderr, "open: %s\n", std::string(session.status().message()).c_str());
    return 4;
  }
  StepBuilder step;
  for (int s = 1; s <= num_seqs; ++s) {
    step.Add(s, std::vector<pagedkv::TokenId>{10 * s, 10 * s + 1, 10 * s + 2});
  }
  if (!(*session)->Step(step).ok()) return 5;
  std::vector<uint64_t> decoding;
  for (int s = 1; s < num_seqs; ++s) decoding.push_back(s);
  for (int k = 1; k <= num_steps; ++k) {
    step.Clear();
    step.AppendBatch(decoding, std::vector<pagedkv::TokenId>(decoding.size(), k));
    for (uint64_t s : decoding) step.Batch(s);
    auto r = (*session)->Step(step);
    if (!r.ok() || !r->FirstError().ok()) return 6;
    std::string line = "step " + std::to_string(k) + " pages ";
    for (size_t i = 0; i < r->layouts[0].page_indices.size(); ++i) {
      if (i > 0) line += ",";
      line += std::to_string(r->layouts[0].page_indices[i]);
    }
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
  }
  // "Executing" the last step's CacheOps and forward pass until killed.
  for (;;) pause();
}
