// The vocabulary a model was trained with, wherever it is kept:
//   checkpoint_vocab(p, given)  a checkpoint's vocab.tsv: `given` when not empty, else beside the
//                               checkpoint (an export ships one), else in the token dataset its
//                               config or model card names. Its SHA-256 must be the checkpoint's
//                               vocabulary hash (when the checkpoint records one).
//   vocab_source(from)          what `chart prepare --vocab FROM` names: a token dataset, a
//                               vocab.tsv, a checkpoint or run dir, or an export.
#pragma once
#include <filesystem>
#include <string>

#include "data/prepare.h"
#include "train/checkpoint/pretrained.h"

namespace chart {

// `option` names where `given` came from in messages (e.g. "--vocab").
std::filesystem::path checkpoint_vocab(const Pretrained& p, const std::string& given, const std::string& option);

// Throws chart::Error naming `from` when it is none of the above.
data::FixedVocab vocab_source(const std::string& from);

}  // namespace chart
