/* Host kernels for the unigram tokenizer (jaxlab.tokenizer.native).
 *
 * Built at install time by setup.py as the (optional) extension module jaxlab.tokenizer._native.
 * The module itself is empty: native.py loads the same shared library with ctypes and calls the
 * exported functions below. Their arguments travel in the structs declared here, mirrored field
 * by field by ctypes.Structure classes in native.py; every field is a pointer or an int64_t, so
 * the layout has no padding, and jaxlab_struct_size() lets native.py check that the two sides
 * agree. JAXLAB_SOURCE_HASH (a macro set by setup.py: a hash of this file) lets native.py
 * refuse a stale build of an edited source.
 *
 * Every array arrives as a raw pointer to a C-contiguous buffer whose dtype native.py has
 * already checked; every function checks the indices it is about to follow (symbol ids, trie
 * nodes, output cells, gather cells) and returns a negative error code instead of touching
 * memory outside the buffers it was given.
 *
 * Error codes (native.py turns them into ValueError):
 *   -1  a symbol id outside [0, a1)
 *   -2  a trie node outside [0, num_nodes) (corrupt tables)
 *   -3  an output cell outside [0, out_len)
 *   -4  a gather cell outside [0, dev_len)
 *   -5  a negative line length, or lengths that do not add up to the number of cells
 *   -6  an output item size other than 2 or 4 bytes
 *   -7  (host DP) a line has no segmentation (a character in no piece and no unknown id)
 *   -8  (host DP) out of memory for the scratch arrays
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifndef JAXLAB_SOURCE_HASH
#define JAXLAB_SOURCE_HASH "unknown"
#endif

#define ERR_SYMBOL (-1)
#define ERR_NODE (-2)
#define ERR_OUT (-3)
#define ERR_CELL (-4)
#define ERR_LENGTH (-5)
#define ERR_ITEMSIZE (-6)
#define ERR_UNREACHABLE (-7)
#define ERR_MEMORY (-8)

/* ---- the arguments -------------------------------------------------------------------------
 *
 * The reversed-piece trie of a model (lattice.LatticeTables). Transitions (node, symbol) ->
 * child (0 = no child) come from, in this order of preference:
 *
 *  1. the dense table trans[node * a1 + symbol], when the whole table is small (<= 2^24
 *     entries: small alphabets);
 *  2. the two-level table (large alphabets): node_info[3 * node ..] = (first, count, piece);
 *     count = -1 selects the dense row rows[first * a1 + symbol] (the busiest nodes, as many
 *     as fit in the budget); else the node's children are the count (symbol, child) pairs at
 *     sp_pairs[2 * first ..], sorted by symbol (binary search). The three numbers of a node
 *     share a cache line, so a step of the walk touches two lines;
 *  3. the open-addressing hash table keyed by node * a1 + symbol (linear probing from the slot
 *     (key * golden) >> (64 - hash_bits), at most max_probe probes, an empty slot (key -1) ends
 *     the search): the NumPy path's table, kept for tests that force collisions.
 *
 * native.py checks the two-level arrays (dense rows inside rows, sparse runs inside sp_pairs)
 * once per table, so the lookups below only index inside them.
 */
typedef struct {
    const int32_t *child1;   /* [a1] node of each one-symbol suffix */
    const int32_t *trans;    /* [num_nodes * a1] or NULL */
    const int64_t *keys;     /* [1 << hash_bits] */
    const int32_t *values;   /* [1 << hash_bits] */
    const int32_t *piece_of; /* [num_nodes] piece id ending at the node, or -1 */
    const int32_t *node_info; /* [num_nodes * 3] or NULL (no two-level table) */
    const int32_t *rows;      /* [num_rows * a1] */
    const int32_t *sp_pairs;  /* [num_pairs * 2] */
    int64_t a1, num_nodes, hash_bits, max_probe;
    int64_t max_len;       /* longest piece, in symbols */
    int64_t first_missing; /* written at k = 0 for a symbol that is no single-symbol piece */
    int64_t none_id;       /* written where a window is a piece suffix but no piece */
    int64_t pad_id;        /* written at k = 0 of cells without a symbol (layout) */
} jaxlab_trie;

/* find_edges: the edge of length k + 1 ending at symbol i goes to out[base[i] + k * kstride]. */
typedef struct {
    const int32_t *symbols; /* [n] dense symbol ids of all lines, concatenated */
    const int32_t *offsets; /* [n] position of each symbol within its line */
    const int64_t *base;    /* [n] */
    void *out;              /* [out_len] int16 or int32 */
    int64_t n, kstride, out_len, out_itemsize;
} jaxlab_find_args;

/* layout: see jaxlab_layout below. */
typedef struct {
    const uint32_t *cps;    /* [n_cps] code points */
    const int64_t *lengths; /* [b] symbols per line (with any prefix) */
    const int64_t *row;     /* [b] */
    const int64_t *col0;    /* [b] */
    const int32_t *char_lut; /* [lut_len] code point -> dense symbol */
    void *ids;              /* [c, m, r] int16 or int32 */
    uint8_t *starts;        /* [c, r] */
    int64_t *cell;          /* [n] */
    int32_t *lines;         /* [c, r] or NULL */
    int32_t *offs;          /* [c, r] or NULL */
    int32_t *sym;           /* scratch [n] */
    int64_t *used;          /* scratch [r] */
    int64_t n, n_cps, b, c, r, m, lut_len, prefix, first_line, ids_itemsize;
} jaxlab_layout_args;

/* The part of a layout one call handles (two calls for disjoint rows may run in parallel). */
typedef struct {
    int64_t row_lo, row_hi, line_lo, line_hi, start, start_cp;
} jaxlab_span;

/* host_dp: see jaxlab_host_dp below. */
typedef struct {
    const uint32_t *cps;      /* [n_cps] code points (normalised, or raw with prefix/space_cp) */
    const int64_t *lengths;   /* [b] symbols per line (with any prefix) */
    const int32_t *char_lut;  /* [lut_len] code point -> dense symbol */
    const float *scores;      /* [n_scores] float32 score per piece id (lattice.edge_scores) */
    const int32_t *byte_ids;  /* [256] byte piece ids (unk_mode 2) */
    int32_t *ids;             /* [cap * n] output ids (span at cap * start) */
    int64_t *counts;          /* [b] ids per line */
    int64_t n, n_cps, b, lut_len, n_scores;
    int64_t prefix;     /* dense symbol put before every non-empty line, or -1 */
    int64_t prefix_cp;  /* code point of that symbol (for byte fallback) */
    int64_t space_cp;   /* raw U+0020 stands for this code point (escaped whitespace), or -1 */
    int64_t unk_id;     /* -1: none */
    int64_t unk_mode;   /* 0: keep unknown ids, 1: merge runs of them, 2: UTF-8 byte pieces */
    int64_t cap;        /* output slots per symbol: 1, or 4 with byte fallback */
    int64_t sample;     /* 0: Viterbi, 1: FFBS sample */
    int64_t key0, key1; /* the two Threefry key words (jax.random.bits(key, (2,), uint32)) */
    int64_t first_line; /* global index of line 0 (the sampler's counter) */
} jaxlab_dp_args;

int64_t jaxlab_struct_size(int64_t which) {
    switch (which) {
        case 0: return (int64_t)sizeof(jaxlab_trie);
        case 1: return (int64_t)sizeof(jaxlab_find_args);
        case 2: return (int64_t)sizeof(jaxlab_layout_args);
        case 3: return (int64_t)sizeof(jaxlab_span);
        case 4: return (int64_t)sizeof(jaxlab_dp_args);
        default: return -1;
    }
}

const char *jaxlab_source_hash(void) { return JAXLAB_SOURCE_HASH; }

/* ---- lattice edges -------------------------------------------------------------------------
 *
 * The trie holds every piece spelled backwards, so the pieces that end at symbol i are found
 * by starting at the node of symbols[i] and stepping left one symbol at a time. The walk for i
 * stops at the first missing transition, at the start of i's line, or after max_len symbols;
 * its cost is the number of piece suffixes that actually occur, exactly like the
 * level-by-level NumPy search, but without materialising one array per level.
 *
 * Level 1 always writes a cell: the single-symbol piece, or first_missing if there is none.
 * Level k > 1 writes cell + (k - 1) * kstride when the k-symbol window is a suffix of some
 * piece: the piece id if the window is a whole piece, none_id otherwise. Cells that are never
 * reached keep whatever the caller filled them with.
 */
static inline int64_t child(const jaxlab_trie *t, int64_t node, int32_t symbol) {
    int64_t key = node * t->a1 + symbol;
    if (t->trans != NULL) return t->trans[key];
    if (t->node_info != NULL) {
        const int32_t *info = t->node_info + 3 * node;
        int32_t count = info[1];
        if (count < 0) return t->rows[(int64_t)info[0] * t->a1 + symbol];
        const int32_t *pairs = t->sp_pairs + 2 * (int64_t)info[0];
        int32_t lo = 0, hi = count;
        while (hi - lo > 8) { /* binary search down to a short run, then a linear scan */
            int32_t mid = lo + (hi - lo) / 2;
            if (pairs[2 * mid] <= symbol) lo = mid; else hi = mid;
        }
        for (; lo < hi; ++lo)
            if (pairs[2 * lo] == symbol) return pairs[2 * lo + 1];
        return 0;
    }
    uint64_t mask = ((uint64_t)1 << t->hash_bits) - 1;
    uint64_t slot = ((uint64_t)key * UINT64_C(0x9E3779B97F4A7C15)) >> (64 - t->hash_bits);
    for (int64_t probe = 0; probe < t->max_probe; ++probe) {
        uint64_t j = (slot + (uint64_t)probe) & mask;
        int64_t stored = t->keys[j];
        if (stored == key) return t->values[j];
        if (stored < 0) return 0;
    }
    return 0;
}

/* last points at the symbol whose edges are searched; last[-1], ..., last[-depth] are the
 * symbols before it that a piece may span. */
#define DEFINE_WALK(NAME, OUT_T)                                                               \
    static inline int64_t NAME(const jaxlab_trie *t, const int32_t *last, int64_t depth,       \
                               OUT_T *out, int64_t cell, int64_t kstride, int64_t out_len) {   \
        int32_t s = last[0];                                                                   \
        if (s < 0 || s >= t->a1) return ERR_SYMBOL;                                            \
        if (cell < 0 || cell >= out_len) return ERR_OUT;                                       \
        int64_t node = t->child1[s];                                                           \
        if (node < 0 || node >= t->num_nodes) return ERR_NODE;                                 \
        int32_t p = t->piece_of[node];                                                         \
        out[cell] = (OUT_T)(p >= 0 ? (int64_t)p : t->first_missing);                           \
        for (int64_t k = 1; node != 0 && k <= depth; ++k) {                                    \
            int32_t sym = last[-k];                                                            \
            if (sym < 0 || sym >= t->a1) return ERR_SYMBOL;                                    \
            node = child(t, node, sym);                                                        \
            if (node == 0) break;                                                              \
            if (node < 0 || node >= t->num_nodes) return ERR_NODE;                             \
            cell += kstride;                                                                   \
            if (cell < 0 || cell >= out_len) return ERR_OUT;                                   \
            p = t->piece_of[node];                                                             \
            out[cell] = (OUT_T)(p >= 0 ? (int64_t)p : t->none_id);                             \
        }                                                                                      \
        return 0;                                                                              \
    }

DEFINE_WALK(walk_i16, int16_t)
DEFINE_WALK(walk_i32, int32_t)

#define DEFINE_FIND_EDGES(NAME, WALK, OUT_T)                                                   \
    static int64_t NAME(const jaxlab_trie *t, const jaxlab_find_args *a) {                     \
        OUT_T *out = (OUT_T *)a->out;                                                          \
        for (int64_t i = 0; i < a->n; ++i) {                                                   \
            /* Furthest we may look back: the line start (and, defensively, the array start). */ \
            int64_t reach = a->offsets[i] < i ? (int64_t)a->offsets[i] : i;                    \
            int64_t depth = t->max_len - 1 < reach ? t->max_len - 1 : reach;                   \
            int64_t err = WALK(t, a->symbols + i, depth, out, a->base[i], a->kstride,          \
                               a->out_len);                                                    \
            if (err) return err;                                                               \
        }                                                                                      \
        return 0;                                                                              \
    }

DEFINE_FIND_EDGES(find_edges_i16, walk_i16, int16_t)
DEFINE_FIND_EDGES(find_edges_i32, walk_i32, int32_t)

int64_t jaxlab_find_edges(const jaxlab_trie *t, const jaxlab_find_args *a) {
    if (a->out_itemsize == 2) return find_edges_i16(t, a);
    if (a->out_itemsize == 4) return find_edges_i32(t, a);
    return ERR_ITEMSIZE;
}

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
    static int64_t NAME(const DEV_T *dev, int64_t dev_len, const int64_t *cell, int64_t n,     \
                        const int64_t *lengths, int64_t b, int32_t *ids, int64_t *counts) {    \
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

DEFINE_GATHER_ENDS(gather_ends_i16, int16_t)
DEFINE_GATHER_ENDS(gather_ends_i32, int32_t)

int64_t jaxlab_gather_ends(const void *dev, int64_t dev_itemsize, int64_t dev_len,
                           const int64_t *cell, int64_t n, const int64_t *lengths, int64_t b,
                           int32_t *ids, int64_t *counts) {
    if (dev_itemsize == 2) return gather_ends_i16(dev, dev_len, cell, n, lengths, b, ids, counts);
    if (dev_itemsize == 4) return gather_ends_i32(dev, dev_len, cell, n, lengths, b, ids, counts);
    return ERR_ITEMSIZE;
}

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
 * these rows. Calls for disjoint row ranges touch disjoint memory, so the caller may run them
 * in parallel threads.
 *
 * For its rows it writes every entry of ids (pad_id at k = 0 of cells without a symbol, none_id
 * where no piece ends), starts (1 at every line start and after the last line of every row, 0
 * elsewhere) and, if lines is not NULL, lines / offs (line index plus first_line, and offset
 * within the line, of every symbol; 0 in empty cells); for its lines, cell (the flat cell of
 * every symbol). The lattice walk is find_edges's (the same function). Scratch: sym receives
 * the dense symbol ids, used the number of cells used per row.
 */
#define DEFINE_LAYOUT(NAME, WALK, OUT_T)                                                       \
    static int64_t NAME(const jaxlab_trie *t, const jaxlab_layout_args *a,                     \
                        const jaxlab_span *s) {                                                \
        const int64_t c = a->c, r = a->r, m = a->m, prefix = a->prefix;                        \
        OUT_T *ids = (OUT_T *)a->ids;                                                          \
        int64_t start = s->start, start_cp = s->start_cp;                                      \
        if (t->max_len > m) return ERR_OUT;                                                    \
        if (s->row_lo < 0 || s->row_hi > r || s->row_lo > s->row_hi) return ERR_OUT;           \
        if (s->line_lo < 0 || s->line_hi > a->b || s->line_lo > s->line_hi) return ERR_LENGTH; \
        if (start < 0 || start_cp < 0 || prefix >= t->a1) return ERR_LENGTH;                   \
        for (int64_t col = 0; col < c; ++col) {                                                \
            OUT_T *block = ids + col * m * r;                                                  \
            for (int64_t j = s->row_lo; j < s->row_hi; ++j) block[j] = (OUT_T)t->pad_id;       \
            for (int64_t k = 1; k < m; ++k) {                                                  \
                OUT_T *part = block + k * r;                                                   \
                for (int64_t j = s->row_lo; j < s->row_hi; ++j) part[j] = (OUT_T)t->none_id;   \
            }                                                                                  \
            for (int64_t j = s->row_lo; j < s->row_hi; ++j) a->starts[col * r + j] = 0;        \
            if (a->lines != NULL) {                                                            \
                for (int64_t j = s->row_lo; j < s->row_hi; ++j) a->lines[col * r + j] = 0;     \
                for (int64_t j = s->row_lo; j < s->row_hi; ++j) a->offs[col * r + j] = 0;      \
            }                                                                                  \
        }                                                                                      \
        for (int64_t j = s->row_lo; j < s->row_hi; ++j) a->used[j] = 0;                        \
        for (int64_t line = s->line_lo; line < s->line_hi; ++line) {                           \
            int64_t len = a->lengths[line], rw = a->row[line], cl = a->col0[line];             \
            int64_t lead = (prefix >= 0 && len > 0) ? 1 : 0; /* the dummy prefix symbol */     \
            if (len < 0 || len > a->n - start || len - lead > a->n_cps - start_cp)             \
                return ERR_LENGTH;                                                             \
            if (rw < s->row_lo || rw >= s->row_hi || cl < 0 || cl + len > c - 1) return ERR_OUT; \
            if (len > 0) a->starts[cl * r + rw] = 1;                                           \
            if (cl + len > a->used[rw]) a->used[rw] = cl + len;                                \
            for (int64_t j = 0; j < len; ++j) {                                                \
                uint32_t cp = j < lead ? 0 : a->cps[start_cp + j - lead];                      \
                int32_t sy = j < lead ? (int32_t)prefix                                        \
                                      : (cp < (uint64_t)a->lut_len ? a->char_lut[cp] : 0);     \
                if (sy < 0 || sy >= t->a1) return ERR_SYMBOL;                                  \
                a->sym[start + j] = sy;                                                        \
                int64_t here = (cl + j) * r + rw;                                              \
                a->cell[start + j] = here;                                                     \
                if (a->lines != NULL) {                                                        \
                    a->lines[here] = (int32_t)(a->first_line + line);                          \
                    a->offs[here] = (int32_t)j;                                                \
                }                                                                              \
                int64_t depth = t->max_len - 1 < j ? t->max_len - 1 : j;                       \
                int64_t err = WALK(t, a->sym + start + j, depth, ids, (cl + j) * m * r + rw,   \
                                   r, c * m * r);                                              \
                if (err) return err;                                                           \
            }                                                                                  \
            start += len;                                                                      \
            start_cp += len - lead;                                                            \
        }                                                                                      \
        for (int64_t j = s->row_lo; j < s->row_hi; ++j) a->starts[a->used[j] * r + j] = 1;    \
        return 0;                                                                              \
    }

DEFINE_LAYOUT(layout_i16, walk_i16, int16_t)
DEFINE_LAYOUT(layout_i32, walk_i32, int32_t)

int64_t jaxlab_layout(const jaxlab_trie *t, const jaxlab_layout_args *a, const jaxlab_span *s) {
    if (a->ids_itemsize == 2) return layout_i16(t, a, s);
    if (a->ids_itemsize == 4) return layout_i32(t, a, s);
    return ERR_ITEMSIZE;
}

/* ---- the whole DP on the host -------------------------------------------------------------
 *
 * jaxlab_host_dp encodes lines [line_lo, line_hi) of a batch, one line at a time, directly over
 * the trie: for each symbol i (end node e = i + 1) the walk of find_edges enumerates the
 * pieces ending at i, longest last, and the DP pulls from their start nodes j = i - k.
 *
 * Viterbi reproduces decoding.viterbi (hence SentencePiece) operation for operation in
 * float32: the candidate of start j is fl(fl(V(j) + s) - shift(j)), where shift(j) is the
 * float32 sum, in order, of the re-basing constants met at nodes j+1 .. e-1; the maximum wins,
 * ties to the longest piece (the largest k); a finalised value v with |v| > REBASE is re-based
 * (c = v is subtracted: V(e) = v - c = 0, and c is added to the shift of every start still in
 * the window). Only the back-pointer k of every symbol is kept (uint16); the piece id is found
 * again by walking k steps during backtracking.
 *
 * FFBS reproduces decoding.sample(method="ffbs"): forward log Z in float32,
 * Z(e) = m + log(sum_k exp(u_k - m)), u_k = Z(j) + alpha s (an edge of score -inf stays -inf),
 * m = max_k u_k; then from the line's end, the piece ending at symbol i is drawn by inverse CDF
 * with cum_k = sum_{k' <= k} exp(u_k' - Z(e)), k = #{k : cum_k < (1 - u) cum_last}, u the
 * uniform of (key, line, offset i) from the same counter-based Threefry-2x32 as
 * decoding.uniforms. The law is the exact P(w) ~ exp(alpha s(w)); draws equal the JAX path's
 * unless libm's and XLA's exp/log round a boundary case differently.
 *
 * Unknown pieces (unk_id) then become UTF-8 byte pieces or merge into runs, as
 * model.merge_unknown does. Ids of line l go to ids[cap * start + ...] in order; counts[l]
 * receives their number; the return value is the number written for the span.
 *
 * Scratch: 16 bytes per symbol of the longest line (sym, V or Z, k, and the path's ids and
 * lengths), allocated per call.
 */
#define REBASE 1e5f

static inline uint32_t rotl32(uint32_t x, int r) { return (x << r) | (x >> (32 - r)); }

/* Threefry-2x32, 20 rounds (Salmon et al. 2011), the first output word. */
static uint32_t threefry_first(uint32_t k0, uint32_t k1, uint32_t x0, uint32_t x1) {
    static const int rot[2][4] = {{13, 15, 26, 6}, {17, 29, 16, 24}};
    uint32_t ks[3] = {k0, k1, k0 ^ k1 ^ 0x1BD11BDAu};
    x0 += ks[0];
    x1 += ks[1];
    for (int block = 0; block < 5; ++block) {
        const int *r = rot[block & 1];
        for (int i = 0; i < 4; ++i) {
            x0 += x1;
            x1 = rotl32(x1, r[i]);
            x1 ^= x0;
        }
        x0 += ks[(block + 1) % 3];
        x1 += ks[(block + 2) % 3] + (uint32_t)(block + 1);
    }
    return x0;
}

/* decoding.uniforms with num = 1: a uniform in [0, 1) from (key, line, offset). */
static inline float uniform01(uint32_t k0, uint32_t k1, uint32_t line, uint32_t offset) {
    uint32_t bits = (threefry_first(k0, k1, line, offset) >> 9) | 0x3F800000u;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f - 1.0f;
}

float jaxlab_uniform(int64_t k0, int64_t k1, int64_t line, int64_t offset) {
    return uniform01((uint32_t)k0, (uint32_t)k1, (uint32_t)line, (uint32_t)offset);
}

/* The pieces ending at sym[i] of a line: ids[k] for k = 0 .. (return value - 1), the
 * piece spelling sym[i-k .. i], or -1 where that window is a piece suffix but no piece. */
static inline int64_t edges_at(const jaxlab_trie *t, const int32_t *sym, int64_t i,
                               int32_t *ids) {
    int64_t node = t->child1[sym[i]];
    if (node < 0 || node >= t->num_nodes) return ERR_NODE;
    /* with the two-level table, the piece sits next to the node's children (one cache line) */
    int32_t p = t->node_info != NULL ? t->node_info[3 * node + 2] : t->piece_of[node];
    ids[0] = p >= 0 ? p : (int32_t)t->first_missing;
    int64_t depth = t->max_len - 1 < i ? t->max_len - 1 : i, n = 1;
    for (int64_t k = 1; node != 0 && k <= depth; ++k) {
        node = child(t, node, sym[i - k]);
        if (node == 0) break;
        if (node < 0 || node >= t->num_nodes) return ERR_NODE;
        ids[n++] = t->node_info != NULL ? t->node_info[3 * node + 2] : t->piece_of[node];
    }
    return n;
}

static inline float score_of(const jaxlab_dp_args *a, int32_t id) {
    return (id >= 0 && id < a->n_scores) ? a->scores[id] : -INFINITY;
}

/* Appends id (ending at code point cp) to out with the unknown handling; returns the count. */
static inline int64_t emit(const jaxlab_dp_args *a, int32_t *out, int64_t n, int32_t id,
                           uint32_t cp) {
    if (id != a->unk_id || a->unk_mode == 0) {
        out[n] = id;
        return n + 1;
    }
    if (a->unk_mode == 1) {
        if (n == 0 || out[n - 1] != id) out[n++] = id;
        return n;
    }
    uint8_t b[4];
    int nb;
    if (cp < 0x80) { b[0] = (uint8_t)cp; nb = 1; }
    else if (cp < 0x800) { b[0] = 0xC0 | (cp >> 6); b[1] = 0x80 | (cp & 0x3F); nb = 2; }
    else if (cp < 0x10000) {
        b[0] = 0xE0 | (cp >> 12); b[1] = 0x80 | ((cp >> 6) & 0x3F); b[2] = 0x80 | (cp & 0x3F);
        nb = 3;
    } else {
        b[0] = 0xF0 | ((cp >> 18) & 0x07); b[1] = 0x80 | ((cp >> 12) & 0x3F);
        b[2] = 0x80 | ((cp >> 6) & 0x3F); b[3] = 0x80 | (cp & 0x3F); nb = 4;
    }
    for (int q = 0; q < nb; ++q) out[n++] = a->byte_ids[b[q]];
    return n;
}

int64_t jaxlab_host_dp(const jaxlab_trie *t, const jaxlab_dp_args *a, const jaxlab_span *s,
                       double alpha_d) {
    const float alpha = (float)alpha_d;
    const int64_t width = t->max_len;
    if (width < 1 || width > 65535) return ERR_LENGTH;
    if (a->cap < 1 || (a->unk_mode == 2 && a->cap < 4)) return ERR_LENGTH;
    if (s->line_lo < 0 || s->line_hi > a->b || s->line_lo > s->line_hi) return ERR_LENGTH;
    if (s->start < 0 || s->start_cp < 0 || a->prefix >= t->a1) return ERR_LENGTH;
    int64_t longest = 0, start = s->start, start_cp = s->start_cp;
    for (int64_t line = s->line_lo; line < s->line_hi; ++line)
        if (a->lengths[line] > longest) longest = a->lengths[line];
    int32_t *sym = malloc(sizeof(int32_t) * (size_t)(longest + 1));
    float *val = malloc(sizeof(float) * (size_t)(longest + 1));
    uint16_t *back = a->sample ? NULL : malloc(sizeof(uint16_t) * (size_t)(longest + 1));
    int32_t *pid = malloc(sizeof(int32_t) * (size_t)(longest + 1));
    uint16_t *plen = malloc(sizeof(uint16_t) * (size_t)(longest + 1));
    int32_t *eids = malloc(sizeof(int32_t) * (size_t)width);
    float *cum = malloc(sizeof(float) * (size_t)width);
    int64_t ring = 1;
    while (ring < width + 1) ring <<= 1;
    float *shift = calloc((size_t)ring, sizeof(float));
    int64_t err = 0, written = 0;
    if (!sym || !val || (!a->sample && !back) || !pid || !plen || !eids || !cum || !shift) {
        err = ERR_MEMORY;
        goto done;
    }
    const uint32_t k0 = (uint32_t)a->key0, k1 = (uint32_t)a->key1;
    int32_t *out = a->ids + a->cap * start;
    for (int64_t line = s->line_lo; line < s->line_hi; ++line) {
        const int64_t len = a->lengths[line];
        const int64_t lead = (a->prefix >= 0 && len > 0) ? 1 : 0;
        if (len < 0 || len > a->n - start || len - lead > a->n_cps - start_cp) {
            err = ERR_LENGTH;
            goto done;
        }
        const uint32_t *cp = a->cps + start_cp - lead; /* cp[j] for j >= lead */
        for (int64_t j = 0; j < len; ++j) {
            int32_t sy = j < lead ? (int32_t)a->prefix
                                  : (cp[j] < (uint64_t)a->lut_len ? a->char_lut[cp[j]] : 0);
            if (sy < 0 || sy >= t->a1) { err = ERR_SYMBOL; goto done; }
            sym[j] = sy;
        }
        /* forward */
        val[0] = 0.0f;
        memset(shift, 0, sizeof(float) * (size_t)ring);
        for (int64_t i = 0; i < len; ++i) {
            int64_t ne = edges_at(t, sym, i, eids);
            if (ne < 0) { err = ne; goto done; }
            float v = -INFINITY;
            if (!a->sample) {
                int64_t best = 0;
                for (int64_t k = 0; k < ne; ++k) {
                    float sc = score_of(a, eids[k]);
                    if (sc == -INFINITY) continue;
                    int64_t j = i - k;
                    float cand = (val[j] + sc) - shift[j & (ring - 1)];
                    if (cand >= v) { v = cand; best = k; } /* ties: the longer piece */
                }
                if (v == -INFINITY) { err = ERR_UNREACHABLE; goto done; }
                back[i] = (uint16_t)best;
                float c = fabsf(v) > REBASE ? v : 0.0f;
                shift[(i + 1) & (ring - 1)] = 0.0f;
                if (c != 0.0f) /* every start still in the window moves to the new frame */
                    for (int64_t k = 0; k < width && k <= i; ++k) shift[(i - k) & (ring - 1)] += c;
                val[i + 1] = v - c;
            } else {
                float m = -INFINITY;
                int64_t finite = 0;
                for (int64_t k = 0; k < ne; ++k) {
                    float sc = score_of(a, eids[k]);
                    float u = sc == -INFINITY ? -INFINITY : val[i - k] + alpha * sc;
                    cum[k] = u;
                    finite += u != -INFINITY;
                    if (u > m) m = u;
                }
                if (finite <= 1) {
                    v = m; /* one edge: m + log(exp(0) + 0 + ...) is m exactly */
                } else {
                    float total = 0.0f;
                    for (int64_t k = 0; k < ne; ++k) /* exp(-inf) adds 0: skipped */
                        if (cum[k] != -INFINITY) total += expf(cum[k] - m);
                    v = m + logf(total);
                }
                val[i + 1] = v;
            }
        }
        /* backward: the pieces from the line's end, right to left, into pid / plen */
        int64_t e = len, n = 0;
        while (e > 0) {
            int64_t i = e - 1, k;
            int64_t ne = edges_at(t, sym, i, eids);
            if (ne < 0) { err = ne; goto done; }
            if (!a->sample) {
                k = back[i];
            } else {
                float z = val[e];
                if (z == -INFINITY) { err = ERR_UNREACHABLE; goto done; }
                int64_t finite = 0, only = 0;
                for (int64_t q = 0; q < ne; ++q) {
                    float sc = score_of(a, eids[q]);
                    cum[q] = sc == -INFINITY ? -INFINITY : val[i - q] + alpha * sc;
                    if (cum[q] != -INFINITY) { ++finite; only = q; }
                }
                if (finite == 1) { /* cum = [0, .., 0, p, .., p] with p >= (1 - u) p > 0 */
                    k = only;
                    goto chosen;
                }
                float acc = 0.0f;
                for (int64_t q = 0; q < ne; ++q) {
                    if (cum[q] != -INFINITY) acc += expf(cum[q] - z);
                    cum[q] = acc;
                }
                float r = uniform01(k0, k1, (uint32_t)(a->first_line + line), (uint32_t)i);
                float thr = (1.0f - r) * acc; /* the entries beyond ne add 0 to cum */
                k = 0;
                for (int64_t q = 0; q < ne; ++q) k += cum[q] < thr;
            }
        chosen:
            if (k >= ne) { err = ERR_UNREACHABLE; goto done; }
            pid[n] = eids[k];
            plen[n++] = (uint16_t)(k + 1);
            e = i - k;
        }
        /* in text order, with the unknown handling (a piece of cap ids at most per symbol) */
        int32_t *line_out = out + written;
        int64_t pos = 0, m = 0;
        for (int64_t p = n - 1; p >= 0; --p) {
            int64_t last = pos + plen[p] - 1;
            uint32_t c = 0;
            if (pid[p] == a->unk_id && a->unk_mode == 2) {
                c = last < lead ? (uint32_t)a->prefix_cp : cp[last];
                if (last >= lead && a->space_cp >= 0 && c == 32) c = (uint32_t)a->space_cp;
            }
            m = emit(a, line_out, m, pid[p], c);
            pos = last + 1;
        }
        n = m;
        a->counts[line] = n;
        written += n;
        start += len;
        start_cp += len - lead;
    }
    err = written;
done:
    free(sym);
    free(val);
    free(back);
    free(pid);
    free(plen);
    free(eids);
    free(cum);
    free(shift);
    return err;
}

/* ---- the Python module: the id lists ---------------------------------------------------
 *
 * id_lists(ids, counts, line_lo, line_hi, ints): the Python lists [ids[o_l : o_l + counts[l]]
 * for l in [line_lo, line_hi)] with o_l the running sum of counts from line_lo, built directly
 * (no intermediate NumPy .tolist() and slicing). ints is a tuple holding the int objects 0 ..
 * len(ints) - 1 (one per piece id, made once per tokenizer): an id below len(ints) shares its
 * object instead of allocating a new int (most ids exceed CPython's small-int cache). ids and counts are the addresses of int32 /
 * int64 buffers that native.py owns and has checked (the counts of the lines sum to at most
 * the length of ids).
 */
static PyObject *id_lists(PyObject *self, PyObject *args) {
    unsigned long long ids_addr, counts_addr;
    Py_ssize_t lo, hi;
    PyObject *ints;
    (void)self;
    if (!PyArg_ParseTuple(args, "KKnnO!", &ids_addr, &counts_addr, &lo, &hi, &PyTuple_Type, &ints))
        return NULL;
    const Py_ssize_t n_ints = PyTuple_GET_SIZE(ints);
    const int32_t *ids = (const int32_t *)(uintptr_t)ids_addr;
    const int64_t *counts = (const int64_t *)(uintptr_t)counts_addr;
    if (lo < 0 || hi < lo) {
        PyErr_SetString(PyExc_ValueError, "id_lists: need 0 <= line_lo <= line_hi");
        return NULL;
    }
    PyObject *out = PyList_New(hi - lo);
    if (out == NULL) return NULL;
    for (Py_ssize_t line = lo; line < hi; ++line) {
        Py_ssize_t n = (Py_ssize_t)counts[line];
        PyObject *lst = PyList_New(n);
        if (lst == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        for (Py_ssize_t j = 0; j < n; ++j) {
            int32_t id = ids[j];
            PyObject *v;
            if (id >= 0 && id < n_ints) {
                v = PyTuple_GET_ITEM(ints, id);
                Py_INCREF(v);
            } else {
                v = PyLong_FromLong((long)id);
            }
            if (v == NULL) {
                Py_DECREF(lst);
                Py_DECREF(out);
                return NULL;
            }
            PyList_SET_ITEM(lst, j, v);
        }
        PyList_SET_ITEM(out, line - lo, lst);
        ids += n;
    }
    return out;
}

static PyMethodDef methods[] = {
    {"id_lists", id_lists, METH_VARARGS, "Python id lists from the host DP's output buffers."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "_native",
    "Host kernels of jaxlab.tokenizer (called through ctypes by jaxlab.tokenizer.native) and "
    "id_lists, which builds the encoders' Python lists.",
    0,
    methods,
};

PyMODINIT_FUNC PyInit__native(void) { return PyModuleDef_Init(&module); }
