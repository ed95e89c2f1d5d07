// Registry entry "clip": a contrastive text-image model (Radford et al. 2021) trained on captions
// made on the fly from Fashion-MNIST labels and measured image attributes (clip/captions.h), with
// a byte-level BPE vocabulary learned from the training captions before the first step (kept in
// the checkpoint and written to the run as bpe.json). It draws no images: training reports
// zero-shot accuracy every train.eval_every steps, and `genmodels eval RUN --metrics zeroshot`
// scores zero-shot classification and retrieval on the test split.
#pragma once
#include "genmodels/family/model.h"

namespace gm {

std::vector<ModelEntry> clip_entries();

}  // namespace gm
