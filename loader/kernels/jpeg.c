/* JPEG decode through libjpeg-turbo straight into the caller's array: cv2.imdecode's bytes, ~20 % less time.

   cv2.imdecode is ~6 ms of a painter thread's ~10 ms per uncached image here. OpenCV decodes with its own
   libjpeg-turbo build (3.1 in opencv-python 5.1) one scanline per call, through a row buffer, then copies each row
   into the Mat (`rep movsq`: 12 % of its decode time in perf). Reading the scanlines straight into the output
   array with the system libjpeg-turbo (2.1 here) measured 4.5 instead of 5.5 ms per 1920x1080 frame, one thread.

   The pixels are the same: libjpeg-turbo's default decode (islow IDCT, fancy upsampling, YCbCr -> BGR in its
   JCS_EXT_BGR path) is integer arithmetic that the versions share; loader/kernels/jpeg.py compares the two on
   test images (4:2:0, 4:2:2, 4:4:4, grey, progressive, restart markers, odd sizes, DCT scaling) before using
   this code, and the tests compare them on more. What this code does not do as OpenCV does, it declines, and
   the caller hands the image to cv2.imdecode: colour spaces other than grey/YCbCr/RGB (CMYK, YCCK), an EXIF
   orientation other than 1 (or EXIF it cannot read), a stream libjpeg warns about (corrupt or truncated data:
   OpenCV's handling of it is OpenCV's), any libjpeg error, and a size other than the caller expected.
   Loaded with ctypes (which releases the GIL for the call); a Python module only so that pip builds it. */

#include <Python.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

#define RESIZE_NO_MODULE  /* the load-time resize's code, for the decode-and-resize path; its own module is _resize */
#include "resize.c"

#ifndef JCS_EXTENSIONS
#error "needs libjpeg-turbo (JCS_EXT_BGR)"
#endif

enum { OK = 0, DECLINED_COLOR = 1, DECLINED_ORIENTATION = 2, DECLINED_WARNING = 3, DECLINED_ERROR = 4,
       DECLINED_SIZE = 5, NO_MEMORY = -1 };

typedef struct {
    struct jpeg_error_mgr pub;
    sigjmp_buf jump;  /* sigsetjmp(.., 0): no signal-mask syscall (ring_row sets it per row) */
} error_mgr;

static void on_error(j_common_ptr c) { siglongjmp(((error_mgr *)c->err)->jump, 1); }
static void no_output(j_common_ptr c) { (void)c; }  /* warnings are counted (num_warnings), not printed */

static unsigned get16(const uint8_t *p, int le) { return le ? p[0] | p[1] << 8 : p[0] << 8 | p[1]; }
static uint32_t get32(const uint8_t *p, int le) {
    return le ? (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24
              : (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* The EXIF orientation in an APP1 payload: 1 where there is no Exif block or no orientation tag; 0 where the
   block cannot be read (the caller declines: OpenCV's reader decides what such a file means). */
static int exif_orientation(const uint8_t *d, unsigned n) {
    if (n < 6 || memcmp(d, "Exif\0\0", 6) != 0) return 1;
    d += 6, n -= 6;
    if (n < 8) return 0;
    int le = d[0] == 'I' && d[1] == 'I';
    if (!le && !(d[0] == 'M' && d[1] == 'M')) return 0;
    if (get16(d + 2, le) != 42) return 0;
    uint32_t ifd = get32(d + 4, le);
    if (ifd > n - 2 || ifd < 8) return 0;
    unsigned count = get16(d + ifd, le);
    if ((uint64_t)ifd + 2 + 12ull * count > n) return 0;
    for (unsigned i = 0; i < count; i++) {
        const uint8_t *e = d + ifd + 2 + 12 * i;
        if (get16(e, le) == 0x0112) return get16(e + 2, le) == 3 ? (int)get16(e + 8, le) : 0;
    }
    return 1;
}

#define RING 32   /* rows of the decode-and-resize ring; RING / 2 read per libjpeg call */

typedef struct {
    struct jpeg_decompress_struct *ci;
    error_mgr *err;
    uint8_t *ring;      /* RING rows of step bytes, then a row of zeros (served after a libjpeg error) */
    long step;
    int failed;
} ring_rows;

static void read_into_ring(ring_rows *r, int upto) {
    JSAMPROW rows[RING / 2];
    while ((int)r->ci->output_scanline <= upto && r->ci->output_scanline < r->ci->output_height) {
        int d = (int)r->ci->output_scanline, k = (int)r->ci->output_height - d;
        if (k > RING / 2) k = RING / 2;
        for (int i = 0; i < k; i++) rows[i] = r->ring + (long)((d + i) % RING) * r->step;
        jpeg_read_scanlines(r->ci, rows, (JDIMENSION)k);
    }
}

/* resize.c's row source: decode on until row y is in the ring. The resize asks for rows in order, at most two
   back (RING / 2 new rows never overwrite those). A libjpeg error here is caught here: the resize finishes on
   zero rows and the caller declines. */
static const uint8_t *ring_row(void *ctx, int y) {
    ring_rows *r = ctx;
    if (!r->failed) {
        if (sigsetjmp(r->err->jump, 0)) {
            r->failed = 1;
        } else {
            read_into_ring(r, y);
            return r->ring + (long)(y % RING) * r->step;
        }
    }
    return r->ring + (long)RING * r->step;
}

/* Decode buf[0..n) scaled by 1/scale (1, 2, 4, 8) as BGR, (h, w) expected: into out (h rows of step bytes), or,
   where dst is given, through the load-time resize (resize.c, vec: its AVX-512 code) into dst (dh rows of dstep
   bytes, dw * 3 used), the decoded rows passing through a ring of RING rows that stays in cache. */
static int decode(const uint8_t *buf, long n, int scale, int h, int w, uint8_t *out, long step, uint8_t *dst,
                  long dstep, int dh, int dw, int vec) {
    struct jpeg_decompress_struct ci;
    error_mgr err;
    JSAMPROW *volatile rows = NULL;  /* volatile: read after a longjmp */
    uint8_t *volatile ring = NULL;
    volatile int status = DECLINED_ERROR;
    ci.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = on_error;
    err.pub.output_message = no_output;
    jpeg_create_decompress(&ci);
    if (sigsetjmp(err.jump, 0)) {
        free(rows);
        free(ring);
        jpeg_destroy_decompress(&ci);
        return status;
    }
    jpeg_mem_src(&ci, buf, (unsigned long)n);
    jpeg_save_markers(&ci, JPEG_APP0 + 1, 0xFFFF);
    jpeg_read_header(&ci, TRUE);
    status = OK;
    if (ci.num_components != 1 && ci.num_components != 3) status = DECLINED_COLOR;
    else if (ci.jpeg_color_space != JCS_GRAYSCALE && ci.jpeg_color_space != JCS_YCbCr && ci.jpeg_color_space != JCS_RGB)
        status = DECLINED_COLOR;
    for (jpeg_saved_marker_ptr m = ci.marker_list; m && status == OK; m = m->next)
        if (m->marker == JPEG_APP0 + 1 && exif_orientation(m->data, m->data_length) != 1) status = DECLINED_ORIENTATION;
    if (status == OK) {
        ci.out_color_space = JCS_EXT_BGR;
        ci.scale_num = 1;
        ci.scale_denom = (unsigned)scale;
        jpeg_calc_output_dimensions(&ci);
        if ((int)ci.output_width != w || (int)ci.output_height != h || ci.output_components != 3)
            status = DECLINED_SIZE;
    }
    long rstep = ((long)w * 3 + 63) / 64 * 64;
    if (status == OK) {
        if (dst) ring = calloc((size_t)(RING + 1) * (size_t)rstep, 1);
        else rows = malloc(sizeof(JSAMPROW) * (size_t)h);
        if (!rows && !ring) status = NO_MEMORY;
    }
    if (status != OK) {
        jpeg_destroy_decompress(&ci);
        return status;
    }
    status = DECLINED_ERROR;  /* what a longjmp from here on means */
    jpeg_start_decompress(&ci);
    if (dst) {
        ring_rows r = {&ci, &err, ring, rstep, 0};
        if (resize_linear_rows(ring_row, &r, h, w, dst, dstep, dh, dw, 3, vec) != 0) status = NO_MEMORY;
        if (r.failed || status == NO_MEMORY) {
            free(ring);
            jpeg_destroy_decompress(&ci);
            return r.failed ? DECLINED_ERROR : NO_MEMORY;
        }
        if (sigsetjmp(err.jump, 0)) {  /* ring_row's jump is gone with its frame */
            free(ring);
            jpeg_destroy_decompress(&ci);
            return DECLINED_ERROR;
        }
        read_into_ring(&r, h);  /* the rows the resize did not need: libjpeg finishes only after all of them */
    } else {
        for (int y = 0; y < h; y++) rows[y] = out + (long)y * step;
        while (ci.output_scanline < ci.output_height)
            jpeg_read_scanlines(&ci, rows + ci.output_scanline, ci.output_height - ci.output_scanline);
    }
    jpeg_finish_decompress(&ci);
    status = err.pub.num_warnings ? DECLINED_WARNING : OK;
    free(rows);
    free(ring);
    jpeg_destroy_decompress(&ci);
    return status;
}

/* The decoded (h, w) BGR image into out (h rows of step bytes): cv2.imdecode's bytes, or a reason code. */
int jpeg_decode_bgr(const uint8_t *buf, long n, int scale, uint8_t *out, long step, int h, int w) {
    return decode(buf, n, scale, h, w, out, step, NULL, 0, 0, 0, 0);
}

/* The decoded (h, w) image resized to (dh, dw) into dst: cv2.resize(cv2.imdecode(...), INTER_LINEAR)'s bytes where
   resize.c's code (vec: AVX-512) gives cv2.resize's, or a reason code. */
int jpeg_decode_resize_bgr(const uint8_t *buf, long n, int scale, int h, int w, uint8_t *dst, long dstep, int dh,
                           int dw, int vec) {
    return decode(buf, n, scale, h, w, NULL, 0, dst, dstep, dh, dw, vec);
}

/* The libjpeg-turbo this was built against, e.g. 2001005 for 2.1.5 (0 where its headers do not say). */
int jpeg_turbo_version(void) {
#ifdef LIBJPEG_TURBO_VERSION_NUMBER
    return LIBJPEG_TURBO_VERSION_NUMBER;
#else
    return 0;
#endif
}

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_jpeg", "see jpeg.c", -1, NULL};
PyMODINIT_FUNC PyInit__jpeg(void) { return PyModule_Create(&module); }
