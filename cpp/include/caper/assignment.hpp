// Linear assignment (Jonker-Volgenant, LAPJV) for dense rectangular cost matrices.
//
// The solver is used by the tracker directly (no Python in between) and by the
// caper_edge.track.linear_assignment binding. It never includes pybind11.
//
// Semantics
// ---------
// * cost is row-major n_rows x n_cols, float or double. +inf marks a forbidden pair: it is never
//   returned as a match. NaN and -inf are rejected (std::invalid_argument).
// * cost_limit = +inf: among the assignments of maximum cardinality (counting only allowed pairs)
//   the one of least total cost. When every entry is finite this is exactly
//   scipy.optimize.linear_sum_assignment's optimum (min(n_rows, n_cols) pairs).
// * cost_limit = L finite: the optimum of lap.lapjv(cost, extend_cost=True, cost_limit=L), i.e.
//   minimise  sum(matched cost) + L/2 * (unmatched rows + unmatched columns). A pair is worth
//   matching only if its cost is below L.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

namespace caper::track {

inline constexpr double kForbidden = std::numeric_limits<double>::infinity();

// Scratch memory reused between calls so that a solve in the tracker's frame loop allocates
// nothing once warm. One workspace per thread; it is not shared.
struct AssignmentWorkspace {
  std::vector<double> square;       // materialised square sub-problem (k x k), row-major
  std::vector<double> v;            // column duals of the square problem
  std::vector<double> dist;         // shortest-path distances (Dijkstra phase)
  std::vector<int32_t> x, y;        // row -> column, column -> row of the square problem
  std::vector<int32_t> pred, cols, free_rows, matches;
  std::vector<int32_t> comp_of_row, comp_of_col, queue;  // connected components of allowed pairs
  std::vector<int32_t> comp_rows, comp_cols;
  std::vector<int32_t> row_start, row_order, col_start, col_order;  // rows/cols bucketed by component
  std::vector<int32_t> cursor;
};

// Solve the square problem `c` (n x n, row-major, +inf = forbidden) with LAPJV: column
// reduction, reduction transfer, two passes of augmenting row reduction, then shortest
// augmenting paths. Writes x (row -> column). Returns false when no perfect matching over
// allowed pairs exists (x is then unspecified).
bool lapjv_square(const double* c, int32_t n, int32_t* x, AssignmentWorkspace& ws);

// Rectangular assignment with the semantics described above. Writes row_to_col[i] (column of
// row i or -1) for every row and returns the number of matched pairs. Throws
// std::invalid_argument on NaN / -inf entries or a NaN cost_limit. The cost is read in place
// (float too: reduced costs are computed in double); only components that need an extension
// are copied into the workspace.
std::size_t linear_assignment(const double* cost, std::size_t n_rows, std::size_t n_cols,
                              double cost_limit, int32_t* row_to_col, AssignmentWorkspace& ws);
std::size_t linear_assignment(const float* cost, std::size_t n_rows, std::size_t n_cols,
                              double cost_limit, int32_t* row_to_col, AssignmentWorkspace& ws);

// Same, with a thread-local workspace.
std::size_t linear_assignment(const double* cost, std::size_t n_rows, std::size_t n_cols,
                              double cost_limit, int32_t* row_to_col);
std::size_t linear_assignment(const float* cost, std::size_t n_rows, std::size_t n_cols,
                              double cost_limit, int32_t* row_to_col);

}  // namespace caper::track
