// A modifier that runs around a weight-only quantization stage (its "quantizer"): LoRC needs the Linears from
// before quantization, Norm Tweaking the float block's outputs. Statistics, calibration needs and the LM head
// are the inner stage's.
#pragma once
#include <memory>
#include <string>

#include "calib/pipeline.h"
#include "core/error.h"

namespace lmp {

class WrappedQuantizer : public BlockModifier {
 public:
  WrappedQuantizer(const char* name, std::unique_ptr<BlockModifier> inner) : name_(name), inner_(std::move(inner)) {
    check(inner_ != nullptr, "{}: needs a quantizer stage", name);
  }
  std::string name() const override { return std::string(name_) + "(" + inner_->name() + ")"; }
  StatsRequest stats_request() const override { return inner_->stats_request(); }
  bool needs_calibration() const override { return inner_->needs_calibration(); }
  void apply_head(Model& m) override { inner_->apply_head(m); }  // the head is left to the quantizer

 protected:
  const char* name_;
  std::unique_ptr<BlockModifier> inner_;
};

}  // namespace lmp
