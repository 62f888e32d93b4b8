// RTN with "lm_head": true quantizes an untied LM head; the saved model reloads with the same quantized head
// (not mistaken for a tied one) and gives the same logits as the in-memory compressed model.
#include "compress/recipe.h"
#include "model/forward.h"
#include "testutil.h"

using namespace lmp;

TEST(LmHead, RtnQuantizesUntiedHeadAndItSurvivesSaveLoad) {
  std::string dir = test::temp_dir("lmhead");
  test::TinySpec s;
  s.hidden = 64, s.ffn = 128, s.vocab = 96;
  test::write_tiny_model(dir + "/m", s);
  auto m = load_model(dir + "/m");
  nlohmann::json rj = {{"stages", {{{"modifier", "rtn"}, {"bits", 4}, {"group", 32}, {"lm_head", true}}}}};
  run_recipe(*m, parse_recipe(rj, "test"), false);
  EXPECT_EQ(m->lm_head.w->format(), "int4_g32_asym");
  save_model(*m, dir + "/q");
  auto r = load_model(dir + "/q");
  EXPECT_FALSE(r->cfg.tie_embeddings);
  EXPECT_EQ(r->lm_head.w->format(), "int4_g32_asym");
  EXPECT_EQ(r->n_bytes(), m->n_bytes());
  const std::vector<int> ids = {1, 5, 9, 33, 70, 2};
  const std::vector<float> a = test::prefill_logits(*m, ids), b = test::prefill_logits(*r, ids);
  EXPECT_EQ(test::max_abs_diff(a.data(), b.data(), a.size()), 0.0);
}

// A tied head quantized by RTN ("lm_head": true) is the one stored copy of the embedding table: lookups read its
// dequantization, the file holds it in its format (no f32 table), bytes count it, and it reloads identically.
// int8 sym g32 goes to GGUF as Q8_0 with its codes kept.
TEST(LmHead, RtnQuantizesTiedTableAsOneStoredMatrix) {
  std::string dir = test::temp_dir("lmhead_tied");
  test::TinySpec s;
  s.hidden = 64, s.ffn = 128, s.vocab = 96, s.tied = true;
  test::write_tiny_model(dir + "/m", s);
  auto m = load_model(dir + "/m");
  ASSERT_TRUE(m->cfg.tie_embeddings);
  const std::vector<float> orig = m->embed;
  const size_t f32_bytes = m->n_bytes();
  nlohmann::json rj = {{"stages", {{{"modifier", "rtn"}, {"bits", 8}, {"group", 32}, {"sym", true},
                                    {"lm_head", true}, {"targets", "^lm_head$"}}}}};
  run_recipe(*m, parse_recipe(rj, "test"), false);
  EXPECT_EQ(m->blocks[0].at(LinearKind::Q).w->format(), "f32") << "targets matched no projection";
  EXPECT_EQ(m->lm_head.w->format(), "int8_g32_sym");
  EXPECT_TRUE(m->tied_head_stored());
  // embed == the head's dequantization, which is the int8 grid applied to the original table.
  EXPECT_EQ(m->embed, m->lm_head.w->dense());
  EXPECT_LE(test::rel_rms_error(m->embed.data(), orig.data(), orig.size()), 0.01);
  EXPECT_GT(test::max_abs_diff(m->embed.data(), orig.data(), orig.size()), 0.0);
  // Bytes: the f32 table (96·64·4) replaced by 96·64 codes + 96·2 f16 scales.
  EXPECT_EQ(f32_bytes - m->n_bytes(), size_t(96 * 64 * 4 - (96 * 64 + 96 * 2 * 2)));
  save_model(*m, dir + "/q");
  auto r = load_model(dir + "/q");
  EXPECT_TRUE(r->cfg.tie_embeddings);
  EXPECT_EQ(r->lm_head.w->format(), "int8_g32_sym");
  EXPECT_EQ(r->embed, m->embed);
  EXPECT_EQ(r->n_bytes(), m->n_bytes());
  const std::vector<int> ids = {1, 5, 9, 33, 70, 2};
  const std::vector<float> a = test::prefill_logits(*m, ids), b = test::prefill_logits(*r, ids);
  EXPECT_EQ(test::max_abs_diff(a.data(), b.data(), a.size()), 0.0);
}
