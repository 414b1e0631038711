// `chart synth`: a synthetic MEDS 0.4 dataset with ground-truth labels (docs/synth.md).
//   DIR/data/{train,tuning,held_out}/<block>.parquet    events, each subject in one file
//   DIR/metadata/{codes.parquet,dataset.json,subject_splits.parquet}
//   DIR/labels/<task>/{train,tuning,held_out}/<block>.parquet   meds.LabelSchema exactly
//   DIR/oracle/<task>/{train,tuning,held_out}/<block>.parquet   the same keys + true_probability
// Subjects are generated in blocks on all cores; a block's files depend only on (seed, subjects,
// block), so the output is the same for any number of threads.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace chart::data {

struct SynthOptions {
  std::filesystem::path out;
  int64_t subjects = 1000;
  uint64_t seed = 0;
  bool overwrite = false;  // replace an existing `out` (else refuse it)
  int threads = 0;         // 0: the CPUs this process may use
  bool progress = true;    // a progress line on stderr
};

struct SynthSummary {
  int64_t subjects = 0, events = 0;
  int64_t split_subjects[3] = {0, 0, 0};  // train, tuning, held_out
  std::vector<std::string> task_names;
  std::vector<int64_t> labels, positives;  // per task
  int64_t files = 0;
  double seconds = 0;
};

// The split of a subject: a fixed hash of its id, 80% train, 10% tuning, 10% held_out.
const char* synth_split(int64_t subject_id);
int synth_split_index(int64_t subject_id);  // 0 train, 1 tuning, 2 held_out

// Writes the dataset to a temporary sibling of opts.out and renames it into place when complete.
// Throws chart::Error if opts.out exists (unless overwrite) or a file cannot be written.
SynthSummary write_synth_dataset(const SynthOptions& opts);

}  // namespace chart::data
