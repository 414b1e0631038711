// The learning-rate schedules and the weight-decay parameter groups.
#include <gtest/gtest.h>

#include "core/config.h"
#include "train/pretrain/optimizer.h"

namespace chart {
namespace {

TEST(Schedule, WarmupThenCosineWsdOrConstant) {
  TrainConfig c;
  c.steps = 110;
  c.warmup_steps = 10;
  c.lr = 1.0;
  c.min_lr = 0.1;
  EXPECT_DOUBLE_EQ(learning_rate(c, 0), 0.1);   // linear warmup: (step + 1) / warmup
  EXPECT_DOUBLE_EQ(learning_rate(c, 9), 1.0);
  EXPECT_DOUBLE_EQ(learning_rate(c, 10), 1.0);  // cosine starts at the peak
  EXPECT_NEAR(learning_rate(c, 60), 0.55, 1e-12);  // halfway: (lr + min_lr) / 2
  EXPECT_NEAR(learning_rate(c, 110), 0.1, 1e-12);
  for (int64_t s = 11; s < 110; ++s) EXPECT_LT(learning_rate(c, s), learning_rate(c, s - 1));
  c.schedule = "wsd";
  c.decay_fraction = 0.2;
  EXPECT_DOUBLE_EQ(learning_rate(c, 50), 1.0);   // stable
  EXPECT_DOUBLE_EQ(learning_rate(c, 90), 1.0);   // the last 20 of 100 post-warmup steps decay
  EXPECT_NEAR(learning_rate(c, 100), 0.55, 1e-12);
  EXPECT_NEAR(learning_rate(c, 110), 0.1, 1e-12);
  c.schedule = "constant";
  EXPECT_DOUBLE_EQ(learning_rate(c, 100), 1.0);
}

TEST(Optimizer, DecayGroupsFollowTheConfig) {
  ModelConfig m;
  m.d_model = 16;
  m.n_heads = 2;
  m.time_head = true;
  ClinicalTransformer model(m, 20);
  for (const auto& p : model->named_parameters()) {
    std::string g = parameter_group(p.key(), p.value());
    if (p.key() == "tok_emb.weight") EXPECT_EQ(g, "embeddings");
    else if (p.key().find("norm") != std::string::npos) EXPECT_EQ(g, "norms");
    else if (p.key() == "time_head.bias") EXPECT_EQ(g, "other");
    else if (p.value().dim() == 2) EXPECT_EQ(g, "matrices") << p.key();
  }
  TrainConfig t;
  auto opt = make_optimizer(model, t);  // default: matrices decay, the rest does not
  auto& groups = opt->param_groups();
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_DOUBLE_EQ(static_cast<torch::optim::AdamWOptions&>(groups[0].options()).weight_decay(), t.weight_decay);
  EXPECT_DOUBLE_EQ(static_cast<torch::optim::AdamWOptions&>(groups[1].options()).weight_decay(), 0.0);
  size_t matrices = 0;
  for (const auto& p : model->named_parameters()) matrices += parameter_group(p.key(), p.value()) == "matrices";
  EXPECT_EQ(groups[0].params().size(), matrices);
  EXPECT_EQ(groups[0].params().size() + groups[1].params().size(), model->parameters().size());
  t.decay = {"matrices", "embeddings", "norms", "other"};
  EXPECT_EQ(make_optimizer(model, t)->param_groups()[1].params().size(), 0u);
}

}  // namespace
}  // namespace chart
