// The observation model of `chart synth`: how a subject's latent path (synth_model.cpp) becomes a
// recorded MEDS timeline — an intake visit, outpatient visits, onset visits, admissions, with the
// diagnoses, labs and medications they produce — and how prediction times and labels are chosen.
#include <algorithm>
#include <cmath>
#include <cstddef>

#include "data/synth_model.h"

namespace chart::data::synth {
namespace {

constexpr Time kBirthFirst = -1262304000 * kSecondUs;  // 1930-01-01
constexpr Time kBirthLast = 1151712000 * kSecondUs;    // 2006-07-01: adult before the data ends
constexpr double kRepeatDiagnosis = 0.6;  // P(a known condition is coded again at a visit)
constexpr double kInpatientDiagnosis = 0.9;
constexpr double kNoiseVisit = 0.3, kNoiseAdmission = 0.5;  // P(one rare code)
constexpr double kAdmissionLabBoost = 0.4;

// Records one subject. Three independent random streams: the latent path (owned by the caller),
// `obs` for what gets recorded, `sel` for the choice of prediction times; so the observation model
// can change without changing who gets which disease when.
class Observer {
 public:
  Observer(const SynthModel& m, uint64_t seed, int64_t index, int sex, Time birth,
           const LatentPath& path)
      : m_(m), obs_(seed, index, 1), sel_(seed, index, 2), sex_(sex), birth_(birth), path_(path) {}

  std::vector<SynthEvent> record(Time entry);
  std::vector<SynthLabel> labels(Time entry);

 private:
  struct Encounter {
    Time start, end;  // end: the time of its last row (the prediction time if chosen)
  };
  uint32_t conds_at(Time t) const {
    uint32_t s = 0;
    for (int c = 0; c < kNumConditions; ++c)
      if (path_.onset[c] <= t) s |= bit(c);
    return s;
  }
  void add(Time t, int32_t code, float value = NAN) { events_.push_back({t, code, value}); }
  void outpatient(Time t, uint32_t forced_diagnoses);
  void admission(Time t);
  void labs(Time t, uint32_t conds, double extra_p, uint32_t forced);
  void meds(Time t, uint32_t conds);
  void noise(Time t, double p) {
    if (!obs_.bernoulli(p)) return;
    const auto& cdf = m_.noise_cdf();
    auto it = std::upper_bound(cdf.begin(), cdf.end(), obs_.uniform() * cdf.back());
    add(t, kCodeNoise0 + static_cast<int32_t>(std::min<std::ptrdiff_t>(it - cdf.begin(), kNumNoise - 1)));
  }
  Time last_time() const { return events_.back().time; }

  const SynthModel& m_;
  Rng obs_, sel_;
  int sex_;
  Time birth_;
  const LatentPath& path_;
  std::vector<SynthEvent> events_;
  std::vector<Encounter> encounters_;  // in order of start
  Time in_hospital_until_ = 0;
};

float lab_value(const LabInfo& l, int sex, uint32_t conds, Rng& rng) {
  double mean = sex == kSexMale ? l.mean_m : l.mean_f, var = l.sd * l.sd;
  for (int c = 0; c < kNumConditions; ++c)
    if (conds & bit(c)) mean += l.shift[c], var += l.extra_sd[c] * l.extra_sd[c];
  double x = mean + std::sqrt(var) * rng.normal();
  if (l.log_scale) x = synth::exp(x);
  const double scale = l.decimals == 0 ? 1 : l.decimals == 1 ? 10 : 100;  // as a lab reports it
  return static_cast<float>(std::round(std::clamp(x, l.lo, l.hi) * scale) / scale);
}

void Observer::labs(Time t, uint32_t conds, double extra_p, uint32_t forced) {
  for (int i = 0; i < kNumLabs; ++i) {
    const LabInfo& l = kLabs[i];
    double p = l.p + extra_p;
    bool must = false;
    for (int c = 0; c < kNumConditions; ++c)
      if (conds & bit(c)) p += l.boost[c], must |= (forced & bit(c)) && l.boost[c] > 0;
    if (must || obs_.bernoulli(std::min(p, 0.95))) add(t, kCodeLab0 + i, lab_value(l, sex_, conds, obs_));
  }
}

void Observer::meds(Time t, uint32_t conds) {
  for (int i = 0; i < kNumMeds; ++i) {
    const MedInfo& med = kMeds[i];
    if ((med.condition < 0 || (conds & bit(med.condition))) && obs_.bernoulli(med.p))
      add(t, kCodeMed0 + i);
  }
}

// A visit at t: the diagnoses in `forced` are always coded (onset, intake), others sometimes;
// labs 30 minutes later, prescriptions after an hour.
void Observer::outpatient(Time t, uint32_t forced) {
  const uint32_t conds = conds_at(t);
  add(t, kCodeVisit);
  for (int c = 0; c < kNumConditions; ++c)
    if ((forced & bit(c)) || ((conds & bit(c)) && obs_.bernoulli(kRepeatDiagnosis)))
      add(t, kCodeDiagnosis0 + c);
  noise(t, kNoiseVisit);
  labs(t + 30 * kMinuteUs, conds, 0, forced);
  meds(t + 60 * kMinuteUs, conds);
  encounters_.push_back({t, last_time()});
}

// A stay of 1 + Poisson days (longer with heart failure, CKD, COPD): admission diagnoses and a
// lab panel, then discharge prescriptions.
void Observer::admission(Time t) {
  const uint32_t conds = conds_at(t);
  add(t, kCodeAdmission);
  for (int c = 0; c < kNumConditions; ++c)
    if ((conds & bit(c)) && obs_.bernoulli(kInpatientDiagnosis)) add(t, kCodeDiagnosis0 + c);
  noise(t, kNoiseAdmission);
  labs(t + kHourUs, conds, kAdmissionLabBoost, 0);
  const double mean_days = 1.5 + 2.0 * !!(conds & bit(kHeartFailure)) + !!(conds & bit(kCkd)) +
                           !!(conds & bit(kCopd));
  const Time out = t + (1 + obs_.poisson(mean_days)) * kDayUs + obs_.uniform_time(0, 12 * kHourUs);
  add(out, kCodeDischarge);
  meds(out, conds);
  in_hospital_until_ = out;
  encounters_.push_back({t, last_time()});
}

std::vector<SynthEvent> Observer::record(Time entry) {
  add(kStaticTime, sex_ == kSexMale ? kCodeMale : kCodeFemale);
  add(birth_, kCodeBirth);
  outpatient(entry, conds_at(entry));  // intake: every condition present is coded
  const Time stop = std::min(path_.death, kDataEnd);
  // Visits and admissions are Poisson processes whose rates change monthly with age and the
  // conditions present at the month's start (the same rate() as the latent hazards).
  double visit_budget = obs_.exp1(), admit_budget = obs_.exp1();
  std::vector<std::pair<Time, int>> month;  // (time, what) of this month's encounters
  for (int64_t k = month_of(birth_, entry); month_start(birth_, k) < stop; ++k) {
    const Time t0 = std::max(month_start(birth_, k), entry + 1);
    const Time t1 = std::min(month_start(birth_, k + 1), stop);
    if (t0 >= t1) continue;
    const uint32_t hz = conds_at(month_start(birth_, k) - 1);
    const double years = static_cast<double>(t1 - t0) / kYearUs;
    month.clear();
    for (int what : {kVisit, kAdmission}) {
      double& budget = what == kVisit ? visit_budget : admit_budget;
      const double rate = m_.rate(what, sex_, k, hz);
      double left = rate * years, used = 0;
      while (budget <= left) {
        used += budget, left -= budget;
        month.push_back({t0 + static_cast<Time>(used / rate * kYearUs), what});
        budget = obs_.exp1();
      }
      budget -= left;
    }
    for (int c = 0; c < kNumConditions; ++c)  // a new condition is diagnosed when it starts
      if (path_.onset[c] >= t0 && path_.onset[c] < t1) month.push_back({path_.onset[c], c});
    std::sort(month.begin(), month.end());
    for (auto [t, what] : month) {
      if (what < kNumConditions) {
        if (t < in_hospital_until_) add(t, kCodeDiagnosis0 + what);  // found in hospital
        else outpatient(t, bit(what));
      } else if (t >= in_hospital_until_) {
        if (what == kVisit) outpatient(t, 0);
        else admission(t);
      }
    }
  }
  if (path_.death < kDataEnd) add(path_.death, kCodeDeath);
  // Rows a visit or stay would have written after death or past the data's end are not recorded.
  std::stable_sort(events_.begin(), events_.end(),
                   [](const SynthEvent& a, const SynthEvent& b) { return a.time < b.time; });
  // (Stable sort: a row at the very time of death still comes before the death row.)
  while (events_.back().time > stop || events_.back().time >= kDataEnd) events_.pop_back();
  return std::move(events_);
}

// Prediction time per task: draw u uniformly from the times whose horizon ends inside the data,
// then take the first encounter starting at or after u and predict at its last row. That is a
// stopping time (it depends on nothing after it), so the future after it follows the model's
// hazards from the state then, and the true probability is calibrated for the chosen rows.
std::vector<SynthLabel> Observer::labels(Time entry) {
  std::vector<SynthLabel> out;
  for (const SynthTask& task : synth_tasks()) {
    SynthLabel label;
    const Time last = kDataEnd - task.horizon;
    const double u01 = sel_.uniform();  // drawn for every task, eligible or not
    if (entry < last) {
      const Time u = entry + static_cast<Time>(u01 * static_cast<double>(last - entry));
      auto it = std::lower_bound(encounters_.begin(), encounters_.end(), u,
                                 [](const Encounter& e, Time t) { return e.start < t; });
      if (it != encounters_.end()) {
        const Time t = it->end;
        const Time outcome_at = task.outcome == kDeath ? path_.death : path_.onset[task.outcome];
        if (t <= last && path_.death > t && outcome_at > t) {
          label.present = true;
          label.prediction_time = t;
          label.value = outcome_at <= t + task.horizon;
          label.probability = outcome_probability(m_, state_at(path_, sex_, birth_, t),
                                                  task.horizon, task.outcome);
        }
      }
    }
    out.push_back(label);
  }
  return out;
}

}  // namespace

SynthSubject simulate_subject(const SynthModel& m, uint64_t seed, int64_t index) {
  // Demographics and the latent path. A record begins at the 18th birthday, or for those already
  // adult in 2010 at a time spread over 2010. The dataset holds people alive when their record
  // begins; someone who died before is drawn again from the same stream.
  Rng lat(seed, index, 0);
  int sex;
  Time birth, entry;
  LatentPath path;
  for (;;) {
    birth = lat.uniform_time(kBirthFirst, kBirthLast);
    sex = lat.bernoulli(0.5) ? kSexMale : kSexFemale;
    const Time joined = kStudyStart + lat.uniform_time(0, kYearUs);
    LatentState adult;
    adult.sex = sex, adult.birth = birth, adult.t = month_start(birth, 18 * 12);
    path = simulate_latent(m, adult, kDataEnd, lat);
    entry = adult.t >= kStudyStart ? adult.t : joined;
    if (path.death > entry) break;
  }
  Observer o(m, seed, index, sex, birth, path);
  SynthSubject s;
  s.subject_id = synth_subject_id(index);
  s.events = o.record(entry);
  s.labels = o.labels(entry);
  return s;
}

}  // namespace chart::data::synth
