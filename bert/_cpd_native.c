/* Fast path of bert/create_pretraining_data.py: the instance/masking loop, the final
 * shuffle and the TFRecord writing, in C, record-identical to the reference path.
 *
 * Faithfulness rests on reproducing every draw of Python's random.Random (the reference
 * path's generator): the MT19937 generator below is CPython's
 * (Modules/_randommodule.c), started from rng.getstate(); random(), _randbelow(),
 * randint() and shuffle() are re-implemented draw for draw.
 *
 * Documents arrive as flat token ids (uint16 when the vocab allows, else int32; see
 * FlatDocuments). Instances are kept as references into that document store plus their
 * masking decisions, shuffled as an index permutation, and materialised one at a time
 * while they are serialised as tf.train.Example + TFRecord framing (masked CRC32C).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "TFRecord framing and float bytes below assume a little-endian host"
#endif

/* ------------------------------------------------------------------ MT19937 (CPython) */
#define MT_N 624
#define MT_M 397
typedef struct { uint32_t mt[MT_N]; int index; } MT;

static uint32_t mt_next(MT *s) {
    static const uint32_t mag01[2] = {0x0U, 0x9908b0dfU};
    uint32_t y, *mt = s->mt;
    if (s->index >= MT_N) {
        int kk;
        for (kk = 0; kk < MT_N - MT_M; kk++) {
            y = (mt[kk] & 0x80000000U) | (mt[kk + 1] & 0x7fffffffU);
            mt[kk] = mt[kk + MT_M] ^ (y >> 1) ^ mag01[y & 0x1U];
        }
        for (; kk < MT_N - 1; kk++) {
            y = (mt[kk] & 0x80000000U) | (mt[kk + 1] & 0x7fffffffU);
            mt[kk] = mt[kk + (MT_M - MT_N)] ^ (y >> 1) ^ mag01[y & 0x1U];
        }
        y = (mt[MT_N - 1] & 0x80000000U) | (mt[0] & 0x7fffffffU);
        mt[MT_N - 1] = mt[MT_M - 1] ^ (y >> 1) ^ mag01[y & 0x1U];
        s->index = 0;
    }
    y = mt[s->index++];
    y ^= (y >> 11);
    y ^= (y << 7) & 0x9d2c5680U;
    y ^= (y << 15) & 0xefc60000U;
    y ^= (y >> 18);
    return y;
}

/* FAITHFUL: random.random() exactly as CPython: 53 bits from two 32-bit outputs. */
static double mt_random(MT *s) {
    uint32_t a = mt_next(s) >> 5, b = mt_next(s) >> 6;
    return (a * 67108864.0 + b) * (1.0 / 9007199254740992.0);
}

/* random._randbelow(n), 1 <= n < 2**32: getrandbits(n.bit_length()) until below n.
 * Note n == 1 still consumes draws (k = 1), exactly like Python. */
static uint32_t mt_below(MT *s, uint64_t n) {
    int k = 64 - __builtin_clzll(n);
    uint32_t r;
    do { r = mt_next(s) >> (32 - k); } while (r >= n);
    return r;
}

/* random.randint(a, b) */
static int64_t mt_randint(MT *s, int64_t a, int64_t b) { return a + mt_below(s, (uint64_t)(b - a + 1)); }

/* ------------------------------------------------------------------ growable buffers */
typedef struct { char *p; size_t n, cap; } Buf;

static int buf_reserve(Buf *b, size_t extra) {
    if (b->n + extra <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 1 << 16;
    while (cap < b->n + extra) cap += cap / 2 + 1;
    char *p = realloc(b->p, cap);
    if (!p) return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

/* ------------------------------------------------------------------ instances */
/* An instance is kept as references into the document store plus its masking
 * decisions, and materialised only when written: [CLS] tokens[a0, a0+la) [SEP]
 * tokens[b0, b0+lb) [SEP], then at each masked position pos[k] the output id rep[k]
 * (the label is the original token there). This is what bounds memory: ~32 bytes +
 * 3 bytes per prediction per instance, instead of every token of every instance. */
typedef struct {
    int64_t a0, b0;    /* token offsets into the document store */
    int64_t pred_off;  /* byte offset into preds: npred positions (pos_w bytes each),
                          then npred output ids (tok_w bytes each) */
    uint16_t la, lb, npred;
    uint8_t is_random_next;
} Inst;

typedef struct {
    /* inputs */
    const void *tokens; int tok_w;  /* uint16 (tok_w 2) or int32 (tok_w 4) token ids */
    const int64_t *seg_start, *doc_start, *order;
    int64_t ndocs;
    /* FAITHFUL: ids of vocab_words, the first-occurrence word list random replacement draws from */
    const int32_t *vocab_word_ids; int64_t nvocab_words;
    const uint8_t *is_subword; int64_t nsubword;
    int32_t cls_id, sep_id, mask_id;
    int max_seq_length, max_pred, do_wwm, pos_w;
    double short_seq_prob, masked_lm_prob;
    MT rng;
    /* outputs */
    Buf insts, preds;
    /* scratch */
    int32_t *t, *cand_pos, *cand_start, *cand_order; uint8_t *covered; int32_t *mpos, *mlab;
} Ctx;

static int32_t seg_len(const Ctx *c, int64_t seg) { return (int32_t)(c->seg_start[seg + 1] - c->seg_start[seg]); }

static void put_w(uint8_t *p, int w, int32_t v) {
    if (w == 1) *p = (uint8_t)v;
    else if (w == 2) { uint16_t x = (uint16_t)v; memcpy(p, &x, 2); }
    else memcpy(p, &v, 4);
}

static int32_t get_w(const uint8_t *p, int w) {
    if (w == 1) return *p;
    if (w == 2) { uint16_t x; memcpy(&x, p, 2); return x; }
    int32_t v; memcpy(&v, p, 4); return v;
}

/* Token ids [off, off + n) of the document store into dst (as int32). */
static void load_tokens(const Ctx *c, int32_t *dst, int64_t off, int n) {
    if (c->tok_w == 2) {
        const uint16_t *s = (const uint16_t *)c->tokens + off;
        for (int k = 0; k < n; k++) dst[k] = s[k];
    } else {
        memcpy(dst, (const int32_t *)c->tokens + off, (size_t)n * 4);
    }
}

/* The unmasked tokens [CLS] A [SEP] B [SEP] of an instance into t; returns the length. */
static int build_tokens(const Ctx *c, int32_t *t, int64_t a0, int la, int64_t b0, int lb) {
    t[0] = c->cls_id;
    load_tokens(c, t + 1, a0, la);
    t[la + 1] = c->sep_id;
    load_tokens(c, t + la + 2, b0, lb);
    t[la + lb + 2] = c->sep_id;
    return la + lb + 3;
}

/* create_masked_lm_predictions on ids in t[0..n) (bert/pretraining_reference.py). Masks t in place and leaves
 * the sorted positions in mpos and the labels in mlab; returns their number. */
static int mask_instance(Ctx *c, int32_t *t, int n) {
    int ncand = 0, npos = 0;
    for (int i = 0; i < n; i++) {
        int32_t id = t[i];
        if (id == c->cls_id || id == c->sep_id) continue;
        int sub = c->do_wwm && id >= 0 && id < c->nsubword && c->is_subword[id];
        if (!(sub && ncand >= 1)) c->cand_start[ncand++] = npos;  /* new candidate list */
        c->cand_pos[npos++] = i;   /* else joins the previous list (FAITHFUL: even across [SEP]) */
    }
    c->cand_start[ncand] = npos;
    for (int i = 0; i < ncand; i++) c->cand_order[i] = i;
    for (int i = ncand - 1; i >= 1; i--) {  /* rng.shuffle(cand_indexes) */
        int j = (int)mt_below(&c->rng, (uint64_t)i + 1);
        int32_t tmp = c->cand_order[i]; c->cand_order[i] = c->cand_order[j]; c->cand_order[j] = tmp;
    }
    /* FAITHFUL: int(round(len * p)); rint rounds halves to even like Python 3's round(). */
    int ntp = (int)rint((double)n * c->masked_lm_prob);
    if (ntp < 1) ntp = 1;
    if (ntp > c->max_pred) ntp = c->max_pred;
    memset(c->covered, 0, (size_t)(unsigned)n);
    int m = 0;
    for (int k = 0; k < ncand; k++) {
        if (m >= ntp) break;
        int cand = c->cand_order[k];
        int lo = c->cand_start[cand], hi = c->cand_start[cand + 1];
        if (m + (hi - lo) > ntp) continue;
        int any = 0;
        for (int q = lo; q < hi; q++) if (c->covered[c->cand_pos[q]]) { any = 1; break; }
        if (any) continue;
        for (int q = lo; q < hi; q++) {
            int pos = c->cand_pos[q];
            int32_t orig = t[pos];
            c->covered[pos] = 1;
            /* FAITHFUL: 80/10/10 with TWO draws (0.8, then 0.5), as the reference path */
            if (mt_random(&c->rng) < 0.8) t[pos] = c->mask_id;
            else if (mt_random(&c->rng) < 0.5) t[pos] = orig;
            else t[pos] = c->vocab_word_ids[mt_randint(&c->rng, 0, c->nvocab_words - 1)];
            /* insertion sort by position (labels are sorted by index) */
            int r = m++;
            while (r > 0 && c->mpos[r - 1] > pos) { c->mpos[r] = c->mpos[r - 1]; c->mlab[r] = c->mlab[r - 1]; r--; }
            c->mpos[r] = pos; c->mlab[r] = orig;
        }
    }
    return m;
}

/* Mask one instance (A = tokens [a0,a1), B = [b0,b1)) and keep it as a reference plus
 * its masked positions and their output ids. */
static int emit(Ctx *c, int64_t a0, int64_t a1, int64_t b0, int64_t b1, int is_random_next) {
    int la = (int)(a1 - a0), lb = (int)(b1 - b0);
    size_t per_pred = (size_t)(c->pos_w + c->tok_w);
    if (buf_reserve(&c->insts, sizeof(Inst)) || buf_reserve(&c->preds, (size_t)c->max_pred * per_pred))
        return -1;
    int32_t *t = c->t;
    int n = build_tokens(c, t, a0, la, b0, lb);
    int m = mask_instance(c, t, n);
    Inst *in = (Inst *)(c->insts.p + c->insts.n);
    in->a0 = a0; in->b0 = b0; in->pred_off = (int64_t)c->preds.n;
    in->la = (uint16_t)la; in->lb = (uint16_t)lb; in->npred = (uint16_t)m;
    in->is_random_next = (uint8_t)is_random_next;
    uint8_t *p = (uint8_t *)c->preds.p + c->preds.n;
    for (int k = 0; k < m; k++) put_w(p + (size_t)k * c->pos_w, c->pos_w, c->mpos[k]);
    p += (size_t)m * c->pos_w;
    for (int k = 0; k < m; k++) put_w(p + (size_t)k * c->tok_w, c->tok_w, t[c->mpos[k]]);
    c->insts.n += sizeof(Inst); c->preds.n += (size_t)m * per_pred;
    return 0;
}

/* Materialise instance `in`: output tokens into t (masked), sorted masked positions
 * into mpos and their labels (the original tokens) into mlab; returns the length. */
static int materialise(const Ctx *c, const Inst *in, int32_t *t, int32_t *mpos, int32_t *mlab) {
    int n = build_tokens(c, t, in->a0, in->la, in->b0, in->lb), m = in->npred;
    const uint8_t *p = (const uint8_t *)c->preds.p + in->pred_off;
    const uint8_t *r = p + (size_t)m * c->pos_w;
    for (int k = 0; k < m; k++) {
        int pos = get_w(p + (size_t)k * c->pos_w, c->pos_w);
        mpos[k] = pos;
        mlab[k] = t[pos];
        t[pos] = get_w(r + (size_t)k * c->tok_w, c->tok_w);
    }
    return n;
}

/* create_instances_from_document for shuffled document index `di` (bert/pretraining_reference.py). */
static int from_document(Ctx *c, int64_t di) {
    int64_t doc = c->order[di];
    int64_t s0 = c->doc_start[doc], nseg = c->doc_start[doc + 1] - s0;
    int max_num_tokens = c->max_seq_length - 3;
    int64_t target = max_num_tokens;
    if (mt_random(&c->rng) < c->short_seq_prob) target = mt_randint(&c->rng, 2, max_num_tokens);
    int64_t chunk0 = 0, chunk_n = 0, cur_len = 0;  /* chunk = segments chunk0 .. chunk0+chunk_n-1 */
    for (int64_t i = 0; i < nseg; i++) {
        if (chunk_n == 0) chunk0 = i;
        chunk_n++;
        cur_len += seg_len(c, s0 + i);
        if (!(i == nseg - 1 || cur_len >= target)) continue;
        int64_t a_end = 1;
        if (chunk_n >= 2) a_end = mt_randint(&c->rng, 1, chunk_n - 1);
        int64_t a0 = c->seg_start[s0 + chunk0], a1 = c->seg_start[s0 + chunk0 + a_end];
        int64_t b0, b1;
        int is_random_next;
        if (chunk_n == 1 || mt_random(&c->rng) < 0.5) {
            is_random_next = 1;
            int64_t target_b = target - (a1 - a0);
            int64_t r = 0;
            for (int t = 0; t < 10; t++) {  /* FAITHFUL: the 10th pick stands even if == di */
                r = mt_randint(&c->rng, 0, c->ndocs - 1);
                if (r != di) break;
            }
            int64_t rdoc = c->order[r];
            int64_t rs0 = c->doc_start[rdoc], rn = c->doc_start[rdoc + 1] - rs0;
            int64_t start = mt_randint(&c->rng, 0, rn - 1), j = start;
            b0 = c->seg_start[rs0 + start];
            for (; j < rn; j++)
                if (c->seg_start[rs0 + j + 1] - b0 >= target_b) break;
            if (j == rn) j = rn - 1;
            b1 = c->seg_start[rs0 + j + 1];
            i -= chunk_n - a_end;  /* FAITHFUL: unused segments are revisited */
        } else {
            is_random_next = 0;
            b0 = a1;
            b1 = c->seg_start[s0 + chunk0 + chunk_n];
        }
        /* FAITHFUL: truncate_seq_pair: the longer side (B on ties) loses its first or last token */
        while ((a1 - a0) + (b1 - b0) > max_num_tokens) {
            int trunc_a = (a1 - a0) > (b1 - b0);
            if (mt_random(&c->rng) < 0.5) { if (trunc_a) a0++; else b0++; }
            else { if (trunc_a) a1--; else b1--; }
        }
        if (emit(c, a0, a1, b0, b1, is_random_next)) return -1;
        chunk_n = 0;
        cur_len = 0;
    }
    return 0;
}

/* ------------------------------------------------------------------ CRC32C + Example */
static uint32_t crc_table[8][256];

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82f63b78U : c >> 1;
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
}

#if defined(__x86_64__)
/* SSE4.2 CRC32 instruction (same polynomial), used when the CPU has it. */
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(const uint8_t *p, size_t n) {
    uint64_t c = 0xffffffffU;
    while (n >= 8) { uint64_t w; memcpy(&w, p, 8); c = __builtin_ia32_crc32di(c, w); p += 8; n -= 8; }
    uint32_t c32 = (uint32_t)c;
    while (n--) c32 = __builtin_ia32_crc32qi(c32, *p++);
    return c32 ^ 0xffffffffU;
}
static int have_sse42;
#endif

static uint32_t crc32c_sw(const uint8_t *p, size_t n);

static uint32_t crc32c(const uint8_t *p, size_t n) {
#if defined(__x86_64__)
    if (have_sse42) return crc32c_hw(p, n);
#endif
    return crc32c_sw(p, n);
}

static uint32_t crc32c_sw(const uint8_t *p, size_t n) {
    uint32_t c = 0xffffffffU;
    while (n >= 8) {  /* slicing-by-8, little-endian */
        uint64_t w;
        memcpy(&w, p, 8);
        w ^= c;
        c = crc_table[7][w & 0xff] ^ crc_table[6][(w >> 8) & 0xff] ^ crc_table[5][(w >> 16) & 0xff]
          ^ crc_table[4][(w >> 24) & 0xff] ^ crc_table[3][(w >> 32) & 0xff]
          ^ crc_table[2][(w >> 40) & 0xff] ^ crc_table[1][(w >> 48) & 0xff] ^ crc_table[0][w >> 56];
        p += 8; n -= 8;
    }
    while (n--) c = crc_table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
    return c ^ 0xffffffffU;
}

static uint32_t masked_crc(const uint8_t *p, size_t n) {
    uint32_t c = crc32c(p, n);
    return ((c >> 15) | (c << 17)) + 0xa282ead8U;
}

static int vlen(uint64_t v) { int n = 1; while (v > 0x7f) { v >>= 7; n++; } return n; }
static uint8_t *put_v(uint8_t *o, uint64_t v) { while (v > 0x7f) { *o++ = (uint8_t)(v | 0x80); v >>= 7; } *o++ = (uint8_t)v; return o; }

/* Feature indexes, in FEATURES order of the Python module. */
static const char *FEATURE_NAMES[7] = {"input_ids", "input_mask", "segment_ids", "masked_lm_positions",
                                       "masked_lm_ids", "masked_lm_weights", "next_sentence_labels"};

/* One materialised instance (see materialise). */
typedef struct { const int32_t *t, *mpos, *mlab; int n, a_len, m, is_random_next; } Rec;

/* Packed payload of feature f (padding included) into o; returns its length. Mask and
 * segment values are 0/1 and positions/ids varints, written in one pass. */
static size_t payload(const Ctx *c, const Rec *in, int f, uint8_t *o) {
    const int32_t *t = in->t;
    uint8_t *s = o;
    int L = c->max_seq_length, P = c->max_pred, n = in->n, m = in->m;
    switch (f) {
    case 0:  /* input_ids */
        for (int k = 0; k < n; k++) o = put_v(o, (uint32_t)t[k]);
        memset(o, 0, (size_t)(L - n)); o += L - n;
        break;
    case 1:  /* input_mask */
        memset(o, 1, (size_t)n); memset(o + n, 0, (size_t)(L - n)); o += L;
        break;
    case 2:  /* segment_ids: 0 for [CLS] A [SEP], 1 for B [SEP], 0 padding */
        memset(o, 0, (size_t)L); memset(o + in->a_len + 2, 1, (size_t)(n - in->a_len - 2)); o += L;
        break;
    case 3: case 4: {  /* masked_lm_positions, masked_lm_ids */
        const int32_t *v = f == 4 ? in->mlab : in->mpos;
        for (int k = 0; k < m; k++) o = put_v(o, (uint32_t)v[k]);
        memset(o, 0, (size_t)(P - m)); o += P - m;
        break;
    }
    case 5:  /* masked_lm_weights: float32 1.0 per label, then 0.0 */
        for (int k = 0; k < m; k++, o += 4) { o[0] = 0; o[1] = 0; o[2] = 0x80; o[3] = 0x3f; }
        memset(o, 0, (size_t)(P - m) * 4); o += (size_t)(P - m) * 4;
        break;
    default:  /* next_sentence_labels */
        *o++ = (uint8_t)in->is_random_next;
    }
    return (size_t)(o - s);
}

/* Serialise one Example into o (large enough), entries in `order`; returns its length.
 * `scratch` holds the 7 payloads (7 * max payload size). */
static size_t serialize(const Ctx *c, const Rec *in, const int *order, uint8_t *scratch,
                        size_t slot, uint8_t *o) {
    size_t plen[7], llen[7], flen[7], elen[7], total = 0;
    for (int q = 0; q < 7; q++) {
        int f = order[q];
        plen[q] = payload(c, in, f, scratch + q * slot);
        llen[q] = plen[q] ? 1 + vlen(plen[q]) + plen[q] : 0;       /* Int64List / FloatList */
        flen[q] = 1 + vlen(llen[q]) + llen[q];                      /* Feature */
        size_t kl = strlen(FEATURE_NAMES[f]);
        elen[q] = 1 + vlen(kl) + kl + 1 + vlen(flen[q]) + flen[q];  /* map entry */
        total += 1 + vlen(elen[q]) + elen[q];
    }
    uint8_t *s = o;
    *o++ = 0x0a; o = put_v(o, total);                              /* Example.features */
    for (int q = 0; q < 7; q++) {
        int f = order[q];
        size_t kl = strlen(FEATURE_NAMES[f]);
        *o++ = 0x0a; o = put_v(o, elen[q]);
        *o++ = 0x0a; o = put_v(o, kl); memcpy(o, FEATURE_NAMES[f], kl); o += kl;
        *o++ = 0x12; o = put_v(o, flen[q]);
        *o++ = f == 5 ? 0x12 : 0x1a; o = put_v(o, llen[q]);        /* float_list=2, int64_list=3 */
        if (!plen[q]) continue;                                      /* proto3: empty list omitted */
        *o++ = 0x0a; o = put_v(o, plen[q]);
        memcpy(o, scratch + q * slot, plen[q]); o += plen[q];
    }
    return (size_t)(o - s);
}

/* ------------------------------------------------------------------ Python entry */
typedef struct { Py_buffer b; int ok; } PB;

static int get_buf(PyObject *o, PB *pb, Py_ssize_t itemsize, const char *what) {
    if (PyObject_GetBuffer(o, &pb->b, PyBUF_C_CONTIGUOUS) < 0) return -1;
    pb->ok = 1;
    if (itemsize && pb->b.len % itemsize) {
        PyErr_Format(PyExc_ValueError, "%s: buffer size not a multiple of %zd", what, itemsize);
        return -1;
    }
    return 0;
}

#define PROGRESS_EVERY 2048

/* progress(phase, n): phase 0 = documents processed, 1 = records written. Also where a
 * pending Ctrl-C surfaces (the callback runs Python code). Returns -1 on a raised error. */
static int report(PyObject *cb, int phase, int64_t n) {
    if (PyErr_CheckSignals() < 0) return -1;
    if (cb == Py_None || n == 0) return 0;
    PyObject *r = PyObject_CallFunction(cb, "iL", phase, (long long)n);
    if (!r) return -1;
    Py_DECREF(r);
    return 0;
}

/* rng.shuffle(range(n)) as a permutation of instance indexes. */
static uint32_t *shuffled_order(MT *rng, int64_t n) {
    uint32_t *perm = malloc(sizeof(uint32_t) * (size_t)(n ? n : 1));
    if (!perm) return NULL;
    for (int64_t i = 0; i < n; i++) perm[i] = (uint32_t)i;
    for (int64_t i = n - 1; i >= 1; i--) {
        uint32_t j = mt_below(rng, (uint64_t)i + 1), t = perm[i];
        perm[i] = perm[j]; perm[j] = t;
    }
    return perm;
}

/* Materialise, serialise and frame every instance in `perm` order; FAITHFUL: instance k
 * goes to file k mod nfiles. Returns 0, or -1 with a Python error set (OSError names the file). */
static int write_records(const Ctx *c, const uint32_t *perm, int64_t ninst, PyObject *o_paths,
                         const int *forder, PyObject *cb) {
    Py_ssize_t nfiles = PySequence_Size(o_paths);
    if (nfiles < 1) { PyErr_SetString(PyExc_ValueError, "no output paths"); return -1; }
    int rc = -1;
    FILE **files = calloc((size_t)nfiles, sizeof(FILE *));
    PyObject **names = calloc((size_t)nfiles, sizeof(PyObject *));
    int L = c->max_seq_length, P = c->max_pred;
    size_t slot = (size_t)(L > P ? L : P) * 5 + 16;
    size_t cap = 16 + 7 * (slot + 64);
    uint8_t *rec = malloc(cap + 7 * slot);
    int32_t *t = malloc(sizeof(int32_t) * (size_t)L), *mpos = malloc(sizeof(int32_t) * (size_t)(P + 1));
    int32_t *mlab = malloc(sizeof(int32_t) * (size_t)(P + 1));
    if (!files || !names || !rec || !t || !mpos || !mlab) { PyErr_NoMemory(); goto done; }
    for (Py_ssize_t i = 0; i < nfiles; i++) {
        names[i] = PySequence_GetItem(o_paths, i);
        const char *path = names[i] ? PyUnicode_AsUTF8(names[i]) : NULL;
        if (!path) goto done;
        files[i] = fopen(path, "wb");
        if (!files[i]) { PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, names[i]); goto done; }
        setvbuf(files[i], NULL, _IOFBF, 1 << 20);
    }
    /* In chunks without the GIL (other threads of a Dask worker run meanwhile); the
     * GIL is taken back between chunks to report progress and see Ctrl-C. */
    for (int64_t k = 0; k < ninst;) {
        int64_t start = k, end = k + PROGRESS_EVERY < ninst ? k + PROGRESS_EVERY : ninst;
        Py_ssize_t failed = -1;
        int err = 0;
        Py_BEGIN_ALLOW_THREADS
        for (; k < end; k++) {
            const Inst *in = (const Inst *)c->insts.p + perm[k];
            Rec r = {t, mpos, mlab, 0, in->la, in->npred, in->is_random_next};
            r.n = materialise(c, in, t, mpos, mlab);
            size_t n = serialize(c, &r, forder, rec + cap, slot, rec + 12);
            uint64_t n64 = n;
            memcpy(rec, &n64, 8);                       /* little-endian hosts only (x86/arm) */
            uint32_t hc = masked_crc(rec, 8), dc = masked_crc(rec + 12, n);
            memcpy(rec + 8, &hc, 4);
            memcpy(rec + 12 + n, &dc, 4);
            Py_ssize_t f = (Py_ssize_t)(k % nfiles);
            if (fwrite(rec, 1, n + 16, files[f]) != n + 16) { failed = f; err = errno; break; }
        }
        Py_END_ALLOW_THREADS
        if (failed >= 0) {
            errno = err;
            PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, names[failed]);
            goto done;
        }
        if (report(cb, 1, end - start)) goto done;
    }
    for (Py_ssize_t i = 0; i < nfiles; i++) {
        int bad = fclose(files[i]) != 0;
        files[i] = NULL;
        if (bad) { PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, names[i]); goto done; }
    }
    rc = 0;
done:
    for (Py_ssize_t i = 0; i < nfiles; i++) {
        if (files && files[i]) fclose(files[i]);
        if (names) Py_XDECREF(names[i]);
    }
    free(files); free(names); free(rec); free(t); free(mpos); free(mlab);
    return rc;
}

static PyObject *create_and_write(PyObject *self, PyObject *args) {
    PyObject *o_tok, *o_seg, *o_doc, *o_order, *o_state, *o_vw, *o_sub, *o_paths, *o_forder, *o_cb;
    int cls_id, sep_id, mask_id, max_seq, max_pred, dupe, wwm;
    double ssp, mlp;
    if (!PyArg_ParseTuple(args, "OOOOOOOiiiiiiddpOOO", &o_tok, &o_seg, &o_doc, &o_order, &o_state,
                          &o_vw, &o_sub, &cls_id, &sep_id, &mask_id, &max_seq, &max_pred, &dupe,
                          &ssp, &mlp, &wwm, &o_paths, &o_forder, &o_cb))
        return NULL;
    PB tok = {0}, seg = {0}, doc = {0}, ord = {0}, vw = {0}, sub = {0};
    Ctx c;
    memset(&c, 0, sizeof c);
    uint32_t *perm = NULL;
    PyObject *result = NULL;
    int forder[7];

    if (get_buf(o_tok, &tok, 0, "tokens") || get_buf(o_seg, &seg, 8, "seg_start")
        || get_buf(o_doc, &doc, 8, "doc_start") || get_buf(o_order, &ord, 8, "order")
        || get_buf(o_vw, &vw, 4, "vocab_word_ids") || get_buf(o_sub, &sub, 1, "is_subword"))
        goto done;
    c.tok_w = (int)tok.b.itemsize;
    if ((c.tok_w != 2 && c.tok_w != 4) || tok.b.len % c.tok_w) {
        PyErr_SetString(PyExc_ValueError, "tokens must be an array('H') or array('i')");
        goto done;
    }
    c.tokens = tok.b.buf; c.seg_start = seg.b.buf; c.doc_start = doc.b.buf; c.order = ord.b.buf;
    c.ndocs = doc.b.len / 8 - 1;
    c.vocab_word_ids = vw.b.buf; c.nvocab_words = vw.b.len / 4;
    c.is_subword = sub.b.buf; c.nsubword = sub.b.len;
    c.cls_id = cls_id; c.sep_id = sep_id; c.mask_id = mask_id;
    c.max_seq_length = max_seq; c.max_pred = max_pred; c.do_wwm = wwm;
    c.pos_w = max_seq <= 256 ? 1 : 2;
    c.short_seq_prob = ssp; c.masked_lm_prob = mlp;
    if (c.ndocs < 1 || ord.b.len / 8 != c.ndocs || max_seq < 5 || max_seq > 65536 || max_pred < 1
        || max_pred > max_seq || c.nvocab_words < 1) {
        PyErr_SetString(PyExc_ValueError, "create_and_write: inconsistent arguments");
        goto done;
    }
    /* rng.getstate()[1]: 624 words + index */
    if (!PyTuple_Check(o_state) || PyTuple_GET_SIZE(o_state) != MT_N + 1) {
        PyErr_SetString(PyExc_ValueError, "state must be random.getstate()[1] (625 ints)");
        goto done;
    }
    for (int i = 0; i < MT_N; i++) {
        unsigned long v = PyLong_AsUnsignedLong(PyTuple_GET_ITEM(o_state, i));
        if (PyErr_Occurred()) goto done;
        c.rng.mt[i] = (uint32_t)v;
    }
    c.rng.index = (int)PyLong_AsLong(PyTuple_GET_ITEM(o_state, MT_N));
    if (PyErr_Occurred()) goto done;
    if (!PySequence_Check(o_forder) || PySequence_Size(o_forder) != 7) {
        PyErr_SetString(PyExc_ValueError, "feature order must list 7 indexes");
        goto done;
    }
    for (int i = 0; i < 7; i++) {
        PyObject *it = PySequence_GetItem(o_forder, i);
        forder[i] = it ? (int)PyLong_AsLong(it) : -1;
        Py_XDECREF(it);
        if (PyErr_Occurred()) goto done;
    }
    c.t = malloc(sizeof(int32_t) * max_seq);
    c.cand_pos = malloc(sizeof(int32_t) * max_seq); c.cand_start = malloc(sizeof(int32_t) * (max_seq + 1));
    c.cand_order = malloc(sizeof(int32_t) * max_seq); c.covered = malloc((size_t)max_seq);
    c.mpos = malloc(sizeof(int32_t) * (max_pred + 1)); c.mlab = malloc(sizeof(int32_t) * (max_pred + 1));
    if (!c.t || !c.cand_pos || !c.cand_start || !c.cand_order || !c.covered || !c.mpos || !c.mlab) {
        PyErr_NoMemory(); goto done;
    }

    /* for pass in range(dupe_factor): for each document: instances += ... */
    /* Step `step` is document step % ndocs of pass step / ndocs; in chunks without the
     * GIL, as in write_records. */
    int64_t total = (int64_t)dupe * c.ndocs;
    for (int64_t step = 0; step < total;) {
        int64_t start = step, end = step + PROGRESS_EVERY < total ? step + PROGRESS_EVERY : total;
        int oom = 0;
        Py_BEGIN_ALLOW_THREADS
        for (; step < end; step++)
            if (from_document(&c, step % c.ndocs)) { oom = 1; break; }
        Py_END_ALLOW_THREADS
        if (oom) { PyErr_NoMemory(); goto done; }
        if (report(o_cb, 0, end - start)) goto done;
    }
    int64_t ninst = (int64_t)(c.insts.n / sizeof(Inst));
    if (ninst >= ((int64_t)1 << 32)) {  /* _randbelow(n) for n > 2**32 draws differently */
        PyErr_SetString(PyExc_OverflowError, "2**32 or more instances in one run: split the input");
        goto done;
    }
    perm = shuffled_order(&c.rng, ninst);
    if (!perm) { PyErr_NoMemory(); goto done; }
    if (write_records(&c, perm, ninst, o_paths, forder, o_cb)) goto done;
    result = PyLong_FromLongLong(ninst);
done:
    free(perm);
    free(c.insts.p); free(c.preds.p);
    free(c.t); free(c.cand_pos); free(c.cand_start); free(c.cand_order); free(c.covered); free(c.mpos); free(c.mlab);
    PB *bufs[] = {&tok, &seg, &doc, &ord, &vw, &sub};
    for (int i = 0; i < 6; i++) if (bufs[i]->ok) PyBuffer_Release(&bufs[i]->b);
    return result;
}

/* Draw-sequence probe used by the tests: replays ops on a state, returns the values. */
static PyObject *draws(PyObject *self, PyObject *args) {
    PyObject *o_state, *o_ops;
    if (!PyArg_ParseTuple(args, "OO", &o_state, &o_ops)) return NULL;
    MT s;
    if (!PyTuple_Check(o_state) || PyTuple_GET_SIZE(o_state) != MT_N + 1) {
        PyErr_SetString(PyExc_ValueError, "state must be random.getstate()[1]");
        return NULL;
    }
    for (int i = 0; i < MT_N; i++) s.mt[i] = (uint32_t)PyLong_AsUnsignedLong(PyTuple_GET_ITEM(o_state, i));
    s.index = (int)PyLong_AsLong(PyTuple_GET_ITEM(o_state, MT_N));
    if (PyErr_Occurred()) return NULL;
    Py_ssize_t n = PySequence_Size(o_ops);
    PyObject *out = PyList_New(n);
    if (!out) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        /* op: 0 -> random(), k >= 1 -> randint(0, k - 1) (= _randbelow(k)) */
        PyObject *it = PySequence_GetItem(o_ops, i);
        long long k = it ? PyLong_AsLongLong(it) : -1;
        Py_XDECREF(it);
        if (PyErr_Occurred() || k < 0 || k >= (1LL << 32)) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "op out of range");
            Py_DECREF(out);
            return NULL;
        }
        PyObject *v = k == 0 ? PyFloat_FromDouble(mt_random(&s)) : PyLong_FromUnsignedLong(mt_below(&s, (uint64_t)k));
        PyList_SET_ITEM(out, i, v);
    }
    return out;
}

/* masked_crc32c(data) -> (masked CRC by the current routine, by the table routine) */
static PyObject *py_masked_crc(PyObject *self, PyObject *args) {
    Py_buffer b;
    if (!PyArg_ParseTuple(args, "y*", &b)) return NULL;
    uint32_t a = masked_crc(b.buf, (size_t)b.len), c = crc32c_sw(b.buf, (size_t)b.len);
    c = ((c >> 15) | (c << 17)) + 0xa282ead8U;
    PyBuffer_Release(&b);
    return Py_BuildValue("(kk)", (unsigned long)a, (unsigned long)c);
}

static PyMethodDef methods[] = {
    {"masked_crc32c", py_masked_crc, METH_VARARGS, "TFRecord masked CRC32C (hw route, table route)."},
    {"create_and_write", create_and_write, METH_VARARGS,
     "Instance loop + masking + shuffle + TFRecord writing (see create_pretraining_data.run)."},
    {"draws", draws, METH_VARARGS, "draws(state, ops): replay random()/_randbelow draws (tests)."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef moduledef = {PyModuleDef_HEAD_INIT, "_cpd_native",
                                       "Native fast path of bert.create_pretraining_data.", -1, methods};

PyMODINIT_FUNC PyInit__cpd_native(void) {
    crc_init();
#if defined(__x86_64__)
    __builtin_cpu_init();
    have_sse42 = __builtin_cpu_supports("sse4.2") && !getenv("CPD_NO_HW_CRC");
#endif
    return PyModule_Create(&moduledef);
}
