// The end-to-end fixture of the fine-tuning tests: `chart synth` data, labels from
// tests/finetune_fixture.py, a token dataset and a short pretraining run, in a temporary directory.
#pragma once
#include <cstdlib>
#include <filesystem>
#include <string>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "test_util.h"

namespace chart {

inline std::string python() { return CHART_PYTHON_EXE; }
inline std::string fixture_py() { return (testing::source_dir() / "tests/finetune_fixture.py").string(); }

inline int run(const std::string& cmd) { return std::system((cmd + " > /dev/null 2>&1").c_str()); }

// synth -> labels (death later in the record) -> prepare -> a short pretraining run.
struct Pipeline {
  testing::TempDir dir;
  std::filesystem::path meds = dir / "meds", labels = dir / "labels", tok = dir / "tok", pretrain = dir / "pretrain";
  explicit Pipeline(int subjects, int pretrain_steps) {
    std::string out;
    EXPECT_EQ(testing::run_chart(fmt::format("synth --out {} --subjects {} --seed 5", meds.string(), subjects), &out), 0) << out;
    EXPECT_EQ(run(fmt::format("{} {} labels {} {}", python(), fixture_py(), meds.string(), labels.string())), 0);
    EXPECT_EQ(testing::run_chart(fmt::format("prepare --meds {} --out {}", meds.string(), tok.string()), &out), 0) << out;
    EXPECT_EQ(testing::run_chart(fmt::format("train {} --set data.dir={} --set run.dir={} --set train.steps={} "
                                             "--set model.context=64 --set train.eval_every=0 --set train.threads=2",
                                             testing::config("tiny.yaml"), tok.string(), pretrain.string(), pretrain_steps), &out), 0)
        << out;
  }
  std::string finetune(const std::string& recipe, const std::filesystem::path& run_dir, const std::string& extra) const {
    return fmt::format("finetune {} --set init.checkpoint={} --set task.labels={} --set run.dir={} --set train.threads=2 {}",
                       testing::config(("finetune/" + recipe + ".yaml").c_str()), pretrain.string(), labels.string(),
                       run_dir.string(), extra);
  }
  std::string eval(const std::filesystem::path& checkpoint, const std::filesystem::path& data_dir, const std::filesystem::path& out_dir) const {
    return fmt::format("eval {} --set init.checkpoint={} --set task.labels={} --set data.dir={} --set run.dir={} "
                       "--set eval.bootstrap=200",
                       testing::config("finetune/full.yaml"), checkpoint.string(), labels.string(), data_dir.string(),
                       out_dir.string());
  }
};

}  // namespace chart
