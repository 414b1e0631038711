// The generative model behind `chart synth` (docs/synth.md describes it, with its parameters).
//
// A subject is a latent continuous-time process — six chronic conditions and death, each with a
// hazard that depends on age, sex and the conditions already present — plus an observation
// process (visits, admissions, diagnoses, labs, medications) that records it. Hazards are
// piecewise constant over the subject's months of age and are evaluated from the condition set at
// the start of each month. One function, SynthModel::rate(), gives every hazard; the simulation
// and the oracle (outcome_probability) both go through it, so they cannot drift apart.
#pragma once
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

// Everything is in chart::data::synth: the short names (Time, Rng, bit, ...) stay out of chart::data.
namespace chart::data::synth {

// ---- Time: microseconds since the Unix epoch (MEDS timestamp[us]).
using Time = int64_t;
constexpr Time kSecondUs = 1'000'000;
constexpr Time kMinuteUs = 60 * kSecondUs;
constexpr Time kHourUs = 60 * kMinuteUs;
constexpr Time kDayUs = 24 * kHourUs;
constexpr Time kMonthUs = kDayUs * 365 / 12 + kDayUs / 48;  // 30.4375 days: 1/12 of 365.25 days
constexpr Time kYearUs = 12 * kMonthUs;
constexpr Time kNever = std::numeric_limits<Time>::max();
constexpr Time kStaticTime = std::numeric_limits<Time>::min();  // a static row (null time)
constexpr Time kStudyStart = 1262304000 * kSecondUs;  // 2010-01-01: records begin here (or at 18)
constexpr Time kDataEnd = 1735689600 * kSecondUs;     // 2025-01-01: records end here

// ---- exp, expm1 and log from + - * / only. The C library's versions may differ in the last bit
// between libm versions and CPUs (glibc picks FMA variants at run time), which would change a
// seed's output; IEEE arithmetic is the same everywhere (given no fused multiply-add: the default
// on x86-64; elsewhere build with -ffp-contract=off). Accurate to a few ulp.
constexpr double kLn2Hi = 6.93147180369123816490e-01, kLn2Lo = 1.90821492927058770002e-10;
// e^r - 1 for |r| <= ln2/2, by Taylor series (the first omitted term is below 1e-17; for the
// small arguments of monthly hazards, 6 terms already are).
inline double expm1_reduced(double r) {
  if (std::fabs(r) < 0x1p-10)
    return r * (1 + r * (1.0 / 2 + r * (1.0 / 6 + r * (1.0 / 24 + r * (1.0 / 120 + r * (1.0 / 720))))));
  constexpr double c[] = {1.0 / 479001600, 1.0 / 39916800, 1.0 / 3628800, 1.0 / 362880,
                          1.0 / 40320, 1.0 / 5040, 1.0 / 720, 1.0 / 120, 1.0 / 24, 1.0 / 6,
                          1.0 / 2, 1.0};  // 1/12! ... 1/1!
  double p = 1.0 / 6227020800;          // 1/13!
  for (double ci : c) p = ci + r * p;
  return r * p;
}
inline double exp(double x) {
  if (x < -745) return 0;
  if (x > 709) return HUGE_VAL;
  const double k = std::floor(x * 1.4426950408889634 + 0.5);  // x = k ln2 + r
  const double r = (x - k * kLn2Hi) - k * kLn2Lo;
  return std::ldexp(1 + expm1_reduced(r), static_cast<int>(k));
}
inline double expm1(double x) { return std::fabs(x) < 0.34 ? expm1_reduced(x) : exp(x) - 1; }
inline double log(double x) {  // x > 0: x = m 2^e, log m = 2 atanh((m - 1) / (m + 1))
  int e;
  double m = std::frexp(x, &e);
  if (m < 0.70710678118654752) m *= 2, --e;
  const double s = (m - 1) / (m + 1), s2 = s * s;
  constexpr double c[] = {1.0 / 23, 1.0 / 21, 1.0 / 19, 1.0 / 17, 1.0 / 15, 1.0 / 13,
                          1.0 / 11, 1.0 / 9,  1.0 / 7,  1.0 / 5,  1.0 / 3,  1.0};
  double p = 1.0 / 25;
  for (double ci : c) p = ci + s2 * p;
  return (e * kLn2Hi + 2 * s * p) + e * kLn2Lo;
}
inline double pow(double a, double b) { return exp(b * log(a)); }

// ---- Random numbers. xoshiro256** seeded through splitmix64 and our own samplers (std::
// distributions differ between standard libraries), so a seed gives the same data everywhere.
inline uint64_t mix64(uint64_t z) {  // splitmix64's finalizer: a bijection that scrambles bits
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
inline uint64_t splitmix64(uint64_t& x) { return mix64(x += 0x9E3779B97F4A7C15ull); }

class Rng {
 public:
  // Independent streams per (seed, subject index, stream): subjects can be generated in any order.
  Rng(uint64_t seed, uint64_t index, uint64_t stream) {
    uint64_t x = mix64(mix64(mix64(seed) ^ index) ^ stream);
    for (auto& w : s_) w = splitmix64(x);
  }
  uint64_t next() {
    uint64_t r = rotl(s_[1] * 5, 7) * 9, t = s_[1] << 17;
    s_[2] ^= s_[0], s_[3] ^= s_[1], s_[1] ^= s_[2], s_[0] ^= s_[3], s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return r;
  }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }  // [0, 1)
  bool bernoulli(double p) { return uniform() < p; }
  double exp1() { return -synth::log(1.0 - uniform()); }  // unit exponential
  double normal() {  // Marsaglia's polar method
    for (;;) {
      double u = 2 * uniform() - 1, v = 2 * uniform() - 1, s = u * u + v * v;
      if (s > 0 && s < 1) return u * std::sqrt(-2 * synth::log(s) / s);
    }
  }
  int poisson(double mean) {  // Knuth's product method: the means used here are small
    double limit = synth::exp(-mean), p = uniform();
    int n = 0;
    while (p > limit) p *= uniform(), ++n;
    return n;
  }
  Time uniform_time(Time lo, Time hi) {  // [lo, hi)
    return lo + static_cast<Time>(uniform() * static_cast<double>(hi - lo));
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::array<uint64_t, 4> s_;
};

// ---- What has a hazard. Conditions are bits of a mask (uint32_t conds).
enum Condition { kDiabetes, kHypertension, kCkd, kHeartFailure, kCopd, kDepression, kNumConditions };
enum RateKind { kDeath = kNumConditions, kVisit, kAdmission, kNumRates };
constexpr uint32_t bit(int c) { return 1u << c; }
constexpr int kSexFemale = 0, kSexMale = 1;

// ---- The parameter tables (synth_model.cpp; docs/synth.md shows them).
struct RateParams {  // rate = r50 * hr_decade^((age-50)/10) * (male ? hr_male : 1) * prod hr[c]
  const char* name;
  double r50, hr_decade, hr_male;
  std::array<double, kNumConditions> hr;
};
struct ConditionInfo {
  const char *icd, *description;
};
struct LabInfo {
  const char *name, *unit, *loinc, *description;
  double p;                                     // order probability at a visit
  std::array<double, kNumConditions> boost;     // added to p by each condition present
  double mean_f, mean_m, sd;                    // value without conditions (log scale if log_scale)
  std::array<double, kNumConditions> shift, extra_sd;  // by each condition present
  bool log_scale;
  double lo, hi;
  int decimals;
};
struct MedInfo {
  const char *name, *rxnorm;
  int condition;  // prescribed while this condition is present; -1: acute, anyone
  double p;       // probability per visit
};
constexpr int kNumLabs = 8, kNumMeds = 10, kNumNoise = 300;
constexpr double kNoiseZipf = 1.2;  // rare code k is drawn with weight (k + 1)^-kNoiseZipf
extern const RateParams kRates[kNumRates];
extern const ConditionInfo kConditionInfo[kNumConditions];
extern const LabInfo kLabs[kNumLabs];
extern const MedInfo kMeds[kNumMeds];
// Code ids: the order of SynthModel::codes().
enum : int32_t { kCodeFemale, kCodeMale, kCodeBirth, kCodeDeath, kCodeVisit, kCodeAdmission,
                 kCodeDischarge, kCodeDiagnosis0 };
constexpr int32_t kCodeLab0 = kCodeDiagnosis0 + kNumConditions, kCodeMed0 = kCodeLab0 + kNumLabs,
                  kCodeNoise0 = kCodeMed0 + kNumMeds, kNumCodes = kCodeNoise0 + kNumNoise;

// One code of the vocabulary (codes.parquet).
struct SynthCode {
  std::string code, description;
  std::vector<std::string> parents;
};

// A row of a subject's timeline: code indexes SynthModel::codes(); value NaN = null.
struct SynthEvent {
  Time time;
  int32_t code;
  float value;
};

// The latent state the oracle conditions on at time t: hazards for the rest of t's month use
// hazard_conds (the set at the month's start); conds adds onsets earlier in the same month.
struct LatentState {
  int sex = kSexFemale;
  Time birth = 0, t = 0;
  uint32_t hazard_conds = 0, conds = 0;
};

// A latent trajectory: onset time of each condition and the death time (kNever: not before end).
struct LatentPath {
  std::array<Time, kNumConditions> onset;
  Time death = kNever;
};

// A prediction task: does `outcome` (kDeath or a condition) happen within `horizon` after the
// prediction time? Only subjects without the condition at prediction time are eligible.
struct SynthTask {
  const char* name;
  int outcome;
  Time horizon;
};
const std::vector<SynthTask>& synth_tasks();  // mortality_365d, ckd_onset_180d, mortality_5y

struct SynthLabel {
  bool present = false;
  Time prediction_time = 0;
  bool value = false;
  double probability = 0;  // the generator's true P(value = true | latent state at prediction_time)
};

struct SynthSubject {
  int64_t subject_id = 0;
  std::vector<SynthEvent> events;  // sorted by time, static rows first
  std::vector<SynthLabel> labels;  // one per synth_tasks() entry
};

class SynthModel {
 public:
  SynthModel();  // builds the rate tables and the code vocabulary
  // Hazard (events per year) of `what` (a Condition or RateKind) for a subject of `sex` in month
  // `age_month` of life with condition set `conds`. The one hazard function of the generator.
  double rate(int what, int sex, int64_t age_month, uint32_t conds) const {
    if (age_month > kMaxMonth) age_month = kMaxMonth;
    return base_[what][sex][age_month] * mult_[what][conds];
  }
  // The conditions whose presence changes the rate of `what` (those with hr != 1).
  uint32_t depends_on(int what) const { return depends_on_[what]; }
  const std::vector<SynthCode>& codes() const { return codes_; }
  // Cumulative Zipf weights of the rare noise codes (the observation model draws from it).
  const std::vector<double>& noise_cdf() const { return noise_cdf_; }

  static constexpr int64_t kMaxMonth = 110 * 12;  // rates are flat beyond age 110

 private:
  std::vector<double> base_[kNumRates][2];
  std::array<double, 1 << kNumConditions> mult_[kNumRates];
  uint32_t depends_on_[kNumRates] = {};
  std::vector<SynthCode> codes_;
  std::vector<double> noise_cdf_;
};

// Month of life containing t, and the start of month k, on the subject's own monthly grid.
inline int64_t month_of(Time birth, Time t) {
  Time d = t - birth;
  return d >= 0 ? d / kMonthUs : -((-d + kMonthUs - 1) / kMonthUs);
}
inline Time month_start(Time birth, int64_t k) { return birth + k * kMonthUs; }

// Simulates the latent process from `start` to `end` (death ends it). Onsets already in
// start.conds keep kNever in the result's onset array.
LatentPath simulate_latent(const SynthModel& m, const LatentState& start, Time end, Rng& rng);
// The latent state at time t of a subject alive at t.
LatentState state_at(const LatentPath& path, int sex, Time birth, Time t);
// Exact P(outcome in (s.t, s.t + horizon]) under the model, death competing with an onset: a
// forward recursion over the 2^6 condition sets (docs/synth.md, "True probability").
double outcome_probability(const SynthModel& m, const LatentState& s, Time horizon, int outcome);

// One whole subject (demographics, latent path, recorded timeline, labels) from its own streams.
SynthSubject simulate_subject(const SynthModel& m, uint64_t seed, int64_t index);
int64_t synth_subject_id(int64_t index);

}  // namespace chart::data::synth
