// chart train end to end, as a user runs it: the run directory's contract, loss falling, exact
// (bit-identical) resume after SIGTERM or SIGKILL, damaged checkpoints, refusals.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "core/config.h"
#include "core/files.h"
#include "core/sha256.h"
#include "data/prepare.h"
#include "tests/token_fixture.h"
#include "tests/test_util.h"

namespace chart {
namespace {
using testing::days;
using testing::Row;
using testing::TempDir;
namespace fs = std::filesystem;

// Subjects whose timelines follow a few learnable patterns (so the loss falls fast).
fs::path make_tokens(const TempDir& dir) {
  return testing::make_token_dataset(dir.path(), {120, 20, 20}, [](int s, int i) {
    const int64_t id = 10000 * (s + 1) + i;
    auto rows = testing::born(id, i % 2 ? "GENDER//F" : "GENDER//M", days(7305 + i));
    const int pattern = i % 3;
    for (int k = 0; k < 40; ++k) {
      double t = 15000 + 30 * k + (pattern == 2 ? 0.01 * k : 0);
      rows.push_back({id, days(t), "VISIT//" + std::to_string(pattern)});
      rows.push_back({id, days(t + 0.1), "DX//" + std::to_string((k + pattern) % 4)});
      rows.push_back({id, days(t + 0.1), "LAB//x", static_cast<float>((k * 7 + pattern) % 10)});
    }
    return rows;
  });
}

std::string train_args(const fs::path& tok, const fs::path& run, const std::string& extra = "") {
  return "train " + (testing::source_dir() / "configs/tiny.yaml").string() + " --set data.dir=" + tok.string() +
         " --set run.dir=" + run.string() + " --set train.threads=1 " + extra;
}

// "loss" of every train line of metrics.jsonl, in order.
std::vector<std::string> train_losses(const fs::path& run) {
  std::vector<std::string> out;
  std::istringstream in(read_file(run / "metrics.jsonl"));
  std::string line;
  while (std::getline(in, line))
    if (line.find("\"split\": \"train\"") != std::string::npos) {
      auto p = line.find("\"loss\": ");
      out.push_back(line.substr(0, line.find(',', p)));  // {"step": N, ..., "loss": X
    }
  return out;
}

double first_number_after(const std::string& line, const std::string& key) {
  return std::stod(line.substr(line.find(key) + key.size()));
}

// Starts chart in the background; returns its pid.
pid_t spawn_chart(const std::string& args, const fs::path& log) {
  pid_t pid = fork();
  if (pid == 0) {
    std::string cmd = std::string(CHART_BINARY) + " " + args + " > " + log.string() + " 2>&1";
    execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  return pid;
}

int wait_exit(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Waits until metrics.jsonl holds a train line of at least `step`.
void wait_for_step(const fs::path& run, int step) {
  for (int i = 0; i < 3000; ++i) {
    if (fs::exists(run / "metrics.jsonl")) {
      auto l = train_losses(run);
      if (!l.empty() && first_number_after(l.back(), "\"step\": ") >= step) return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  FAIL() << "the run never reached step " << step;
}

class Train : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    tok_ = make_tokens(*dir_);
    // The uninterrupted reference run: 16 steps, a checkpoint every 4.
    std::string out;
    ASSERT_EQ(testing::run_chart(train_args(tok_, *dir_ / "straight", kSteps), &out), 0) << out;
  }
  static void TearDownTestSuite() { delete dir_; }
  static inline const std::string kSteps =
      "--set train.steps=16 --set train.checkpoint_every=4 --set train.log_every=1 --set train.eval_every=8";
  static TempDir* dir_;
  static fs::path tok_;
};
TempDir* Train::dir_ = nullptr;
fs::path Train::tok_;

TEST_F(Train, RunDirHoldsTheContract) {
  fs::path run = *dir_ / "straight";
  EXPECT_TRUE(fs::exists(run / "config.yaml"));
  Config resolved = load_config((run / "config.yaml").string(), {});
  EXPECT_EQ(resolved.train.steps, 16);
  EXPECT_EQ(read_file(run / "checkpoints/latest"), "step_16\n");
  for (const char* f : {"model.safetensors", "optimizer.safetensors", "rng.safetensors", "trainer_state.yaml", "SHA256SUMS"})
    EXPECT_TRUE(fs::exists(run / "checkpoints/step_16" / f)) << f;
  EXPECT_FALSE(fs::exists(run / "checkpoints/step_8"));  // keep_last: 2 in tiny.yaml
  EXPECT_TRUE(fs::exists(run / "checkpoints/step_12"));
  std::string metrics = read_file(run / "metrics.jsonl");
  EXPECT_NE(metrics.find("{\"step\": 16, \"split\": \"train\", \"loss\": "), std::string::npos);
  EXPECT_NE(metrics.find("{\"step\": 8, \"split\": \"tuning\", \"loss\": "), std::string::npos);
  bool tb = false;
  for (const auto& e : fs::directory_iterator(run / "tb")) tb = tb || e.path().filename().string().rfind("events.out.tfevents.", 0) == 0;
  EXPECT_TRUE(tb);
}

TEST_F(Train, LossFallsClearly) {
  auto l = train_losses(*dir_ / "straight");
  ASSERT_EQ(l.size(), 16u);
  double first = first_number_after(l.front(), "\"loss\": "), last = first_number_after(l.back(), "\"loss\": ");
  EXPECT_LT(last, first - 0.5) << "loss went from " << first << " to " << last;  // nats, 16 steps
}

TEST_F(Train, ResumeAfterSigtermIsBitIdentical) {
  fs::path run = *dir_ / "sigterm";
  pid_t pid = spawn_chart(train_args(tok_, run, kSteps), *dir_ / "sigterm.log");
  wait_for_step(run, 2);
  kill(pid, SIGTERM);
  ASSERT_EQ(wait_exit(pid), 0) << read_file(*dir_ / "sigterm.log");
  std::string latest = read_file(run / "checkpoints/latest");
  EXPECT_NE(latest, "step_16\n") << "the run ended before the signal; the test proves nothing";
  std::string out;
  ASSERT_EQ(testing::run_chart(train_args(tok_, run, kSteps + " --resume auto"), &out), 0) << out;
  EXPECT_NE(out.find("resumed from"), std::string::npos) << out;
  EXPECT_EQ(sha256_file(run / "checkpoints/step_16/model.safetensors"),
            sha256_file(*dir_ / "straight/checkpoints/step_16/model.safetensors"));
  EXPECT_EQ(sha256_file(run / "checkpoints/step_16/optimizer.safetensors"),
            sha256_file(*dir_ / "straight/checkpoints/step_16/optimizer.safetensors"));
  EXPECT_EQ(train_losses(run), train_losses(*dir_ / "straight"));
}

TEST_F(Train, ResumeAfterSigkillIsBitIdentical) {
  fs::path run = *dir_ / "sigkill";
  pid_t pid = spawn_chart(train_args(tok_, run, kSteps), *dir_ / "sigkill.log");
  wait_for_step(run, 6);  // past the step-4 checkpoint, before the end
  kill(pid, SIGKILL);
  ASSERT_EQ(wait_exit(pid), 128 + SIGKILL) << "the run was not killed: " << read_file(*dir_ / "sigkill.log");
  const std::string latest = read_file(run / "checkpoints/latest");
  ASSERT_NE(latest, "step_16\n") << "the run had finished before the kill; the test proves nothing";
  EXPECT_TRUE(fs::exists(run / "RUN_LOCK")) << "a killed run leaves its lock behind";
  std::string out;
  ASSERT_EQ(testing::run_chart(train_args(tok_, run, kSteps + " --resume auto"), &out), 0) << out;
  EXPECT_NE(out.find("run lock: taking over"), std::string::npos) << out;  // its process is gone
  EXPECT_EQ(sha256_file(run / "checkpoints/step_16/model.safetensors"),
            sha256_file(*dir_ / "straight/checkpoints/step_16/model.safetensors"));
  EXPECT_EQ(train_losses(run), train_losses(*dir_ / "straight"));  // lines after the checkpoint were rewritten
}

TEST_F(Train, DamagedCheckpointIsSkippedOrRefused) {
  fs::path run = *dir_ / "damaged";
  fs::copy(*dir_ / "straight", run, fs::copy_options::recursive);
  // Flip a byte in the newest checkpoint's weights.
  fs::path w = run / "checkpoints/step_16/model.safetensors";
  std::string bytes = read_file(w);
  bytes[bytes.size() - 3] ^= 0x40;
  std::ofstream(w, std::ios::binary | std::ios::trunc) << bytes;
  std::string out;
  int rc = testing::run_chart(train_args(tok_, run, kSteps + " --resume " + (run / "checkpoints/step_16").string()), &out);
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("model.safetensors does not match its checksum"), std::string::npos) << out;
  rc = testing::run_chart(train_args(tok_, run, kSteps + " --resume auto"), &out);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("skipping damaged checkpoint"), std::string::npos) << out;
  EXPECT_NE(out.find("resumed from " + (run / "checkpoints/step_12").string()), std::string::npos) << out;
  EXPECT_EQ(sha256_file(run / "checkpoints/step_16/model.safetensors"),
            sha256_file(*dir_ / "straight/checkpoints/step_16/model.safetensors"));
}

TEST_F(Train, RefusesToOverwriteARunAndExplainsBadSetups) {
  std::string out;
  EXPECT_EQ(testing::run_chart(train_args(tok_, *dir_ / "straight", kSteps), &out), 1);
  EXPECT_NE(out.find("already holds checkpoints"), std::string::npos) << out;
  EXPECT_NE(out.find("--resume auto"), std::string::npos) << out;
  EXPECT_EQ(testing::run_chart(train_args(*dir_ / "nothing", *dir_ / "r2"), &out), 1);
  EXPECT_NE(out.find("does not exist"), std::string::npos) << out;
  EXPECT_EQ(testing::run_chart(train_args(tok_, *dir_ / "r3", "--set model.d_model=30"), &out), 1);
  EXPECT_NE(out.find("model.d_model"), std::string::npos) << out;
  if (!torch::cuda::is_available()) {
    EXPECT_EQ(testing::run_chart(train_args(tok_, *dir_ / "r4", "--set train.device=cuda"), &out), 1);
    EXPECT_NE(out.find("no CUDA GPU"), std::string::npos) << out;
  }
  // A different model config cannot resume another run's checkpoint.
  EXPECT_EQ(testing::run_chart(train_args(tok_, *dir_ / "straight", kSteps + " --set model.n_layers=3 --resume auto"), &out), 1);
  EXPECT_NE(out.find("another model config"), std::string::npos) << out;
}

TEST_F(Train, TensorBoardReadsTheEvents) {
  std::string out;
  const int rc = testing::run_python("-c \"import sys\n"
                                     "from tensorboard.backend.event_processing.event_accumulator import EventAccumulator as E\n"
                                     "e = E(sys.argv[1]); e.Reload(); s = e.Scalars('train/loss')\n"
                                     "print('steps', [x.step for x in s][:3], len(s))\" " +
                                         (*dir_ / "straight/tb").string(),
                                     &out);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("steps [1, 2, 3] 16"), std::string::npos) << out;
}

}  // namespace
}  // namespace chart
