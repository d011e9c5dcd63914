/* Host kernels for the unigram tokenizer (jaxlab.tokenizer.native).
 *
 * Plain C99, no Python headers: native.py compiles this file with the system C compiler into
 * a shared library and calls it through ctypes. Every array arrives as a raw pointer to a
 * C-contiguous buffer whose dtype native.py has already checked; every function checks the
 * indices it is about to follow (symbol ids, trie nodes, output cells, gather cells) and
 * returns a negative error code instead of touching memory outside the buffers it was given.
 *
 * Error codes (native.py turns them into ValueError):
 *   -1  a symbol id outside [0, a1)
 *   -2  a trie node outside [0, num_nodes) (corrupt tables)
 *   -3  an output cell outside [0, out_len)
 *   -4  a gather cell outside [0, dev_len)
 *   -5  a negative line length, or lengths that do not add up to the number of cells
 */

#include <stddef.h>
#include <stdint.h>

#define ERR_SYMBOL (-1)
#define ERR_NODE (-2)
#define ERR_OUT (-3)
#define ERR_CELL (-4)
#define ERR_LENGTH (-5)

/* ---- lattice edges -------------------------------------------------------------------------
 *
 * The trie holds every piece spelled backwards, so the pieces that end at symbol i are found
 * by starting at the node of symbols[i] and stepping left one symbol at a time through the
 * dense transition table trans[node * a1 + symbol] (0 = no such child). The walk for i stops
 * at the first missing transition, at the start of i's line, or after max_len symbols; its
 * cost is the number of piece suffixes that actually occur, exactly like the level-by-level
 * NumPy search, but without materialising one array per level.
 *
 * Level 1 always writes a cell: the single-symbol piece, or first_missing if there is none.
 * Level k > 1 writes cell base[i] + (k - 1) * kstride when the k-symbol window is a suffix of
 * some piece: the piece id if the window is a whole piece, none_id otherwise. Cells that are
 * never reached keep whatever the caller filled them with.
 */
/* The walk for one symbol, shared by find_edges and layout: last points at the symbol whose
 * edges are searched, and last[-1], ..., last[-depth] are the symbols before it that a piece may
 * span. Writes the edge of length k + 1 to out[cell + k * kstride]. */
#define DEFINE_WALK(NAME, OUT_T)                                                               \
    static inline int64_t NAME(const int32_t *last, int64_t depth, const int32_t *child1,     \
                               const int32_t *trans, int64_t a1, int64_t num_nodes,            \
                               const int32_t *piece_of, int64_t first_missing,                 \
                               int64_t none_id, OUT_T *out, int64_t cell, int64_t kstride,     \
                               int64_t out_len) {                                              \
        int32_t s = last[0];                                                                   \
        if (s < 0 || s >= a1) return ERR_SYMBOL;                                               \
        if (cell < 0 || cell >= out_len) return ERR_OUT;                                       \
        int64_t node = child1[s];                                                              \
        if (node < 0 || node >= num_nodes) return ERR_NODE;                                    \
        int32_t p = piece_of[node];                                                            \
        out[cell] = (OUT_T)(p >= 0 ? (int64_t)p : first_missing);                              \
        for (int64_t k = 1; node != 0 && k <= depth; ++k) {                                    \
            int32_t t = last[-k];                                                              \
            if (t < 0 || t >= a1) return ERR_SYMBOL;                                           \
            node = trans[node * a1 + t];                                                       \
            if (node == 0) break;                                                              \
            if (node < 0 || node >= num_nodes) return ERR_NODE;                                \
            cell += kstride;                                                                   \
            if (cell < 0 || cell >= out_len) return ERR_OUT;                                   \
            p = piece_of[node];                                                                \
            out[cell] = (OUT_T)(p >= 0 ? (int64_t)p : none_id);                                \
        }                                                                                      \
        return 0;                                                                              \
    }

DEFINE_WALK(walk_i16, int16_t)
DEFINE_WALK(walk_i32, int32_t)

#define DEFINE_FIND_EDGES(NAME, WALK, OUT_T)                                                   \
    int64_t NAME(int64_t n, const int32_t *symbols, const int32_t *offsets,                    \
                 const int32_t *child1, const int32_t *trans, int64_t a1, int64_t num_nodes,   \
                 const int32_t *piece_of, int64_t max_len, int64_t first_missing,              \
                 int64_t none_id, const int64_t *base, int64_t kstride, OUT_T *out,            \
                 int64_t out_len) {                                                            \
        for (int64_t i = 0; i < n; ++i) {                                                      \
            /* Furthest we may look back: the line start (and, defensively, the array start). */ \
            int64_t reach = offsets[i] < i ? (int64_t)offsets[i] : i;                          \
            int64_t depth = max_len - 1 < reach ? max_len - 1 : reach;                         \
            int64_t err = WALK(symbols + i, depth, child1, trans, a1, num_nodes, piece_of,     \
                               first_missing, none_id, out, base[i], kstride, out_len);        \
            if (err) return err;                                                               \
        }                                                                                      \
        return 0;                                                                              \
    }

DEFINE_FIND_EDGES(jaxlab_find_edges_i16, walk_i16, int16_t)
DEFINE_FIND_EDGES(jaxlab_find_edges_i32, walk_i32, int32_t)

/* ---- row packing ---------------------------------------------------------------------------
 *
 * Lines go, in order, into rows of at most row_len - 1 symbols: a line that does not fit in
 * the current (non-empty) row opens the next one. A line longer than the row limit still
 * gets a row to itself, starting at column 0 (the caller sizes rows so this does not occur).
 */
int64_t jaxlab_pack_rows(int64_t b, const int64_t *lengths, int64_t row_len, int64_t *row,
                         int64_t *col) {
    int64_t r = 0, used = 0;
    for (int64_t i = 0; i < b; ++i) {
        int64_t len = lengths[i];
        if (used != 0 && used + len > row_len - 1) {
            ++r;
            used = 0;
        }
        row[i] = r;
        col[i] = used;
        used += len;
    }
    return 0;
}

/* ---- reading the decoded ids back ----------------------------------------------------------
 *
 * dev holds, per cell, the id of the piece that ends there (-1 elsewhere). Walking the cells of
 * each line in order keeps the ids that are >= 0, appends them to ids and counts them per
 * line. ids must have room for n entries; the return value is how many were written.
 */
#define DEFINE_GATHER_ENDS(NAME, DEV_T)                                                        \
    int64_t NAME(const DEV_T *dev, int64_t dev_len, const int64_t *cell, int64_t n,            \
                 const int64_t *lengths, int64_t b, int32_t *ids, int64_t *counts) {           \
        int64_t j = 0, k = 0;                                                                  \
        for (int64_t line = 0; line < b; ++line) {                                             \
            int64_t len = lengths[line];                                                       \
            if (len < 0 || len > n - j) return ERR_LENGTH;                                     \
            int64_t before = k;                                                                \
            for (int64_t stop = j + len; j < stop; ++j) {                                      \
                int64_t c = cell[j];                                                           \
                if (c < 0 || c >= dev_len) return ERR_CELL;                                    \
                DEV_T v = dev[c];                                                              \
                ids[k] = (int32_t)v; /* branch-free: kept only if k advances; k <= j < n */    \
                k += v >= 0;                                                                   \
            }                                                                                  \
            counts[line] = k - before;                                                         \
        }                                                                                      \
        if (j != n) return ERR_LENGTH;                                                         \
        return k;                                                                              \
    }

DEFINE_GATHER_ENDS(jaxlab_gather_ends_i16, int16_t)
DEFINE_GATHER_ENDS(jaxlab_gather_ends_i32, int32_t)

/* ---- the whole device layout in one pass ---------------------------------------------------
 *
 * Lays a batch of normalised lines out in the DP's time-major grid (decoding.py): r rows of c
 * cells, cell (col, row) at flat index col * r + row, lattice ids [c, m, r] with the edge of
 * length k + 1 ending at cell (col, row) at ((col * m) + k) * r + row. Line b occupies columns
 * col0[b] .. col0[b] + lengths[b] - 1 of row row[b] (from pack_rows).
 *
 * cps may be raw text: if prefix >= 0, every non-empty line gets the dense symbol prefix as its
 * first symbol (SentencePiece's dummy prefix) ahead of its lengths[b] - 1 code points, and the
 * caller's char_lut may map U+0020 to the symbol of U+2581 (escaped whitespace), so no
 * normalised copy of the text is made. n counts symbols (with prefixes), n_cps code points.
 *
 * One call handles the rows [row_lo, row_hi) and the lines [line_lo, line_hi), whose symbols
 * start at symbol start and code point start_cp; the lines must be exactly those placed in
 * these rows. Calls for disjoint
 * row ranges touch disjoint memory, so the caller may run them in parallel threads.
 *
 * For its rows it writes every entry of ids (pad_id at k = 0 of cells without a symbol, none_id
 * where no piece ends), starts (1 at every line start and after the last line of every row, 0
 * elsewhere) and, if lines is not NULL, lines / offs (line index plus first_line, and offset
 * within the line, of every symbol; 0 in empty cells); for its lines, cell (the flat cell of
 * every symbol). The lattice walk is find_edges's (the same function). Scratch: sym (int32 [n])
 * receives the dense symbol ids, used (int64 [r]) the number of cells used per row.
 */
#define DEFINE_LAYOUT(NAME, WALK, OUT_T)                                                             \
    int64_t NAME(int64_t n, const uint32_t *cps, int64_t b, const int64_t *lengths,            \
                 const int64_t *row, const int64_t *col0, int64_t c, int64_t r, int64_t m,     \
                 const int32_t *char_lut, int64_t lut_len, const int32_t *child1,              \
                 const int32_t *trans, int64_t a1, int64_t num_nodes, const int32_t *piece_of, \
                 int64_t max_len, int64_t first_missing, int64_t none_id, int64_t pad_id,      \
                 int64_t first_line, OUT_T *ids, uint8_t *starts, int64_t *cell,               \
                 int32_t *lines, int32_t *offs, int32_t *sym, int64_t *used, int64_t row_lo,   \
                 int64_t row_hi, int64_t line_lo, int64_t line_hi, int64_t start,              \
                 int64_t n_cps, int64_t start_cp, int64_t prefix) {                             \
        if (max_len > m) return ERR_OUT;                                                       \
        if (row_lo < 0 || row_hi > r || row_lo > row_hi) return ERR_OUT;                       \
        if (line_lo < 0 || line_hi > b || line_lo > line_hi) return ERR_LENGTH;                \
        if (start < 0 || start_cp < 0 || prefix >= a1) return ERR_LENGTH;                      \
        for (int64_t col = 0; col < c; ++col) {                                                \
            OUT_T *block = ids + col * m * r;                                                  \
            for (int64_t j = row_lo; j < row_hi; ++j) block[j] = (OUT_T)pad_id;                \
            for (int64_t k = 1; k < m; ++k) {                                                  \
                OUT_T *part = block + k * r;                                                   \
                for (int64_t j = row_lo; j < row_hi; ++j) part[j] = (OUT_T)none_id;            \
            }                                                                                  \
            for (int64_t j = row_lo; j < row_hi; ++j) starts[col * r + j] = 0;                 \
            if (lines != NULL) {                                                               \
                for (int64_t j = row_lo; j < row_hi; ++j) lines[col * r + j] = 0;              \
                for (int64_t j = row_lo; j < row_hi; ++j) offs[col * r + j] = 0;               \
            }                                                                                  \
        }                                                                                      \
        for (int64_t j = row_lo; j < row_hi; ++j) used[j] = 0;                                 \
        for (int64_t line = line_lo; line < line_hi; ++line) {                                 \
            int64_t len = lengths[line], rw = row[line], cl = col0[line];                      \
            int64_t lead = (prefix >= 0 && len > 0) ? 1 : 0; /* the dummy prefix symbol */     \
            if (len < 0 || len > n - start || len - lead > n_cps - start_cp) return ERR_LENGTH;  \
            if (rw < row_lo || rw >= row_hi || cl < 0 || cl + len > c - 1) return ERR_OUT;    \
            if (len > 0) starts[cl * r + rw] = 1;                                              \
            if (cl + len > used[rw]) used[rw] = cl + len;                                      \
            for (int64_t j = 0; j < len; ++j) {                                                \
                uint32_t cp = j < lead ? 0 : cps[start_cp + j - lead];                         \
                int32_t s = j < lead ? (int32_t)prefix                                         \
                                     : (cp < (uint64_t)lut_len ? char_lut[cp] : 0);            \
                if (s < 0 || s >= a1) return ERR_SYMBOL;                                       \
                sym[start + j] = s;                                                            \
                int64_t here = (cl + j) * r + rw;                                              \
                cell[start + j] = here;                                                        \
                if (lines != NULL) {                                                           \
                    lines[here] = (int32_t)(first_line + line);                                \
                    offs[here] = (int32_t)j;                                                   \
                }                                                                              \
                int64_t depth = max_len - 1 < j ? max_len - 1 : j;                             \
                int64_t err = WALK(sym + start + j, depth, child1, trans, a1, num_nodes,       \
                                   piece_of, first_missing, none_id, ids, (cl + j) * m * r + rw, \
                                   r, c * m * r);                                              \
                if (err) return err;                                                           \
            }                                                                                  \
            start += len;                                                                      \
            start_cp += len - lead;                                                            \
        }                                                                                      \
        for (int64_t j = row_lo; j < row_hi; ++j) starts[used[j] * r + j] = 1;                \
        return 0;                                                                              \
    }

DEFINE_LAYOUT(jaxlab_layout_i16, walk_i16, int16_t)
DEFINE_LAYOUT(jaxlab_layout_i32, walk_i32, int32_t)
