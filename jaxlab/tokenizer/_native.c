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
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <stdint.h>

#ifndef JAXLAB_SOURCE_HASH
#define JAXLAB_SOURCE_HASH "unknown"
#endif

#define ERR_SYMBOL (-1)
#define ERR_NODE (-2)
#define ERR_OUT (-3)
#define ERR_CELL (-4)
#define ERR_LENGTH (-5)
#define ERR_ITEMSIZE (-6)

/* ---- the arguments -------------------------------------------------------------------------
 *
 * The reversed-piece trie of a model (lattice.LatticeTables). Transitions (node, symbol) ->
 * child come from the dense table trans[node * a1 + symbol] when it exists, else from the
 * open-addressing hash table keyed by node * a1 + symbol (linear probing from the slot
 * (key * golden) >> (64 - hash_bits), at most max_probe probes, an empty slot (key -1) ends
 * the search), which serves large alphabets whose dense table would be too big. 0 = no child.
 */
typedef struct {
    const int32_t *child1;   /* [a1] node of each one-symbol suffix */
    const int32_t *trans;    /* [num_nodes * a1] or NULL */
    const int64_t *keys;     /* [1 << hash_bits] */
    const int32_t *values;   /* [1 << hash_bits] */
    const int32_t *piece_of; /* [num_nodes] piece id ending at the node, or -1 */
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

int64_t jaxlab_struct_size(int64_t which) {
    switch (which) {
        case 0: return (int64_t)sizeof(jaxlab_trie);
        case 1: return (int64_t)sizeof(jaxlab_find_args);
        case 2: return (int64_t)sizeof(jaxlab_layout_args);
        case 3: return (int64_t)sizeof(jaxlab_span);
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

/* ---- the (empty) Python module ---------------------------------------------------------- */

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "_native",
    "Host kernels of jaxlab.tokenizer, called through ctypes by jaxlab.tokenizer.native.",
    0,
    NULL,
};

PyMODINIT_FUNC PyInit__native(void) { return PyModuleDef_Init(&module); }
