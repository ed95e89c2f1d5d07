// Internal: loading a folder of PNG/JPEG/BMP images as a labelled Dataset ("folder:DIR").
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include "genmodels/data/dataset.h"

namespace gm::data {

/// Decoded uint8 H x W x C pixels (C = 1..4; alpha is dropped) as a float [-1, 1]
/// 1 x channels x size x size image (channels 0 = gray or RGB as stored; size 0 = the shorter
/// side), resized and center-cropped.
torch::Tensor image_tensor(torch::Tensor pixels, int64_t channels, int64_t size);

/// True for the image files the data layer decodes: .png, .jpg, .jpeg, .bmp (any case).
bool is_image_file(const std::filesystem::path& p);

/// Loads every image under `dir` (classes = sorted sub-folders, or one class when the images sit
/// directly in `dir`), converted to options.channels and resized/center-cropped to
/// options.image_size (default: the shorter side of the first image). `spec` becomes the name.
/// `paths` (optional) receives the image files in example order.
Dataset load_image_folder(const std::string& dir, const DataOptions& options,
                          const std::string& spec, std::vector<std::string>* paths = nullptr);
/// "captions:DIR": the images of DIR (as load_image_folder) with the text of the .txt file of
/// the same name beside each as its caption; y = the example index, no classes. A missing, empty
/// or non-UTF-8 caption file is a one-line error naming it.
Dataset load_caption_folder(const std::string& dir, const DataOptions& options,
                            const std::string& spec);

}  // namespace gm::data
