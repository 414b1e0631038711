// What a cluster user relies on when a run goes wrong: non-finite steps are skipped and never
// saved, a run with nothing valid left stops instead of starting over, one trainer per run.dir,
// killed writers' left-overs are cleaned, metrics are never torn, TensorBoard shows each step once.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "core/files.h"
#include "core/json.h"
#include "core/sha256.h"
#include "model/safetensors.h"
#include "train/checkpoint/checkpoint.h"
#include "tests/test_util.h"
#include "tests/token_fixture.h"

namespace chart {
namespace {
using testing::days;
using testing::TempDir;
namespace fs = std::filesystem;

std::string train_args(const fs::path& tok, const fs::path& run, const std::string& extra = "") {
  return "train " + (testing::source_dir() / "configs/tiny.yaml").string() + " --set data.dir=" + tok.string() +
         " --set run.dir=" + run.string() + " --set train.threads=1 --set train.log_every=1 --set train.eval_every=0 " +
         extra;
}

// The pid of a process that has exited and been reaped: surely not running on this host.
long dead_pid() {
  const pid_t pid = fork();
  if (pid == 0) _exit(0);
  waitpid(pid, nullptr, 0);
  return pid;
}

std::vector<Json> metrics_lines(const fs::path& run) {
  std::vector<Json> out;
  std::istringstream in(read_file(run / "metrics.jsonl"));
  std::string line;
  while (std::getline(in, line)) out.push_back(parse_json(line, "metrics.jsonl"));
  return out;
}

// Rewrites a checkpoint's SHA256SUMS after a file in it was changed on purpose.
void reseal(const fs::path& ckpt) {
  std::string sums, hash, file;
  std::istringstream in(read_file(ckpt / "SHA256SUMS"));
  while (in >> hash >> file) sums += sha256_file(ckpt / file) + "  " + file + "\n";
  write_file_atomic(ckpt / "SHA256SUMS", sums);
}

class TrainTrust : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    tok_ = testing::make_token_dataset(dir_->path(), {60, 10, 10}, [](int s, int i) {
      const int64_t id = 10000 * (s + 1) + i;
      auto rows = testing::born(id, i % 2 ? "GENDER//F" : "GENDER//M", days(7305 + i));
      for (int k = 0; k < 30; ++k) rows.push_back({id, days(15000 + 30 * k), "DX//" + std::to_string((k + i) % 5)});
      return rows;
    });
  }
  static void TearDownTestSuite() { delete dir_; }
  static TempDir* dir_;
  static fs::path tok_;
};
TempDir* TrainTrust::dir_ = nullptr;
fs::path TrainTrust::tok_;

TEST_F(TrainTrust, NonFiniteStepsAreSkippedCountedAndLeaveTheWeightsAlone) {
  TempDir t;
  std::string out;
  const std::string args = train_args(tok_, t / "run", "--set train.steps=8 --set train.checkpoint_every=2 --set train.keep_last=10");
  ASSERT_EQ(testing::run_shell("CHART_FAULT_NONFINITE_STEPS=3,4 " + std::string(CHART_BINARY) + " " + args, &out), 0) << out;
  EXPECT_NE(out.find("step 3: loss NaN and gradient norm NaN: not finite; step skipped"), std::string::npos) << out;
  const auto lines = metrics_lines(t / "run");
  ASSERT_EQ(lines.size(), 8u);
  EXPECT_EQ(lines[1]["skipped_steps"], 0);
  EXPECT_EQ(lines[2]["skipped_steps"], 1);
  EXPECT_EQ(lines.back()["skipped_steps"], 2);
  // Steps 3 and 4 changed nothing: the moments are byte for byte those of step 2, the weights too.
  const fs::path c = t / "run/checkpoints";
  EXPECT_EQ(sha256_file(c / "step_2/optimizer.safetensors"), sha256_file(c / "step_4/optimizer.safetensors"));
  auto w2 = load_safetensors(c / "step_2/model.safetensors").tensors, w4 = load_safetensors(c / "step_4/model.safetensors").tensors;
  for (const auto& [name, tensor] : w2) EXPECT_TRUE(torch::equal(tensor, w4.at(name))) << name;
  EXPECT_NE(sha256_file(c / "step_6/optimizer.safetensors"), sha256_file(c / "step_4/optimizer.safetensors"));  // training went on
  EXPECT_NE(read_file(c / "step_8/trainer_state.yaml").find("skipped_steps: 2"), std::string::npos);
}

TEST_F(TrainTrust, TooManyNonFiniteStepsInARowStopTheRunWithItsCheckpointsIntact) {
  TempDir t;
  std::string out;
  const std::string args = train_args(
      tok_, t / "run", "--set train.steps=12 --set train.checkpoint_every=2 --set train.max_skipped_steps=3");
  const int rc = testing::run_shell("CHART_FAULT_NONFINITE_STEPS=5,6,7,8,9 " + std::string(CHART_BINARY) + " " + args, &out);
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("3 steps in a row, up to step 7, had a non-finite loss or gradient norm: stopped"), std::string::npos) << out;
  EXPECT_NE(out.find("lower train.lr"), std::string::npos) << out;
  const std::string latest = read_file(t / "run/checkpoints/latest");
  EXPECT_EQ(latest, "step_6\n");
  EXPECT_EQ(testing::run_shell(std::string(CHART_BINARY) + " " + args + " --set train.steps=8 --resume auto", &out), 0)
      << "the checkpoint left behind resumes: " << out;
}

TEST_F(TrainTrust, CheckpointsWithNonFiniteWeightsAreRefusedByEveryReader) {
  TempDir t;
  std::string out;
  ASSERT_EQ(testing::run_chart(train_args(tok_, t / "run", "--set train.steps=2 --set train.checkpoint_every=2"), &out), 0) << out;
  const fs::path ckpt = t / "run/checkpoints/step_2";
  auto w = load_safetensors(ckpt / "model.safetensors");
  NamedTensors poisoned;
  for (auto& [name, tensor] : w.tensors) {
    if (name == "norm.weight") tensor[0] = std::numeric_limits<float>::quiet_NaN();
    poisoned.emplace_back(name, tensor);
  }
  save_safetensors(ckpt / "model.safetensors", poisoned, w.metadata);
  reseal(ckpt);  // checksums valid: only the values are wrong, as a diverged run would leave them
  EXPECT_EQ(testing::run_chart(train_args(tok_, t / "run", "--set train.steps=4 --resume auto"), &out), 1) << out;
  EXPECT_NE(out.find("tensor 'norm.weight' holds NaN or infinite values"), std::string::npos) << out;
  const std::string finetune = "finetune " + (testing::source_dir() / "configs/finetune/full.yaml").string() +
                               " --set init.checkpoint=" + ckpt.string() + " --set task.labels=" + (t / "none").string() +
                               " --set run.dir=" + (t / "ft").string();
  EXPECT_EQ(testing::run_chart(finetune, &out), 1) << out;
  EXPECT_NE(out.find("holds NaN or infinite values"), std::string::npos) << out;
  EXPECT_EQ(testing::run_chart(train_args(tok_, t / "cont", "--set train.steps=2 --set init.checkpoint=" + ckpt.string()), &out), 1) << out;
  EXPECT_NE(out.find("holds NaN or infinite values"), std::string::npos) << out;
}

TEST_F(TrainTrust, ResumeWithNothingValidStopsUnlessToldToStartOver) {
  TempDir t;
  std::string out;
  const std::string args = train_args(tok_, t / "run", "--set train.steps=4 --set train.checkpoint_every=2 --set train.keep_last=1");
  ASSERT_EQ(testing::run_chart(args, &out), 0) << out;
  write_file_atomic(t / "run/checkpoints/step_4/model.safetensors", "damaged");
  EXPECT_EQ(testing::run_chart(args + " --resume auto", &out), 1) << out;
  EXPECT_NE(out.find("holds 1 checkpoint(s) and none verifies"), std::string::npos) << out;
  EXPECT_NE(out.find("--resume fresh"), std::string::npos) << out;
  EXPECT_TRUE(fs::exists(t / "run/checkpoints/step_4"));  // nothing was deleted
  ASSERT_EQ(testing::run_chart(args + " --resume fresh", &out), 0) << out;
  EXPECT_NE(out.find("moved what the earlier run left to"), std::string::npos) << out;
  EXPECT_EQ(read_file(t / "run/checkpoints/latest"), "step_4\n");
  verify_sha256sums(t / "run/checkpoints/step_4", {"model.safetensors"});
  int abandoned = 0;
  for (const auto& e : fs::directory_iterator(t / "run"))
    if (e.path().filename().string().rfind("abandoned-", 0) == 0) {
      ++abandoned;
      EXPECT_TRUE(fs::exists(e.path() / "checkpoints/step_4/model.safetensors"));
    }
  EXPECT_EQ(abandoned, 1);
}

TEST_F(TrainTrust, KeepLastNeverPrunesForAnEarlierStepAndLatestNamesWhatExists) {
  TempDir t;
  std::string out;
  const std::string args = train_args(tok_, t / "run", "--set train.checkpoint_every=2 --set train.keep_last=1");
  ASSERT_EQ(testing::run_chart(args + " --set train.steps=2", &out), 0) << out;
  // A later step from an earlier run, e.g. one restored by hand: it is not ours to delete.
  fs::copy(t / "run/checkpoints/step_2", t / "run/checkpoints/step_50", fs::copy_options::recursive);
  write_file_atomic(t / "run/checkpoints/step_50/model.safetensors", "damaged");  // and not resumable
  ASSERT_EQ(testing::run_chart(args + " --set train.steps=6 --resume " + (t / "run/checkpoints/step_2").string(), &out), 0) << out;
  EXPECT_EQ(read_file(t / "run/checkpoints/latest"), "step_6\n");
  EXPECT_TRUE(fs::exists(t / "run/checkpoints/step_6/SHA256SUMS"));
  EXPECT_FALSE(fs::exists(t / "run/checkpoints/step_4"));
  EXPECT_TRUE(fs::exists(t / "run/checkpoints/step_50"));
}

TEST_F(TrainTrust, OneTrainerPerRunDir) {
  TempDir t;
  const fs::path run = t / "run";
  const pid_t first = fork();
  if (first == 0) {
    const std::string cmd = "exec " + std::string(CHART_BINARY) + " " +
                            train_args(tok_, run, "--set train.steps=100000 --set train.checkpoint_every=0") + " > " +
                            (t / "first.log").string() + " 2>&1";
    execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  for (int i = 0; i < 3000 && !fs::exists(run / "metrics.jsonl"); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::string out;
  EXPECT_EQ(testing::run_chart(train_args(tok_, run, "--set train.steps=4 --resume auto"), &out), 1) << out;
  EXPECT_NE(out.find("is in use: chart train, pid " + std::to_string(first)), std::string::npos) << out;
  kill(first, SIGTERM);
  int status = 0;
  waitpid(first, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << read_file(t / "first.log");
  EXPECT_FALSE(fs::exists(run / "RUN_LOCK")) << "released at exit";

  // A lock whose process is gone from this host, or whose heartbeat stopped, is taken over.
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  auto lock = [&](const std::string& h, long pid) {
    write_file_atomic(run / "RUN_LOCK", dump_json(Json{{"host", h}, {"pid", pid}, {"since", "2026-01-01T00:00:00Z"},
                                                       {"command", "chart train"}}));
  };
  lock(host, dead_pid());
  EXPECT_EQ(testing::run_chart(train_args(tok_, run, "--set train.steps=2 --resume auto"), &out), 0) << out;
  EXPECT_NE(out.find("taking over"), std::string::npos) << out;
  EXPECT_NE(out.find("its process is gone"), std::string::npos) << out;
  lock("node-elsewhere", 4242);
  EXPECT_EQ(testing::run_chart(train_args(tok_, run, "--set train.steps=3 --resume auto"), &out), 1) << out;
  EXPECT_NE(out.find("pid 4242 on node-elsewhere"), std::string::npos) << out;
  const timespec old[2] = {{std::time(nullptr) - 3600, 0}, {std::time(nullptr) - 3600, 0}};
  ASSERT_EQ(utimensat(AT_FDCWD, (run / "RUN_LOCK").c_str(), old, 0), 0);
  EXPECT_EQ(testing::run_chart(train_args(tok_, run, "--set train.steps=3 --resume auto"), &out), 0) << out;
  EXPECT_NE(out.find("its heartbeat stopped"), std::string::npos) << out;
}

TEST_F(TrainTrust, LeftOversOfKilledWritersAreRemovedAtStart) {
  TempDir t;
  std::string out;
  const std::string args = train_args(tok_, t / "run", "--set train.checkpoint_every=2");
  ASSERT_EQ(testing::run_chart(args + " --set train.steps=2", &out), 0) << out;
  const fs::path c = t / "run/checkpoints";
  const long gone = dead_pid();
  fs::create_directories(c / ("step_4.tmp-" + std::to_string(gone)));
  write_file_atomic(c / ("step_4.tmp-" + std::to_string(gone)) / "model.safetensors", "half");
  write_file_atomic(c / ("latest.tmp-" + std::to_string(gone)), "step_4\n");
  write_file_atomic(c / ".step_4.rank1.rng.rank1.safetensors", "part");
  write_file_atomic(t / "run" / ("config.yaml.tmp-" + std::to_string(gone)), "x");
  write_file_atomic(c / "step_9.tmp-1", "a live process's (pid 1)");
  ASSERT_EQ(testing::run_chart(args + " --set train.steps=4 --resume auto", &out), 0) << out;
  EXPECT_FALSE(fs::exists(c / ("step_4.tmp-" + std::to_string(gone))));
  EXPECT_FALSE(fs::exists(c / ("latest.tmp-" + std::to_string(gone))));
  EXPECT_FALSE(fs::exists(c / ".step_4.rank1.rng.rank1.safetensors"));
  EXPECT_FALSE(fs::exists(t / "run" / ("config.yaml.tmp-" + std::to_string(gone))));
  EXPECT_TRUE(fs::exists(c / "step_9.tmp-1"));
  EXPECT_NE(out.find("left by a killed writer"), std::string::npos) << out;
}

TEST_F(TrainTrust, MetricsThatCannotBeWrittenStopTheRunAndNoLineIsTorn) {
  TempDir t;
  std::string out;
  // A file-size limit stands in for a full disk: writes past 24 KiB fail with EFBIG (SIGXFSZ ignored).
  const std::string cmd = "trap '' XFSZ; ulimit -f 48; exec " + std::string(CHART_BINARY) + " " +
                          train_args(tok_, t / "run", "--set train.steps=100000 --set train.checkpoint_every=0");
  const int rc = testing::run_shell("sh -c \"" + cmd + "\"", &out);
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("the run's metrics could not be written"), std::string::npos) << out;
  const std::string text = read_file(t / "run/metrics.jsonl");
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
  EXPECT_GT(metrics_lines(t / "run").size(), 5u);  // every line parses: none is torn
}

TEST_F(TrainTrust, TensorBoardShowsEachStepOnceAfterAResume) {
  TempDir t;
  std::string out;
  const std::string args = train_args(tok_, t / "run", "--set train.checkpoint_every=4");
  ASSERT_EQ(testing::run_chart(args + " --set train.steps=6", &out), 0) << out;  // steps 5 and 6 are logged, not saved
  fs::remove_all(t / "run/checkpoints/step_6");
  write_file_atomic(t / "run/checkpoints/latest", "step_4\n");
  ASSERT_EQ(testing::run_chart(args + " --set train.steps=8 --resume auto", &out), 0) << out;
  const int rc = testing::run_python(
      "-c \"import sys\n"
      "from tensorboard.backend.event_processing.event_accumulator import EventAccumulator as E\n"
      "e = E(sys.argv[1]); e.Reload(); print('steps', [x.step for x in e.Scalars('train/loss')])\" " +
          (t / "run/tb").string(),
      &out);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("steps [1, 2, 3, 4, 5, 6, 7, 8]"), std::string::npos) << out;
}

}  // namespace
}  // namespace chart
