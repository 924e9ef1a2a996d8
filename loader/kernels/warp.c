/* The mosaic warp without the canvas: cv2.warpAffine(canvas, M, flags=INTER_LINEAR, borderValue=114)'s bytes,
   read from the tiles where they lie, for the matrices Ultralytics' default augmentation makes (scale,
   translation and flips: no rotation, no shear, no perspective).

   The CPU engine composes the part of the mosaic canvas the output sees (a copy of up to 9.6 MB per sample at
   896 px, then 114 where no tile is) and warps it with OpenCV: the copies and fills were ~0.6 ms of a painter's
   ~9.3 ms per uncached image. With M[0][1] = M[1][0] = 0 the warp is separable: every output column samples the
   same two canvas columns in every row, every output row the same two canvas rows, so each canvas row the
   output needs is interpolated once, horizontally, straight from the tile rows it crosses.

   OpenCV 5.1's warpAffine for 8-bit images inverts M in double (imgwarp.cpp), then per output pixel (x, y)
   maps sx = A0 x + A1 y + A2, sy = A3 x + A4 y + A5 in double; ix = floor(sx), alpha = (float)(sx - ix), beta
   likewise; taps outside the source are the border value; top = fma(alpha, p01 - p00, p00) in float, bottom
   the same one row down, out = fma(beta, bottom - top, top), rounded to nearest even and saturated. (OpenCV's
   newer sources read as float coordinates through FMA: that model is one level off on ~0.1 % of the pixels of
   a sharp image, tests/unit/kernels/test_warp_native.py.) This file does the same operations in the same
   order, so the bytes are OpenCV's; loader/kernels/warp.py checks that against the installed OpenCV first.

   The horizontal pass gathers each 16 outputs' two taps with one VPERMI2B from a 128-byte window of a tile row
   (column plans made once per call); a window that crosses a tile's edge or the grey is assembled first (a few
   per row). `warp_scaled(..., vec=0)` runs the per-element code everywhere (the reference the tests use). Loaded
   with ctypes (which releases the GIL for the call); a Python module only so that pip builds it. */

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

#define FILL 114
#define MAX_SEGS 16  /* pastes per window (a mosaic has 4, a 9-image mosaic 9) */

typedef struct {      /* one tile's run of a canvas row: window columns [c0, c1), column c at base + 3 c */
    int c0, c1;
    const uint8_t *base;
    long step;        /* the tile's row step; 0 on its last row in the window */
} seg_t;

typedef struct {      /* the window the warp reads: (wh, ww) pixels, tiles pasted, FILL elsewhere */
    int wh, ww, n;
    const uint8_t *const *ptr;  /* per paste: the tile pixel that lands on window (dy, dx) */
    const long *step;           /* per paste: the tile's row step */
    const int32_t *rect;        /* per paste: dy, dx, h, w */
} window_t;

static int row_segs(const window_t *w, int r, seg_t *s) {
    int n = 0;
    if (r < 0 || r >= w->wh) return 0;
    for (int k = 0; k < w->n && n < MAX_SEGS; k++) {
        const int32_t *q = w->rect + 4 * k;
        if (r < q[0] || r >= q[0] + q[2] || q[3] <= 0) continue;
        s[n].c0 = q[1], s[n].c1 = q[1] + q[3];
        s[n].base = w->ptr[k] + (long)(r - q[0]) * w->step[k] - 3L * q[1];
        s[n].step = r + 1 < q[0] + q[2] ? w->step[k] : 0;
        n++;
    }
    return n;
}

static inline uint8_t seg_byte(const seg_t *s, int n, int c, int ch) {
    for (int k = 0; k < n; k++)
        if (c >= s[k].c0 && c < s[k].c1) return s[k].base[3 * c + ch];
    return FILL;
}

/* Canvas row r (its runs s[0..n)) through the horizontal pass for every output element, per element. */
static void hrow_scalar(const seg_t *s, int n, float *H, const int32_t *ix, const float *alpha, int x0, int W) {
    for (int x = x0; x < W; x++)
        for (int ch = 0; ch < 3; ch++) {
            float p0 = seg_byte(s, n, ix[x], ch), p1 = seg_byte(s, n, ix[x] + 1, ch);
            H[3 * x + ch] = fmaf(alpha[x], p1 - p0, p0);
        }
}

static void vrow_scalar(const float *H0, const float *H1, uint8_t *D, int n, float beta) {
    for (int e = 0; e < n; e++) {
        long v = lrintf(fmaf(beta, H1[e] - H0[e], H0[e]));
        D[e] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
}

#ifdef HAVE_X86
typedef struct {
    uint8_t idx[2][3][64];      /* [tap][third]: the window byte of output element 16 third + i at byte 4 i */
    float alpha[48];
    int32_t lo, hi;             /* window columns the chunk reads: lo .. hi (inclusive) */
    int32_t scalar;             /* 1: its taps do not fit one 128-byte window */
    uint8_t pad[52];
} chunk_t;                      /* 640 bytes, 64-aligned fields */

__attribute__((target("avx512f,avx512bw,avx512vbmi")))
static inline void chunk_from(const uint8_t *p, __mmask64 m0, __mmask64 m1, const chunk_t *k, float *H) {
    const __mmask64 dw = 0x1111111111111111ULL;  /* byte 0 of each dword: the permutes zero-extend too */
    __m512i lo = _mm512_maskz_loadu_epi8(m0, p), hi = _mm512_maskz_loadu_epi8(m1, p + 64);
    for (int q = 0; q < 3; q++) {
        __m512 fa = _mm512_cvtepi32_ps(_mm512_maskz_permutex2var_epi8(dw, lo, _mm512_load_si512(k->idx[0][q]), hi));
        __m512 fb = _mm512_cvtepi32_ps(_mm512_maskz_permutex2var_epi8(dw, lo, _mm512_load_si512(k->idx[1][q]), hi));
        _mm512_storeu_ps(H + 16 * q, _mm512_fmadd_ps(_mm512_load_ps(k->alpha + 16 * q), _mm512_sub_ps(fb, fa), fa));
    }
}

/* Canvas row r through the horizontal pass: per chunk of 16 outputs, straight from the tile row that holds all
   its taps, else from a 128-byte window assembled from the row's runs and the grey. */
__attribute__((target("avx512f,avx512bw,avx512vbmi")))
static void hrow_avx512(const seg_t *s, int n, float *H, const chunk_t *ch, int nch, const int32_t *ix,
                        const float *alpha, int W) {
    for (int c = 0; c < nch; c++) {
        const chunk_t *k = ch + c;
        int x0 = 16 * c;
        if (k->scalar) {
            hrow_scalar(s, n, H, ix, alpha, x0, x0 + 16);
            continue;
        }
        int inside = -1, touches = 0;
        for (int j = 0; j < n; j++) {
            if (k->lo >= s[j].c0 && k->hi < s[j].c1) inside = j;
            if (k->lo < s[j].c1 && k->hi >= s[j].c0) touches = 1;
        }
        if (inside >= 0) {
            long avail = 3L * (s[inside].c1 - k->lo);  /* never read past the run's last byte */
            __mmask64 m0 = avail >= 64 ? ~0ULL : (1ULL << avail) - 1;
            __mmask64 m1 = avail >= 128 ? ~0ULL : avail > 64 ? (1ULL << (avail - 64)) - 1 : 0;
            const char *ahead = (const char *)s[inside].base + 2 * s[inside].step + 3L * k->lo;
            _mm_prefetch(ahead, _MM_HINT_T0);
            _mm_prefetch(ahead + 64, _MM_HINT_T0);
            chunk_from(s[inside].base + 3L * k->lo, m0, m1, k, H + 3 * x0);
        } else if (!touches) {
            __m512 g = _mm512_set1_ps((float)FILL);
            for (int q = 0; q < 3; q++) _mm512_storeu_ps(H + 3 * x0 + 16 * q, g);
        } else {
            uint8_t tmp[128] __attribute__((aligned(64)));
            memset(tmp, FILL, sizeof(tmp));
            for (int j = 0; j < n; j++) {  /* the columns lo .. lo + 41 each run holds */
                int a = k->lo > s[j].c0 ? k->lo : s[j].c0, b = k->lo + 42 < s[j].c1 ? k->lo + 42 : s[j].c1;
                if (a < b) memcpy(tmp + 3 * (a - k->lo), s[j].base + 3L * a, 3 * (size_t)(b - a));
            }
            chunk_from(tmp, ~0ULL, ~0ULL, k, H + 3 * x0);
        }
    }
    hrow_scalar(s, n, H, ix, alpha, 16 * nch, W);  /* the last W % 16 outputs */
}

/* The vertical pass, 64 elements at a time with in-lane packs (one uop each) instead of order-keeping narrowing
   moves (two each); the packs' 4x4 dword transpose is undone by one permute. Same saturation: signed to int16,
   then int16 to uint8 clamping below at 0 (as max(v, 0) then the unsigned narrowing did). */
__attribute__((target("avx512f,avx512bw")))
static void vrow_avx512(const float *H0, const float *H1, uint8_t *D, int n, float beta) {
    __m512 b = _mm512_set1_ps(beta);
    __m512i zero = _mm512_setzero_si512();
    const __m512i order = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
    int e = 0;
    for (; e + 64 <= n; e += 64) {
        __m512i v[4];
        for (int q = 0; q < 4; q++) {
            __m512 h0 = _mm512_loadu_ps(H0 + e + 16 * q);
            v[q] = _mm512_cvtps_epi32(_mm512_fmadd_ps(b, _mm512_sub_ps(_mm512_loadu_ps(H1 + e + 16 * q), h0), h0));
        }
        __m512i out = _mm512_packus_epi16(_mm512_packs_epi32(v[0], v[1]), _mm512_packs_epi32(v[2], v[3]));
        _mm512_storeu_si512(D + e, _mm512_permutexvar_epi32(order, out));
    }
    for (; e + 16 <= n; e += 16) {
        __m512 h0 = _mm512_loadu_ps(H0 + e);
        __m512i v = _mm512_cvtps_epi32(_mm512_fmadd_ps(b, _mm512_sub_ps(_mm512_loadu_ps(H1 + e), h0), h0));
        _mm_storeu_si128((__m128i *)(D + e), _mm512_cvtusepi32_epi8(_mm512_max_epi32(v, zero)));
    }
    vrow_scalar(H0 + e, H1 + e, D + e, n - e, beta);
}

/* n bytes of v at d, the whole cache lines among them streamed (no read for ownership of lines nobody reads
   before the batch is consumed); the caller fences before returning. */
__attribute__((target("avx512f")))
static void fill_stream(uint8_t *d, int v, size_t n) {
    size_t head = (0 - (uintptr_t)d) & 63;
    if (head >= n) {
        memset(d, v, n);
        return;
    }
    memset(d, v, head);
    __m512i z = _mm512_set1_epi8((char)v);
    size_t i = head;
    for (; i + 64 <= n; i += 64) _mm512_stream_si512((void *)(d + i), z);
    memset(d + i, v, n - i);
}
#endif

/* n bytes of v at d: streamed where the AVX-512 code runs (vec), else memset. */
static void fill(uint8_t *d, int v, size_t n, int vec) {
#ifdef HAVE_X86
    if (vec) {
        fill_stream(d, v, n);
        return;
    }
#endif
    memset(d, v, n);
}

int warp_vector(void) { return cpu_avx512_vbmi(); }

/* OpenCV's inversion of a forward 2x3 matrix (imgwarp.cpp, warpAffine without WARP_INVERSE_MAP), in double. */
static void warp_invert(const double *M, double *A) {
    double D = M[0] * M[4] - M[1] * M[3];
    D = D != 0 ? 1. / D : 0;
    double A11 = M[4] * D, A22 = M[0] * D;
    A[0] = A11, A[1] = M[1] * -D, A[3] = M[3] * -D, A[4] = A22;
    A[2] = -A[0] * M[2] - A[1] * M[5];
    A[5] = -A[3] * M[2] - A[4] * M[5];
}

/* dst (H, W, 3) from the window (see window_t; n <= MAX_SEGS pastes) through the forward matrix M (2x3, window
   pixel -> output pixel, M[1] = M[3] = 0). fma_y: the coordinates a t + b in one rounding (as an OpenCV build
   compiled with FMA contraction would compute them). box (Y0, Y1, X0, X1): the output pixels that can see a
   tile; every pixel outside it is FILL in OpenCV's warp, and is written without being computed: FILL beside the
   box, the byte outer in the rows above and below it (the painters pass the colour FILL takes after HSV, which
   then runs on the box's rows only: ~20 % of a mosaic's output rows at 896 px see no tile). vec: the AVX-512
   code. finish (NULL: none): the colour step (hsv.c's hsv_apply, its address passed by the caller; lut, tlo,
   thi, to_rgb, ffma its arguments, tlo and thi in output columns) run on the box's rows BAND at a time, from a
   band buffer the warp writes into (it stays in the cache) to dst: the warp's bytes are never written to the
   (cold) batch buffer and read back (1.50 vs 1.70 ms per 896 px sample for warp + HSV, 96 real mosaics);
   outer is then also written beside the box. 0 on success, -1 out of memory, -2 a matrix with rotation or
   shear, -3 more pastes than MAX_SEGS. */
typedef void (*finish_t)(const uint8_t *src, long sstep, uint8_t *dst, long dstep, int rows, int cols,
                         const uint8_t *lut, int tlo, int thi, int to_rgb, int fma);
#define BAND 16  /* rows warped into a cache-resident band before the finish step reads them */

int warp_scaled(uint8_t *dst, long dstep, int H, int W, const double *M, int fma_y, int wh, int ww, int n,
                const uint8_t *const *ptr, const long *step, const int32_t *rect, const int32_t *box, int outer,
                int vec, finish_t finish, const uint8_t *lut, int tlo, int thi, int to_rgb, int ffma) {
    int Y0 = box[0] < 0 ? 0 : box[0], Y1 = box[1] > H ? H : box[1];
    int X0 = box[2] < 0 ? 0 : box[2], X1 = box[3] > W ? W : box[3];
    if (X1 <= X0 || Y1 <= Y0) Y0 = Y1 = 0;
    double A[6];
    warp_invert(M, A);
    if (A[1] != 0 || A[3] != 0) return -2;
    if (n > MAX_SEGS) return -3;
    window_t win = {wh, ww, n, ptr, step, rect};
    int32_t *ix = malloc(sizeof(int32_t) * (size_t)W);
    float *alpha = malloc(sizeof(float) * (size_t)W);
    int Wp = (3 * W + 63) / 64 * 64;
    float *rows = aligned_alloc(64, sizeof(float) * 2 * (size_t)Wp);
    long bstep = Wp;  /* bytes per band row: 3 W rounded up to a cache line */
    uint8_t *band = finish ? aligned_alloc(64, (size_t)bstep * BAND) : NULL;
    if (!ix || !alpha || !rows || (finish && !band)) {
        free(ix); free(alpha); free(rows); free(band);
        return -1;
    }
    int side = finish ? outer : FILL, b0 = Y0;
    for (int x = 0; x < W; x++) {  /* A1 = 0: the row adds nothing */
        double sx = fma_y ? fma(A[0], (double)x, A[2]) : A[0] * x + A[2];
        double f = floor(sx);
        ix[x] = (int32_t)f;
        alpha[x] = (float)(sx - f);
    }
#ifdef HAVE_X86
    int nch = W / 16;
    chunk_t *ch = NULL;
    if (vec) {
        ch = aligned_alloc(64, sizeof(chunk_t) * (size_t)(nch + 1));
        if (!ch) {
            free(ix); free(alpha); free(rows); free(band);
            return -1;
        }
        for (int c = 0; c < nch; c++) {
            chunk_t *k = ch + c;
            memset(k, 0, sizeof(*k));
            int lo = ix[16 * c], hi = ix[16 * c];
            for (int x = 16 * c; x < 16 * c + 16; x++) {
                lo = ix[x] < lo ? ix[x] : lo;
                hi = ix[x] > hi ? ix[x] : hi;
            }
            k->lo = lo, k->hi = hi + 1;
            k->scalar = 3L * (k->hi - lo) + 2 >= 126;
            for (int e = 0; e < 48; e++) {
                int x = 16 * c + e / 3, q = e % 3;
                k->idx[0][e / 16][4 * (e % 16)] = (uint8_t)(k->scalar ? 0 : 3 * (ix[x] - lo) + q);
                k->idx[1][e / 16][4 * (e % 16)] = (uint8_t)(k->scalar ? 0 : 3 * (ix[x] + 1 - lo) + q);
                k->alpha[e] = alpha[x];
            }
        }
    }
#else
    vec = 0;
#endif
    float *Hr[2] = {rows, rows + Wp};
    int have[2] = {INT32_MIN, INT32_MIN};
    seg_t s[MAX_SEGS];
    for (int y = 0; y < H; y++) {
        uint8_t *D = dst + (long)y * dstep;
        if (y < Y0 || y >= Y1) {
            fill(D, outer, 3 * (size_t)W, vec);
            continue;
        }
        double sy = fma_y ? fma(A[4], (double)y, A[5]) : A[4] * y + A[5];  /* A3 = 0: the column adds nothing */
        double f = floor(sy);
        int r = (int)f;
        float beta = (float)(sy - f);
        int slot[2];
        for (int t = 0; t < 2; t++) {  /* rows r and r + 1, each interpolated once while consecutive outputs use it */
            int want = r + t, hit = have[0] == want ? 0 : have[1] == want ? 1 : -1;
            if (hit < 0) {
                hit = t == 1 ? 1 - slot[0] : have[0] == r + 1 ? 1 : 0;
                int m = row_segs(&win, want, s);
#ifdef HAVE_X86
                if (vec)
                    hrow_avx512(s, m, Hr[hit], ch, nch, ix, alpha, W);
                else
#endif
                    hrow_scalar(s, m, Hr[hit], ix, alpha, 0, W);
                have[hit] = want;
            }
            slot[t] = hit;
        }
        long e0 = 3L * X0;
        uint8_t *T = finish ? band + (long)(y - b0) * bstep : D;
#ifdef HAVE_X86
        if (vec)
            vrow_avx512(Hr[slot[0]] + e0, Hr[slot[1]] + e0, T + e0, 3 * (X1 - X0), beta);
        else
#endif
            vrow_scalar(Hr[slot[0]] + e0, Hr[slot[1]] + e0, T + e0, 3 * (X1 - X0), beta);
        fill(D, side, 3 * (size_t)X0, vec);
        fill(D + 3L * X1, side, 3 * (size_t)(W - X1), vec);
        if (finish && (y + 1 - b0 == BAND || y + 1 == Y1)) {
            finish(band + e0, bstep, dst + (long)b0 * dstep + e0, dstep, y + 1 - b0, X1 - X0, lut, tlo - X0, thi - X0,
                   to_rgb, ffma);
            b0 = y + 1;
        }
    }
#ifdef HAVE_X86
    free(ch);
    if (vec) _mm_sfence();  /* the streamed lines visible before the caller's next step (or thread) reads them */
#endif
    free(ix); free(alpha); free(rows); free(band);
    return 0;
}

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_warp", "see warp.c", -1, NULL};
PyMODINIT_FUNC PyInit__warp(void) { return PyModule_Create(&module); }
