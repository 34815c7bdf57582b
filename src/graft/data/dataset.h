// Labelled image datasets: IDX files (MNIST / Fashion-MNIST, gzip or plain), image folders
// (one subfolder per class) and NPY pairs, held in memory as one uint8 tensor.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "graft/data/image.h"

namespace graft::data {

inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

struct Dataset {
  at::Tensor images;                 // (N, H, W, C) uint8
  at::Tensor labels;                 // (N) int64
  std::vector<std::string> classes;  // class names, when the source has them
  std::string origin;                // for messages
  int64_t size() const { return labels.defined() ? labels.size(0) : 0; }
};

// Reads an IDX image file and its IDX label file (each gzip-compressed or plain).
Dataset read_idx(const std::string& images, const std::string& labels);

// A dataset from a --data argument and a split ("train" or "test"):
// - "fashion-mnist" (Debian's dataset-fashion-mnist) or a directory holding
//   {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz];
// - a directory with one subfolder per class of PNG/JPEG images (optionally split into
//   train/ and test/ subfolders);
// - "IMAGES.npy,LABELS.npy": uint8 (N, H, W[, C]) images and integer labels.
// Errors name the file at fault: missing folder, corrupt image, mismatched counts.
Dataset open_dataset(const std::string& spec, const std::string& split);

// The first `n` examples (all if n <= 0 or n >= size).
Dataset head(const Dataset& d, int64_t n);

// Checks every label is in [0, classes): Error naming the dataset and the first bad label.
void check_labels(const Dataset& d, int64_t classes);

// A batch of raw images (B, H, W, C) uint8 -> (B, C, height, width) float32 for a model.
at::Tensor preprocess_batch(const at::Tensor& images, const Preprocess& p);

}  // namespace graft::data
