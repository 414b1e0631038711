// The generative model of `chart synth`: parameter tables, the latent simulation and the oracle.
// The observation model (what gets recorded) is in synth_observe.cpp. docs/synth.md mirrors the
// tables here; change both together.
#include "data/synth_model.h"

#include <fmt/format.h>

#include <algorithm>

namespace chart::data::synth {

// Hazards are log-linear in age: rate = r50 * hr_decade^((age - 50) / 10) * (male ? hr_male : 1)
// * product of hr[c] over the conditions c present (hr of a condition on itself is unused).
//                                 r50 /yr  hr/10y  male    T2D   HTN   CKD   HF    COPD  DEP
const RateParams kRates[kNumRates] = {
    {"type 2 diabetes onset",      0.006,   1.25,   1.3,  {1.0,  1.5,  1.0,  1.0,  1.0,  1.3}},
    {"hypertension onset",         0.020,   1.45,   1.2,  {1.6,  1.0,  1.8,  1.0,  1.0,  1.0}},
    {"CKD onset",                  0.003,   1.8,    1.1,  {3.0,  2.5,  1.0,  2.0,  1.0,  1.0}},
    {"heart failure onset",        0.0015,  2.0,    1.5,  {2.0,  2.5,  2.5,  1.0,  1.6,  1.0}},
    {"COPD onset",                 0.002,   1.6,    1.3,  {1.0,  1.0,  1.0,  1.0,  1.0,  1.0}},
    {"depression onset",           0.010,   0.85,   0.55, {1.4,  1.0,  1.0,  1.8,  1.6,  1.0}},
    {"death",                      0.0025,  2.5,    1.5,  {1.5,  1.15, 1.8,  3.0,  2.2,  1.3}},
    {"outpatient visit",           1.2,     1.15,   0.75, {1.6,  1.3,  1.5,  1.8,  1.5,  1.5}},
    {"hospital admission",         0.02,    1.35,   1.15, {1.4,  1.1,  1.7,  3.0,  2.5,  1.3}},
};

const ConditionInfo kConditionInfo[kNumConditions] = {
    {"E11", "Type 2 diabetes mellitus"},
    {"I10", "Essential (primary) hypertension"},
    {"N18", "Chronic kidney disease (CKD)"},
    {"I50", "Heart failure"},
    {"J44", "Other chronic obstructive pulmonary disease"},
    {"F32", "Major depressive disorder, single episode"},
};

// Order probability = p + sum of boost[c] over conditions present; value = normal(mean + sum of
// shift[c], sd^2 + sum of extra_sd[c]^2), exponentiated for log-scale labs, clamped, rounded.
//  name unit LOINC description | p  boost: T2D HTN CKD HF COPD DEP | mean F, M, sd | shift | extra sd
const LabInfo kLabs[kNumLabs] = {
    {"glucose", "mg/dL", "2345-7", "Glucose [Mass/volume] in Serum or Plasma",
     0.30, {0.5, 0, 0, 0, 0, 0}, 95, 95, 12, {65, 0, 0, 0, 0, 0}, {35, 0, 0, 0, 0, 0}, false, 40, 600, 0},
    {"hba1c", "%", "4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood",
     0.05, {0.6, 0, 0, 0, 0, 0}, 5.4, 5.4, 0.35, {2.3, 0, 0, 0, 0, 0}, {1.1, 0, 0, 0, 0, 0}, false, 4, 15, 1},
    {"creatinine", "mg/dL", "2160-0", "Creatinine [Mass/volume] in Serum or Plasma",
     0.25, {0.2, 0.15, 0.5, 0.3, 0, 0}, 0.8, 1.0, 0.15, {0.1, 0, 1.1, 0.25, 0, 0}, {0, 0, 0.8, 0.2, 0, 0}, false, 0.3, 12, 2},
    {"bnp", "pg/mL", "30934-4", "Natriuretic peptide B [Mass/volume] in Serum or Plasma",
     0.02, {0, 0, 0.05, 0.5, 0, 0}, 3.69, 3.69, 0.6, {0, 0, 0.5, 2.4, 0.2, 0}, {0, 0, 0, 0.4, 0, 0}, true, 5, 5000, 0},
    {"potassium", "mmol/L", "2823-3", "Potassium [Moles/volume] in Serum or Plasma",
     0.20, {0, 0.1, 0.45, 0.3, 0, 0}, 4.2, 4.2, 0.35, {0, 0, 0.45, 0.1, 0, 0}, {0, 0, 0.3, 0, 0, 0}, false, 2.5, 7.5, 1},
    {"sodium", "mmol/L", "2951-2", "Sodium [Moles/volume] in Serum or Plasma",
     0.20, {0, 0.1, 0.2, 0.4, 0, 0}, 140, 140, 2.5, {0, 0, 0, -3, 0, 0}, {0, 0, 0, 2, 0, 0}, false, 115, 160, 0},
    {"hemoglobin", "g/dL", "718-7", "Hemoglobin [Mass/volume] in Blood",
     0.20, {0, 0, 0.3, 0.1, 0.1, 0}, 13.5, 15.0, 1.1, {0, 0, -1.8, -0.5, 0.5, 0}, {0, 0, 0.8, 0, 0, 0}, false, 5, 20, 1},
    {"ldl", "mg/dL", "13457-7", "Cholesterol in LDL [Mass/volume] in Serum or Plasma by calculation",
     0.10, {0.2, 0.15, 0, 0, 0, 0}, 115, 115, 30, {-10, 5, 0, 0, 0, 0}, {0, 0, 0, 0, 0, 0}, false, 30, 300, 0},
};

// Medications prescribed at a visit with probability p while their condition is present; the
// last two are acute prescriptions given to anyone.
const MedInfo kMeds[kNumMeds] = {
    {"metformin", "6809", kDiabetes, 0.8},      {"lisinopril", "29046", kHypertension, 0.55},
    {"amlodipine", "17767", kHypertension, 0.4}, {"furosemide", "4603", kHeartFailure, 0.8},
    {"carvedilol", "20352", kHeartFailure, 0.6}, {"albuterol", "435", kCopd, 0.7},
    {"tiotropium", "69120", kCopd, 0.5},         {"sertraline", "36437", kDepression, 0.7},
    {"amoxicillin", "723", -1, 0.04},           {"ibuprofen", "5640", -1, 0.05},
};

const std::vector<SynthTask>& synth_tasks() {
  static const std::vector<SynthTask> tasks = {
      {"mortality_365d", kDeath, 365 * kDayUs},
      {"ckd_onset_180d", kCkd, 180 * kDayUs},
      // A denser task (about 8% positive) for small demos: intervals that rest on tens of positives.
      {"mortality_5y", kDeath, 5 * kYearUs},
  };
  return tasks;
}

SynthModel::SynthModel() {
  for (int what = 0; what < kNumRates; ++what) {
    const RateParams& r = kRates[what];
    for (int sex = 0; sex < 2; ++sex) {
      auto& base = base_[what][sex];
      base.resize(kMaxMonth + 1);
      for (int64_t k = 0; k <= kMaxMonth; ++k)
        base[k] = r.r50 * synth::pow(r.hr_decade, (k / 12.0 - 50) / 10) * (sex == kSexMale ? r.hr_male : 1.0);
    }
    for (int c = 0; c < kNumConditions; ++c)
      if (r.hr[c] != 1.0 && c != what) depends_on_[what] |= bit(c);
    for (uint32_t conds = 0; conds < mult_[what].size(); ++conds) {
      double m = 1;
      for (int c = 0; c < kNumConditions; ++c)
        if (conds & bit(c)) m *= r.hr[c];
      mult_[what][conds] = m;
    }
  }

  // The vocabulary, in the order of the kCode* ids (synth_model.h). Parents name the standard
  // vocabularies the way OMOP does ("ICD10CM/E11").
  codes_ = {{"GENDER//F", "Sex: female", {}},
            {"GENDER//M", "Sex: male", {}},
            {"MEDS_BIRTH", "Birth", {}},
            {"MEDS_DEATH", "Death", {}},
            {"VISIT//OUTPATIENT", "Outpatient visit", {}},
            {"HOSPITAL_ADMISSION", "Hospital admission", {}},
            {"HOSPITAL_DISCHARGE", "Hospital discharge", {}}};
  for (const auto& c : kConditionInfo)
    codes_.push_back({std::string("DIAGNOSIS//ICD//10//") + c.icd, c.description,
                      {std::string("ICD10CM/") + c.icd}});
  for (const auto& l : kLabs)
    codes_.push_back({std::string("LAB//") + l.name + "//" + l.unit, l.description,
                      {std::string("LOINC/") + l.loinc}});
  for (const auto& m : kMeds)
    codes_.push_back({std::string("MEDICATION//") + m.name, std::string("Medication: ") + m.name,
                      {std::string("RxNorm/") + m.rxnorm}});
  // Rare noise: Zipf-distributed codes, so that a privacy threshold has a long tail to drop.
  double total = 0;
  for (int i = 0; i < kNumNoise; ++i) {
    codes_.push_back({fmt::format("DIAGNOSIS//ICD//10//Z{:03d}", i), "Synthetic rare diagnosis (noise, Zipf rank " +
                                             std::to_string(i + 1) + ")", {}});
    total += synth::pow(i + 1.0, -kNoiseZipf);
    noise_cdf_.push_back(total);
  }
}

LatentPath simulate_latent(const SynthModel& m, const LatentState& s, Time end, Rng& rng) {
  LatentPath p;
  p.onset.fill(kNever);
  // Each hazard fires when its integrated rate passes an Exp(1) budget: exactly the process with
  // piecewise-constant hazards, at the cost of one random draw per event rather than per month.
  std::array<double, kNumConditions + 1> budget;  // indexed by Condition, then kDeath
  for (auto& b : budget) b = rng.exp1();
  uint32_t conds = s.conds, hz = s.hazard_conds;
  int64_t k = month_of(s.birth, s.t);
  for (Time t0 = s.t; t0 < end; ++k) {
    const Time t1 = std::min(month_start(s.birth, k + 1), end);
    const double years = static_cast<double>(t1 - t0) / kYearUs;
    auto fire = [&](int what) {  // when `what` happens in [t0, t1), or kNever
      const double rate = m.rate(what, s.sex, k, hz), dose = rate * years;
      if (budget[what] > dose) {
        budget[what] -= dose;
        return kNever;
      }
      return std::min(t0 + static_cast<Time>(budget[what] / rate * kYearUs), t1 - 1);
    };
    const Time death = fire(kDeath);
    for (int c = 0; c < kNumConditions; ++c) {
      if (conds & bit(c)) continue;
      const Time at = fire(c);
      if (at < death) p.onset[c] = at, conds |= bit(c);
    }
    if (death != kNever) {
      p.death = death;
      break;
    }
    hz = conds;  // onsets this month act on the hazards from the next month on
    t0 = t1;
  }
  return p;
}

LatentState state_at(const LatentPath& path, int sex, Time birth, Time t) {
  LatentState s;
  s.sex = sex, s.birth = birth, s.t = t;
  const Time month0 = month_start(birth, month_of(birth, t));
  for (int c = 0; c < kNumConditions; ++c) {
    if (path.onset[c] <= t) s.conds |= bit(c);
    if (path.onset[c] < month0) s.hazard_conds |= bit(c);
  }
  return s;
}

double outcome_probability(const SynthModel& m, const LatentState& s, Time horizon, int outcome) {
  if (outcome != kDeath && (s.conds & bit(outcome))) return 0;  // no new onset possible
  // alive[set]: probability of being alive, outcome not yet happened, with condition set `set`
  // at the start of the current segment (a month, or the part of one inside the horizon).
  constexpr uint32_t kSets = 1u << kNumConditions;
  std::array<double, kSets> alive{}, next{};
  alive[s.conds] = 1;
  double p = 0;
  const Time end = s.t + horizon;
  int64_t k = month_of(s.birth, s.t);
  for (Time t0 = s.t; t0 < end; ++k) {
    const Time t1 = std::min(month_start(s.birth, k + 1), end);
    const double years = static_cast<double>(t1 - t0) / kYearUs;
    // P(onset of c in this segment) for each combination of the conditions c's rate depends on
    // (a few, not all 64 sets). Rates of equal combinations are bit-identical (other factors are 1).
    std::array<std::array<double, kSets>, kNumConditions> onset;
    for (int c = 0; c < kNumConditions; ++c) {
      const uint32_t dep = m.depends_on(c);
      for (uint32_t sub = dep;; sub = (sub - 1) & dep) {
        onset[c][sub] = -synth::expm1(-m.rate(c, s.sex, k, sub) * years);
        if (sub == 0) break;
      }
    }
    next.fill(0);
    for (uint32_t set = 0; set < kSets; ++set) {
      if (alive[set] == 0) continue;
      const uint32_t hz = t0 == s.t ? s.hazard_conds : set;
      const double r_out = m.rate(outcome, s.sex, k, hz);
      const double r_any = r_out + (outcome == kDeath ? 0 : m.rate(kDeath, s.sex, k, hz));
      // Competing risks with constant rates: the outcome comes first with odds r_out : r_any.
      const double leave = -synth::expm1(-r_any * years);
      p += alive[set] * leave * (r_out / r_any);
      // Those left (alive, no outcome) get each other onset independently, given hz.
      std::array<uint32_t, kSets> sets;
      std::array<double, kSets> mass;
      sets[0] = set, mass[0] = alive[set] * (1 - leave);
      uint32_t n = 1;
      for (int c = 0; c < kNumConditions; ++c) {
        if (c == outcome || (set & bit(c))) continue;
        const double q = onset[c][hz & m.depends_on(c)];
        for (uint32_t i = 0; i < n; ++i) {
          sets[n + i] = sets[i] | bit(c), mass[n + i] = mass[i] * q;
          mass[i] *= 1 - q;
        }
        n *= 2;
      }
      for (uint32_t i = 0; i < n; ++i) next[sets[i]] += mass[i];
    }
    alive = next;
    t0 = t1;
  }
  return p;
}

int64_t synth_subject_id(int64_t index) { return 1000000 + index; }

}  // namespace chart::data::synth
