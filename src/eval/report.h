// The comparison report: reads runs -- JSON objects written by `lmpress ... --json` (eval ppl, eval tasks,
// bench, inspect, quantize/prune/factorize, roofline) or model directories (counted like `inspect`) -- and
// writes one self-contained HTML page (inline CSS and SVG, no scripts, nothing fetched) with a table of runs,
// ppl vs bytes and ppl vs bits/weight scatters with the Pareto front (lower ppl and fewer bytes) highlighted,
// decode tokens/s vs bytes, and per-layer bits/weight heat maps where per-tensor data is present; the same
// plots also as PNG files (eval/png.h, no external renderer).
// Inputs naming the same model (their "model"/"dir"/"output" field, or the directory itself) merge into
// one run, so `eval ppl --json` and `bench --json` of one model give one row with both numbers.
#pragma once
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/report_plot.h"

namespace lmp {

struct ReportRun {
  std::string name;                  // label: the model directory's base name, else the file's stem
  std::string key;                   // merge key (the model path, else the input path)
  std::vector<std::string> sources;  // inputs merged into this run
  std::optional<double> ppl, bytes, bits_per_weight, params, decode_tokens_per_s, prefill_tokens_per_s;
  // Optional, from JSON only: "group" (e.g. the engine that made the model: "lmpress", "llama.cpp") and
  // "file_bits_per_weight" (every stored byte of the weights file × 8 ÷ the model's weights). Runs with a group
  // get a ppl-vs-bits plot with one Pareto front per group (bench/vs-llamacpp-quality.sh writes such runs).
  std::string group;
  std::optional<double> file_bits_per_weight;
  std::map<std::string, double> task_acc;                    // task → acc
  std::vector<std::pair<std::string, double>> tensor_bits;  // Linear name → bits/weight
};

// Adds one input (a JSON file or a model directory) to runs, merging by key. Throws lmp::Error naming the
// input when it is neither, or when a JSON file holds no object.
void add_run_input(std::vector<ReportRun>& runs, const std::string& path);
// Adds the values found in one JSON object (the merge of a parsed file) to run.
void absorb_json(ReportRun& run, const nlohmann::json& j);

struct Report {
  std::string html;
  std::vector<Figure> figures;  // the plots on the page, in order (PNG file stem = Figure::id)
};
Report build_report(const std::vector<ReportRun>& runs, const std::string& title);
// Writes html_path (atomically) and png_dir/<id>.png for each figure (png_dir created; "" = no PNGs).
// Returns the PNG paths written.
std::vector<std::string> write_report(const Report& r, const std::string& html_path, const std::string& png_dir);

}  // namespace lmp
