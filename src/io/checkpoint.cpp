#include "io/checkpoint.h"

#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"

namespace lmp {

Checkpoint::Checkpoint(const std::string& dir)
    : files_(std::make_shared<std::vector<std::unique_ptr<SafeTensorsFile>>>()) {
  std::string single = dir + "/model.safetensors", index = dir + "/model.safetensors.index.json";
  std::vector<std::string> shards;
  if (file_exists(single)) {
    shards.push_back(single);
    where_ = single;
  } else if (file_exists(index)) {
    where_ = index;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(read_file(index));
    } catch (const nlohmann::json::exception& e) {
      fail("{}: not valid JSON ({})", index, e.what());
    }
    check(j.contains("weight_map") && j["weight_map"].is_object(), "{}: missing object 'weight_map'", index);
    std::set<std::string> uniq;
    for (auto& [name, file] : j["weight_map"].items()) {
      check(file.is_string(), "{}: weight_map.{} is not a file name", index, name);
      uniq.insert(file.get<std::string>());
    }
    for (const auto& f : uniq) {
      check(f.find('/') == std::string::npos, "{}: shard name '{}' must be a plain file name", index, f);
      shards.push_back(dir + "/" + f);
    }
  } else {
    fail("{}: no model.safetensors or model.safetensors.index.json", dir);
  }
  for (const auto& s : shards) {
    files_->push_back(std::make_unique<SafeTensorsFile>(s));
    for (const auto& [name, view] : files_->back()->tensors()) {
      check(!index_.count(name), "{}: tensor {} appears in more than one shard", s, name);
      index_[name] = &view;
    }
  }
}

const TensorView& Checkpoint::get(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) fail("{}: missing tensor {}", where_, name);
  return *it->second;
}

bool Checkpoint::has(const std::string& name) const { return index_.count(name) != 0; }

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> n;
  for (const auto& kv : index_) n.push_back(kv.first);
  return n;
}

}  // namespace lmp
