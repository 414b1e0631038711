#include "train/validation/calibration.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace chart {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr int kMaxIterations = 100;

double sigmoid(double z) { return z >= 0 ? 1 / (1 + std::exp(-z)) : std::exp(z) / (1 + std::exp(z)); }
double softplus(double z) { return z > 0 ? z + std::log1p(std::exp(-z)) : std::log1p(std::exp(z)); }

// The weighted log-likelihood of a + b l, its gradient and Hessian (in a, b).
struct Fit {
  double ll = 0, ga = 0, gb = 0, haa = 0, hab = 0, hbb = 0;
};
Fit evaluate(const std::vector<double>& l, const std::vector<uint8_t>& y, const uint32_t* w, double a, double b) {
  Fit f;
  for (size_t i = 0; i < l.size(); ++i) {
    const double wi = w ? w[i] : 1.0;
    if (wi == 0) continue;
    const double eta = a + b * l[i], mu = sigmoid(eta), r = y[i] - mu, v = mu * (1 - mu);
    f.ll += wi * (y[i] * eta - softplus(eta));
    f.ga += wi * r;
    f.gb += wi * r * l[i];
    f.haa += wi * v;
    f.hab += wi * v * l[i];
    f.hbb += wi * v * l[i] * l[i];
  }
  return f;
}

// Newton steps on (a, b), or on a alone with b held at 1, halved until the likelihood does not fall.
bool newton(const std::vector<double>& l, const std::vector<uint8_t>& y, const uint32_t* w, bool fit_slope, double& a,
            double& b) {
  Fit f = evaluate(l, y, w, a, b);
  for (int it = 0; it < kMaxIterations; ++it) {
    double da, db = 0;
    if (fit_slope) {
      const double det = f.haa * f.hbb - f.hab * f.hab;
      if (!(det > 0)) return false;
      da = (f.hbb * f.ga - f.hab * f.gb) / det;
      db = (f.haa * f.gb - f.hab * f.ga) / det;
    } else {
      if (!(f.haa > 0)) return false;
      da = f.ga / f.haa;
    }
    for (double t = 1;; t /= 2) {
      Fit g = evaluate(l, y, w, a + t * da, b + t * db);
      if (g.ll >= f.ll - 1e-12 * std::abs(f.ll) || t < 1e-6) {
        a += t * da, b += t * db, f = g;
        break;
      }
    }
    if (std::abs(b) > 1e4 || std::abs(a) > 1e4) return false;  // separation: the maximum is at infinity
    if (std::abs(da) < 1e-10 * (1 + std::abs(a)) && std::abs(db) < 1e-10 * (1 + std::abs(b))) return true;
  }
  return false;
}

}  // namespace

double clipped_logit(double p) {
  const double q = std::clamp(p, 1e-6, 1 - 1e-6);
  return std::log(q / (1 - q));
}

LogisticCalibration fit_logistic_calibration(const std::vector<double>& logit, const std::vector<uint8_t>& y,
                                             const uint32_t* w) {
  double pos = 0, all = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    const double wi = w ? w[i] : 1.0;
    pos += wi * y[i], all += wi;
  }
  if (pos == 0 || pos == all) return {kNaN, kNaN};
  double a = 0, b = 1;
  LogisticCalibration out{kNaN, kNaN};
  if (newton(logit, y, w, false, a, b)) out.intercept = a;
  a = 0, b = 1;
  if (newton(logit, y, w, true, a, b)) out.slope = b;
  return out;
}

}  // namespace chart
