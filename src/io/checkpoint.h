// The tensors of a Hugging Face checkpoint directory: model.safetensors, or the shards listed by
// model.safetensors.index.json. Zero-copy: views point into the mapped files, which keeper() keeps alive.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "kernels/weight.h"

namespace lmp {

class Checkpoint final : public TensorSource {
 public:
  explicit Checkpoint(const std::string& dir);  // throws lmp::Error naming the file
  const TensorView& get(const std::string& name) const override;
  bool has(const std::string& name) const override;
  std::string where() const override { return where_; }
  std::shared_ptr<const void> keeper() const override { return files_; }
  std::vector<std::string> names() const;

 private:
  std::string where_;
  std::shared_ptr<std::vector<std::unique_ptr<SafeTensorsFile>>> files_;
  std::map<std::string, const TensorView*> index_;
};

}  // namespace lmp
