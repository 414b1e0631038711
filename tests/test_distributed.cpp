// Data parallelism on the CPU with Gloo and real processes, launched as torchrun launches them
// (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT): 2 ranks match 1 rank holding the
// same global batch, ZeRO-1 matches plain data parallelism and holds 1/ranks of the optimizer
// state, a 2-rank checkpoint (ZeRO-1 or not) resumes on 1 and on 4 ranks, a killed or stopped rank
// makes the other exit naming it, and launch mistakes are errors.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <numeric>
#include <sstream>
#include <thread>

#include "core/config.h"
#include "core/error.h"
#include "core/files.h"
#include "data/prepare.h"
#include "data/token_dataset.h"
#include "model/safetensors.h"
#include "model/transformer.h"
#include "train/checkpoint/checkpoint.h"
#include "train/checkpoint/model_weights.h"
#include "train/checkpoint/pretrained.h"
#include "train/checkpoint/optimizer_state.h"
#include "train/distributed/flat_layout.h"
#include "tests/finetune_pipeline.h"
#include "tests/token_fixture.h"
#include "tests/test_util.h"
#include "train/distributed/dist.h"

namespace chart {
namespace {
using testing::days;
using testing::Row;
using testing::TempDir;
namespace fs = std::filesystem;

fs::path make_tokens(const TempDir& dir) {
  return testing::make_token_dataset(dir.path(), {120, 30, 30}, [](int s, int i) {
    const int64_t id = 10000 * (s + 1) + i;
    auto rows = testing::born(id, i % 2 ? "GENDER//F" : "GENDER//M", days(7305 + i));
    for (int k = 0; k < 30 + i % 17; ++k) {
      double t = 15000 + 30 * k + 0.5 * (i % 5);
      rows.push_back({id, days(t), "VISIT//" + std::to_string(i % 3)});
      rows.push_back({id, days(t + 0.1), "DX//" + std::to_string((k + i) % 5)});
      rows.push_back({id, days(t + 0.1), "LAB//x", static_cast<float>((k * 7 + i) % 10)});
    }
    return rows;
  });
}

// A TCP port no one listens on now (the kernel's choice for port 0).
int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t n = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &n);
  close(fd);
  return ntohs(a.sin_port);
}

std::string train_args(const fs::path& tok, const fs::path& run, const std::string& extra) {
  return "train " + (testing::source_dir() / "configs/tiny.yaml").string() + " --set data.dir=" + tok.string() +
         " --set run.dir=" + run.string() + " --set train.threads=1 --set train.log_every=1 --set train.eval_every=3"
         " --set train.checkpoint_every=3 --set train.keep_last=5 --set train.steps=6 --set train.grad_accum=2"
         " --set dist.bucket_mb=0.05 " + extra;
}

// Starts `chart args` as one rank, with the variables torchrun sets; output to log.
pid_t spawn_rank(int rank, int world, int port, const std::string& args, const fs::path& log,
                 const std::string& env = "") {
  pid_t pid = fork();
  if (pid == 0) {
    std::string cmd = fmt::format("RANK={} WORLD_SIZE={} LOCAL_RANK={} MASTER_ADDR=127.0.0.1 MASTER_PORT={} {} exec {} {} > {} 2>&1",
                                  rank, world, rank, port, env, CHART_BINARY, args, log.string());
    execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  return pid;
}

// Exit status of pid, or -1 if it has not exited within `limit_s` (then it is killed): a guard
// against hangs, not a timing.
int wait_exit(pid_t pid, double limit_s = 300) {
  auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(limit_s);
  int status = 0;
  while (std::chrono::steady_clock::now() < end) {
    if (waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  return -1;
}

// Runs `world` ranks to the end; returns their exit statuses, logs in *logs.
std::vector<int> run_ranks(int world, const std::string& args, const fs::path& log_prefix, std::string* logs,
                           const std::string& env = "") {
  const int port = free_port();
  std::vector<pid_t> pids;
  for (int r = 0; r < world; ++r)
    pids.push_back(spawn_rank(r, world, port, args, log_prefix.string() + std::to_string(r) + ".log", env));
  std::vector<int> rc;
  for (pid_t p : pids) rc.push_back(wait_exit(p));
  logs->clear();
  for (int r = 0; r < world; ++r)
    *logs += fmt::format("--- rank {} ---\n{}", r, read_file(log_prefix.string() + std::to_string(r) + ".log"));
  return rc;
}

// (step, split) -> the line's "loss".
std::map<std::pair<int, std::string>, double> losses(const fs::path& run) {
  std::map<std::pair<int, std::string>, double> out;
  std::istringstream in(read_file(run / "metrics.jsonl"));
  std::string line;
  while (std::getline(in, line)) {
    int step = std::stoi(line.substr(line.find("\"step\": ") + 8));
    std::string split = line.find("\"split\": \"train\"") != std::string::npos ? "train" : "tuning";
    out[{step, split}] = std::stod(line.substr(line.find("\"loss\": ") + 8));
  }
  return out;
}

// Of the weights of two checkpoint directories, in one file each or split across ranks' files.
double max_weight_difference(const fs::path& a, const fs::path& b) {
  const auto x = read_weights(a), y = read_weights(b);
  EXPECT_EQ(x.size(), y.size());
  double worst = 0;
  for (const auto& [name, t] : x) worst = std::max(worst, (t - y.at(name)).abs().max().item<double>());
  return worst;
}

// The ZeRO-1 optimizer files of checkpoint `ckpt` (world ranks) hold each element of each
// parameter once, about 1/world each, and match the whole moments in `whole` (an unsharded run's).
void expect_shards_tile_moments(const fs::path& ckpt, int world, const fs::path& whole) {
  Safetensors all = load_safetensors(whole);
  std::map<std::string, torch::Tensor> seen;  // kind/name -> how often each element was saved
  std::vector<int64_t> per_rank;
  double worst = 0;
  for (int r = 0; r < world; ++r) {
    const fs::path f = ckpt / (r == 0 ? "optimizer.safetensors" : fmt::format("optimizer.rank{}.safetensors", r));
    int64_t elements = 0;
    for (const auto& [key, t] : load_safetensors(f).tensors) {
      if (key.rfind("step/", 0) == 0) continue;
      const size_t at = key.rfind('@');
      ASSERT_NE(at, std::string::npos) << key;
      long long b = 0, e = 0;
      ASSERT_EQ(std::sscanf(key.c_str() + at + 1, "%lld-%lld", &b, &e), 2) << key;
      const torch::Tensor ref = all.tensors.at(key.substr(0, at)).reshape({-1});
      auto& count = seen.try_emplace(key.substr(0, at), torch::zeros({ref.numel()}, torch::kInt32)).first->second;
      count.narrow(0, b, e - b).add_(1);
      worst = std::max(worst, (t - ref.narrow(0, b, e - b)).abs().max().item<double>());
      elements += e - b;
    }
    per_rank.push_back(elements);
  }
  EXPECT_EQ(seen.size(), all.tensors.size() * 2 / 3) << "every parameter's exp_avg and exp_avg_sq";
  for (const auto& [key, count] : seen) EXPECT_TRUE(count.eq(1).all().item<bool>()) << key;
  const int64_t total = std::accumulate(per_rank.begin(), per_rank.end(), int64_t{0});
  for (int64_t e : per_rank) EXPECT_NEAR(double(e), double(total) / world, 0.01 * total / world);
  EXPECT_LT(worst, 1e-6);
  std::printf("ZeRO-1 shards vs whole moments: differ by at most %.3g\n", worst);
}

// kind ("exp_avg" or "exp_avg_sq") / parameter name -> the flattened moments, assembled from the
// optimizer files of checkpoint `ckpt` written by `world` ranks (ZeRO-1 pieces or whole tensors).
std::map<std::string, torch::Tensor> union_of_moments(const fs::path& ckpt, int world) {
  std::map<std::string, torch::Tensor> out;
  for (int r = 0; r < world; ++r) {
    const fs::path f = ckpt / (r == 0 ? "optimizer.safetensors" : fmt::format("optimizer.rank{}.safetensors", r));
    for (const auto& [key, t] : load_safetensors(f).tensors) {
      if (key.rfind("step/", 0) == 0) continue;
      const size_t at = key.rfind('@');
      if (at == std::string::npos) {
        out[key] = t.reshape({-1}).clone();
        continue;
      }
      long long b = 0, e = 0;
      std::sscanf(key.c_str() + at + 1, "%lld-%lld", &b, &e);
      auto& whole = out[key.substr(0, at)];
      if (!whole.defined()) whole = torch::full({0}, 0.0f);
      if (whole.numel() < e) whole = torch::cat({whole, torch::full({e - whole.numel()}, NAN)});
      whole.narrow(0, b, e - b).copy_(t);
    }
  }
  return out;
}

// Loads checkpoint `ckpt`'s moments as each rank of a ZeRO-1 run on `world` ranks would (its
// own pieces only, through the same code as chart train) and compares each piece with `expected`.
void expect_reshard_loads(const fs::path& ckpt, const Config& cfg, int64_t vocab, int world,
                          const std::map<std::string, torch::Tensor>& expected) {
  ClinicalTransformer model(cfg.model, vocab);
  std::vector<torch::Tensor> params = model->parameters();
  const FlatLayout layout = make_flat_layout(params, bucket_capacity(cfg.dist), world);
  int64_t loaded = 0;
  for (int r = 0; r < world; ++r) {
    std::vector<ShardPiece> pieces = layout.pieces(r);
    std::vector<torch::Tensor> views;
    for (const auto& p : pieces) views.push_back(params[p.param].detach().view({-1}).narrow(0, p.begin, p.end - p.begin));
    torch::optim::AdamW opt(views);
    const auto slots = moment_slots(model, pieces, views);
    load_moments(ckpt, slots, opt);
    for (const auto& s : slots) {
      auto& st = static_cast<torch::optim::AdamWParamState&>(*opt.state().at(s.tensor.unsafeGetTensorImpl()));
      EXPECT_TRUE(torch::equal(st.exp_avg(), expected.at("exp_avg/" + s.name).narrow(0, s.begin, s.end - s.begin)))
          << s.key("exp_avg") << " on rank " << r << " of " << world;
      EXPECT_TRUE(torch::equal(st.exp_avg_sq(), expected.at("exp_avg_sq/" + s.name).narrow(0, s.begin, s.end - s.begin)))
          << s.key("exp_avg_sq") << " on rank " << r << " of " << world;
      EXPECT_EQ(st.step(), 3);
      loaded += s.end - s.begin;
    }
  }
  EXPECT_EQ(loaded, model->parameter_count());
}

void expect_same_losses(const fs::path& a, const fs::path& b, double tol) {
  auto la = losses(a), lb = losses(b);
  ASSERT_EQ(la.size(), lb.size());
  ASSERT_EQ(la.size(), 8u);  // 6 train lines, 2 tuning lines
  for (const auto& [k, v] : la) EXPECT_NEAR(v, lb.at(k), tol) << "step " << k.first << " " << k.second;
}

// The equivalences, sharing one dataset and one 1-rank reference run.
TEST(Distributed, TwoRanksMatchOneRankAndZero1AndResumeOnOneRank) {
  TempDir dir;
  fs::path tok = make_tokens(dir);
  std::string out;
  // 1 rank, 8 windows x 2 micro-batches per step; 2 ranks, 4 windows each x 2 micro-batches.
  ASSERT_EQ(testing::run_chart(train_args(tok, dir / "one", "--set train.batch_size=8"), &out), 0) << out;
  std::string logs;
  auto rc = run_ranks(2, train_args(tok, dir / "two", "--set train.batch_size=4"), dir / "two", &logs);
  ASSERT_EQ(rc, (std::vector<int>{0, 0})) << logs;
  EXPECT_NE(logs.find("2 ranks (torchrun), gloo process group"), std::string::npos) << logs;
  // Several buckets, and all but possibly the last started while backward was still running.
  {
    auto at = logs.find("in the last step, ");
    ASSERT_NE(at, std::string::npos) << logs;
    int started = 0, total = 0;
    std::sscanf(logs.c_str() + at, "in the last step, %d of %d", &started, &total);
    EXPECT_GE(total, 4) << logs;
    EXPECT_GE(started, total - 1) << logs;
    // One all-reduce per bucket per optimizer step: the first of the 2 micro-batches sends nothing.
    EXPECT_NE(logs.find(fmt::format("{} bucket all-reduces in 6 steps of 2 micro-batches", 6 * total)), std::string::npos)
        << logs;
  }
  rc = run_ranks(2, train_args(tok, dir / "zero1", "--set train.batch_size=4 --set dist.zero1=true"), dir / "zero1", &logs);
  ASSERT_EQ(rc, (std::vector<int>{0, 0})) << logs;
  EXPECT_NE(logs.find("bucket reduce-scatters in 6 steps"), std::string::npos) << logs;

  // Gradients summed in bf16: the same run to bf16 precision.
  rc = run_ranks(2, train_args(tok, dir / "bf16", "--set train.batch_size=4 --set dist.reduce_dtype=bf16"), dir / "bf16", &logs);
  ASSERT_EQ(rc, (std::vector<int>{0, 0})) << logs;
  expect_same_losses(dir / "one", dir / "bf16", 2e-3);  // measured 1.4e-5
  // ZeRO-1 reduce-scatters in bf16 too (into its fp32 shard).
  rc = run_ranks(2, train_args(tok, dir / "zero1_bf16", "--set train.batch_size=4 --set dist.zero1=true --set dist.reduce_dtype=bf16"),
                 dir / "zero1_bf16", &logs);
  ASSERT_EQ(rc, (std::vector<int>{0, 0})) << logs;
  expect_same_losses(dir / "bf16", dir / "zero1_bf16", 1e-5);

  // Same loss trajectory (train and tuning) and final weights, to fp32 reduction order.
  // (Measured: 6e-7 in loss and weights; a lost or doubled micro-batch would be ~1e-2.)
  expect_same_losses(dir / "one", dir / "two", 2e-5);
  EXPECT_LT(max_weight_difference(dir / "one/checkpoints/step_6",
                                  dir / "two/checkpoints/step_6"), 2e-5);
  // ZeRO-1 does the same arithmetic as plain data parallelism, only sharded: the gradient norm
  // (summed from the shards) differs by round-off, and with it the clipping coefficient.
  expect_same_losses(dir / "two", dir / "zero1", 1e-6);
  const double zero1_vs_plain = max_weight_difference(dir / "two/checkpoints/step_6",
                                                     dir / "zero1/checkpoints/step_6");
  EXPECT_LT(zero1_vs_plain, 1e-6);
  std::printf("ZeRO-1 vs plain, 2 ranks, 6 steps: weights differ by at most %.3g\n", zero1_vs_plain);
  EXPECT_EQ(read_file(dir / "one/checkpoints/step_6/trainer_state.yaml").substr(0, 90),
            read_file(dir / "two/checkpoints/step_6/trainer_state.yaml").substr(0, 90));  // step, loader, tokens

  // Rank 0 wrote the shared files; each rank's own state is in its own file.
  for (const char* f : {"rng.safetensors", "rng.rank1.safetensors", "optimizer.safetensors"})
    EXPECT_TRUE(fs::exists(dir / "two/checkpoints/step_6" / f)) << f;
  EXPECT_FALSE(fs::exists(dir / "two/checkpoints/step_6/optimizer.rank1.safetensors"));
  EXPECT_TRUE(fs::exists(dir / "zero1/checkpoints/step_6/optimizer.rank1.safetensors"));
  for (const auto& e : fs::directory_iterator(dir / "two/checkpoints"))
    EXPECT_EQ(e.path().filename().string().rfind(".step_", 0), std::string::npos) << "left over: " << e.path();
  // The two ZeRO-1 shards hold every element of every parameter's moments exactly once, half
  // each, equal to plain data parallelism's.
  expect_shards_tile_moments(dir / "zero1/checkpoints/step_6", 2, dir / "two/checkpoints/step_6/optimizer.safetensors");

  // The ZeRO-1 2-rank checkpoint of step 3 resumes on 1 rank and ends where the 1-rank run did.
  ASSERT_EQ(testing::run_chart(train_args(tok, dir / "resumed", "--set train.batch_size=8 --resume " +
                                                                  (dir / "zero1/checkpoints/step_3").string()),
                               &out), 0) << out;
  EXPECT_NE(out.find("resumed from"), std::string::npos) << out;
  EXPECT_LT(max_weight_difference(dir / "one/checkpoints/step_6",
                                  dir / "resumed/checkpoints/step_6"), 2e-5);
  auto lr = losses(dir / "resumed"), l1 = losses(dir / "one");
  EXPECT_NEAR(lr.at({6, "train"}), l1.at({6, "train"}), 2e-5);

  // 2 ranks resume their own run (--resume auto, rank 0 choosing) bit-identically.
  fs::copy(dir / "two", dir / "two_again", fs::copy_options::recursive);
  fs::remove_all(dir / "two_again/checkpoints/step_6");
  write_file_atomic(dir / "two_again/checkpoints/latest", "step_3\n");
  rc = run_ranks(2, train_args(tok, dir / "two_again", "--set train.batch_size=4 --resume auto"), dir / "two_again", &logs);
  ASSERT_EQ(rc, (std::vector<int>{0, 0})) << logs;
  EXPECT_NE(logs.find("resumed from " + (dir / "two_again/checkpoints/step_3").string()), std::string::npos) << logs;
  EXPECT_EQ(max_weight_difference(dir / "two/checkpoints/step_6",
                                  dir / "two_again/checkpoints/step_6"), 0.0);
  EXPECT_EQ(read_file(dir / "two/checkpoints/step_6/optimizer.safetensors"),
            read_file(dir / "two_again/checkpoints/step_6/optimizer.safetensors"));

  // A plain 2-rank checkpoint resumes on 1 rank with another per-rank batch: the loader position
  // is converted, so no window is seen twice.
  ASSERT_EQ(testing::run_chart(train_args(tok, dir / "resized", "--set train.batch_size=4 --resume " +
                                                                  (dir / "two/checkpoints/step_3").string()),
                               &out), 0) << out;
  EXPECT_NE(out.find("continuing epoch"), std::string::npos) << out;
}

// ZeRO-1 over the flat parameter space: with one large tensor (a 3,600-code embedding, ~85% of
// the parameters) and small others, each rank's optimizer state is 1/ranks of one rank's, which
// whole-tensor ownership cannot give (the embedding's owner would hold ~85% at any rank count).
TEST(Distributed, Zero1OptimizerStateIsOneNthPerRank) {
  TempDir dir;
  const fs::path tok = testing::make_token_dataset(
      dir.path(), {120, 20, 20},
      [](int s, int i) {
        const int64_t id = 10000 * (s + 1) + i;
        auto rows = testing::born(id, "GENDER//F", days(7305));
        for (int k = 0; k < 30; ++k) rows.push_back({id, days(15000 + k), fmt::format("DX//{}", i * 30 + k)});
        return rows;
      },
      {"prepare.min_subjects=1"});
  const std::string model = "--set model.d_model=32 --set model.n_layers=1 --set train.steps=2 --set train.eval_every=0"
                            " --set train.batch_size=2 --set dist.zero1=true";
  std::map<int, std::vector<int64_t>> bytes;  // world size -> each rank's
  for (int world : {1, 2, 4}) {
    std::string logs;
    const fs::path run = dir / fmt::format("w{}", world);
    ASSERT_EQ(run_ranks(world, train_args(tok, run, model), run, &logs), std::vector<int>(world, 0)) << logs;
    for (int r = 0; r < world; ++r) {
      const auto at = logs.find(fmt::format("dist: rank {} holds ", r));
      ASSERT_NE(at, std::string::npos) << logs;
      long long b = 0;
      ASSERT_EQ(std::sscanf(logs.c_str() + at, "dist: rank %*d holds %lld", &b), 1) << logs;
      bytes[world].push_back(b);
    }
  }
  const double one = double(bytes[1][0]);
  EXPECT_GT(one, 8.0 * 100000);  // exp_avg and exp_avg_sq of > 100k fp32 elements
  for (int world : {2, 4}) {
    int64_t sum = 0;
    for (int64_t b : bytes[world]) {
      EXPECT_NEAR(double(b), one / world, 0.01 * one / world) << "world " << world;
      sum += b;
    }
    EXPECT_EQ(sum, bytes[1][0]) << "world " << world;  // every element's moments exactly once
  }
  std::printf("optimizer-state bytes per rank: 1 rank %s; 2 ranks %s; 4 ranks %s\n",
              fmt::format("{}", fmt::join(bytes[1], ", ")).c_str(), fmt::format("{}", fmt::join(bytes[2], ", ")).c_str(),
              fmt::format("{}", fmt::join(bytes[4], ", ")).c_str());
}

// A 2-rank ZeRO-1 checkpoint resumes on 1 and on 4 ranks: each rank reads only its own pieces
// (moments equal to the 2 ranks' union), and the runs continue to the 2-rank run's weights and
// moments. A whole-tensor (older, or unsharded) optimizer file loads into shards too.
TEST(Distributed, Zero1CheckpointsReshardOnLoad) {
  TempDir dir;
  const fs::path tok = make_tokens(dir);
  const std::string zero = " --set dist.zero1=true";
  std::string logs;
  ASSERT_EQ(run_ranks(2, train_args(tok, dir / "z2", "--set train.batch_size=4" + zero), dir / "z2", &logs),
            (std::vector<int>{0, 0})) << logs;
  const fs::path step3 = dir / "z2/checkpoints/step_3";
  Config cfg = load_config((testing::source_dir() / "configs/tiny.yaml").string(), {"dist.bucket_mb=0.05"});
  const int64_t vocab = static_cast<int64_t>(data::TokenDataset::open(tok).vocab().size());
  const auto saved = union_of_moments(step3, 2);
  for (int world : {1, 4}) expect_reshard_loads(step3, cfg, vocab, world, saved);

  // The same moments as one whole-tensor file (what unsharded runs and older chart wrote).
  {
    const fs::path old = dir / "old";
    fs::create_directories(old);
    NamedTensors whole;
    ClinicalTransformer model(cfg.model, vocab);
    for (const auto& p : model->named_parameters()) {
      for (const char* kind : {"exp_avg", "exp_avg_sq"})
        whole.emplace_back(fmt::format("{}/{}", kind, p.key()), saved.at(fmt::format("{}/{}", kind, p.key())).view(p.value().sizes()));
      whole.emplace_back("step/" + p.key(), torch::tensor(int64_t{3}));
    }
    save_safetensors(old / "optimizer.safetensors", whole);
    expect_reshard_loads(old, cfg, vocab, 4, saved);
  }

  // A shard file missing: the ranks whose pieces it held say which parameter is not covered.
  {
    const fs::path partial = dir / "partial";
    fs::create_directories(partial);
    fs::copy_file(step3 / "optimizer.safetensors", partial / "optimizer.safetensors");
    ClinicalTransformer model(cfg.model, vocab);
    auto slots = moment_slots(model, nullptr);
    std::vector<torch::Tensor> params = model->parameters();
    torch::optim::AdamW opt(params);
    try {
      load_moments(partial, slots, opt);
      ADD_FAILURE() << "loaded half of a 2-rank ZeRO-1 checkpoint's moments";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("covers"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(partial.string()), std::string::npos) << e.what();
    }
  }

  // Resumed on 4 ranks x 2 windows and on 1 rank x 8 (the same global batch): the same run. The
  // 4 ranks also write the weights a quarter each (split_weights_mib=0: however small).
  ASSERT_EQ(run_ranks(4, train_args(tok, dir / "z4", "--set train.batch_size=2 --set train.split_weights_mib=0 --resume " +
                                                        step3.string() + zero),
                      dir / "z4", &logs),
            std::vector<int>(4, 0)) << logs;
  EXPECT_NE(logs.find("resumed from " + step3.string()), std::string::npos) << logs;
  ASSERT_EQ(run_ranks(1, train_args(tok, dir / "z1", "--set train.batch_size=8 --resume " + step3.string() + zero),
                      dir / "z1", &logs),
            std::vector<int>(1, 0)) << logs;
  EXPECT_NE(logs.find("resumed from " + step3.string()), std::string::npos) << logs;
  // Four ranks streamed their own files: the checksums they reported hold, nothing is left beside.
  EXPECT_NO_THROW(verify_checkpoint(dir / "z4/checkpoints/step_6"));
  for (int r = 1; r < 4; ++r)
    EXPECT_TRUE(fs::exists(dir / fmt::format("z4/checkpoints/step_6/optimizer.rank{}.safetensors", r))) << r;
  const fs::path split = dir / "z4/checkpoints/step_6";
  EXPECT_FALSE(fs::exists(split / "model.safetensors"));
  EXPECT_EQ(weight_files(split), (std::vector<std::string>{weight_part_name(0, 4), weight_part_name(1, 4),
                                                           weight_part_name(2, 4), weight_part_name(3, 4)}));
  // A split checkpoint is what every reader reads: resume, init.checkpoint (fine-tune, eval, export).
  {
    ClinicalTransformer model(cfg.model, vocab);
    EXPECT_EQ(load_checkpoint(split, model, nullptr).step, 6);
    const Pretrained p = load_chart_checkpoint(split.string());
    for (const auto& item : model->named_parameters()) EXPECT_TRUE(p.tensors.at(item.key()).equal(item.value())) << item.key();
  }
  for (const auto& e : fs::directory_iterator(dir / "z4/checkpoints"))
    EXPECT_EQ(e.path().filename().string().rfind(".step_", 0), std::string::npos) << "left over: " << e.path();
  const auto end2 = union_of_moments(dir / "z2/checkpoints/step_6", 2);
  for (const auto& [run, world] : {std::pair<std::string, int>{"z4", 4}, {"z1", 1}}) {
    EXPECT_LT(max_weight_difference(dir / "z2/checkpoints/step_6",
                                    dir / run / "checkpoints/step_6"), 2e-5) << run;
    const auto end = union_of_moments(dir / run / "checkpoints/step_6", world);
    double worst = 0;
    for (const auto& [key, t] : end2) worst = std::max(worst, (t - end.at(key)).abs().max().item<double>());
    EXPECT_LT(worst, 1e-6) << run;
    std::printf("resumed on %d rank(s): moments at step 6 within %.3g of the 2-rank run's\n", world, worst);
  }
}

// A killed rank, a stopped (hung) rank, a rank failing on its own: the other exits non-zero,
// naming it.
TEST(Distributed, DeadOrHungRankMakesTheOthersExitNamingIt) {
  TempDir dir;
  fs::path tok = make_tokens(dir);
  for (int sig : {SIGKILL, SIGSTOP}) {
    const fs::path run = dir / ("run" + std::to_string(sig));
    const std::string args = train_args(tok, run, "--set train.batch_size=4 --set train.steps=100000 --set dist.timeout_s=4");
    const int port = free_port();
    pid_t r0 = spawn_rank(0, 2, port, args, dir / "r0.log");
    pid_t r1 = spawn_rank(1, 2, port, args, dir / "r1.log");
    for (int i = 0; i < 6000 && !(fs::exists(run / "metrics.jsonl") && !read_file(run / "metrics.jsonl").empty()); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    kill(r1, sig);
    const int rc = wait_exit(r0, 120);
    kill(r1, SIGKILL);
    waitpid(r1, nullptr, 0);
    const std::string log = read_file(dir / "r0.log");
    EXPECT_NE(rc, 0) << log;
    EXPECT_NE(rc, -1) << "rank 0 hung after rank 1 got signal " << sig << "\n" << log;
    EXPECT_NE(log.find("rank 1 stopped responding"), std::string::npos) << log;
  }
  // A rank that fails on its own (here: no dataset) tells the others why.
  const int port = free_port();
  const std::string args = train_args(tok, dir / "bad", "--set train.batch_size=4 --set dist.timeout_s=4");
  pid_t r0 = spawn_rank(0, 2, port, args, dir / "r0.log");
  pid_t r1 = spawn_rank(1, 2, port, args + " --set data.dir=" + (dir / "nothing").string(), dir / "r1.log");
  EXPECT_EQ(wait_exit(r1, 120), 1);
  EXPECT_EQ(wait_exit(r0, 120), 1);
  const std::string log = read_file(dir / "r0.log");
  EXPECT_NE(log.find("rank 1 failed at step 0"), std::string::npos) << log;
}

TEST(Distributed, LaunchMistakesAreClearErrors) {
  TempDir dir;
  fs::path tok = make_tokens(dir);
  const std::string args = train_args(tok, dir / "run", "--set train.batch_size=4 --set dist.timeout_s=3");
  std::string out;
  // A missing variable, as the user sees it.
  {
    EXPECT_EQ(testing::run_shell("RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=1 " + std::string(CHART_BINARY) + " " + args, &out),
              1) << out;
    EXPECT_NE(out.find("WORLD_SIZE is not set"), std::string::npos) << out;
  }
  // WORLD_SIZE larger than the ranks that come: each names the missing one.
  {
    std::string logs;
    auto rc = run_ranks(2, args, dir / "short", &logs, "WORLD_SIZE=3");
    EXPECT_EQ(rc, (std::vector<int>{1, 1})) << logs;
    EXPECT_NE(logs.find("missing rank(s) 2"), std::string::npos) << logs;
  }
  // Ranks that disagree on WORLD_SIZE.
  {
    const int port = free_port();
    pid_t a = spawn_rank(0, 2, port, args, dir / "a.log");
    pid_t b = spawn_rank(1, 3, port, args, dir / "b.log");
    EXPECT_EQ(wait_exit(a, 60), 1);
    EXPECT_EQ(wait_exit(b, 60), 1);
    const std::string logs = read_file(dir / "a.log") + read_file(dir / "b.log");
    EXPECT_NE(logs.find("with WORLD_SIZE=3"), std::string::npos) << logs;
  }
  // A busy port.
  {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    listen(fd, 1);
    socklen_t n = sizeof a;
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &n);
    pid_t p = spawn_rank(0, 1, ntohs(a.sin_port), args, dir / "busy.log");
    EXPECT_EQ(wait_exit(p, 60), 1);
    close(fd);
    const std::string log = read_file(dir / "busy.log");
    EXPECT_NE(log.find("cannot serve the rendezvous store"), std::string::npos) << log;
    EXPECT_NE(log.find("choose another MASTER_PORT"), std::string::npos) << log;
  }
}

// Fine-tuning on 2 ranks: each takes half of every batch and the gradients are summed, so the
// run matches one rank holding the whole batch (losses, the tuning AUROC that picks the step, the
// saved weights); rank 0 alone writes. (Measured: 3e-8 in loss, 7e-9 in weights; half a batch
// lost or counted twice moves the loss by ~1e-2.)
TEST(Distributed, FinetuneTwoRanksMatchOneRank) {
  Pipeline p(400, 20);
  const std::string args = fmt::format(
      "finetune {} --set init.checkpoint={} --set task.labels={} --set train.threads=1 --set finetune.context=64 "
      "--set train.steps=10 --set train.batch_size=8 --set train.eval_every=5 --set train.log_every=1",
      testing::config("finetune/full.yaml"), p.pretrain.string(), p.labels.string());
  std::string out, logs;
  ASSERT_EQ(testing::run_chart(args + " --set run.dir=" + (p.dir / "one").string(), &out), 0) << out;
  auto rc = run_ranks(2, args + " --set run.dir=" + (p.dir / "two").string(), p.dir / "rank", &logs);
  ASSERT_EQ(rc, (std::vector<int>{0, 0})) << logs;
  EXPECT_NE(logs.find("2 ranks (torchrun), gloo process group: each step's batch of 8 is split 4 per rank"),
            std::string::npos) << logs;
  const auto l1 = losses(p.dir / "one"), l2 = losses(p.dir / "two");
  ASSERT_EQ(l1.size(), l2.size());
  for (const auto& [key, loss] : l1) EXPECT_NEAR(l2.at(key), loss, 1e-6) << key.first << " " << key.second;
  EXPECT_EQ(read_file(p.dir / "one/checkpoints/latest"), read_file(p.dir / "two/checkpoints/latest"));
  std::string step = read_file(p.dir / "one/checkpoints/latest");
  step.erase(step.find_last_not_of("\n") + 1);
  EXPECT_LT(max_weight_difference(p.dir / "one/checkpoints" / step, p.dir / "two/checkpoints" / step), 1e-6);
  // A batch the ranks cannot share equally is refused before any work.
  rc = run_ranks(2, args + " --set train.batch_size=7 --set run.dir=" + (p.dir / "odd").string(), p.dir / "odd", &logs);
  EXPECT_NE(rc[0], 0) << logs;
  EXPECT_NE(logs.find("train.batch_size 7 is not a multiple of the 2 ranks"), std::string::npos) << logs;
}

TEST(Distributed, LaunchEnvironment) {
  auto from = [](std::map<std::string, std::string> vars) {
    return launch_env([vars](const char* n) -> const char* {
      auto it = vars.find(n);
      return it == vars.end() ? nullptr : it->second.c_str();
    });
  };
  EXPECT_EQ(from({}).launcher, "none");
  EXPECT_EQ(from({}).world_size, 1);
  LaunchEnv t = from({{"RANK", "3"}, {"WORLD_SIZE", "8"}, {"LOCAL_RANK", "1"}, {"MASTER_ADDR", "n1"}, {"MASTER_PORT", "29400"}});
  EXPECT_EQ(t.launcher, "torchrun");
  EXPECT_EQ(t.rank, 3);
  EXPECT_EQ(t.world_size, 8);
  EXPECT_EQ(t.local_rank, 1);
  EXPECT_EQ(t.master_addr, "n1");
  EXPECT_EQ(t.master_port, 29400);
  LaunchEnv s = from({{"SLURM_PROCID", "5"}, {"SLURM_NTASKS", "8"}, {"SLURM_STEP_NUM_TASKS", "8"}, {"SLURM_LOCALID", "1"},
                      {"SLURM_JOB_NODELIST", "gpu[007-008],cpu1"}});
  EXPECT_EQ(s.launcher, "slurm");
  EXPECT_EQ(s.rank, 5);
  EXPECT_EQ(s.world_size, 8);
  EXPECT_EQ(s.local_rank, 1);
  EXPECT_EQ(s.master_addr, "gpu007");
  EXPECT_EQ(s.master_port, 29500);
  EXPECT_EQ(first_slurm_host("a1"), "a1");
  EXPECT_EQ(first_slurm_host("node[3,5-9]"), "node3");
  EXPECT_EQ(first_slurm_host("x,y"), "x");
  EXPECT_EQ(first_slurm_host("rack[1-2]-n[01-04]"), "rack1-n[01-04]");

  auto error = [&](std::map<std::string, std::string> vars) {
    try {
      from(vars);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(error({{"RANK", "0"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "1"}}).find("WORLD_SIZE is not set"), std::string::npos);
  EXPECT_NE(error({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "1"}}).find("MASTER_ADDR is not set"), std::string::npos);
  EXPECT_NE(error({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}}).find("MASTER_PORT is not set"), std::string::npos);
  EXPECT_NE(error({{"RANK", "2"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "1"}}).find("RANK=2 is not below"),
            std::string::npos);
  EXPECT_NE(error({{"RANK", "x"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "1"}}).find("RANK=x"),
            std::string::npos);
}

}  // namespace
}  // namespace chart
