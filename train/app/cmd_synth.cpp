// chart synth --out DIR [--subjects N] [--seed S] [--overwrite]: a synthetic MEDS dataset with
// ground-truth labels (data/synth.h, docs/synth.md).
#include <fmt/format.h>

#include <limits>

#include "data/synth.h"
#include "train/app/commands.h"

namespace chart {

int cmd_synth(Args& args) {
  data::SynthOptions o;
  o.out = args.required("--out");
  o.subjects = args.integer("--subjects", 1000, 1, 100'000'000);
  o.seed = static_cast<uint64_t>(args.integer("--seed", 0, 0, std::numeric_limits<int64_t>::max()));
  o.overwrite = args.flag("--overwrite");
  args.done();

  const data::SynthSummary s = data::write_synth_dataset(o);
  std::string labels;
  for (size_t t = 0; t < s.task_names.size(); ++t)
    labels += fmt::format("{}{} {} ({:.1f}% positive)", t ? ", " : "", s.task_names[t], s.labels[t],
                          s.labels[t] ? 100.0 * s.positives[t] / s.labels[t] : 0.0);
  fmt::print("chart synth: {} subjects ({} train, {} tuning, {} held_out), {} events, labels {}; "
             "wrote {} in {:.1f}s\n",
             s.subjects, s.split_subjects[0], s.split_subjects[1], s.split_subjects[2], s.events,
             labels, o.out.string(), s.seconds);
  return 0;
}

}  // namespace chart
