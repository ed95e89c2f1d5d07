// Registry entries "pix2pix" and "cyclegan": image-to-image translation on two-domain data
// (data/paired.h), with the GAN losses of gan/losses.h on the shared trainer.
//
// pix2pix (Isola et al. 2017): paired data, a U-Net generator and a PatchGAN discriminator on
// (input, output) pairs; loss = cGAN + lambda * L1 (eq. 4, lambda = 100); optimizers "g" and
// "d" (the discriminator's loss halved, Sec. 3.3); data.direction picks AtoB or BtoA.
//
// cyclegan (Zhu et al. 2017): unpaired domains A (data.name) and B (data.name_b), generators
// G_A: A -> B and G_B: B -> A (ResNet), discriminators D_A (judges B) and D_B (judges A)
// (PatchGAN); least-squares GAN loss, cycle consistency lambda = 10 (eq. 2-3), identity loss
// (Sec. 5.2; 0.1 * lambda by default, the paper's 0.5 * lambda left 23% of ankle boots
// as boots after 30 minutes, see translation_model.cpp), history pools of 50 generated images for
// the discriminators, and the LR constant for half the budget, then decaying linearly. Four
// optimizers: "g_a" and "g_b" step together on the joint generator loss, "d_a" and "d_b" on their
// own.
#pragma once
#include "genmodels/family/model.h"

namespace gm {

std::vector<ModelEntry> translation_entries();

}  // namespace gm
