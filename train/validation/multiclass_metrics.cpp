#include "train/validation/multiclass_metrics.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "train/validation/bootstrap.h"

namespace chart {
namespace {

void check_inputs(const std::vector<std::vector<double>>& p, const std::vector<int>& y, int64_t classes) {
  if (p.size() != y.size()) fail("multi-class metrics: {} probability rows but {} labels", p.size(), y.size());
  for (size_t i = 0; i < p.size(); ++i) {
    if (static_cast<int64_t>(p[i].size()) != classes)
      fail("multi-class metrics: row {} has {} probabilities, expected {}", i, p[i].size(), classes);
    if (y[i] < 0 || y[i] >= classes) fail("multi-class metrics: row {} has class {}, expected 0..{}", i, y[i], classes - 1);
    for (double q : p[i])
      if (!(q >= 0 && q <= 1)) fail("multi-class metrics: row {} has probability {}, not in [0, 1]", i, q);
  }
}

int argmax(const std::vector<double>& row) {
  return static_cast<int>(std::max_element(row.begin(), row.end()) - row.begin());
}

// The rows drawn `counts[i]` times each, as plain vectors (a resample for the metrics above).
void expand(const std::vector<std::vector<double>>& p, const std::vector<int>& y, const std::vector<uint32_t>& counts,
            std::vector<std::vector<double>>& rp, std::vector<int>& ry) {
  rp.clear(), ry.clear();
  for (size_t i = 0; i < counts.size(); ++i)
    for (uint32_t k = 0; k < counts[i]; ++k) rp.push_back(p[i]), ry.push_back(y[i]);
}

}  // namespace

MulticlassMetrics multiclass_metrics(const std::vector<std::vector<double>>& p, const std::vector<int>& y,
                                     int64_t classes) {
  check_inputs(p, y, classes);
  MulticlassMetrics m;
  m.n = static_cast<int64_t>(y.size());
  m.classes = classes;
  m.per_class.assign(size_t(classes), {});
  m.confusion.assign(size_t(classes), std::vector<int64_t>(size_t(classes), 0));
  if (m.n == 0) return m;
  int64_t correct = 0;
  double loss = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    const int guess = argmax(p[i]);
    ++m.confusion[size_t(y[i])][size_t(guess)];
    ++m.per_class[size_t(y[i])].support;
    ++m.per_class[size_t(guess)].predicted;
    correct += guess == y[i];
    loss -= std::log(std::clamp(p[i][size_t(y[i])], 1e-15, 1.0));
  }
  m.accuracy = double(correct) / double(m.n);
  m.log_loss = loss / double(m.n);
  int64_t largest = 0;
  std::vector<double> pooled_p, score(y.size());
  std::vector<int> pooled_y, is(y.size());
  double auroc_sum = 0;
  int64_t defined = 0;
  for (int64_t c = 0; c < classes; ++c) {
    ClassMetrics& k = m.per_class[size_t(c)];
    largest = std::max(largest, k.support);
    for (size_t i = 0; i < y.size(); ++i) score[i] = p[i][size_t(c)], is[i] = y[i] == c;
    pooled_p.insert(pooled_p.end(), score.begin(), score.end());
    pooled_y.insert(pooled_y.end(), is.begin(), is.end());
    const BinaryMetrics b = binary_metrics(score, is);
    k.auroc = b.auroc, k.auprc = b.auprc;
    const int64_t hit = m.confusion[size_t(c)][size_t(c)];
    k.recall = k.support ? double(hit) / double(k.support) : NAN;
    k.precision = k.predicted ? double(hit) / double(k.predicted) : NAN;
    if (std::isfinite(k.auroc)) auroc_sum += k.auroc, ++defined;
  }
  m.macro_auroc = defined ? auroc_sum / double(defined) : NAN;
  m.micro_auroc = binary_metrics(pooled_p, pooled_y).auroc;
  m.majority_rate = double(largest) / double(m.n);
  return m;
}

MulticlassEvaluation evaluate_multiclass(const std::vector<std::vector<double>>& p, const std::vector<int>& y,
                                         int64_t classes, int64_t bootstrap_samples, uint64_t seed) {
  MulticlassEvaluation e;
  e.point = multiclass_metrics(p, y, classes);
  e.bootstrap_samples = bootstrap_samples;
  std::vector<double> acc, macro, micro, loss;
  std::vector<std::vector<double>> per_class(static_cast<size_t>(classes));
  SplitMix64 rng{seed};
  std::vector<uint32_t> counts(y.size());
  std::vector<std::vector<double>> rp;
  std::vector<int> ry;
  for (int64_t b = 0; b < bootstrap_samples && !y.empty(); ++b) {
    draw_resample(rng, counts);
    expand(p, y, counts, rp, ry);
    const MulticlassMetrics m = multiclass_metrics(rp, ry, classes);
    acc.push_back(m.accuracy), macro.push_back(m.macro_auroc), micro.push_back(m.micro_auroc);
    loss.push_back(m.log_loss);
    for (int64_t c = 0; c < classes; ++c) per_class[size_t(c)].push_back(m.per_class[size_t(c)].auroc);
  }
  e.accuracy = percentile_interval(acc);
  e.macro_auroc = percentile_interval(macro, 0.05);
  e.micro_auroc = percentile_interval(micro, 0.05);
  e.log_loss = percentile_interval(loss);
  // A rare class is absent from some resamples: its interval leaves those out (up to 5%).
  for (auto& v : per_class) e.class_auroc.push_back(percentile_interval(v, 0.05));
  return e;
}

}  // namespace chart
