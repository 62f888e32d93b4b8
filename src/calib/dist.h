// Data-parallel communicator (issue 10): rank, size and the few collectives the calibration pipeline and
// perplexity need. Built with -DLMP_MPI=ON (LMP_WITH_MPI) and launched by mpirun it wraps MPI_COMM_WORLD;
// otherwise (or when the process was not started by a launcher) it is the single-process implementation:
// rank 0 of 1, every collective a no-op copy.
//
// Determinism: every reduction of doubles runs in a FIXED order that equals the 1-rank order, so results are
// bit-identical to one process. `ordered_sum` streams the per-item vectors of every rank to rank 0 in global
// item order (ranks own contiguous blocks of items), adds them there one by one starting from zeros, and
// broadcasts the total. Memory on rank 0: the total plus one item.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace lmp::dist {

// Calls MPI_Init when built with MPI and started by a launcher (OMPI_COMM_WORLD_SIZE / PMIX_RANK / PMI_SIZE
// set); otherwise stays single-process. Idempotent.
void init(int* argc, char*** argv);
void finalize();
int rank();
int size();
inline bool is_root() { return rank() == 0; }
bool built_with_mpi();

// Contiguous shard [begin, end) of n items owned by rank r of p ranks (the first n % p ranks get one more).
struct Range { int64_t begin = 0, end = 0; int64_t size() const { return end - begin; } };
Range shard(int64_t n, int r, int p);
inline Range my_shard(int64_t n) { return shard(n, rank(), size()); }

// Sum over ranks in rank order (rank 0's value first, added to zeros); result on every rank.
void allreduce_sum(double* x, int64_t n);
// Element-wise max over ranks; result on every rank (max is order-independent).
void allreduce_max(float* x, int64_t n);
// Global sum of n_items vectors of length len, items sharded contiguously with `shard(n_items, ·, size())`:
// item(i) returns the i-th local item (i in [0, local count)). out (len) receives
// ((0 + item_0) + item_1) + ... in global item order on every rank.
void ordered_sum(int64_t n_items, int64_t len, const std::function<const double*(int64_t)>& item, double* out);
// Concatenation of every rank's local doubles in rank order (the global item order), on rank 0 only
// (other ranks get an empty vector). local.size() must be the rank's shard of n_items.
std::vector<double> gather_ordered(const std::vector<double>& local, int64_t n_items);
// Rank 0's bytes to every rank (resized as needed).
void broadcast(std::vector<uint8_t>& bytes);
void broadcast(double* x, int64_t n);
void barrier();
// Prints "lmpress[rank r]: error: msg" and ends every rank (MPI_Abort); single-process: exit(code).
[[noreturn]] void abort(const std::string& msg, int code = 2);

// FNV-1a over bytes (for cross-rank consistency checks).
uint64_t fnv1a(const void* data, size_t n, uint64_t h = 1469598103934665603ull);

}  // namespace lmp::dist
