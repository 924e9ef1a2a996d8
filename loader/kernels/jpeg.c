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

#ifndef JCS_EXTENSIONS
#error "needs libjpeg-turbo (JCS_EXT_BGR)"
#endif

enum { OK = 0, DECLINED_COLOR = 1, DECLINED_ORIENTATION = 2, DECLINED_WARNING = 3, DECLINED_ERROR = 4,
       DECLINED_SIZE = 5, NO_MEMORY = -1 };

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
} error_mgr;

static void on_error(j_common_ptr c) { longjmp(((error_mgr *)c->err)->jump, 1); }
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

/* Decode buf[0..n) scaled by 1/scale (1, 2, 4, 8) as BGR into out (h rows of step bytes, w * 3 used). */
int jpeg_decode_bgr(const uint8_t *buf, long n, int scale, uint8_t *out, long step, int h, int w) {
    struct jpeg_decompress_struct ci;
    error_mgr err;
    JSAMPROW *volatile rows = NULL;  /* volatile: read after a longjmp */
    volatile int status = DECLINED_ERROR;
    ci.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = on_error;
    err.pub.output_message = no_output;
    jpeg_create_decompress(&ci);
    if (setjmp(err.jump)) {
        free(rows);
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
    if (status == OK) {
        rows = malloc(sizeof(JSAMPROW) * (size_t)h);
        if (!rows) status = NO_MEMORY;
    }
    if (status != OK) {
        jpeg_destroy_decompress(&ci);
        return status;
    }
    for (int y = 0; y < h; y++) rows[y] = out + (long)y * step;
    status = DECLINED_ERROR;  /* what a longjmp from here on means */
    jpeg_start_decompress(&ci);
    while (ci.output_scanline < ci.output_height)
        jpeg_read_scanlines(&ci, rows + ci.output_scanline, ci.output_height - ci.output_scanline);
    jpeg_finish_decompress(&ci);
    status = err.pub.num_warnings ? DECLINED_WARNING : OK;
    free(rows);
    jpeg_destroy_decompress(&ci);
    return status;
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
