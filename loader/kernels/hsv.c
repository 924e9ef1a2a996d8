/* Ultralytics' RandomHSV in one pass, bitwise: BGR -> HSV -> the three 256-entry tables -> BGR or RGB.

   Ultralytics runs cv2.cvtColor(BGR2HSV), cv2.LUT and cv2.cvtColor(HSV2BGR) over the whole image: three passes
   over 2.4 MB at 896 px (2.6 ms on one core here), the middle one a scalar table loop. This file computes the
   same bytes in one pass over 64-pixel blocks (AVX-512 VBMI: the tables are register permutations), ~2x faster.

   Same bytes means OpenCV's own arithmetic, which is not one function of the pixel:
   - BGR2HSV (8-bit) is integer arithmetic with OpenCV's division tables; its vector and scalar code agree.
   - HSV2BGR (8-bit) works in float32. OpenCV's vector code truncates the final x*255 and its scalar tail
     (the last pixels of a row that do not fill a vector block) rounds it, and the two compute the hue sector
     differently; the builds we checked contract a*b+c into FMA instructions. So a pixel's result depends on
     whether it fell in the vector part of its row in Ultralytics' full-frame call: the caller passes that range
     [tlo, thi) (see loader/kernels/hsv.py, which measures the vector block of the OpenCV at hand and checks
     this code against it before using it) and `fma`.
   Loaded with ctypes (which releases the GIL for the call); a Python module only so that pip builds it. */

#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

static int32_t SDIV[256], HDIV[256]; /* OpenCV's RGB2HSV_b tables: round((255 << 12) / i), round((180 << 12) / (6 i)) */

static void init_tables(void) {
    SDIV[0] = HDIV[0] = 0;
    for (int i = 1; i < 256; i++) {
        SDIV[i] = (int32_t)lrint((double)(255 << 12) / (1. * i));
        HDIV[i] = (int32_t)lrint((double)(180 << 12) / (6. * i));
    }
}

static inline float fnm1(float a, float b, int fma) { return fma ? fmaf(-a, b, 1.0f) : 1.0f - a * b; }

static inline uint8_t sat8(int32_t x) { return (uint8_t)(x < 0 ? 0 : x > 255 ? 255 : x); }

/* One pixel, any position: the scalar code of RGB2HSV_b, the tables, then HSV2RGB_simd + truncation (vec) or
   HSV2RGB_native + rounding (!vec). */
static inline void pixel(const uint8_t *p, uint8_t *q, const uint8_t *lut, int vec, int bi, int fma) {
    int b = p[0], g = p[1], r = p[2];
    int v = b > g ? b : g;
    v = v > r ? v : r;
    int vmin = b < g ? b : g;
    vmin = vmin < r ? vmin : r;
    int diff = v - vmin;
    int vr = v == r ? -1 : 0, vg = v == g ? -1 : 0;
    int s = (diff * SDIV[v] + (1 << 11)) >> 12;
    int h = (vr & (g - b)) + (~vr & ((vg & (b - r + 2 * diff)) + ((~vg) & (r - g + 4 * diff))));
    h = (h * HDIV[diff] + (1 << 11)) >> 12;
    h += h < 0 ? 180 : 0;
    const float hscale = 6.0f / 180;
    float hf = (float)lut[h], sf = (float)lut[256 + s] * (1.0f / 255.0f), vf = (float)lut[512 + v] * (1.0f / 255.0f);
    float ob, og, orr;
    int ib, ig, ir;
    if (vec) {
        hf = hf * hscale;
        float pre = (float)(int)hf;
        hf = hf - pre;
        float t0 = vf, t1 = vf * (1.0f - sf), t2 = vf * fnm1(sf, hf, fma), t3 = vf * fnm1(sf, 1.0f - hf, fma);
        float sec = pre - (float)(int)(pre * (1.0f / 6.0f)) * 6.0f;
        ob = sec < 2.0f ? t1 : t0; ob = sec == 2.0f ? t3 : ob; ob = sec > 4.0f ? t2 : ob;
        og = sec < 1.0f ? t3 : t0; og = sec == 3.0f ? t2 : og; og = sec > 3.0f ? t1 : og;
        orr = sec < 1.0f ? t0 : t1; orr = sec == 1.0f ? t2 : orr; orr = sec == 4.0f ? t3 : orr; orr = sec > 4.0f ? t0 : orr;
        ib = (int)(ob * 255.0f); ig = (int)(og * 255.0f); ir = (int)(orr * 255.0f);
    } else {
        if (sf == 0) {
            ob = og = orr = vf;
        } else {
            static const int sd[6][3] = {{1, 3, 0}, {1, 0, 2}, {3, 0, 1}, {0, 2, 1}, {0, 1, 3}, {2, 1, 0}};
            float tab[4];
            hf *= hscale;
            hf = fmodf(hf, 6.f);
            int sector = (int)floorf(hf);
            hf -= sector;
            if ((unsigned)sector >= 6u) { sector = 0; hf = 0.f; }
            tab[0] = vf; tab[1] = vf * (1.f - sf); tab[2] = vf * fnm1(sf, hf, fma); tab[3] = vf * fnm1(sf, 1.f - hf, fma);
            ob = tab[sd[sector][0]]; og = tab[sd[sector][1]]; orr = tab[sd[sector][2]];
        }
        ib = (int)lrintf(ob * 255.0f); ig = (int)lrintf(og * 255.0f); ir = (int)lrintf(orr * 255.0f);
    }
    q[bi] = sat8(ib); q[1] = sat8(ig); q[bi ^ 2] = sat8(ir);
}

static void row_scalar(const uint8_t *src, uint8_t *dst, int n, const uint8_t *lut, int tlo, int thi, int bi, int fma) {
    for (int x = 0; x < n; x++) pixel(src + 3 * x, dst + 3 * x, lut, x >= tlo && x < thi, bi, fma);
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_AVX512 1
#define TGT __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vbmi,fma,avx2")))

static uint8_t DI[3][2][64]; /* deinterleave: channel c of 64 pixels from bytes (0..127) and (64..191) */
static uint64_t DM[3];       /* lanes of channel c that come from the second permutation */
static uint8_t II[3][2][64]; /* interleave: output vector q from channels (0, 1), then channel 2 */
static uint64_t IM[3];       /* bytes of output vector q that are channel 2 */

static void init_shuffles(void) {
    for (int c = 0; c < 3; c++) {
        DM[c] = 0;
        for (int k = 0; k < 64; k++) {
            int j = 3 * k + c;
            DI[c][0][k] = (uint8_t)(j < 128 ? j : 0);
            DI[c][1][k] = (uint8_t)(j >= 128 ? j - 64 : 0);
            if (j >= 128) DM[c] |= 1ULL << k;
        }
    }
    for (int q = 0; q < 3; q++) {
        IM[q] = 0;
        for (int i = 0; i < 64; i++) {
            int j = 64 * q + i, ch = j % 3, lane = j / 3;
            II[q][0][i] = (uint8_t)(ch == 0 ? lane : ch == 1 ? 64 + lane : 0);
            II[q][1][i] = (uint8_t)lane;
            if (ch == 2) IM[q] |= 1ULL << i;
        }
    }
}

/* a 256-entry byte table (4 registers) at 64 indexes */
TGT static inline __m512i lut256(__m512i idx, const __m512i *T) {
    __m512i lo = _mm512_permutex2var_epi8(T[0], idx, T[1]);
    __m512i hi = _mm512_permutex2var_epi8(T[2], idx, T[3]);
    return _mm512_mask_blend_epi8(_mm512_movepi8_mask(idx), lo, hi);
}

TGT static inline __m512i widen(const uint8_t *p, int i) { /* bytes 16 i .. 16 i + 15 of p (64-aligned) as int32:
                                                             one load-and-widen, no lane extract */
    return _mm512_cvtepu8_epi32(_mm_load_si128((const __m128i *)(p + 16 * i)));
}

TGT static inline __m512i narrow(const __m512i *a) { /* four int32 vectors (values 0..255) as 64 bytes */
    const __m512i idx = _mm512_set_epi8(124, 120, 116, 112, 108, 104, 100, 96, 92, 88, 84, 80, 76, 72, 68, 64, 60, 56,
                                        52, 48, 44, 40, 36, 32, 28, 24, 20, 16, 12, 8, 4, 0, 124, 120, 116, 112, 108,
                                        104, 100, 96, 92, 88, 84, 80, 76, 72, 68, 64, 60, 56, 52, 48, 44, 40, 36, 32,
                                        28, 24, 20, 16, 12, 8, 4, 0); /* byte 0 of each dword of two vectors */
    __m512i lo = _mm512_permutex2var_epi8(a[0], idx, a[1]), hi = _mm512_permutex2var_epi8(a[2], idx, a[3]);
    return _mm512_mask_blend_epi64(0xF0, lo, hi);
}

static int use_rcp; /* the quotients below by reciprocal: set where it equals the division for every byte */

/* round(c / x) for x = 0..255 (as float32) as int32, where OpenCV divides in double (its tables): the float32
   quotient, rounded to nearest, gives the same integers (checked over all 2^24 colours by the tests). The
   division is HSV's slowest instruction; a 14-bit reciprocal refined by one Newton step gives the same integers
   on this CPU's reciprocal (hsv_vector() checks every x for both constants first and keeps the division where
   one differs; x = 0 gives INT_MIN either way): 3-4 % of the step's time. */
TGT static inline __m512i quotient_by(float c, __m512 x, int rcp) {
    __m512 q;
    if (rcp) {
        __m512 r = _mm512_rcp14_ps(x);
        q = _mm512_mul_ps(_mm512_set1_ps(c), _mm512_mul_ps(r, _mm512_fnmadd_ps(x, r, _mm512_set1_ps(2.0f))));
    } else {
        q = _mm512_div_ps(_mm512_set1_ps(c), x);
    }
    return _mm512_cvt_roundps_epi32(q, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}

#define quotient(c, x) quotient_by(c, x, use_rcp)

/* Whether the reciprocal gives the division's integers for every byte x and both constants. */
TGT static int rcp_exact(void) {
    const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    for (int x = 0; x < 256; x += 16) {
        __m512 v = _mm512_cvtepi32_ps(_mm512_add_epi32(_mm512_set1_epi32(x), lane));
        for (int k = 0; k < 2; k++) {
            float c = k ? 122880.0f : 1044480.0f;
            if (_mm512_cmpneq_epi32_mask(quotient_by(c, v, 1), quotient_by(c, v, 0))) return 0;
        }
    }
    return 1;
}

/* 64 pixels, all in the vector part: RGB2HSV_b's vector arithmetic (the division tables as IEEE float32
   quotients rounded to nearest, which equal OpenCV's double ones for every index: checked over all 2^24 colours
   by tests/unit/kernels/test_hsv_native.py), the tables, HSV2RGB_simd + truncation.
   Steps OpenCV takes that cannot change a byte here are left out: the guards against v == 0 and diff == 0 (a
   division by zero converts to INT_MIN, multiplied by a numerator that is then 0), the clamp of the products
   to 0..255 (each is v, v (1 - s) or v (1 - s f) with 0 <= s <= 1 and 0 <= f < 1 in float32, v' = 255 giving
   exactly 1.0f: truncated x 255 they stay in 0..255), and, where every hue table entry is below 180
   (Ultralytics' tables: x % 180), the reduction of the sector modulo 6 (it is already 0..5). The choice of product
   per channel by sector is made after the truncation, on bytes (the same choice, 64 lanes per instruction). */
TGT static void block64(const uint8_t *src, uint8_t *dst, const __m512i *T, int bi, int fma, int hue180) {
    __m512i z0 = _mm512_loadu_si512(src), z1 = _mm512_loadu_si512(src + 64), z2 = _mm512_loadu_si512(src + 128);
    __m512i ch[3];
    for (int c = 0; c < 3; c++) {
        __m512i a = _mm512_permutex2var_epi8(z0, _mm512_loadu_si512(DI[c][0]), z1);
        __m512i b = _mm512_permutex2var_epi8(z1, _mm512_loadu_si512(DI[c][1]), z2);
        ch[c] = _mm512_mask_blend_epi8(DM[c], a, b);
    }
    __m512i B = ch[0], G = ch[1], R = ch[2];
    __m512i V = _mm512_max_epu8(B, _mm512_max_epu8(G, R));
    __m512i D = _mm512_sub_epi8(V, _mm512_min_epu8(B, _mm512_min_epu8(G, R)));
    __mmask64 mr = _mm512_cmpeq_epi8_mask(V, R), mg = _mm512_cmpeq_epi8_mask(V, G);
    uint8_t pl[5][64] __attribute__((aligned(64))); /* the planes, widened 16 at a time from memory */
    _mm512_store_si512(pl[0], V); _mm512_store_si512(pl[1], D); _mm512_store_si512(pl[2], B);
    _mm512_store_si512(pl[3], G); _mm512_store_si512(pl[4], R);
    const __m512i half = _mm512_set1_epi32(1 << 11), zi = _mm512_setzero_si512();
    __m512i hq[4], sq[4];
    for (int i = 0; i < 4; i++) {
        __m512i v = widen(pl[0], i), d = widen(pl[1], i), b = widen(pl[2], i), g = widen(pl[3], i), r = widen(pl[4], i);
        __m512 vf = _mm512_cvtepi32_ps(v), df = _mm512_cvtepi32_ps(d);
        __m512i sdiv = quotient(1044480.0f, vf), hdiv = quotient(122880.0f, df);
        sq[i] = _mm512_srai_epi32(_mm512_add_epi32(_mm512_mullo_epi32(d, sdiv), half), 12);
        __mmask16 r16 = (__mmask16)(mr >> (16 * i)), g16 = (__mmask16)(mg >> (16 * i));
        __m512i hr = _mm512_sub_epi32(g, b);
        __m512i hg = _mm512_add_epi32(_mm512_sub_epi32(b, r), _mm512_slli_epi32(d, 1));
        __m512i hb = _mm512_add_epi32(_mm512_sub_epi32(r, g), _mm512_slli_epi32(d, 2));
        __m512i h = _mm512_mask_blend_epi32(r16, _mm512_mask_blend_epi32(g16, hb, hg), hr);
        h = _mm512_srai_epi32(_mm512_add_epi32(_mm512_mullo_epi32(h, hdiv), half), 12);
        hq[i] = _mm512_mask_add_epi32(h, _mm512_cmplt_epi32_mask(h, zi), h, _mm512_set1_epi32(180));
    }
    __m512i H2 = lut256(narrow(hq), T), V2 = lut256(V, T + 8);
    _mm512_store_si512(pl[0], H2);
    _mm512_store_si512(pl[1], lut256(narrow(sq), T + 4));
    _mm512_store_si512(pl[2], V2);
    const __m512 one = _mm512_set1_ps(1.0f), k255 = _mm512_set1_ps(255.0f), inv255 = _mm512_set1_ps(1.0f / 255.0f);
    __m512i q1[4], q2[4], q3[4];
    for (int i = 0; i < 4; i++) {
        __m512 h = _mm512_cvtepi32_ps(widen(pl[0], i));
        __m512 s = _mm512_mul_ps(_mm512_cvtepi32_ps(widen(pl[1], i)), inv255);
        __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(widen(pl[2], i)), inv255);
        h = _mm512_mul_ps(h, _mm512_set1_ps(6.0f / 180));
        __m512 pre = _mm512_cvtepi32_ps(_mm512_cvttps_epi32(h));
        h = _mm512_sub_ps(h, pre);
        __m512 t1 = _mm512_mul_ps(v, _mm512_sub_ps(one, s)), t2, t3;
        if (fma) {
            t2 = _mm512_mul_ps(v, _mm512_fnmadd_ps(s, h, one));
            t3 = _mm512_mul_ps(v, _mm512_fnmadd_ps(s, _mm512_sub_ps(one, h), one));
        } else {
            t2 = _mm512_mul_ps(v, _mm512_sub_ps(one, _mm512_mul_ps(s, h)));
            t3 = _mm512_mul_ps(v, _mm512_sub_ps(one, _mm512_mul_ps(s, _mm512_sub_ps(one, h))));
        }
        q1[i] = _mm512_cvttps_epi32(_mm512_mul_ps(t1, k255));
        q2[i] = _mm512_cvttps_epi32(_mm512_mul_ps(t2, k255));
        q3[i] = _mm512_cvttps_epi32(_mm512_mul_ps(t3, k255));
    }
    /* Each output channel is one of v, v (1 - s), v (1 - s f), v (1 - s (1 - f)) by the hue's sector: truncated x 255
       they are V2 (for every byte: trunc((v' / 255) 255) = v' in float32) and T1..T3, chosen here on 64 bytes at
       once. The sector (pre mod 6, pre = trunc(h' (6 / 180)) = h' div 30 for every byte) from byte compares. */
    __m512i T1 = narrow(q1), T2 = narrow(q2), T3 = narrow(q3);
    __m512i hm = hue180 ? H2 : _mm512_mask_sub_epi8(H2, _mm512_cmpge_epu8_mask(H2, _mm512_set1_epi8((char)180)), H2,
                                                    _mm512_set1_epi8((char)180));
    __mmask64 l1 = _mm512_cmplt_epu8_mask(hm, _mm512_set1_epi8(30)), l2 = _mm512_cmplt_epu8_mask(hm, _mm512_set1_epi8(60));
    __mmask64 l3 = _mm512_cmplt_epu8_mask(hm, _mm512_set1_epi8(90));
    __mmask64 l4 = _mm512_cmplt_epu8_mask(hm, _mm512_set1_epi8(120));
    __mmask64 l5 = _mm512_cmplt_epu8_mask(hm, _mm512_set1_epi8((char)150));
    __mmask64 e1 = l2 & ~l1, e2 = l3 & ~l2, e3 = l4 & ~l3, e4 = l5 & ~l4, gt3 = ~l4, gt4 = ~l5;
    __m512i cb = _mm512_mask_blend_epi8(l2, V2, T1);
    cb = _mm512_mask_blend_epi8(e2, cb, T3);
    cb = _mm512_mask_blend_epi8(gt4, cb, T2);
    __m512i cg = _mm512_mask_blend_epi8(l1, V2, T3);
    cg = _mm512_mask_blend_epi8(e3, cg, T2);
    cg = _mm512_mask_blend_epi8(gt3, cg, T1);
    __m512i cr = _mm512_mask_blend_epi8(l1, T1, V2);
    cr = _mm512_mask_blend_epi8(e1, cr, T2);
    cr = _mm512_mask_blend_epi8(e4, cr, T3);
    cr = _mm512_mask_blend_epi8(gt4, cr, V2);
    __m512i c0 = bi ? cr : cb, c2 = bi ? cb : cr;
    for (int q = 0; q < 3; q++) {
        __m512i a = _mm512_permutex2var_epi8(c0, _mm512_loadu_si512(II[q][0]), cg);
        a = _mm512_mask_permutexvar_epi8(a, IM[q], _mm512_loadu_si512(II[q][1]), c2);
        _mm512_storeu_si512(dst + 64 * q, a);
    }
}

TGT static void row_avx512(const uint8_t *src, uint8_t *dst, int n, const uint8_t *lut, int tlo, int thi, int bi,
                           int fma, int hue180) {
    __m512i T[12];
    for (int i = 0; i < 12; i++) T[i] = _mm512_loadu_si512(lut + 64 * i);
    int x = 0;
    while (x < n) {
        if (x >= tlo && x + 64 <= thi && x + 64 <= n) { /* never past the row's n pixels */
            block64(src + 3 * x, dst + 3 * x, T, bi, fma, hue180);
            x += 64;
            continue;
        }
        if (x >= tlo && n <= thi) { /* the row's last < 64 pixels, all vector columns, where a whole block would
                                       pass the frame's vector part (a box ending at its right edge): one block on
                                       a copy instead of the per-pixel code (~25x the time per pixel) */
            uint8_t tmp[192] __attribute__((aligned(64))) = {0};
            memcpy(tmp, src + 3 * x, 3 * (size_t)(n - x));
            block64(tmp, tmp, T, bi, fma, hue180);
            memcpy(dst + 3 * x, tmp, 3 * (size_t)(n - x));
            break;
        }
        int e = x + 64 <= n ? x + 64 : n;
        if (x < tlo && e > tlo) e = tlo; /* the vector range starts here: blocks from its start */
        row_scalar(src + 3 * x, dst + 3 * x, e - x, lut, tlo - x, thi - x, bi, fma);
        x = e;
    }
}

static int has_avx512(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("fma");
}
#else
#define HAVE_AVX512 0
#endif

static int use_vector = -1;

/* 1 when the 64-pixel vector blocks run on this CPU; 0: the per-pixel code only (exact too, slower than OpenCV). */
int hsv_vector(void) {
    if (use_vector < 0) {
        init_tables();
#if HAVE_AVX512
        init_shuffles();
        use_vector = has_avx512();
        use_rcp = use_vector && rcp_exact();
#else
        use_vector = 0;
#endif
    }
    return use_vector;
}

/* rows x cols pixels; lut: 768 bytes, the hue, saturation and value tables; [tlo, thi): the columns OpenCV's
   HSV2BGR would have converted in its vector code; to_rgb: write RGB instead of BGR; src may be dst. */
void hsv_apply(const uint8_t *src, long sstep, uint8_t *dst, long dstep, int rows, int cols, const uint8_t *lut,
               int tlo, int thi, int to_rgb, int fma) {
    int vec = hsv_vector();
    int bi = to_rgb ? 2 : 0;
    int hue180 = 1; /* every hue table entry below 180: the vector blocks skip the sector's modulo 6 */
    for (int i = 0; i < 256; i++) hue180 &= lut[i] < 180;
    for (int y = 0; y < rows; y++) {
#if HAVE_AVX512
        if (vec) {
            row_avx512(src + y * sstep, dst + y * dstep, cols, lut, tlo, thi, bi, fma, hue180);
            continue;
        }
#endif
        row_scalar(src + y * sstep, dst + y * dstep, cols, lut, tlo, thi, bi, fma);
    }
}

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_hsv", "see hsv.c; called through ctypes", -1, NULL};

PyMODINIT_FUNC PyInit__hsv(void) { return PyModule_Create(&module); }
