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
  std::vector<int> ids = {1, 5, 9, 33, 70, 2};
  std::vector<float> a(ids.size() * s.vocab), b(a.size());
  Forward fa(*m), fb(*r);
  KVCache ca(m->cfg, int(ids.size())), cb(r->cfg, int(ids.size()));
  fa.tokens(ids.data(), int(ids.size()), ca, a.data());
  fb.tokens(ids.data(), int(ids.size()), cb, b.data());
  EXPECT_EQ(test::max_abs_diff(a.data(), b.data(), a.size()), 0.0);
}
