#include "calib/dist.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "core/error.h"

#ifdef LMP_WITH_MPI
#define OMPI_SKIP_MPICXX 1  // the C API only
#include <mpi.h>
#endif

namespace lmp::dist {

namespace {
int g_rank = 0, g_size = 1;
[[maybe_unused]] bool g_mpi = false;  // MPI_Init was called by us (used only with LMP_WITH_MPI)

#ifdef LMP_WITH_MPI
constexpr int64_t kChunk = int64_t(1) << 28;  // elements per message (MPI counts are int)

void send_d(const double* x, int64_t n, int to, int tag) {
  for (int64_t o = 0; o < n; o += kChunk)
    MPI_Send(x + o, int(std::min(kChunk, n - o)), MPI_DOUBLE, to, tag, MPI_COMM_WORLD);
}
void recv_d(double* x, int64_t n, int from, int tag) {
  for (int64_t o = 0; o < n; o += kChunk)
    MPI_Recv(x + o, int(std::min(kChunk, n - o)), MPI_DOUBLE, from, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
}
void bcast_raw(void* x, int64_t n, MPI_Datatype t, size_t elem) {
  char* p = static_cast<char*>(x);
  for (int64_t o = 0; o < n; o += kChunk)
    MPI_Bcast(p + size_t(o) * elem, int(std::min(kChunk, n - o)), t, 0, MPI_COMM_WORLD);
}
#endif
}  // namespace

bool built_with_mpi() {
#ifdef LMP_WITH_MPI
  return true;
#else
  return false;
#endif
}

void init(int* argc, char*** argv) {
#ifdef LMP_WITH_MPI
  if (g_mpi) return;
  // Only under a launcher: a plain `lmpress ...` of an MPI build stays a single process with no MPI start-up.
  if (!std::getenv("OMPI_COMM_WORLD_SIZE") && !std::getenv("PMIX_RANK") && !std::getenv("PMI_SIZE")) return;
  int inited = 0;
  MPI_Initialized(&inited);
  if (!inited) MPI_Init(argc, argv);
  g_mpi = true;
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_size);
#else
  (void)argc, (void)argv;
#endif
}

void finalize() {
#ifdef LMP_WITH_MPI
  if (g_mpi) {
    MPI_Finalize();
    g_mpi = false;
  }
#endif
}

int rank() { return g_rank; }
int size() { return g_size; }

Range shard(int64_t n, int r, int p) {
  int64_t base = n / p, extra = n % p;
  Range g;
  g.begin = r * base + std::min<int64_t>(r, extra);
  g.end = g.begin + base + (r < extra ? 1 : 0);
  return g;
}

void allreduce_sum(double* x, int64_t n) {
  if (g_size == 1) return;
  // One item per rank: the ordered sum is ((0 + x_0) + x_1) + ...
  std::vector<double> mine(x, x + n);
  ordered_sum(g_size, n, [&](int64_t) { return mine.data(); }, x);
}

void allreduce_max(float* x, int64_t n) {
#ifdef LMP_WITH_MPI
  if (g_size == 1) return;
  for (int64_t o = 0; o < n; o += kChunk)
    MPI_Allreduce(MPI_IN_PLACE, x + o, int(std::min(kChunk, n - o)), MPI_FLOAT, MPI_MAX, MPI_COMM_WORLD);
#else
  (void)x, (void)n;
#endif
}

void ordered_sum(int64_t n_items, int64_t len, const std::function<const double*(int64_t)>& item, double* out) {
  std::fill(out, out + len, 0.0);
  if (g_size == 1) {
    for (int64_t i = 0; i < n_items; i++) {
      const double* v = item(i);
      for (int64_t k = 0; k < len; k++) out[k] += v[k];
    }
    return;
  }
#ifdef LMP_WITH_MPI
  Range mine = my_shard(n_items);
  if (g_rank == 0) {
    std::vector<double> buf(static_cast<size_t>(len));
    for (int r = 0; r < g_size; r++) {
      Range rr = shard(n_items, r, g_size);
      for (int64_t i = 0; i < rr.size(); i++) {
        const double* v;
        if (r == 0) {
          v = item(i);
        } else {
          recv_d(buf.data(), len, r, 7);
          v = buf.data();
        }
        for (int64_t k = 0; k < len; k++) out[k] += v[k];
      }
    }
  } else {
    for (int64_t i = 0; i < mine.size(); i++) send_d(item(i), len, 0, 7);
  }
  broadcast(out, len);
#endif
}

std::vector<double> gather_ordered(const std::vector<double>& local, int64_t n_items) {
  if (g_size == 1) return local;
  std::vector<double> all;
#ifdef LMP_WITH_MPI
  check(int64_t(local.size()) == my_shard(n_items).size(), "dist::gather_ordered: local size mismatch");
  if (g_rank == 0) {
    all.resize(size_t(n_items));
    std::copy(local.begin(), local.end(), all.begin());
    for (int r = 1; r < g_size; r++) {
      Range rr = shard(n_items, r, g_size);
      recv_d(all.data() + rr.begin, rr.size(), r, 8);
    }
  } else {
    send_d(local.data(), int64_t(local.size()), 0, 8);
  }
#endif
  return all;
}

void broadcast(std::vector<uint8_t>& bytes) {
#ifdef LMP_WITH_MPI
  if (g_size == 1) return;
  uint64_t n = bytes.size();
  MPI_Bcast(&n, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
  bytes.resize(size_t(n));
  bcast_raw(bytes.data(), int64_t(n), MPI_BYTE, 1);
#else
  (void)bytes;
#endif
}

void broadcast(double* x, int64_t n) {
#ifdef LMP_WITH_MPI
  if (g_size == 1) return;
  bcast_raw(x, n, MPI_DOUBLE, sizeof(double));
#else
  (void)x, (void)n;
#endif
}

void barrier() {
#ifdef LMP_WITH_MPI
  if (g_size > 1) MPI_Barrier(MPI_COMM_WORLD);
#endif
}

void abort(const std::string& msg, int code) {
  if (g_size > 1)
    std::fprintf(stderr, "lmpress[rank %d/%d]: error: %s\n", g_rank, g_size, msg.c_str());
  else
    std::fprintf(stderr, "lmpress: error: %s\n", msg.c_str());
  std::fflush(stderr);
#ifdef LMP_WITH_MPI
  if (g_mpi) MPI_Abort(MPI_COMM_WORLD, code);
#endif
  std::exit(code);
}

uint64_t fnv1a(const void* data, size_t n, uint64_t h) {
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

}  // namespace lmp::dist
