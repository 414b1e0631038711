// The tokenizer files of a Hugging Face export, so that AutoTokenizer.from_pretrained(export)
// gives chart's token ids: tokenizer.json (a `tokenizers` WordLevel model over chart's
// vocabulary, whitespace-split, [UNK] for anything else; [PAD], [BOS], [UNK] as special tokens),
// tokenizer_config.json (PreTrainedTokenizerFast) and special_tokens_map.json. A token holding a
// space (a MEDS code may) cannot come out of splitting text; convert_tokens_to_ids reaches it.
#pragma once
#include <cstdint>
#include <filesystem>

#include "data/vocab.h"

namespace chart {

void write_hf_tokenizer(const std::filesystem::path& dir, const data::Vocab& vocab, int64_t context);

}  // namespace chart
