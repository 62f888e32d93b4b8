// Randomized Hadamard transforms, the incoherence processing of QuIP (Chee, Cai, Kuleshov, De Sa 2023, "QuIP:
// 2-Bit Quantization of Large Language Models With Guarantees", arXiv 2307.13304) in the fast form of QuIP#
// (Tseng, Chee, Sun, Kuleshov, De Sa 2024, "QuIP#: Even Better LLM Quantization with Hadamard Incoherence and
// Lattice Codebooks", arXiv 2402.04396): T = H·S, S a diagonal of random signs, H the normalized Walsh–Hadamard
// matrix (Sylvester, H_p[i][j] = (−1)^popcount(i & j) / √p), applied in O(p log p) by the fast transform.
//
// Dimensions that are not a power of two (stories260K's intermediate size 172 = 4·43; 43 has no Hadamard matrix
// and a Hadamard matrix of order 172 has no simple construction) use OVERLAPPING WINDOWS: with p the largest
// power of two ≤ n,
//     T = H_A·S_3 · H_B·S_2 · H_A·S_1,   A = [0, p),  B = [n − p, n)
// where H_A / H_B act as the normalized Hadamard on the window and as the identity elsewhere, and every S_k is a
// full random-sign diagonal. Each factor is orthogonal, so T is; T⁻¹ = Tᵀ applies the factors in reverse order
// (H is symmetric and H² = I). The three stages spread every input over all outputs (A mixes [0, p), B carries
// that mix into [p, n), A again carries [p, n) back), at the cost of 3·(p/2)·log₂p butterflies (≤ 3× one
// power-of-two transform): n = 172 → 3·64·7 = 1344 add/sub pairs, against 172² = 29584 multiply-adds for a dense
// random orthogonal matrix. It is not as flat as a true Hadamard matrix of order n (all |T_ij| = 1/√n): sums of
// equal-magnitude terms can cancel (some entries are 0) or add up; max|T_ij|·√n is 3.7–4.8 for n = 65..688,
// about the √(2 ln n²) of a random orthogonal matrix, QuIP's original choice (tests/test_quip.cpp).
// Alternatives considered: padding to 256 would store 256/172 = 1.49× the codes (a 2-bit layer would cost
// ~3 bits per original weight); a Kronecker factor H_4 ⊗ Q_43 with a random orthogonal Q_43 costs 43² f16
// values per side — more bytes than a 2-bit 64×172 layer itself — or a bit-exact re-generation of Q from a seed.
// The windowed transform stores nothing but its seed: the signs come from splitmix64(seed), integer-only, so
// every machine rebuilds the same T.
#pragma once
#include <cstdint>
#include <vector>

namespace lmp {

// x ← H_p x in place, p a power of two (1 allowed). AVX2 butterflies (8-wide) for p ≥ 8, scalar below.
void fwht(float* x, int64_t p);
// The same transform, scalar butterflies in the element type (the reference; double for Hessians).
template <typename T> void fwht_ref(T* x, int64_t p);

bool is_pow2(int64_t n);

class RandomHadamard {
 public:
  // seed 0 is the identity (a one-sided transform stores it for the side left alone).
  RandomHadamard(int64_t n, uint64_t seed);
  int64_t n() const { return n_; }
  uint64_t seed() const { return seed_; }

  void forward(float* x) const;  // x ← T x (fast kernel)
  void inverse(float* x) const;  // x ← Tᵀ x
  // Scalar reference of the same maps, any element type.
  template <typename T> void forward_ref(T* x) const;
  template <typename T> void inverse_ref(T* x) const;
  // Rows of X (count × n, contiguous): each row x ← T x / Tᵀ x.
  void forward_rows(float* X, int64_t count) const;
  void inverse_rows(float* X, int64_t count) const;
  // T as a dense (n × n) row-major matrix in double, built with the scalar reference (tests, Hessians).
  std::vector<double> matrix() const;
  int64_t butterflies() const;  // add/sub pairs per vector, for the cost statement

 private:
  struct Stage {
    int64_t off, len;          // the window
    std::vector<float> sign;   // n entries, ±1
  };
  int64_t n_;
  uint64_t seed_;
  std::vector<Stage> stages_;
};

}  // namespace lmp
