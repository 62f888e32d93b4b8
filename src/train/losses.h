// Training losses on logits, each returning the mean loss over the scored rows and OVERWRITING dlogits
// (N, V) with ∂loss/∂logits (unscored rows get 0). p = softmax(student logits), t = softmax(teacher logits);
// a row n is scored when mask is null or mask[n] ≥ 0 (for cross-entropy mask is the target id).
//   ce   −log p[y]                                         d = p − onehot(y)
//   fkl  KL(t‖p) = Σ t (log t − log p)        (standard KD)  d = p − t
//   rkl  KL(p‖t) = Σ p (log p − log t)        (MiniLLM, Gu et al. 2024)
//                                                          d_j = p_j (log p_j − log t_j − KL)
//   jsd  JSD_β = β KL(t‖m) + (1−β) KL(p‖m), m = β t + (1−β) p   (GKD, Agarwal et al. 2024)
//        ∂J/∂p_j = (1−β) log(p_j/m_j)  →  d_j = p_j (g_j − Σ_k p_k g_k), g = (1−β) log(p/m)
//   cakld γ·rkl + (1−γ)·fkl, γ = the teacher's mean confidence on the data (BitDistiller, Du et al. 2024)
// (all divided by the number of scored rows)
#pragma once
#include <string>

namespace lmp::train {

enum class LossKind { CE, FKL, RKL, JSD, CAKLD };
LossKind parse_loss(const std::string& s);  // "ce|fkl|rkl|jsd|cakld", throws lmp::Error listing them
const char* loss_name(LossKind k);

// With row_weight, row n's term and gradient are scaled by row_weight[n] (black-box KD segments; Distilling
// step-by-step: L = Σ_n w_n (−log p[y_n]) / #scored); the divisor stays the number of scored rows.
template <class T>
double cross_entropy(T* dlogits, const T* logits, const int* targets, int N, int V, const float* row_weight = nullptr);

// KD losses (FKL, RKL, JSD with beta, CAKLD with gamma = beta).
template <class T>
double kd_loss(LossKind kind, T* dlogits, const T* s_logits, const T* t_logits, const int* mask, int N, int V,
               double beta = 0.5);

// Mean probability the teacher gives the next token (targets ≥ 0): BitDistiller's confidence γ.
template <class T>
double teacher_confidence(const T* t_logits, const int* targets, int N, int V);

// TED-style layer-wise alignment (Liang et al. 2023, "Less is More: Task-aware Layer-wise Distillation"):
// L = 1/(N·Ct) Σ_n ‖P h_s,n − h_t,n‖², P (Ct, Cs) learned. dhs (N, Cs) and dP (Ct, Cs) are accumulated.
template <class T>
double hidden_align_loss(T* dhs, T* dP, const T* hs, const T* ht, const T* P, int N, int Cs, int Ct);

// QuantGPT's token-level contrastive distillation (Tao et al. 2022, "Compression of Generative Pre-trained
// Language Models via Quantization", ACL 2022), InfoNCE over the N tokens of a batch: with u_i = hs_i/‖hs_i‖,
// v_j = ht_j/‖ht_j‖ and s_ij = u_i·v_j / τ, the teacher's state at the same position is the positive and the
// teacher's states at the other N − 1 positions are the negatives (in-batch; no memory bank):
//   L = 1/N Σ_i [ −s_ii + log Σ_j exp s_ij ]
//   ∂L/∂u_i = 1/(Nτ) Σ_j (p_ij − δ_ij) v_j =: g_i,  p = softmax_j(s_i·);  ∂L/∂hs_i = (g_i − u_i (u_i·g_i)) / ‖hs_i‖
// The teacher is fixed (no gradient to ht). dhs (N, C) is accumulated.
template <class T>
double token_contrastive_loss(T* dhs, const T* hs, const T* ht, int N, int C, double tau);

}  // namespace lmp::train
