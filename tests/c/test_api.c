/*
 * test_api.c: exercises the whole C API of libsempart.so, the success paths and every error
 * path, and prints one line per check ("ok" or "FAIL"). Exit status 0 only when every check
 * passed.
 *
 *   test_api [--quick] [--allow-missing-model] [--ort-missing] FIXTURES_DIR TMP_DIR
 *
 * FIXTURES_DIR holds tiny.onnx (and optionally foreign.onnx and future-version.onnx); TMP_DIR
 * is a writable folder for derived model files. --quick lowers the iteration counts (for
 * valgrind). Without tiny.onnx the checks that need a model fail, unless
 * --allow-missing-model is given, which skips them. --ort-missing runs only the checks of a
 * process whose first open names a missing ONNX Runtime library.
 *
 * Built and run by sdk/tests/c_api.rs:
 *   cc -std=c11 -Wall -Wextra -Werror -pedantic -Iinclude tests/c/test_api.c \
 *      -Ltarget/debug -lsempart -lpthread -Wl,-rpath,$PWD/target/debug
 */
#define _POSIX_C_SOURCE 200809L

#include "sempart.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- reporting ------------------------------------------------------------------------- */

static int g_checks;
static int g_failures;

static void report(int ok, int line, const char *fmt, ...) {
    va_list ap;
    g_checks++;
    if (!ok) {
        g_failures++;
    }
    printf("%s - ", ok ? "ok  " : "FAIL");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    if (!ok) {
        printf("  [test_api.c:%d]", line);
    }
    printf("\n");
    fflush(stdout);
}

#define CHECK(cond, ...) report((cond) ? 1 : 0, __LINE__, __VA_ARGS__)

static const char *status_name(int s) {
    static const char *const names[] = {
        "OK",           "NULL_ARGUMENT",         "INVALID_ARGUMENT",     "MODEL_NOT_FOUND",
        "MODEL_CORRUPT", "MODEL_FOREIGN",        "MODEL_UNSUPPORTED_VERSION",
        "PROVIDER_UNAVAILABLE", "RUNTIME_UNAVAILABLE", "INFERENCE_FAILED", "IO", "INTERNAL",
    };
    if (s < 0 || s >= (int)(sizeof names / sizeof names[0])) {
        return "?";
    }
    return names[s];
}

/* Checks the status of a call; after a failure the thread's last error message must be
 * non-empty and, when `needle` is not NULL, contain it (which proves it is this call's). */
static void expect(sempart_status got, sempart_status want, const char *needle, int line, const char *what) {
    const char *msg = sempart_last_error_message();
    int ok = got == want;
    if (want != SEMPART_STATUS_OK) {
        ok = ok && msg != NULL && msg[0] != '\0';
        if (needle != NULL) {
            ok = ok && msg != NULL && strstr(msg, needle) != NULL;
        }
        report(ok, line, "%s: %s (want %s): \"%s\"", what, status_name((int)got), status_name((int)want),
               msg ? msg : "(NULL)");
    } else {
        report(ok, line, "%s: %s%s%s", what, status_name((int)got), ok ? "" : ": ", ok ? "" : msg);
    }
}

#define EXPECT(call, want, needle, what) expect((call), (want), (needle), __LINE__, (what))

/* ---- files ----------------------------------------------------------------------------- */

static unsigned char *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    unsigned char *buf;
    long n;
    if (f == NULL) {
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return NULL;
    }
    buf = malloc((size_t)n + 1);
    if (buf != NULL && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *size = (size_t)n;
    return buf;
}

static int write_file(const char *path, const void *data, size_t size) {
    FILE *f = fopen(path, "wb");
    int ok;
    if (f == NULL) {
        return 0;
    }
    ok = fwrite(data, 1, size, f) == size;
    return fclose(f) == 0 && ok;
}

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* ---- a minimal protobuf walk, to derive foreign / future-version models from tiny.onnx -- */

static int pb_varint(const unsigned char *buf, size_t len, size_t *pos, uint64_t *out) {
    uint64_t v = 0;
    int shift;
    for (shift = 0; shift < 64 && *pos < len; shift += 7) {
        unsigned char b = buf[(*pos)++];
        v |= (uint64_t)(b & 0x7f) << shift;
        if ((b & 0x80) == 0) {
            *out = v;
            return 1;
        }
    }
    return 0;
}

static size_t pb_put_varint(unsigned char *out, uint64_t v) {
    size_t n = 0;
    do {
        unsigned char b = (unsigned char)(v & 0x7f);
        v >>= 7;
        out[n++] = (unsigned char)(b | (v ? 0x80 : 0));
    } while (v);
    return n;
}

/* Copies the top level of an ONNX ModelProto, dropping every metadata_props entry (field 14)
 * when `version` is NULL, or replacing the value of sempart.format_version by `version`. */
static unsigned char *rewrite_metadata(const unsigned char *in, size_t len, const char *version, size_t *out_len) {
    unsigned char *out = malloc(len + 64);
    size_t pos = 0, n = 0;
    const char *key = "sempart.format_version";
    if (out == NULL) {
        return NULL;
    }
    while (pos < len) {
        size_t start = pos;
        uint64_t tag, l = 0;
        if (!pb_varint(in, len, &pos, &tag)) {
            goto bad;
        }
        switch (tag & 7) {
            case 0:
                if (!pb_varint(in, len, &pos, &l)) {
                    goto bad;
                }
                break;
            case 1: pos += 8; break;
            case 5: pos += 4; break;
            case 2:
                if (!pb_varint(in, len, &pos, &l) || l > len - pos) {
                    goto bad;
                }
                pos += (size_t)l;
                break;
            default: goto bad;
        }
        if (pos > len) {
            goto bad;
        }
        if ((tag >> 3) == 14) {
            /* payload: field 1 = key, field 2 = value */
            const unsigned char *payload = in + pos - l;
            int is_version = l >= 2 + strlen(key) && payload[0] == 0x0a && payload[1] == strlen(key) &&
                             memcmp(payload + 2, key, strlen(key)) == 0;
            if (version == NULL) {
                continue; /* foreign: drop all metadata */
            }
            if (is_version) {
                unsigned char entry[128];
                size_t e = 0, klen = strlen(key), vlen = strlen(version);
                entry[e++] = 0x0a;
                entry[e++] = (unsigned char)klen;
                memcpy(entry + e, key, klen);
                e += klen;
                entry[e++] = 0x12;
                entry[e++] = (unsigned char)vlen;
                memcpy(entry + e, version, vlen);
                e += vlen;
                out[n++] = 0x72; /* field 14, wire type 2 */
                n += pb_put_varint(out + n, e);
                memcpy(out + n, entry, e);
                n += e;
                continue;
            }
        }
        memcpy(out + n, in + start, pos - start);
        n += pos - start;
    }
    *out_len = n;
    return out;
bad:
    free(out);
    return NULL;
}

/* ---- the synthetic picture in every pixel format ----------------------------------------- */

enum { W = 96, H = 72 };

static unsigned char g_rgb[H][W][3];

static void make_picture(void) {
    int x, y;
    for (y = 0; y < H; y++) {
        for (x = 0; x < W; x++) {
            int dx = x - 58, dy = y - 34;
            unsigned char *p = g_rgb[y][x];
            if (dx * dx + dy * dy < 18 * 18) { /* an orange disc */
                p[0] = 240;
                p[1] = (unsigned char)(120 + dy);
                p[2] = 30;
            } else if (x >= 10 && x < 26 && y >= 44 && y < 64) { /* a blue block */
                p[0] = 20;
                p[1] = 60;
                p[2] = 220;
            } else { /* a dim gradient */
                p[0] = (unsigned char)(30 + x / 4);
                p[1] = (unsigned char)(40 + y / 3);
                p[2] = (unsigned char)(50 + (x + y) / 8);
            }
        }
    }
}

static unsigned char luma(const unsigned char *p) {
    return (unsigned char)((77 * p[0] + 150 * p[1] + 29 * p[2] + 128) >> 8);
}

/* A frame of the picture in `format` with row stride `stride`; the buffer holds every row
 * (the last one not padded), padding bytes are junk. */
typedef struct {
    unsigned char *buf;
    sempart_frame frame;
} test_frame;

static test_frame make_frame(sempart_pixel_format format, size_t stride, int gray_as_rgb) {
    test_frame t;
    size_t bpp = format == SEMPART_PIXEL_FORMAT_RGBA8 || format == SEMPART_PIXEL_FORMAT_BGRA8 ? 4
                 : format == SEMPART_PIXEL_FORMAT_RGB8 || format == SEMPART_PIXEL_FORMAT_BGR8  ? 3
                                                                                              : 1;
    size_t rows = format == SEMPART_PIXEL_FORMAT_NV12 ? H * 3 / 2 : H;
    size_t size = (rows - 1) * stride + W * bpp;
    size_t i;
    int x, y;
    t.buf = malloc(size);
    for (i = 0; i < size; i++) {
        t.buf[i] = (unsigned char)(0xA5 ^ (i * 31)); /* junk in the padding */
    }
    for (y = 0; y < H; y++) {
        unsigned char *row = t.buf + (size_t)y * stride;
        for (x = 0; x < W; x++) {
            const unsigned char *p = g_rgb[y][x];
            unsigned char g = luma(p);
            switch (format) {
                case SEMPART_PIXEL_FORMAT_RGB8:
                    row[3 * x] = gray_as_rgb ? g : p[0];
                    row[3 * x + 1] = gray_as_rgb ? g : p[1];
                    row[3 * x + 2] = gray_as_rgb ? g : p[2];
                    break;
                case SEMPART_PIXEL_FORMAT_BGR8:
                    row[3 * x] = p[2];
                    row[3 * x + 1] = p[1];
                    row[3 * x + 2] = p[0];
                    break;
                case SEMPART_PIXEL_FORMAT_RGBA8:
                    row[4 * x] = p[0];
                    row[4 * x + 1] = p[1];
                    row[4 * x + 2] = p[2];
                    row[4 * x + 3] = (unsigned char)(x * 7 + y); /* alpha is ignored */
                    break;
                case SEMPART_PIXEL_FORMAT_BGRA8:
                    row[4 * x] = p[2];
                    row[4 * x + 1] = p[1];
                    row[4 * x + 2] = p[0];
                    row[4 * x + 3] = (unsigned char)(255 - x);
                    break;
                case SEMPART_PIXEL_FORMAT_GRAY8: row[x] = g; break;
                case SEMPART_PIXEL_FORMAT_NV12: {
                    /* BT.601 limited range */
                    double yy = 16.0 + (65.481 * p[0] + 128.553 * p[1] + 24.966 * p[2]) / 255.0;
                    row[x] = (unsigned char)(yy + 0.5);
                    if (x % 2 == 0 && y % 2 == 0) {
                        double u = 0, v = 0;
                        int k;
                        unsigned char *uv = t.buf + (size_t)(H + y / 2) * stride + (size_t)x;
                        for (k = 0; k < 4; k++) {
                            const unsigned char *q = g_rgb[y + k / 2][x + k % 2];
                            u += 128.0 + (-37.797 * q[0] - 74.203 * q[1] + 112.0 * q[2]) / 255.0;
                            v += 128.0 + (112.0 * q[0] - 93.786 * q[1] - 18.214 * q[2]) / 255.0;
                        }
                        uv[0] = (unsigned char)(u / 4 + 0.5);
                        uv[1] = (unsigned char)(v / 4 + 0.5);
                    }
                    break;
                }
            }
        }
    }
    t.frame.data = t.buf;
    t.frame.data_size_bytes = size;
    t.frame.width_px = W;
    t.frame.height_px = H;
    t.frame.row_stride_bytes = stride;
    t.frame.pixel_format = (uint32_t)format;
    return t;
}

/* ---- result checks ---------------------------------------------------------------------- */

/* Connected components (4-connectivity) of a mask, numbered in raster order of their first
 * pixel, as the SDK documents them. Returns the count; boxes go to `out` (up to `cap`). */
static size_t components(const uint8_t *mask, uint32_t w, uint32_t h, sempart_box *out, size_t cap) {
    size_t n = (size_t)w * h, count = 0, i;
    uint32_t *stack = malloc(n * sizeof *stack);
    unsigned char *seen = calloc(n, 1);
    for (i = 0; i < n; i++) {
        size_t top = 0;
        sempart_box b;
        if (mask[i] == 0 || seen[i]) {
            continue;
        }
        b.x0 = b.x1 = (uint32_t)(i % w);
        b.y0 = b.y1 = (uint32_t)(i / w);
        b.pixel_count = 0;
        seen[i] = 1;
        stack[top++] = (uint32_t)i;
        while (top > 0) {
            uint32_t p = stack[--top], x = p % w, y = p / w;
            b.pixel_count++;
            if (x < b.x0) b.x0 = x;
            if (x > b.x1) b.x1 = x;
            if (y < b.y0) b.y0 = y;
            if (y > b.y1) b.y1 = y;
#define PUSH(q)                              \
    do {                                     \
        if (mask[q] != 0 && !seen[q]) {      \
            seen[q] = 1;                     \
            stack[top++] = (uint32_t)(q);    \
        }                                    \
    } while (0)
            if (x > 0) PUSH(p - 1);
            if (x + 1 < w) PUSH(p + 1);
            if (y > 0) PUSH(p - w);
            if (y + 1 < h) PUSH(p + w);
#undef PUSH
        }
        b.x1++;
        b.y1++;
        if (count < cap) {
            out[count] = b;
        }
        count++;
    }
    free(stack);
    free(seen);
    return count;
}

static uint64_t box_area(const sempart_box *b) { return (uint64_t)(b->x1 - b->x0) * (b->y1 - b->y0); }

/* Everything a result says must hang together: sizes, binary masks agreeing with the
 * probabilities, boxes equal to the components of the mask, the object box rule. */
static void check_result(const sempart_result *r, uint32_t w, uint32_t h, uint32_t gw, uint32_t gh, const char *what) {
    uint32_t rw = 0, rh = 0, rgw = 0, rgh = 0;
    const uint8_t *fine = sempart_result_fine_mask(r), *coarse = sempart_result_coarse_mask(r);
    const float *fp = sempart_result_fine_probability(r), *cp = sempart_result_coarse_probability(r);
    size_t n = (size_t)w * h, i, count, nb, fg = 0, sum = 0, bad_fine = 0, bad_coarse = 0, mismatched = 0;
    sempart_box *mine;
    int64_t obj, want_obj = -1;
    sempart_timing t = sempart_result_timing(r);

    EXPECT(sempart_result_size(r, &rw, &rh, &rgw, &rgh), SEMPART_STATUS_OK, NULL, "result_size");
    CHECK(rw == w && rh == h && rgw == gw && rgh == gh, "%s: result is %ux%u grid %ux%u (want %ux%u grid %ux%u)", what,
          rw, rh, rgw, rgh, w, h, gw, gh);
    CHECK(fine && coarse && fp && cp, "%s: mask and probability pointers are not NULL", what);
    if (!(fine && coarse && fp && cp) || rw != w || rh != h || rgw != gw || rgh != gh) {
        return;
    }
    for (i = 0; i < n; i++) {
        if (fine[i] == 255) {
            fg++;
        }
        if ((fine[i] != 0 && fine[i] != 255) || !(fp[i] >= 0.0f && fp[i] <= 1.0f) || (fine[i] == 255 && fp[i] < 0.5f) ||
            (fine[i] == 0 && fp[i] > 0.5f)) {
            bad_fine++;
        }
    }
    for (i = 0; i < (size_t)gw * gh; i++) {
        if ((coarse[i] != 0 && coarse[i] != 255) || !(cp[i] >= 0.0f && cp[i] <= 1.0f) ||
            (coarse[i] == 255 && cp[i] < 0.5f) || (coarse[i] == 0 && cp[i] > 0.5f)) {
            bad_coarse++;
        }
    }
    CHECK(bad_fine == 0, "%s: fine mask is 0/255 and agrees with its probabilities (%zu bad pixels, %zu foreground)",
          what, bad_fine, fg);
    CHECK(bad_coarse == 0, "%s: coarse mask is 0/255 and agrees with its probabilities (%zu bad cells)", what,
          bad_coarse);

    nb = sempart_result_box_count(r);
    mine = malloc((n + 1) * sizeof *mine);
    count = components(fine, w, h, mine, n + 1);
    CHECK(count == nb, "%s: %zu boxes, %zu components recomputed from the mask", what, nb, count);
    for (i = 0; i < nb && i < count; i++) {
        sempart_box b;
        if (sempart_result_box(r, i, &b) != SEMPART_STATUS_OK || b.x0 != mine[i].x0 || b.y0 != mine[i].y0 ||
            b.x1 != mine[i].x1 || b.y1 != mine[i].y1 || b.pixel_count != mine[i].pixel_count) {
            mismatched++;
        }
        sum += b.pixel_count;
        if (want_obj < 0 || box_area(&mine[i]) > box_area(&mine[want_obj]) ||
            (box_area(&mine[i]) == box_area(&mine[want_obj]) && mine[i].pixel_count > mine[want_obj].pixel_count)) {
            want_obj = (int64_t)i;
        }
    }
    CHECK(mismatched == 0 && sum == fg, "%s: every box equals the recomputed component (%zu differ; %zu px in boxes, %zu in mask)",
          what, mismatched, sum, fg);
    obj = sempart_result_object_index(r);
    CHECK(obj == want_obj, "%s: object index %lld (largest box: %lld)", what, (long long)obj, (long long)want_obj);
    CHECK(t.preprocess_ms >= 0 && t.inference_ms > 0 && t.postprocess_ms >= 0 && isfinite(t.inference_ms),
          "%s: timing %.3f / %.3f / %.3f ms", what, t.preprocess_ms, t.inference_ms, t.postprocess_ms);
    free(mine);
}

/* Bitwise equality of two results: masks, probabilities, boxes, object. */
static int same_result(const sempart_result *a, const sempart_result *b) {
    uint32_t aw, ah, agw, agh, bw, bh, bgw, bgh;
    size_t n, g, i;
    if (sempart_result_size(a, &aw, &ah, &agw, &agh) != SEMPART_STATUS_OK ||
        sempart_result_size(b, &bw, &bh, &bgw, &bgh) != SEMPART_STATUS_OK || aw != bw || ah != bh || agw != bgw ||
        agh != bgh) {
        return 0;
    }
    n = (size_t)aw * ah;
    g = (size_t)agw * agh;
    if (memcmp(sempart_result_fine_mask(a), sempart_result_fine_mask(b), n) != 0 ||
        memcmp(sempart_result_fine_probability(a), sempart_result_fine_probability(b), n * sizeof(float)) != 0 ||
        memcmp(sempart_result_coarse_mask(a), sempart_result_coarse_mask(b), g) != 0 ||
        memcmp(sempart_result_coarse_probability(a), sempart_result_coarse_probability(b), g * sizeof(float)) != 0 ||
        sempart_result_box_count(a) != sempart_result_box_count(b) ||
        sempart_result_object_index(a) != sempart_result_object_index(b)) {
        return 0;
    }
    for (i = 0; i < sempart_result_box_count(a); i++) {
        sempart_box x, y;
        sempart_result_box(a, i, &x);
        sempart_result_box(b, i, &y);
        if (memcmp(&x, &y, sizeof x) != 0) {
            return 0;
        }
    }
    return 1;
}

static size_t count_foreground(const sempart_result *r) {
    uint32_t w = 0, h = 0;
    size_t i, n = 0;
    const uint8_t *mask = sempart_result_fine_mask(r);
    sempart_result_size(r, &w, &h, NULL, NULL);
    for (i = 0; mask && i < (size_t)w * h; i++) {
        n += mask[i] != 0;
    }
    return n;
}

static float max_prob_diff(const sempart_result *a, const sempart_result *b) {
    uint32_t w = 0, h = 0;
    size_t i;
    float d = 0;
    const float *pa = sempart_result_fine_probability(a), *pb = sempart_result_fine_probability(b);
    sempart_result_size(a, &w, &h, NULL, NULL);
    for (i = 0; i < (size_t)w * h; i++) {
        float e = fabsf(pa[i] - pb[i]);
        if (e > d) d = e;
    }
    return d;
}

/* ---- tests that need no model ------------------------------------------------------------ */

static void test_static_functions(void) {
    char want[32];
    int s;
    const char *seen[13];
    int distinct = 1;
    snprintf(want, sizeof want, "%d.%d.%d", SEMPART_VERSION_MAJOR, SEMPART_VERSION_MINOR, SEMPART_VERSION_PATCH);
    CHECK(sempart_version() != NULL && strcmp(sempart_version(), want) == 0, "sempart_version() is \"%s\" (header: %s)",
          sempart_version() ? sempart_version() : "(NULL)", want);
    for (s = 0; s <= SEMPART_STATUS_MODEL_INTEGRITY; s++) {
        const char *text = sempart_status_string(s);
        int j;
        seen[s] = text;
        CHECK(text != NULL && text[0] != '\0' && strcmp(text, "unknown status") != 0,
              "sempart_status_string(%s) = \"%s\"", status_name(s), text ? text : "(NULL)");
        for (j = 0; j < s; j++) {
            if (text && seen[j] && strcmp(text, seen[j]) == 0) distinct = 0;
        }
    }
    CHECK(distinct, "status strings are distinct");
    CHECK(strcmp(sempart_status_string(-1), "unknown status") == 0 && strcmp(sempart_status_string(13), "unknown status") == 0 &&
              strcmp(sempart_status_string(INT32_MAX), "unknown status") == 0,
          "sempart_status_string of unknown values (-1, 13, INT32_MAX) is \"unknown status\"");
    CHECK(sempart_last_error_message() != NULL, "sempart_last_error_message() is never NULL");
}

static void test_null_arguments_without_model(void) {
    sempart_options o;
    sempart_model *m = (sempart_model *)&o; /* sentinel: must stay untouched on failure */
    sempart_provider p;
    uint32_t u;
    size_t len;
    char buf[8];
    sempart_frame f;
    sempart_result *r = (sempart_result *)&o;
    sempart_result *slots[2];
    sempart_box b;
    sempart_timing t;

    memset(&f, 0, sizeof f);
    EXPECT(sempart_options_init(NULL), SEMPART_STATUS_NULL_ARGUMENT, "options", "options_init(NULL)");
    EXPECT(sempart_options_init(&o), SEMPART_STATUS_OK, NULL, "options_init");
    CHECK(o.provider_count == 1 && o.providers[0] == SEMPART_PROVIDER_CPU && o.allow_fallback == 1 &&
              o.cpu_threads == 0 && o.ort_library == NULL && o.tensorrt_engine_cache_dir == NULL &&
              o.refine_radius == 8.0f && o.refine_eps == 0.001f,
          "options_init defaults: CPU only, fallback allowed, 0 threads, NULL strings, refinement 8 / 0.001");
    EXPECT(sempart_model_open(NULL, &o, &m), SEMPART_STATUS_NULL_ARGUMENT, "path", "model_open(path NULL)");
    CHECK(m == (sempart_model *)&o, "model_open does not write *out_model on failure");
    EXPECT(sempart_model_open("x.onnx", &o, NULL), SEMPART_STATUS_NULL_ARGUMENT, "out_model", "model_open(out_model NULL)");
    EXPECT(sempart_model_open(NULL, NULL, NULL), SEMPART_STATUS_NULL_ARGUMENT, NULL, "model_open(all NULL)");
    sempart_model_free(NULL);
    CHECK(1, "model_free(NULL) is a no-op");
    EXPECT(sempart_model_provider(NULL, &p), SEMPART_STATUS_NULL_ARGUMENT, "model", "model_provider(model NULL)");
    EXPECT(sempart_model_input_size(NULL, &u, &u, &u, &u), SEMPART_STATUS_NULL_ARGUMENT, "model",
           "model_input_size(model NULL)");
    EXPECT(sempart_model_metadata(NULL, "k", buf, sizeof buf, &len), SEMPART_STATUS_NULL_ARGUMENT, "model",
           "model_metadata(model NULL)");
    EXPECT(sempart_segment(NULL, &f, &r), SEMPART_STATUS_NULL_ARGUMENT, "model", "segment(model NULL)");
    CHECK(r == (sempart_result *)&o, "segment does not write *out_result on failure");
    EXPECT(sempart_segment_batch(NULL, &f, 1, slots), SEMPART_STATUS_NULL_ARGUMENT, "model", "segment_batch(model NULL)");
    sempart_result_free(NULL);
    CHECK(1, "result_free(NULL) is a no-op");
    EXPECT(sempart_result_size(NULL, &u, &u, &u, &u), SEMPART_STATUS_NULL_ARGUMENT, "result", "result_size(result NULL)");
    CHECK(sempart_result_fine_mask(NULL) == NULL, "result_fine_mask(NULL) is NULL");
    CHECK(sempart_result_fine_probability(NULL) == NULL, "result_fine_probability(NULL) is NULL");
    CHECK(sempart_result_coarse_mask(NULL) == NULL, "result_coarse_mask(NULL) is NULL");
    CHECK(sempart_result_coarse_probability(NULL) == NULL, "result_coarse_probability(NULL) is NULL");
    CHECK(sempart_result_box_count(NULL) == 0, "result_box_count(NULL) is 0");
    EXPECT(sempart_result_box(NULL, 0, &b), SEMPART_STATUS_NULL_ARGUMENT, "result", "result_box(result NULL)");
    CHECK(sempart_result_object_index(NULL) == -1, "result_object_index(NULL) is -1");
    t = sempart_result_timing(NULL);
    CHECK(t.preprocess_ms == 0 && t.inference_ms == 0 && t.postprocess_ms == 0, "result_timing(NULL) is zeros");
}

static void test_model_files(const char *fixtures, const char *tmp) {
    char path[4096];
    sempart_model *m = NULL;
    unsigned char noise[4096];
    unsigned state = 12345;
    size_t i;
    static const char bad_utf8[] = {'/', 't', 'm', 'p', '/', (char)0xff, (char)0xfe, '.', 'o', 'n', 'n', 'x', 0};

    snprintf(path, sizeof path, "%s/does-not-exist.onnx", tmp);
    EXPECT(sempart_model_open(path, NULL, &m), SEMPART_STATUS_MODEL_NOT_FOUND, "does-not-exist.onnx", "open a missing file");
    EXPECT(sempart_model_open(tmp, NULL, &m), SEMPART_STATUS_MODEL_NOT_FOUND, NULL, "open a folder");
    EXPECT(sempart_model_open(bad_utf8, NULL, &m), SEMPART_STATUS_INVALID_ARGUMENT, "UTF-8", "open a non-UTF-8 path");

    snprintf(path, sizeof path, "%s/empty.onnx", tmp);
    write_file(path, "", 0);
    EXPECT(sempart_model_open(path, NULL, &m), SEMPART_STATUS_MODEL_CORRUPT, "empty.onnx", "open an empty file");

    for (i = 0; i < sizeof noise; i++) {
        state = state * 1103515245u + 12345u;
        noise[i] = (unsigned char)(state >> 16);
    }
    snprintf(path, sizeof path, "%s/noise.onnx", tmp);
    write_file(path, noise, sizeof noise);
    EXPECT(sempart_model_open(path, NULL, &m), SEMPART_STATUS_MODEL_CORRUPT, "noise.onnx", "open random bytes");

    snprintf(path, sizeof path, "%s/text.onnx", tmp);
    write_file(path, "this is a text file, not a model\n", 33);
    EXPECT(sempart_model_open(path, NULL, &m), SEMPART_STATUS_MODEL_CORRUPT, NULL, "open a text file");
    CHECK(m == NULL, "out_model stays untouched after failed opens");
    (void)fixtures;
}

/* ---- tests with the tiny model ----------------------------------------------------------- */

static void test_model_variants(const char *fixtures, const char *tmp) {
    char tiny[4096], path[4096];
    unsigned char *bytes, *derived;
    size_t size = 0, dsize = 0;
    sempart_model *m = NULL;

    snprintf(tiny, sizeof tiny, "%s/tiny.onnx", fixtures);
    bytes = read_file(tiny, &size);
    CHECK(bytes != NULL && size > 100, "read %s (%zu bytes)", tiny, size);
    if (bytes == NULL) {
        return;
    }
    snprintf(path, sizeof path, "%s/truncated.onnx", tmp);
    write_file(path, bytes, size / 2);
    EXPECT(sempart_model_open(path, NULL, &m), SEMPART_STATUS_MODEL_CORRUPT, "truncated", "open tiny.onnx truncated to half");
    snprintf(path, sizeof path, "%s/truncated-end.onnx", tmp);
    write_file(path, bytes, size - 1);
    EXPECT(sempart_model_open(path, NULL, &m), SEMPART_STATUS_MODEL_CORRUPT, NULL, "open tiny.onnx less its last byte");

    {
        /* One flipped bit in the middle of the weights: the content digest catches it, and
           skipping the check (verify_integrity = 0) opens the file. */
        sempart_options o;
        unsigned char *flipped = malloc(size);
        CHECK(flipped != NULL, "allocate a copy of tiny.onnx");
        if (flipped) {
            memcpy(flipped, bytes, size);
            flipped[size / 2] ^= 0x10;
            snprintf(path, sizeof path, "%s/bit-flip.onnx", tmp);
            write_file(path, flipped, size);
            EXPECT(sempart_model_open(path, NULL, &m), SEMPART_STATUS_MODEL_INTEGRITY, "does not match its digest",
                   "open tiny.onnx with one bit flipped in the weights");
            sempart_options_init(&o);
            o.verify_integrity = 0;
            EXPECT(sempart_model_open(path, &o, &m), SEMPART_STATUS_OK, NULL, "the same file with verify_integrity 0");
            if (m) {
                sempart_model_free(m);
                m = NULL;
            }
            free(flipped);
        }
    }
    derived = rewrite_metadata(bytes, size, NULL, &dsize);
    CHECK(derived != NULL && dsize < size, "derive a model without metadata from tiny.onnx");
    if (derived) {
        snprintf(path, sizeof path, "%s/no-metadata.onnx", tmp);
        write_file(path, derived, dsize);
        EXPECT(sempart_model_open(path, NULL, &m), SEMPART_STATUS_MODEL_FOREIGN, "not a Sempart model",
               "open a valid ONNX file without Sempart metadata");
        free(derived);
    }
    derived = rewrite_metadata(bytes, size, "999", &dsize);
    CHECK(derived != NULL && dsize > 0, "derive a format version 999 model from tiny.onnx");
    if (derived) {
        snprintf(path, sizeof path, "%s/version-999.onnx", tmp);
        write_file(path, derived, dsize);
        EXPECT(sempart_model_open(path, NULL, &m), SEMPART_STATUS_MODEL_UNSUPPORTED_VERSION, "999",
               "open a format version 999 model");
        free(derived);
    }
    snprintf(path, sizeof path, "%s/foreign.onnx", fixtures);
    if (file_exists(path)) {
        EXPECT(sempart_model_open(path, NULL, &m), SEMPART_STATUS_MODEL_FOREIGN, NULL, "open fixtures/foreign.onnx");
    } else {
        printf("skip - fixtures/foreign.onnx is absent\n");
    }
    snprintf(path, sizeof path, "%s/future-version.onnx", fixtures);
    if (file_exists(path)) {
        EXPECT(sempart_model_open(path, NULL, &m), SEMPART_STATUS_MODEL_UNSUPPORTED_VERSION, NULL,
               "open fixtures/future-version.onnx");
    } else {
        printf("skip - fixtures/future-version.onnx is absent\n");
    }
    CHECK(m == NULL, "out_model stays untouched after failed opens");
    free(bytes);
}

static void test_options(const char *tiny) {
    sempart_options o;
    sempart_model *m = NULL;
    sempart_provider p = (sempart_provider)99;
    static const char bad_utf8[] = {'/', 't', 'm', 'p', '/', (char)0xff, 0};

    sempart_options_init(&o);
    o.provider_count = 0;
    EXPECT(sempart_model_open(tiny, &o, &m), SEMPART_STATUS_INVALID_ARGUMENT, "provider_count", "provider_count 0");
    o.provider_count = 4;
    EXPECT(sempart_model_open(tiny, &o, &m), SEMPART_STATUS_INVALID_ARGUMENT, "provider_count", "provider_count 4");
    sempart_options_init(&o);
    o.providers[0] = 3;
    EXPECT(sempart_model_open(tiny, &o, &m), SEMPART_STATUS_INVALID_ARGUMENT, "provider", "unknown provider value 3");
    o.providers[0] = 0xFFFFFFFFu;
    EXPECT(sempart_model_open(tiny, &o, &m), SEMPART_STATUS_INVALID_ARGUMENT, "provider", "unknown provider value 0xFFFFFFFF");
    sempart_options_init(&o);
    o.ort_library = bad_utf8;
    EXPECT(sempart_model_open(tiny, &o, &m), SEMPART_STATUS_INVALID_ARGUMENT, "ort_library", "ort_library not UTF-8");
    sempart_options_init(&o);
    o.tensorrt_engine_cache_dir = bad_utf8;
    EXPECT(sempart_model_open(tiny, &o, &m), SEMPART_STATUS_INVALID_ARGUMENT, "tensorrt_engine_cache_dir",
           "tensorrt_engine_cache_dir not UTF-8");
    sempart_options_init(&o);
    o.refine_radius = -1.0f;
    EXPECT(sempart_model_open(tiny, &o, &m), SEMPART_STATUS_INVALID_ARGUMENT, "refinement radius", "refine_radius -1");
    o.refine_radius = NAN;
    EXPECT(sempart_model_open(tiny, &o, &m), SEMPART_STATUS_INVALID_ARGUMENT, "refinement radius", "refine_radius NaN");
    o.refine_radius = 1000.0f;
    EXPECT(sempart_model_open(tiny, &o, &m), SEMPART_STATUS_INVALID_ARGUMENT, "refinement radius", "refine_radius 1000");
    sempart_options_init(&o);
    o.refine_eps = 0.0f;
    EXPECT(sempart_model_open(tiny, &o, &m), SEMPART_STATUS_INVALID_ARGUMENT, "refinement eps", "refine_eps 0");
    CHECK(m == NULL, "out_model stays untouched after bad refinement options");
    sempart_options_init(&o);
    CHECK(o.verify_integrity == 1, "options_init turns the integrity check on");
    o.cpu_threads = 100000;
    EXPECT(sempart_model_open(tiny, &o, &m), SEMPART_STATUS_INVALID_ARGUMENT, "0 (ONNX Runtime chooses) to 256",
           "cpu_threads 100000 returns at once");
    o.cpu_threads = 257;
    EXPECT(sempart_model_open(tiny, &o, &m), SEMPART_STATUS_INVALID_ARGUMENT, "cpu_threads", "cpu_threads 257");
    sempart_options_init(&o);
    o.device_id = -1;
    EXPECT(sempart_model_open(tiny, &o, &m), SEMPART_STATUS_INVALID_ARGUMENT, "device_id", "device_id -1");
    o.device_id = 256;
    EXPECT(sempart_model_open(tiny, &o, &m), SEMPART_STATUS_INVALID_ARGUMENT, "device_id", "device_id 256");
    CHECK(m == NULL, "out_model stays untouched after out-of-range options");

    /* GPUs on a machine without them (or an ONNX Runtime without them). */
    sempart_options_init(&o);
    o.providers[0] = SEMPART_PROVIDER_CUDA;
    o.allow_fallback = 0;
    EXPECT(sempart_model_open(tiny, &o, &m), SEMPART_STATUS_PROVIDER_UNAVAILABLE, "cuda", "CUDA without fallback");
    o.providers[0] = SEMPART_PROVIDER_TENSOR_RT;
    EXPECT(sempart_model_open(tiny, &o, &m), SEMPART_STATUS_PROVIDER_UNAVAILABLE, "tensorrt", "TensorRT without fallback");
    o.providers[0] = SEMPART_PROVIDER_TENSOR_RT;
    o.providers[1] = SEMPART_PROVIDER_CUDA;
    o.providers[2] = SEMPART_PROVIDER_CPU;
    o.provider_count = 3;
    EXPECT(sempart_model_open(tiny, &o, &m), SEMPART_STATUS_PROVIDER_UNAVAILABLE, "tensorrt",
           "TensorRT, CUDA, CPU without fallback (the first must work)");
    CHECK(m == NULL, "out_model stays untouched after failed opens");

    o.allow_fallback = 1;
    o.provider_count = 2; /* TensorRT, CUDA, then the CPU implicitly */
    EXPECT(sempart_model_open(tiny, &o, &m), SEMPART_STATUS_OK, NULL, "TensorRT, CUDA with fallback");
    if (m) {
        EXPECT(sempart_model_provider(m, &p), SEMPART_STATUS_OK, NULL, "model_provider");
        CHECK(p == SEMPART_PROVIDER_CPU, "fell back to the CPU (provider %d)", (int)p);
        sempart_model_free(m);
        m = NULL;
    }
    o.providers[0] = SEMPART_PROVIDER_CUDA;
    o.provider_count = 1;
    o.cpu_threads = 1;
    EXPECT(sempart_model_open(tiny, &o, &m), SEMPART_STATUS_OK, NULL, "CUDA with fallback, 1 CPU thread");
    if (m) {
        p = (sempart_provider)99;
        EXPECT(sempart_model_provider(m, &p), SEMPART_STATUS_OK, NULL, "model_provider");
        CHECK(p == SEMPART_PROVIDER_CPU, "fell back to the CPU (provider %d)", (int)p);
        sempart_model_free(m);
        m = NULL;
    }

    /* ONNX Runtime is loaded once per process; another library is refused. */
    sempart_options_init(&o);
    o.ort_library = "/nonexistent/libonnxruntime.so.1.31.1";
    EXPECT(sempart_model_open(tiny, &o, &m), SEMPART_STATUS_RUNTIME_UNAVAILABLE, "/nonexistent/",
           "ort_library other than the loaded one");
    CHECK(m == NULL, "out_model stays untouched");
}

static void test_metadata(sempart_model *m) {
    size_t len = 12345;
    char buf[256], small[1];
    const char *key = "sempart.format_version";
    uint32_t w = 0, h = 0, gw = 0, gh = 0;
    char patch[32];
    sempart_provider p = (sempart_provider)99;

    EXPECT(sempart_model_provider(m, NULL), SEMPART_STATUS_NULL_ARGUMENT, "out_provider", "model_provider(out NULL)");
    EXPECT(sempart_model_provider(m, &p), SEMPART_STATUS_OK, NULL, "model_provider");
    CHECK(p == SEMPART_PROVIDER_CPU, "default options run on the CPU");
    EXPECT(sempart_model_input_size(m, NULL, NULL, NULL, NULL), SEMPART_STATUS_OK, NULL, "model_input_size(all outputs NULL)");
    EXPECT(sempart_model_input_size(m, &w, &h, &gw, &gh), SEMPART_STATUS_OK, NULL, "model_input_size");
    EXPECT(sempart_model_metadata(m, "sempart.patch_size", patch, sizeof patch, NULL), SEMPART_STATUS_OK, NULL,
           "model_metadata(out_length NULL)");
    CHECK(w > 0 && h > 0 && atoi(patch) > 0 && gw == w / (uint32_t)atoi(patch) && gh == h / (uint32_t)atoi(patch),
          "input %ux%u, patch %s, grid %ux%u", w, h, patch, gw, gh);

    EXPECT(sempart_model_metadata(m, NULL, buf, sizeof buf, &len), SEMPART_STATUS_NULL_ARGUMENT, "key", "model_metadata(key NULL)");
    EXPECT(sempart_model_metadata(m, key, NULL, 0, &len), SEMPART_STATUS_OK, NULL, "model_metadata(buffer NULL) asks the length");
    CHECK(len == 1, "length of %s is %zu", key, len);
    len = 0;
    EXPECT(sempart_model_metadata(m, key, small, sizeof small, &len), SEMPART_STATUS_INVALID_ARGUMENT, "too small",
           "model_metadata(buffer too small)");
    CHECK(len == 1, "a too small buffer still reports the length (%zu)", len);
    EXPECT(sempart_model_metadata(m, key, buf, 0, &len), SEMPART_STATUS_INVALID_ARGUMENT, "too small",
           "model_metadata(buffer_size 0)");
    memset(buf, 'x', sizeof buf);
    EXPECT(sempart_model_metadata(m, key, buf, len + 1, &len), SEMPART_STATUS_OK, NULL, "model_metadata(exact size)");
    CHECK(strcmp(buf, "2") == 0, "format version is \"%s\"", buf);
    EXPECT(sempart_model_metadata(m, "sempart.backbone.origin", buf, sizeof buf, &len), SEMPART_STATUS_OK, NULL,
           "model_metadata(sempart.backbone.origin)");
    CHECK(len > 0 && strlen(buf) == len, "backbone origin is %zu bytes", len);
    EXPECT(sempart_model_metadata(m, "no.such.key", buf, sizeof buf, &len), SEMPART_STATUS_INVALID_ARGUMENT, "no.such.key",
           "model_metadata(unknown key)");
}

static void test_frame_errors(sempart_model *m, const test_frame *rgb) {
    sempart_frame f;
    sempart_result *r = NULL;
    sempart_result *sentinel = (sempart_result *)&f;
    sempart_result *slots[3];
    sempart_frame frames[3];
    unsigned char px[64] = {0};

#define BAD_FRAME(mutate, want, needle, what)                       \
    do {                                                            \
        f = rgb->frame;                                             \
        mutate;                                                     \
        r = sentinel;                                               \
        EXPECT(sempart_segment(m, &f, &r), want, needle, what);     \
        CHECK(r == sentinel, "%s: *out_result untouched", what);    \
    } while (0)

    r = NULL;
    EXPECT(sempart_segment(m, &rgb->frame, &r), SEMPART_STATUS_OK, NULL, "the reference frame works");
    sempart_result_free(r);
    r = NULL;
    EXPECT(sempart_segment(m, NULL, &r), SEMPART_STATUS_NULL_ARGUMENT, "frame", "segment(frame NULL)");
    EXPECT(sempart_segment(m, &rgb->frame, NULL), SEMPART_STATUS_NULL_ARGUMENT, "out_result", "segment(out_result NULL)");
    BAD_FRAME(f.data = NULL, SEMPART_STATUS_NULL_ARGUMENT, "data", "frame data NULL");
    BAD_FRAME(f.width_px = 0, SEMPART_STATUS_INVALID_ARGUMENT, "0x", "width 0");
    BAD_FRAME(f.height_px = 0, SEMPART_STATUS_INVALID_ARGUMENT, "x0", "height 0");
    BAD_FRAME(f.width_px = 16385, SEMPART_STATUS_INVALID_ARGUMENT, "16384", "width 16385");
    BAD_FRAME(f.height_px = 16385, SEMPART_STATUS_INVALID_ARGUMENT, "16384", "height 16385");
    BAD_FRAME((f.width_px = 100000, f.height_px = 100000), SEMPART_STATUS_INVALID_ARGUMENT, "16384", "100000 x 100000");
    BAD_FRAME(f.row_stride_bytes = 3 * W - 1, SEMPART_STATUS_INVALID_ARGUMENT, "stride", "stride one byte short of a row");
    BAD_FRAME(f.row_stride_bytes = 0, SEMPART_STATUS_INVALID_ARGUMENT, "stride", "stride 0");
    BAD_FRAME(f.data_size_bytes -= 1, SEMPART_STATUS_INVALID_ARGUMENT, "buffer", "buffer one byte too small");
    BAD_FRAME(f.data_size_bytes = 0, SEMPART_STATUS_INVALID_ARGUMENT, "buffer", "buffer size 0");
    BAD_FRAME(f.pixel_format = 6, SEMPART_STATUS_INVALID_ARGUMENT, "pixel format", "unknown pixel format 6");
    BAD_FRAME(f.pixel_format = 0xFFFFFFFFu, SEMPART_STATUS_INVALID_ARGUMENT, "pixel format", "unknown pixel format 0xFFFFFFFF");
    BAD_FRAME(f.pixel_format = SEMPART_PIXEL_FORMAT_RGBA8, SEMPART_STATUS_INVALID_ARGUMENT, "stride",
              "RGBA8 with an RGB8 stride");
    BAD_FRAME((f.pixel_format = SEMPART_PIXEL_FORMAT_NV12, f.width_px = W - 1), SEMPART_STATUS_INVALID_ARGUMENT, "even",
              "NV12 odd width");
    BAD_FRAME((f.pixel_format = SEMPART_PIXEL_FORMAT_NV12, f.height_px = H - 1), SEMPART_STATUS_INVALID_ARGUMENT, "even",
              "NV12 odd height");
    BAD_FRAME((f.pixel_format = SEMPART_PIXEL_FORMAT_NV12, f.row_stride_bytes = W, f.data_size_bytes = (size_t)W * H),
              SEMPART_STATUS_INVALID_ARGUMENT, "buffer", "NV12 without its UV plane");
    /* Sizes whose byte count overflows size_t must be refused, not wrapped around. */
    BAD_FRAME((f.row_stride_bytes = SIZE_MAX / 2, f.height_px = 3), SEMPART_STATUS_INVALID_ARGUMENT, "stride",
              "stride SIZE_MAX/2 (byte count overflows)");
    BAD_FRAME((f.row_stride_bytes = SIZE_MAX, f.height_px = 2), SEMPART_STATUS_INVALID_ARGUMENT, "stride",
              "stride SIZE_MAX (byte count overflows)");
    BAD_FRAME((f.row_stride_bytes = SIZE_MAX / 2, f.height_px = 2), SEMPART_STATUS_INVALID_ARGUMENT, "buffer",
              "stride SIZE_MAX/2, 2 rows (fits, buffer too small)");
    BAD_FRAME((f.pixel_format = SEMPART_PIXEL_FORMAT_NV12, f.row_stride_bytes = SIZE_MAX / 2, f.height_px = 2),
              SEMPART_STATUS_INVALID_ARGUMENT, "stride", "NV12 stride SIZE_MAX/2, 2 rows (3 with UV: overflows)");

    /* Boundary sizes that are valid. */
    {
        unsigned char *wide = calloc(16384 * 2, 1);
        sempart_frame ok = {0};
        ok.data = wide;
        ok.data_size_bytes = 16384 * 2;
        ok.width_px = 16384;
        ok.height_px = 2;
        ok.row_stride_bytes = 16384;
        ok.pixel_format = SEMPART_PIXEL_FORMAT_GRAY8;
        r = NULL;
        EXPECT(sempart_segment(m, &ok, &r), SEMPART_STATUS_OK, NULL, "16384 x 2 GRAY8 frame");
        sempart_result_free(r);
        ok.width_px = 1;
        ok.height_px = 1;
        ok.data_size_bytes = 1;
        ok.row_stride_bytes = 1;
        r = NULL;
        EXPECT(sempart_segment(m, &ok, &r), SEMPART_STATUS_OK, NULL, "1 x 1 GRAY8 frame");
        sempart_result_free(r);
        free(wide);
        ok.data = px;
        ok.width_px = 2;
        ok.height_px = 2;
        ok.row_stride_bytes = 2;
        ok.data_size_bytes = 6;
        ok.pixel_format = SEMPART_PIXEL_FORMAT_NV12;
        r = NULL;
        EXPECT(sempart_segment(m, &ok, &r), SEMPART_STATUS_OK, NULL, "2 x 2 NV12 frame");
        sempart_result_free(r);
    }

    /* Batch arguments. */
    frames[0] = rgb->frame;
    frames[1] = rgb->frame;
    frames[2] = rgb->frame;
    frames[1].width_px = 0;
    slots[0] = slots[1] = slots[2] = sentinel;
    EXPECT(sempart_segment_batch(m, NULL, 1, slots), SEMPART_STATUS_NULL_ARGUMENT, "frame", "segment_batch(frames NULL)");
    EXPECT(sempart_segment_batch(m, frames, 1, NULL), SEMPART_STATUS_NULL_ARGUMENT, "out_result",
           "segment_batch(out_results NULL)");
    EXPECT(sempart_segment_batch(m, frames, 0, slots), SEMPART_STATUS_INVALID_ARGUMENT, "batch", "segment_batch(count 0)");
    EXPECT(sempart_segment_batch(m, frames, 1025, slots), SEMPART_STATUS_INVALID_ARGUMENT, "batch", "segment_batch(count 1025)");
    EXPECT(sempart_segment_batch(m, frames, 3, slots), SEMPART_STATUS_INVALID_ARGUMENT, "frame 1",
           "segment_batch with a bad second frame");
    CHECK(slots[0] == sentinel && slots[1] == sentinel && slots[2] == sentinel, "a failed batch writes no slot");
#undef BAD_FRAME
}

static void test_result_errors(sempart_model *m, const test_frame *rgb) {
    sempart_result *r = NULL;
    sempart_box b;
    size_t n;
    uint32_t w = 0;
    if (sempart_segment(m, &rgb->frame, &r) != SEMPART_STATUS_OK) {
        CHECK(0, "segment for the result tests: %s", sempart_last_error_message());
        return;
    }
    n = sempart_result_box_count(r);
    EXPECT(sempart_result_box(r, 0, NULL), SEMPART_STATUS_NULL_ARGUMENT, "out_box", "result_box(out_box NULL)");
    EXPECT(sempart_result_box(r, n, &b), SEMPART_STATUS_INVALID_ARGUMENT, "out of range", "result_box(index = count)");
    EXPECT(sempart_result_box(r, (size_t)-1, &b), SEMPART_STATUS_INVALID_ARGUMENT, "out of range", "result_box(index SIZE_MAX)");
    EXPECT(sempart_result_size(r, NULL, NULL, NULL, NULL), SEMPART_STATUS_OK, NULL, "result_size(all outputs NULL)");
    EXPECT(sempart_result_size(r, &w, NULL, NULL, NULL), SEMPART_STATUS_OK, NULL, "result_size(width only)");
    CHECK(w == W, "result width %u", w);
    sempart_result_free(r);
}

/* ---- success paths ------------------------------------------------------------------------ */

enum { F_RGB, F_RGB_PADDED, F_BGR, F_RGBA, F_BGRA, F_GRAY, F_GRAY_AS_RGB, F_NV12, F_COUNT };

static const char *const frame_names[F_COUNT] = {
    "RGB8 packed", "RGB8 stride+13", "BGR8 stride+7", "RGBA8 stride+16", "BGRA8 packed", "GRAY8 stride+5",
    "RGB8 of the gray picture", "NV12 stride+10",
};

static void make_frames(test_frame *fr) {
    fr[F_RGB] = make_frame(SEMPART_PIXEL_FORMAT_RGB8, 3 * W, 0);
    fr[F_RGB_PADDED] = make_frame(SEMPART_PIXEL_FORMAT_RGB8, 3 * W + 13, 0);
    fr[F_BGR] = make_frame(SEMPART_PIXEL_FORMAT_BGR8, 3 * W + 7, 0);
    fr[F_RGBA] = make_frame(SEMPART_PIXEL_FORMAT_RGBA8, 4 * W + 16, 0);
    fr[F_BGRA] = make_frame(SEMPART_PIXEL_FORMAT_BGRA8, 4 * W, 0);
    fr[F_GRAY] = make_frame(SEMPART_PIXEL_FORMAT_GRAY8, W + 5, 0);
    fr[F_GRAY_AS_RGB] = make_frame(SEMPART_PIXEL_FORMAT_RGB8, 3 * W, 1);
    fr[F_NV12] = make_frame(SEMPART_PIXEL_FORMAT_NV12, W + 10, 0);
}

static void test_formats_and_batch(sempart_model *m, const test_frame *fr, sempart_result **single, uint32_t gw, uint32_t gh) {
    int i;
    sempart_result *batch[F_COUNT];
    sempart_frame frames[F_COUNT];
    float worst = 0;
    int batch_same = 1;

    for (i = 0; i < F_COUNT; i++) {
        single[i] = NULL;
    }
    for (i = 0; i < F_COUNT; i++) {
        EXPECT(sempart_segment(m, &fr[i].frame, &single[i]), SEMPART_STATUS_OK, NULL, frame_names[i]);
        if (single[i] == NULL) {
            return;
        }
        check_result(single[i], W, H, gw, gh, frame_names[i]);
    }
    for (i = F_RGB_PADDED; i <= F_BGRA; i++) {
        CHECK(same_result(single[F_RGB], single[i]), "%s gives a result bit-identical to RGB8 packed", frame_names[i]);
    }
    CHECK(same_result(single[F_GRAY], single[F_GRAY_AS_RGB]), "GRAY8 gives a result bit-identical to RGB8 with R=G=B=Y");
    printf("info - foreground pixels / boxes: RGB %zu / %zu, GRAY %zu / %zu, NV12 %zu / %zu\n",
           count_foreground(single[F_RGB]), sempart_result_box_count(single[F_RGB]), count_foreground(single[F_GRAY]),
           sempart_result_box_count(single[F_GRAY]), count_foreground(single[F_NV12]),
           sempart_result_box_count(single[F_NV12]));

    /* A second call on the same frame gives the same result. */
    {
        sempart_result *again = NULL;
        EXPECT(sempart_segment(m, &fr[F_RGB].frame, &again), SEMPART_STATUS_OK, NULL, "segment RGB8 again");
        CHECK(again && same_result(again, single[F_RGB]), "repeated calls are deterministic");
        sempart_result_free(again);
    }

    /* The batch API equals single calls. */
    for (i = 0; i < F_COUNT; i++) {
        frames[i] = fr[i].frame;
        batch[i] = NULL;
    }
    EXPECT(sempart_segment_batch(m, frames, F_COUNT, batch), SEMPART_STATUS_OK, NULL, "segment_batch of every format");
    for (i = 0; i < F_COUNT; i++) {
        float d;
        if (batch[i] == NULL) {
            CHECK(0, "batch slot %d filled", i);
            continue;
        }
        d = max_prob_diff(batch[i], single[i]);
        if (d > worst) worst = d;
        if (!same_result(batch[i], single[i])) batch_same = 0;
        {
            uint32_t w = 0, h = 0;
            sempart_result_size(batch[i], &w, &h, NULL, NULL);
            CHECK(w == W && h == H &&
                      memcmp(sempart_result_fine_mask(batch[i]), sempart_result_fine_mask(single[i]), (size_t)W * H) == 0,
                  "batch %s: fine mask equals the single call's (max probability difference %g)", frame_names[i], d);
        }
    }
    CHECK(batch_same, "batch results are bit-identical to single calls (probabilities, boxes, coarse; max diff %g)", worst);
    for (i = 0; i < F_COUNT; i++) {
        sempart_result_free(batch[i]);
    }
}

/* ---- concurrency -------------------------------------------------------------------------- */

enum { THREADS = 8 };

typedef struct {
    const sempart_model *model;
    const test_frame *frames;
    sempart_result *const *reference;
    int calls;
    int index;
    int mismatches;
    int failures;
    int fresh_error_empty;
    int own_error_seen;
} worker;

static void *work(void *arg) {
    worker *w = arg;
    int k;
    uint32_t u;
    w->fresh_error_empty = sempart_last_error_message()[0] == '\0';
    w->own_error_seen = sempart_model_input_size(NULL, &u, NULL, NULL, NULL) == SEMPART_STATUS_NULL_ARGUMENT &&
                        strstr(sempart_last_error_message(), "model is NULL") != NULL;
    for (k = 0; k < w->calls; k++) {
        int f = (w->index + k) % F_COUNT;
        sempart_result *r = NULL;
        if (sempart_segment(w->model, &w->frames[f].frame, &r) != SEMPART_STATUS_OK) {
            w->failures++;
            continue;
        }
        if (!same_result(r, w->reference[f])) {
            w->mismatches++;
        }
        sempart_result_free(r);
    }
    return NULL;
}

static void test_threads(const sempart_model *m, const test_frame *fr, sempart_result *const *reference, int calls) {
    pthread_t threads[THREADS];
    worker workers[THREADS];
    int i, started = 0, mismatches = 0, failures = 0, fresh = 1, own = 1;
    char before[256];
    sempart_segment(m, NULL, NULL); /* leaves "frame is NULL" on this thread */
    snprintf(before, sizeof before, "%s", sempart_last_error_message());
    for (i = 0; i < THREADS; i++) {
        workers[i].model = m;
        workers[i].frames = fr;
        workers[i].reference = reference;
        workers[i].calls = calls;
        workers[i].index = i;
        workers[i].mismatches = workers[i].failures = 0;
        workers[i].fresh_error_empty = workers[i].own_error_seen = 0;
        if (pthread_create(&threads[i], NULL, work, &workers[i]) == 0) {
            started++;
        }
    }
    CHECK(started == THREADS, "started %d threads", started);
    for (i = 0; i < started; i++) {
        pthread_join(threads[i], NULL);
        mismatches += workers[i].mismatches;
        failures += workers[i].failures;
        fresh = fresh && workers[i].fresh_error_empty;
        own = own && workers[i].own_error_seen;
    }
    CHECK(failures == 0 && mismatches == 0, "%d threads x %d calls on one model: %d failed, %d differ from serial calls",
          THREADS, calls, failures, mismatches);
    CHECK(fresh, "a new thread's last error message is empty");
    CHECK(own, "each thread sees its own last error");
    CHECK(strcmp(before, sempart_last_error_message()) == 0, "other threads' failures leave this thread's message alone (\"%s\")",
          sempart_last_error_message());
}

/* ---- ONNX Runtime missing (a process of its own: the runtime is loaded once per process) -- */

static void test_runtime_missing(const char *tiny) {
    sempart_options o;
    sempart_model *m = NULL;
    sempart_options_init(&o);
    o.ort_library = "/nonexistent/libonnxruntime.so.1.31.1";
    EXPECT(sempart_model_open(tiny, &o, &m), SEMPART_STATUS_RUNTIME_UNAVAILABLE, "/nonexistent/libonnxruntime.so.1.31.1",
           "ort_library names a missing file");
    CHECK(m == NULL, "out_model stays untouched");
    EXPECT(sempart_model_open(tiny, NULL, &m), SEMPART_STATUS_OK, NULL,
           "after a failed load, opening with the default search works");
    sempart_model_free(m);
}

/* ---- main --------------------------------------------------------------------------------- */

int main(int argc, char **argv) {
    const char *fixtures = NULL, *tmp = NULL;
    int quick = 0, allow_missing = 0, ort_missing = 0, i;
    char tiny[4096];
    sempart_model *m = NULL;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            quick = 1;
        } else if (strcmp(argv[i], "--ort-missing") == 0) {
            ort_missing = 1;
        } else if (strcmp(argv[i], "--allow-missing-model") == 0) {
            allow_missing = 1;
        } else if (fixtures == NULL) {
            fixtures = argv[i];
        } else if (tmp == NULL) {
            tmp = argv[i];
        } else {
            fixtures = NULL;
            break;
        }
    }
    if (fixtures == NULL || tmp == NULL) {
        fprintf(stderr, "usage: %s [--quick] [--allow-missing-model] [--ort-missing] FIXTURES_DIR TMP_DIR\n", argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    make_picture();
    if (ort_missing) {
        snprintf(tiny, sizeof tiny, "%s/tiny.onnx", fixtures);
        test_runtime_missing(tiny);
        printf("%d checks, %d failed\n", g_checks, g_failures);
        return g_failures == 0 ? 0 : 1;
    }

    test_static_functions();
    test_null_arguments_without_model();
    test_model_files(fixtures, tmp);

    snprintf(tiny, sizeof tiny, "%s/tiny.onnx", fixtures);
    if (!file_exists(tiny)) {
        if (allow_missing) {
            printf("skip - %s is absent: every check that needs a model is skipped\n", tiny);
        } else {
            CHECK(0, "%s exists", tiny);
        }
    } else {
        test_frame fr[F_COUNT];
        sempart_result *single[F_COUNT];
        uint32_t gw = 0, gh = 0;
        test_model_variants(fixtures, tmp);
        EXPECT(sempart_model_open(tiny, NULL, &m), SEMPART_STATUS_OK, NULL, "open tiny.onnx with default options");
        if (m != NULL) {
            sempart_model_input_size(m, NULL, NULL, &gw, &gh);
            test_options(tiny);
            test_metadata(m);
            make_frames(fr);
            test_frame_errors(m, &fr[F_RGB_PADDED]);
            test_result_errors(m, &fr[F_RGB]);
            test_formats_and_batch(m, fr, single, gw, gh);
            if (single[F_COUNT - 1] != NULL) {
                test_threads(m, fr, single, quick ? 1 : 6);
            }
            for (i = 0; i < F_COUNT; i++) {
                sempart_result_free(single[i]);
                free(fr[i].buf);
            }
            sempart_model_free(m);
        }
    }

    printf("%d checks, %d failed\n", g_checks, g_failures);
    return g_failures == 0 ? 0 : 1;
}
