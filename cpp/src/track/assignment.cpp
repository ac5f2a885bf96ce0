// LAPJV for dense rectangular matrices with forbidden pairs and a per-pair cost limit.
//
// Plan of a call (see assignment.hpp for the semantics):
//   1. scan      reject NaN / -inf, find which pairs are "allowed" (cost < limit, finite);
//   2. split     the bipartite graph of allowed pairs into connected components: they are
//                independent problems, and a tracker's gated cost matrix falls apart into many
//                1x1 and 2x2 pieces, which is where most of its speed comes from;
//   3. extend    each component into a square problem whose perfect matchings are exactly
//                the candidate answers (dummy rows/columns stand for "unassigned");
//   4. solve     the square problem with Jonker-Volgenant (lapjv_square).
#include "caper/assignment.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace caper::track {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// ---------------------------------------------------------------------------------------------
// Square LAPJV, phase by phase. Invariant between phases: every assigned row i sits on a
// column of minimum reduced cost c[i][j] - v[j]; that is all the shortest-path phase needs.
// ---------------------------------------------------------------------------------------------

// Phase 1 (column reduction): v[j] = min_i c[i][j]; each column is offered to the first row
// attaining the minimum, and a row that is the minimum of several columns keeps the one with
// the smallest v. Scans row-major (cache friendly); false if a column has no allowed pair.
template <typename T>
bool column_reduction(const T* c, int32_t n, double* v, int32_t* x, int32_t* y,
                      int32_t* argmin_row, int32_t* matches) {
  std::fill(v, v + n, kInf);
  for (int32_t i = 0; i < n; ++i) {
    const T* row = c + static_cast<std::size_t>(i) * n;
    for (int32_t j = 0; j < n; ++j) {
      if (row[j] < v[j]) {
        v[j] = row[j];
        argmin_row[j] = i;
      }
    }
  }
  std::fill(x, x + n, -1);
  std::fill(y, y + n, -1);
  std::fill(matches, matches + n, 0);
  for (int32_t j = n - 1; j >= 0; --j) {
    if (v[j] == kInf) return false;
    const int32_t i = argmin_row[j];
    if (matches[i]++ == 0) {
      x[i] = j;
      y[j] = i;
    } else if (v[j] < v[x[i]]) {
      y[x[i]] = -1;
      x[i] = j;
      y[j] = i;
    }
  }
  return true;
}

// Phase 2 (reduction transfer): a row that won exactly one column hands its slack to that
// column's dual, so later rows see the column as more expensive. Collects the free rows.
template <typename T>
int32_t reduction_transfer(const T* c, int32_t n, double* v, const int32_t* x,
                           const int32_t* matches, int32_t* free_rows) {
  int32_t n_free = 0;
  for (int32_t i = 0; i < n; ++i) {
    if (matches[i] == 0) {
      free_rows[n_free++] = i;
    } else if (matches[i] == 1) {
      const T* row = c + static_cast<std::size_t>(i) * n;
      const int32_t j1 = x[i];
      double slack = kInf;
      for (int32_t j = 0; j < n; ++j) {
        if (j != j1) slack = std::min(slack, row[j] - v[j]);
      }
      if (slack < kInf) v[j1] -= slack;  // only allowed pair in the row: nothing to transfer
    }
  }
  return n_free;
}

// Phase 3 (augmenting row reduction), one pass: each free row grabs its cheapest column,
// lowering that column's dual to the row's second-best reduced cost; the displaced row is
// retried at once when the dual strictly dropped, otherwise queued for the next pass.
// Returns the free rows left (at the front of free_rows), or -1 when a row has no allowed pair.
template <typename T>
int32_t augmenting_row_reduction(const T* c, int32_t n, double* v, int32_t* x, int32_t* y,
                                 int32_t* free_rows, int32_t n_free) {
  int32_t k = 0;
  int32_t next = 0;
  // Floating-point rounding can make a dual decrease vanish and two rows trade one column
  // forever; the step budget ends the pass and leaves the rest to the shortest-path phase.
  int64_t budget = 8 * static_cast<int64_t>(n) + 64;
  while (k < n_free) {
    if (--budget < 0) {
      while (k < n_free) free_rows[next++] = free_rows[k++];
      break;
    }
    const int32_t i = free_rows[k++];
    const T* row = c + static_cast<std::size_t>(i) * n;
    double u1 = kInf, u2 = kInf;
    int32_t j1 = -1, j2 = -1;
    for (int32_t j = 0; j < n; ++j) {
      const double h = row[j] - v[j];
      if (h < u2) {
        if (h >= u1) {
          u2 = h;
          j2 = j;
        } else {
          u2 = u1;
          j2 = j1;
          u1 = h;
          j1 = j;
        }
      }
    }
    if (j1 < 0) return -1;
    int32_t i0 = y[j1];
    const bool strict = u1 < u2;
    if (strict) {
      if (u2 < kInf) v[j1] -= u2 - u1;
    } else if (i0 >= 0) {  // tie: take the second column and maybe displace nobody
      j1 = j2;
      i0 = y[j2];
    }
    x[i] = j1;
    y[j1] = i;
    if (i0 >= 0) {
      x[i0] = -1;
      if (strict && u2 < kInf) {
        free_rows[--k] = i0;
      } else {
        free_rows[next++] = i0;
      }
    }
  }
  return next;
}

// Phase 4 (shortest augmenting path): Dijkstra over columns from free row `f` on reduced
// costs, dual update of the settled columns, augmentation along the path. cols[0, lo) are
// settled; each relaxation pass over cols[lo, n) also finds the next column to settle, so a
// settled column costs one pass (ties prefer an unassigned column: the path ends sooner).
// Returns false if no unassigned column can be reached through allowed pairs.
template <typename T>
bool shortest_augmenting_path(const T* c, int32_t n, int32_t f, double* v, int32_t* x,
                              int32_t* y, double* d, int32_t* pred, int32_t* cols) {
  const T* row_f = c + static_cast<std::size_t>(f) * n;
  double best = kInf;
  int32_t k_best = -1;
  for (int32_t j = 0; j < n; ++j) {
    const double h = row_f[j] - v[j];
    d[j] = h;
    pred[j] = f;
    cols[j] = j;
    if (h < best || (h == best && y[j] < 0)) {
      best = h;
      k_best = j;
    }
  }
  int32_t lo = 0;
  int32_t sink;
  for (;;) {
    if (best == kInf) return false;  // every remaining column is forbidden from here
    const int32_t j1 = cols[k_best];
    cols[k_best] = cols[lo];
    cols[lo++] = j1;
    if (y[j1] < 0) {
      sink = j1;
      break;
    }
    const int32_t i = y[j1];
    const T* row = c + static_cast<std::size_t>(i) * n;
    const double h0 = row[j1] - v[j1] - best;
    best = kInf;
    k_best = -1;
    for (int32_t k = lo; k < n; ++k) {
      const int32_t j = cols[k];
      const double h = row[j] - v[j] - h0;
      double dj = d[j];
      if (h < dj) {
        dj = h;
        d[j] = h;
        pred[j] = i;
      }
      if (dj < best || (dj == best && y[j] < 0)) {
        best = dj;
        k_best = k;
      }
    }
  }
  const double mind = d[sink];
  for (int32_t k = 0; k < lo - 1; ++k) {
    const int32_t j = cols[k];
    v[j] += d[j] - mind;
  }
  int32_t j = sink;
  int32_t i;
  do {
    i = pred[j];
    y[j] = i;
    std::swap(j, x[i]);
  } while (i != f);
  return true;
}

// The four phases in order; false when no perfect matching over allowed pairs exists.
template <typename T>
bool lapjv_square_t(const T* c, int32_t n, int32_t* x, AssignmentWorkspace& ws) {
  if (n == 0) return true;
  ws.v.resize(n);
  ws.y.resize(n);
  ws.dist.resize(n);
  ws.pred.resize(n);
  ws.cols.resize(n);
  ws.free_rows.resize(n);
  ws.matches.resize(n);
  double* v = ws.v.data();
  int32_t* y = ws.y.data();
  if (!column_reduction(c, n, v, x, y, ws.pred.data(), ws.matches.data())) return false;
  int32_t n_free = reduction_transfer(c, n, v, x, ws.matches.data(), ws.free_rows.data());
  for (int pass = 0; pass < 2 && n_free > 0; ++pass) {
    n_free = augmenting_row_reduction(c, n, v, x, y, ws.free_rows.data(), n_free);
    if (n_free < 0) return false;
  }
  for (int32_t k = 0; k < n_free; ++k) {
    if (!shortest_augmenting_path(c, n, ws.free_rows[k], v, x, y, ws.dist.data(), ws.pred.data(),
                                  ws.cols.data())) {
      return false;
    }
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Rectangular problems: components and their square extensions
// ---------------------------------------------------------------------------------------------

template <typename T>
struct Problem {
  const T* cost;
  std::size_t n_rows, n_cols;
  double limit;
  bool allowed(std::size_t i, std::size_t j) const { return cost[i * n_cols + j] < limit; }
  double at(std::size_t i, std::size_t j) const { return static_cast<double>(cost[i * n_cols + j]); }
};

// Validates every entry and returns the number of allowed pairs. Branch-free accumulation (it
// vectorises); the position of a bad entry is looked up only when there is one.
template <typename T>
std::size_t scan(const Problem<T>& p) {
  const std::size_t total = p.n_rows * p.n_cols;
  int64_t bad = 0, allowed = 0;
  const double limit = p.limit;
  const T* cost = p.cost;
  for (std::size_t k = 0; k < total; ++k) {
    const double c = cost[k];
    // c > -inf is false for NaN and -inf alike.
    bad += c > -kInf ? 0 : 1;
    allowed += c < limit ? 1 : 0;
  }
  if (bad != 0) {
    for (std::size_t k = 0; k < total; ++k) {
      const double c = p.cost[k];
      if (std::isnan(c) || c == -kInf) {
        throw std::invalid_argument("cost[" + std::to_string(k / p.n_cols) + ", " +
                                    std::to_string(k % p.n_cols) + "] is " +
                                    (std::isnan(c) ? "nan" : "-inf") +
                                    ": expected a finite number or +inf (forbidden pair)");
      }
    }
  }
  return static_cast<std::size_t>(allowed);
}

// Label rows and columns with the connected component of the allowed-pair graph they belong
// to (-1: no allowed pair at all). Builds row and column adjacency lists first (one pass over
// the matrix), then a BFS over them. Returns the number of components.
template <typename T>
int32_t label_components(const Problem<T>& p, AssignmentWorkspace& ws) {
  const auto n = static_cast<int32_t>(p.n_rows), m = static_cast<int32_t>(p.n_cols);
  std::vector<int32_t>& row_start = ws.row_start;  // reused: bucket() runs after this
  std::vector<int32_t>& row_adj = ws.row_order;
  std::vector<int32_t>& col_start = ws.col_start;
  std::vector<int32_t>& col_adj = ws.col_order;
  row_start.assign(static_cast<std::size_t>(n) + 1, 0);
  col_start.assign(static_cast<std::size_t>(m) + 1, 0);
  row_adj.clear();
  for (int32_t i = 0; i < n; ++i) {
    const T* row = p.cost + static_cast<std::size_t>(i) * p.n_cols;
    for (int32_t j = 0; j < m; ++j) {
      if (row[j] < p.limit) {
        row_adj.push_back(j);
        ++col_start[j + 1];
      }
    }
    row_start[i + 1] = static_cast<int32_t>(row_adj.size());
  }
  for (int32_t j = 0; j < m; ++j) col_start[j + 1] += col_start[j];
  col_adj.resize(row_adj.size());
  ws.cursor.assign(col_start.begin(), col_start.end() - 1);
  for (int32_t i = 0; i < n; ++i)
    for (int32_t e = row_start[i]; e < row_start[i + 1]; ++e) col_adj[ws.cursor[row_adj[e]]++] = i;

  ws.comp_of_row.assign(n, -1);
  ws.comp_of_col.assign(m, -1);
  ws.queue.resize(static_cast<std::size_t>(n) + m);
  int32_t n_comp = 0;
  for (int32_t start = 0; start < n; ++start) {
    if (ws.comp_of_row[start] >= 0 || row_start[start] == row_start[start + 1]) continue;
    // Queue entries: row r as r, column c as n + c.
    int32_t head = 0, tail = 0;
    ws.queue[tail++] = start;
    ws.comp_of_row[start] = n_comp;
    while (head < tail) {
      const int32_t node = ws.queue[head++];
      if (node < n) {
        for (int32_t e = row_start[node]; e < row_start[node + 1]; ++e) {
          const int32_t j = row_adj[e];
          if (ws.comp_of_col[j] < 0) {
            ws.comp_of_col[j] = n_comp;
            ws.queue[tail++] = n + j;
          }
        }
      } else {
        const int32_t j = node - n;
        for (int32_t e = col_start[j]; e < col_start[j + 1]; ++e) {
          const int32_t i = col_adj[e];
          if (ws.comp_of_row[i] < 0) {
            ws.comp_of_row[i] = n_comp;
            ws.queue[tail++] = i;
          }
        }
      }
    }
    ++n_comp;
  }
  return n_comp;
}

// Stable counting sort of indices by label (label -1 is dropped): order[start[c], start[c+1])
// lists the indices labelled c in increasing order.
void bucket(const std::vector<int32_t>& label, int32_t n_labels, std::vector<int32_t>& start,
            std::vector<int32_t>& order, std::vector<int32_t>& cursor) {
  start.assign(static_cast<std::size_t>(n_labels) + 1, 0);
  for (int32_t l : label)
    if (l >= 0) ++start[l + 1];
  for (int32_t c = 0; c < n_labels; ++c) start[c + 1] += start[c];
  order.resize(start[n_labels]);
  cursor.assign(start.begin(), start.end() - 1);
  for (int32_t i = 0; i < static_cast<int32_t>(label.size()); ++i)
    if (label[i] >= 0) order[cursor[label[i]]++] = i;
}

// Maximum number of allowed pairs that can be matched at once in a component (Kuhn's
// augmenting paths, BFS). Only needed when forbidden pairs make min(rows, cols) unreachable.
template <typename T>
int32_t max_cardinality(const Problem<T>& p, const std::vector<int32_t>& rows,
                        const std::vector<int32_t>& cols) {
  const auto r = static_cast<int32_t>(rows.size()), k = static_cast<int32_t>(cols.size());
  std::vector<int32_t> match_row(r, -1), match_col(k, -1), from(k), queue(r), seen(k);
  int32_t size = 0;
  for (int32_t s = 0; s < r; ++s) {
    std::fill(seen.begin(), seen.end(), 0);
    int32_t head = 0, tail = 0, end = -1;
    queue[tail++] = s;
    while (head < tail && end < 0) {
      const int32_t a = queue[head++];
      for (int32_t b = 0; b < k; ++b) {
        if (seen[b] || !p.allowed(rows[a], cols[b])) continue;
        seen[b] = 1;
        from[b] = a;
        if (match_col[b] < 0) {
          end = b;
          break;
        }
        queue[tail++] = match_col[b];
      }
    }
    for (int32_t b = end; b >= 0;) {  // flip the alternating path
      const int32_t a = from[b];
      const int32_t prev = match_row[a];
      match_row[a] = b;
      match_col[b] = a;
      b = prev;
    }
    size += end >= 0;
  }
  return size;
}

// One component's square problem, of size R + dr = K + dc:
//   rows  [0, R)           the component's rows        cols [0, K)          its columns
//   rows  [R, R + dr)      dummy rows ("column unassigned")
//   cols  [K, K + dc)      dummy columns ("row unassigned")
// Finite limit L (lap's extension): dr = K, dc = R, real<->dummy costs L/2, dummy<->dummy 0.
// Infinite limit with k* = maximum cardinality: dr = K - k*, dc = R - k*, real<->dummy 0 and
// dummy<->dummy forbidden, so every perfect matching pairs exactly k* real rows and columns.
template <typename T>
void build_extension(const Problem<T>& p, const std::vector<int32_t>& rows,
                     const std::vector<int32_t>& cols, int32_t dr, int32_t dc, double real_dummy,
                     double dummy_dummy, std::vector<double>& out) {
  const auto R = static_cast<int32_t>(rows.size()), K = static_cast<int32_t>(cols.size());
  const int32_t s = R + dr;
  out.resize(static_cast<std::size_t>(s) * s);
  for (int32_t a = 0; a < R; ++a) {
    double* dst = out.data() + static_cast<std::size_t>(a) * s;
    const T* src = p.cost + static_cast<std::size_t>(rows[a]) * p.n_cols;
    for (int32_t b = 0; b < K; ++b) {
      const double c = static_cast<double>(src[cols[b]]);
      dst[b] = c < p.limit ? c : kInf;
    }
    std::fill(dst + K, dst + K + dc, real_dummy);
  }
  for (int32_t a = R; a < s; ++a) {
    double* dst = out.data() + static_cast<std::size_t>(a) * s;
    std::fill(dst, dst + K, real_dummy);
    std::fill(dst + K, dst + K + dc, dummy_dummy);
  }
}

// Square solve on ws.square (size s); copies back the real pairs of the component.
template <typename T>
bool solve_extension(const Problem<T>& p, const std::vector<int32_t>& rows,
                     const std::vector<int32_t>& cols, int32_t s, int32_t* row_to_col,
                     AssignmentWorkspace& ws) {
  ws.x.resize(s);
  if (!lapjv_square_t(ws.square.data(), s, ws.x.data(), ws)) return false;
  for (std::size_t a = 0; a < rows.size(); ++a) {
    const int32_t b = ws.x[a];
    if (b >= 0 && b < static_cast<int32_t>(cols.size()) && p.allowed(rows[a], cols[b])) {
      row_to_col[rows[a]] = cols[b];
    }
  }
  return true;
}

// A single row (or a single column): its cheapest allowed partner, first index on ties.
template <typename T>
void solve_single_row(const Problem<T>& p, int32_t row, const std::vector<int32_t>& cols,
                      int32_t* row_to_col) {
  int32_t best = -1;
  for (int32_t j : cols) {
    if (p.allowed(row, j) && (best < 0 || p.at(row, j) < p.at(row, best))) best = j;
  }
  row_to_col[row] = best;
}
template <typename T>
void solve_single_col(const Problem<T>& p, const std::vector<int32_t>& rows, int32_t col,
                      int32_t* row_to_col) {
  int32_t best = -1;
  for (int32_t i : rows) {
    if (p.allowed(i, col) && (best < 0 || p.at(i, col) < p.at(best, col))) best = i;
  }
  if (best >= 0) row_to_col[best] = col;
}

template <typename T>
void solve_component(const Problem<T>& p, const std::vector<int32_t>& rows,
                     const std::vector<int32_t>& cols, int32_t* row_to_col,
                     AssignmentWorkspace& ws) {
  const auto R = static_cast<int32_t>(rows.size()), K = static_cast<int32_t>(cols.size());
  if (R == 1) return solve_single_row(p, rows[0], cols, row_to_col);
  if (K == 1) return solve_single_col(p, rows, cols[0], row_to_col);
  if (p.limit < kInf) {
    build_extension(p, rows, cols, K, R, 0.5 * p.limit, 0.0, ws.square);
    if (!solve_extension(p, rows, cols, R + K, row_to_col, ws)) {
      throw std::logic_error("linear_assignment: extended problem unexpectedly infeasible");
    }
    return;
  }
  // Infinite limit: first assume the smaller side can be matched completely (always true
  // without forbidden pairs); otherwise find the true maximum cardinality and extend by it.
  int32_t k_star = std::min(R, K);
  build_extension(p, rows, cols, K - k_star, R - k_star, 0.0, kInf, ws.square);
  if (solve_extension(p, rows, cols, R + K - k_star, row_to_col, ws)) return;
  k_star = max_cardinality(p, rows, cols);
  build_extension(p, rows, cols, K - k_star, R - k_star, 0.0, kInf, ws.square);
  if (!solve_extension(p, rows, cols, R + K - k_star, row_to_col, ws)) {
    throw std::logic_error("linear_assignment: maximum-cardinality extension infeasible");
  }
}

template <typename T>
std::size_t solve(const Problem<T>& p, int32_t* row_to_col, AssignmentWorkspace& ws) {
  if (std::isnan(p.limit)) throw std::invalid_argument("cost_limit is nan: expected a number or inf");
  std::fill(row_to_col, row_to_col + p.n_rows, -1);
  if (p.n_rows == 0 || p.n_cols == 0) return 0;
  const bool dense = scan(p) == p.n_rows * p.n_cols;
  const auto n = static_cast<int32_t>(p.n_rows), m = static_cast<int32_t>(p.n_cols);
  if (dense && n == m && p.limit == kInf) {
    // The common square case runs on the caller's buffer without any copy.
    if (!lapjv_square_t(p.cost, n, row_to_col, ws)) {
      throw std::logic_error("linear_assignment: dense square problem infeasible");
    }
  } else if (dense) {
    ws.comp_rows.resize(n);
    ws.comp_cols.resize(m);
    for (int32_t i = 0; i < n; ++i) ws.comp_rows[i] = i;
    for (int32_t j = 0; j < m; ++j) ws.comp_cols[j] = j;
    solve_component(p, ws.comp_rows, ws.comp_cols, row_to_col, ws);
  } else {
    const int32_t n_comp = label_components(p, ws);
    // Bucket rows and columns by component (counting sort), then solve each component.
    bucket(ws.comp_of_row, n_comp, ws.row_start, ws.row_order, ws.cursor);
    bucket(ws.comp_of_col, n_comp, ws.col_start, ws.col_order, ws.cursor);
    for (int32_t comp = 0; comp < n_comp; ++comp) {
      ws.comp_rows.assign(ws.row_order.begin() + ws.row_start[comp], ws.row_order.begin() + ws.row_start[comp + 1]);
      ws.comp_cols.assign(ws.col_order.begin() + ws.col_start[comp], ws.col_order.begin() + ws.col_start[comp + 1]);
      solve_component(p, ws.comp_rows, ws.comp_cols, row_to_col, ws);
    }
  }
  std::size_t matched = 0;
  for (int32_t i = 0; i < n; ++i) matched += row_to_col[i] >= 0;
  return matched;
}

AssignmentWorkspace& thread_workspace() {
  thread_local AssignmentWorkspace ws;
  return ws;
}

}  // namespace

bool lapjv_square(const double* c, int32_t n, int32_t* x, AssignmentWorkspace& ws) {
  return lapjv_square_t(c, n, x, ws);
}

std::size_t linear_assignment(const double* cost, std::size_t n_rows, std::size_t n_cols,
                              double cost_limit, int32_t* row_to_col, AssignmentWorkspace& ws) {
  return solve(Problem<double>{cost, n_rows, n_cols, cost_limit}, row_to_col, ws);
}

std::size_t linear_assignment(const float* cost, std::size_t n_rows, std::size_t n_cols,
                              double cost_limit, int32_t* row_to_col, AssignmentWorkspace& ws) {
  // Read in place; every reduced cost is computed in double, as scipy and lap do after their
  // conversion, so float input gives the same optimum without a converted copy.
  return solve(Problem<float>{cost, n_rows, n_cols, cost_limit}, row_to_col, ws);
}
std::size_t linear_assignment(const double* cost, std::size_t n_rows, std::size_t n_cols,
                              double cost_limit, int32_t* row_to_col) {
  return linear_assignment(cost, n_rows, n_cols, cost_limit, row_to_col, thread_workspace());
}

std::size_t linear_assignment(const float* cost, std::size_t n_rows, std::size_t n_cols,
                              double cost_limit, int32_t* row_to_col) {
  return linear_assignment(cost, n_rows, n_cols, cost_limit, row_to_col, thread_workspace());
}

}  // namespace caper::track
