// The model card: what a model is, what it was trained on and under which rules, written beside
// every checkpoint (and carried into evaluations and exports) as
//   model_card.json   machine-readable; the fields below, plus caller-added sections
//   MODEL_CARD.md     the same for a person, in a few lines
// An institution that owns a clinical model can answer from it: which dataset (path, split,
// subject and token counts, the checksum of its manifest, which lists every file's checksum),
// which vocabulary (its hash and the privacy threshold k it was built with), which config (its
// hash), which code (git commit, dirty or not), how far it trained and how well it did.
//
// Callers: save_checkpoint() fills the fields the checkpoint itself knows (architecture,
// parameters, step, tokens, config hash, code version) and writes the card before checksumming;
// the trainer adds the data lineage and final metrics; fine-tuning adds "task" and "evaluation"
// sections; `chart export` and `chart eval` read a card and write it on with a section added.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "core/json.h"

namespace chart {

struct ClinicalTransformerImpl;

// The dataset a model learnt from, as `chart prepare` recorded it (manifest.json, prepare.yaml).
// Counts are -1 and strings empty when unknown.
struct DataLineage {
  std::string dataset_dir;      // absolute path of the token dataset
  std::string split = "train";  // the split trained on
  int64_t subjects = -1;        // subjects and tokens of that split
  int64_t tokens = -1;
  std::string manifest_sha256;  // SHA-256 of the dataset's manifest.json
  std::string source;           // the MEDS directory prepare read
  std::string vocab_hash;       // SHA-256 of vocab.tsv
  int64_t vocab_size = -1;
  int64_t privacy_k = -1;       // prepare.min_subjects: codes in fewer train subjects have no token
  std::string first_event;      // the split's earliest and latest event dates ("2019-03-01"); empty
  std::string last_event;       // when unknown (datasets prepared before chart recorded them)
};

// Reads dataset_dir/manifest.json and prepare.yaml; what it cannot read stays unknown (a warning
// is logged), since a card with a gap is better than no checkpoint.
DataLineage data_lineage(const std::filesystem::path& dataset_dir, const std::string& split = "train");

struct CodeVersion {
  std::string version;  // chart's version (CMake project version)
  std::string commit;   // git commit of the source tree at build time, or "unknown"
  std::string dirty;    // "true" | "false" | "unknown": uncommitted changes to tracked files at build time
};
// Captured when the binary was built (cmake/CodeVersion.cmake runs at every build, so it is as
// fresh as the last `cmake --build`; a binary built outside a git checkout says "unknown").
CodeVersion code_version();

struct ModelCard {
  std::string kind = "pretrained";  // pretrained | finetuned | exported | evaluated
  // Filled by fill_model_card() (save_checkpoint calls it):
  std::string architecture;   // one line, e.g. "decoder-only transformer, 2 layers, d_model 64, ..."
  Json model_json;            // the model.* section of the config (null until filled)
  int64_t parameters = 0;
  std::string config_sha256;  // of the resolved config.yaml
  CodeVersion code;
  int64_t step = 0;
  int64_t tokens_seen = 0;
  // Filled by the caller:
  DataLineage data;
  std::vector<std::pair<std::string, double>> metrics;  // final metrics, e.g. {"train_loss", 2.3}
  // Further top-level sections, name -> JSON text (an object, array, string or number), e.g.
  // {"task", R"({"name": "mortality", "labels": "..."})"}, {"evaluation", eval_json},
  // {"base_model", read_model_card_json(pretrained_dir)}. Written in this order after the rest.
  std::vector<std::pair<std::string, std::string>> extra_sections;
  void set_section(const std::string& name, std::string json);  // replaces one of the same name
  void set_metric(const std::string& name, double value);       // replaces one of the same name
};

// The fields a checkpoint knows about itself. vocab_hash fills data.vocab_hash when empty.
void fill_model_card(ModelCard& card, const ClinicalTransformerImpl& model, const std::string& config_yaml,
                     int64_t step, int64_t tokens_seen, const std::string& vocab_hash);

std::string model_card_json(const ModelCard& card);  // pretty JSON, "format": "chart-model-card"
// Writes dir/model_card.json and dir/MODEL_CARD.md (each atomically).
void write_model_card(const std::filesystem::path& dir, const ModelCard& card);
// Writes a card given as JSON text (e.g. one read and extended with with_section()); refuses
// text that is not a JSON object.
void write_model_card_json(const std::filesystem::path& dir, const std::string& card_json);
// dir/model_card.json; throws chart::Error naming the file when it is missing.
std::string read_model_card_json(const std::filesystem::path& dir);
// card_json with top-level `name` set to `section_json` (replaced if present, else appended).
std::string with_model_card_section(const std::string& card_json, const std::string& name,
                                    const std::string& section_json);
// The markdown rendering of a card (what MODEL_CARD.md holds).
std::string model_card_markdown(const std::string& card_json);

// A YAML document (the resolved config) as JSON: quoted scalars stay strings; plain scalars
// become numbers, true/false or null where they read as such. `what` names it in errors.
Json yaml_to_json(const std::string& yaml, const std::string& what);

}  // namespace chart
