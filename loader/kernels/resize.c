/* Ultralytics' load-time resize, bitwise: cv2.resize(im, (w, h), interpolation=cv2.INTER_LINEAR) on 8-bit images.

   Every image a loader without a pixel cache serves is decoded and resized to its load size (1920x1080 -> 896x504
   at 896 px): ~1 ms per image in OpenCV on a painter thread here, next to ~6 ms of JPEG decode, so a tenth of
   the uncached CPU engine's time. This file computes OpenCV's bytes with AVX-512 VBMI, about 3x faster.

   OpenCV's INTER_LINEAR for 8-bit images is fixed-point arithmetic (resize.cpp, resizeGeneric_):
   - per output column dx: fx = (float)((dx + 0.5) * scale_x - 0.5), sx = floor(fx), fx -= sx, clamped at both
     edges; coefficients a0 = round((1 - fx) * 2048), a1 = round(fx * 2048) as int16 (rounding half to even);
     the same per row dy (b0, b1), source rows sy and sy + 1 clamped into the image;
   - horizontal pass, exact in int32: H[x] = S[sx] * a0 + S[sx + cn] * a1 (S[sx] * 2048 past the right edge);
   - vertical pass as its vector code does it (the builds we checked use it for the whole row):
     sat16(H0 >> 4) mulhi b0, plus (saturating) sat16(H1 >> 4) mulhi b1, then (v + 2) >> 2 saturated to 8 bits.
     Its scalar form, (H0 * b0 + H1 * b1 + (1 << 21)) >> 22, differs by one level on some pixels.
   loader/kernels/resize.py checks this code against the installed OpenCV on test images before using it.

   The horizontal pass gathers bytes with one VPERMI2B per 16 outputs from a 128-byte source window (column
   plans made once per call); a chunk whose window does not fit (a downscale of more than ~7x) is done per
   element. `resize_linear(..., vec=0)` runs the per-element code everywhere (the reference the tests use on any
   CPU). Loaded with ctypes (which releases the GIL for the call); a Python module only so that pip builds it. */

#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_X86 1
#endif

#define COEF_SCALE 2048

static inline int16_t sat16(int32_t x) { return (int16_t)(x < -32768 ? -32768 : x > 32767 ? 32767 : x); }
static inline uint8_t sat8(int32_t x) { return (uint8_t)(x < 0 ? 0 : x > 255 ? 255 : x); }
static inline int16_t coef(float v) { return sat16((int32_t)lrintf(v)); }  /* saturate_cast<short>(float) */

/* One source row through the horizontal pass, per element. */
static void hrow_scalar(const uint8_t *S, int32_t *H, const int32_t *xofs, const int16_t *ia, int W, int xmax_e,
                        int cn) {
    int x = 0;
    for (; x < xmax_e; x++) H[x] = S[xofs[x]] * ia[2 * x] + S[xofs[x] + cn] * ia[2 * x + 1];
    for (; x < W; x++) H[x] = S[xofs[x]] * COEF_SCALE;
}

static void hrows_scalar(const uint8_t *const *S, int32_t *const *H, int n, const int32_t *xofs, const int16_t *ia,
                         int W, int xmax_e, int cn) {
    for (int r = 0; r < n; r++) hrow_scalar(S[r], H[r], xofs, ia, W, xmax_e, cn);
}

/* One output row from two horizontal rows: OpenCV's vector arithmetic, per element. */
static void vrow_scalar(const int32_t *H0, const int32_t *H1, uint8_t *D, int W, int16_t b0, int16_t b1) {
    for (int x = 0; x < W; x++) {
        int32_t m = (int32_t)sat16((sat16(H0[x] >> 4) * b0) >> 16) + ((sat16(H1[x] >> 4) * b1) >> 16);
        D[x] = sat8((int16_t)(sat16(m) + 2) >> 2);
    }
}

#ifdef HAVE_X86
typedef struct {
    uint8_t idx[64];    /* bytes 4j and 4j+2: window offsets of S[sx] and S[sx + cn] for output j */
    int16_t alpha[32];  /* (a0, a1) per output */
    uint64_t m0, m1;    /* load masks of the window's two halves: never past the row's last byte */
    int32_t base;       /* first source byte of the chunk's 128-byte window */
    int32_t scalar;     /* 1: the window does not hold the chunk's bytes */
    uint8_t pad[40];
} chunk_t;              /* 192 bytes: idx and alpha on cache-line boundaries */

/* Source rows S[0..n) (n = 1 or 2) through the horizontal pass into H[0..n): each chunk's plan loaded once. */
__attribute__((target("avx512f,avx512bw,avx512vbmi")))
static void hrows_avx512(const uint8_t *const *S, int32_t *const *H, int n, const chunk_t *ch, int nch,
                         const int32_t *xofs, const int16_t *ia, int W, int xmax_e, int cn, const uint8_t *const *P) {
    const __mmask64 even = 0x5555555555555555ULL;
    for (int c = 0; c < nch; c++) {
        const chunk_t *k = ch + c;
        int x0 = c * 16;
        if (k->scalar) {
            for (int r = 0; r < n; r++)
                for (int x = x0; x < x0 + 16 && x < W; x++)
                    H[r][x] = x < xmax_e ? S[r][xofs[x]] * ia[2 * x] + S[r][xofs[x] + cn] * ia[2 * x + 1]
                                         : S[r][xofs[x]] * COEF_SCALE;
            continue;
        }
        __m512i idx = _mm512_load_si512(k->idx), alpha = _mm512_load_si512(k->alpha);
        for (int r = 0; r < 2; r++)  /* the next output row's source rows, a chunk's bytes at a time */
            if (P[r]) {
                _mm_prefetch((const char *)P[r] + k->base, _MM_HINT_T0);
                _mm_prefetch((const char *)P[r] + k->base + 64, _MM_HINT_T0);
            }
        for (int r = 0; r < n; r++) {
            const uint8_t *p = S[r] + k->base;
            __m512i lo = _mm512_maskz_loadu_epi8(k->m0, p), hi = _mm512_maskz_loadu_epi8(k->m1, p + 64);
            _mm512_store_si512(H[r] + x0, _mm512_madd_epi16(_mm512_maskz_permutex2var_epi8(even, lo, idx, hi), alpha));
        }
    }
}

/* 16 int32 at p -> sat16(x >> 4) */
__attribute__((target("avx512f,avx512bw")))
static inline __m512i v_shr4(const int32_t *p) { return _mm512_srai_epi32(_mm512_loadu_si512(p), 4); }

/* The vertical pass 64 elements at a time with in-lane packs (one uop each) instead of order-keeping narrowing
   moves (two each): the lanes come out in a fixed 4x4 dword transpose, undone by one permute before the store.
   The packs saturate as the moves did (signed to int16; int16 to uint8 clamps below at 0, as max(m, 0) then the
   unsigned narrowing did). */
__attribute__((target("avx512f,avx512bw")))
static void vrow_avx512(const int32_t *H0, const int32_t *H1, uint8_t *D, int W, int16_t b0, int16_t b1) {
    __m512i B0 = _mm512_set1_epi16(b0), B1 = _mm512_set1_epi16(b1), two = _mm512_set1_epi16(2);
    const __m512i order = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
    for (int x = 0; x < W; x += 64) {  /* the rows are padded to a multiple of 64 elements */
        __m512i m[2];
        for (int h = 0; h < 2; h++) {
            const int32_t *p0 = H0 + x + 32 * h, *p1 = H1 + x + 32 * h;
            __m512i a = _mm512_packs_epi32(v_shr4(p0), v_shr4(p0 + 16));
            __m512i b = _mm512_packs_epi32(v_shr4(p1), v_shr4(p1 + 16));
            __m512i v = _mm512_adds_epi16(_mm512_mulhi_epi16(a, B0), _mm512_mulhi_epi16(b, B1));
            m[h] = _mm512_srai_epi16(_mm512_adds_epi16(v, two), 2);
        }
        __m512i out = _mm512_permutexvar_epi32(order, _mm512_packus_epi16(m[0], m[1]));
        int n = W - x;
        if (n >= 64)
            _mm512_storeu_si512(D + x, out);
        else
            _mm512_mask_storeu_epi8(D + x, (__mmask64)((1ULL << n) - 1), out);
    }
}
#endif

int resize_vector(void) { return cpu_avx512_vbmi(); }

/* src (sh, sw, cn) with row step sstep -> dst (dh, dw, cn) with row step dstep. vec: the AVX-512 code (callers
   check resize_vector() first). 0 on success, -1 when out of memory. */
int resize_linear(const uint8_t *src, long sstep, int sh, int sw, uint8_t *dst, long dstep, int dh, int dw, int cn,
                  int vec) {
    int W = dw * cn, Wp = (W + 63) / 64 * 64;
    double scale_x = 1. / ((double)dw / sw), scale_y = 1. / ((double)dh / sh);
    int32_t *xofs = malloc(sizeof(int32_t) * Wp);
    int16_t *ia = malloc(sizeof(int16_t) * 2 * Wp);
    int32_t *rows = aligned_alloc(64, sizeof(int32_t) * 2 * Wp);
    if (!xofs || !ia || !rows) {
        free(xofs); free(ia); free(rows);
        return -1;
    }
    int xmax = dw;
    for (int dx = 0; dx < dw; dx++) {
        float fx = (float)((dx + 0.5) * scale_x - 0.5);
        int sx = (int)floorf(fx);
        fx -= sx;
        if (sx < 0) fx = 0, sx = 0;
        if (sx + 1 >= sw) {
            if (dx < xmax) xmax = dx;
            if (sx >= sw - 1) fx = 0, sx = sw - 1;
        }
        int16_t a0 = coef((1.f - fx) * COEF_SCALE), a1 = coef(fx * COEF_SCALE);
        for (int k = 0; k < cn; k++) {
            xofs[dx * cn + k] = sx * cn + k;
            ia[2 * (dx * cn + k)] = a0;
            ia[2 * (dx * cn + k) + 1] = a1;
        }
    }
    int xmax_e = xmax * cn;
    memset(rows, 0, sizeof(int32_t) * 2 * Wp);
    int32_t *H[2] = {rows, rows + Wp};
    int have[2] = {-1, -1};
#ifdef HAVE_X86
    int nch = (W + 15) / 16;
    chunk_t *ch = NULL;
    if (vec) {
        ch = aligned_alloc(64, sizeof(chunk_t) * (size_t)nch + 64);
        if (!ch) {
            free(xofs); free(ia); free(rows);
            return -1;
        }
        for (int c = 0; c < nch; c++) {
            chunk_t *k = ch + c;
            memset(k, 0, sizeof(*k));
            int x0 = c * 16, x1 = x0 + 16 < W ? x0 + 16 : W;
            k->base = xofs[x0] - x0 % cn;  /* the first pixel's first channel: the chunk's lowest byte */
            long avail = (long)sw * cn - k->base;
            k->m0 = avail >= 64 ? ~0ULL : (1ULL << avail) - 1;
            k->m1 = avail >= 128 ? ~0ULL : avail > 64 ? (1ULL << (avail - 64)) - 1 : 0;
            for (int x = x0; x < x1; x++) {
                int s0 = xofs[x] - k->base, s1 = (x < xmax_e ? xofs[x] + cn : xofs[x]) - k->base;
                if (s1 >= 128 || s0 >= 128) k->scalar = 1;
                k->idx[4 * (x - x0)] = (uint8_t)s0;
                k->idx[4 * (x - x0) + 2] = (uint8_t)s1;
                k->alpha[2 * (x - x0)] = x < xmax_e ? ia[2 * x] : COEF_SCALE;
                k->alpha[2 * (x - x0) + 1] = x < xmax_e ? ia[2 * x + 1] : 0;
            }
        }
    }
#else
    vec = 0;
#endif
#ifdef HAVE_X86
#define horiz(S_, H_, n_) (vec ? hrows_avx512(S_, H_, n_, ch, nch, xofs, ia, W, xmax_e, cn, P) \
                               : hrows_scalar(S_, H_, n_, xofs, ia, W, xmax_e, cn))
#else
#define horiz(S_, H_, n_) hrows_scalar(S_, H_, n_, xofs, ia, W, xmax_e, cn)
#endif
    for (int dy = 0; dy < dh; dy++) {
        float fy = (float)((dy + 0.5) * scale_y - 0.5);
        int sy = (int)floorf(fy);
        fy -= sy;
        int16_t b0 = coef((1.f - fy) * COEF_SCALE), b1 = coef(fy * COEF_SCALE);
        int r[2] = {sy < 0 ? 0 : sy > sh - 1 ? sh - 1 : sy, sy + 1 < 0 ? 0 : sy + 1 > sh - 1 ? sh - 1 : sy + 1};
        const uint8_t *P[2] = {NULL, NULL};  /* the rows the next output row reads, where they are new */
        if (dy + 1 < dh) {
            int ny = (int)floorf((float)((dy + 1.5) * scale_y - 0.5));
            for (int q = 0; q < 2; q++) {
                int y = ny + q < 0 ? 0 : ny + q > sh - 1 ? sh - 1 : ny + q;
                if (y != r[0] && y != r[1]) P[q] = src + (long)y * sstep;
            }
        }
        int32_t *use[2];
        int hit0 = have[0] == r[0] ? 0 : have[1] == r[0] ? 1 : -1;
        int hit1 = have[0] == r[1] ? 0 : have[1] == r[1] ? 1 : -1;
        if (hit0 < 0 && hit1 < 0 && r[0] != r[1]) {  /* two new rows (a downscale): one pass over the plans */
            const uint8_t *S2[2] = {src + (long)r[0] * sstep, src + (long)r[1] * sstep};
            horiz(S2, H, 2);
            have[0] = r[0], have[1] = r[1];
            hit0 = 0, hit1 = 1;
        } else if (hit0 < 0 || hit1 < 0) {  /* one new row: it replaces the row the other does not use */
            int k = hit0 < 0 ? 0 : 1, other = hit0 < 0 ? hit1 : hit0;
            int slot = other == 0 ? 1 : other == 1 ? 0 : (have[0] < have[1] ? 0 : 1);
            if (r[0] == r[1]) slot = have[0] < have[1] ? 0 : 1;
            const uint8_t *S1[1] = {src + (long)r[k] * sstep};
            int32_t *H1[1] = {H[slot]};
            horiz(S1, H1, 1);
            have[slot] = r[k];
            hit0 = have[0] == r[0] ? 0 : 1;
            hit1 = have[0] == r[1] ? 0 : 1;
        }
        use[0] = H[hit0], use[1] = H[hit1];
        uint8_t *D = dst + (long)dy * dstep;
#ifdef HAVE_X86
        if (vec)
            vrow_avx512(use[0], use[1], D, W, b0, b1);
        else
#endif
            vrow_scalar(use[0], use[1], D, W, b0, b1);
    }
#undef horiz
#ifdef HAVE_X86
    free(ch);
#endif
    free(xofs); free(ia); free(rows);
    return 0;
}

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_resize", "see resize.c", -1, NULL};
PyMODINIT_FUNC PyInit__resize(void) { return PyModule_Create(&module); }
