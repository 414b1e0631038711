#include "train/interop/hf_tokenizer.h"

#include "core/files.h"
#include "core/json.h"

namespace chart {

void write_hf_tokenizer(const std::filesystem::path& dir, const data::Vocab& vocab, int64_t context) {
  using data::Vocab;
  Json ids = Json::object();
  for (uint32_t id = 0; id < vocab.size(); ++id) ids[vocab.token(id)] = id;
  Json added = Json::array();
  for (uint32_t id : {Vocab::kPad, Vocab::kBos, Vocab::kUnk})
    added.push_back({{"id", id}, {"content", vocab.token(id)}, {"single_word", false}, {"lstrip", false},
                     {"rstrip", false}, {"normalized", false}, {"special", true}});
  Json tokenizer;
  tokenizer["version"] = "1.0";
  tokenizer["truncation"] = nullptr;
  tokenizer["padding"] = nullptr;
  tokenizer["added_tokens"] = added;
  tokenizer["normalizer"] = nullptr;
  tokenizer["pre_tokenizer"] = {{"type", "WhitespaceSplit"}};
  tokenizer["post_processor"] = nullptr;
  tokenizer["decoder"] = nullptr;
  tokenizer["model"] = {{"type", "WordLevel"}, {"vocab", ids}, {"unk_token", vocab.token(Vocab::kUnk)}};
  write_file_atomic(dir / "tokenizer.json", dump_json(tokenizer));

  const Json special = {{"pad_token", vocab.token(Vocab::kPad)},
                        {"bos_token", vocab.token(Vocab::kBos)},
                        {"unk_token", vocab.token(Vocab::kUnk)}};
  write_file_atomic(dir / "special_tokens_map.json", dump_json(special));
  Json config = special;
  config["tokenizer_class"] = "PreTrainedTokenizerFast";
  config["model_max_length"] = context;
  config["clean_up_tokenization_spaces"] = false;
  config["add_bos_token"] = false;  // chart's timelines carry their own [BOS]
  write_file_atomic(dir / "tokenizer_config.json", dump_json(config));
}

}  // namespace chart
