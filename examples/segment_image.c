/*
 * segment_image.c: segment one image with libsempart and write the fine mask.
 *
 *   segment_image [--model PATH] [--provider cpu|cuda|tensorrt] [--out MASK.pgm] IMAGE.ppm|IMAGE.pgm
 *
 * Reads binary PPM (P6, RGB) and PGM (P5, gray) files with 8-bit samples, so the example
 * needs nothing but the SDK. Convert other formats first, for example:
 *
 *   convert photo.jpg photo.ppm                      (ImageMagick)
 *   ffmpeg -i photo.jpg -pix_fmt rgb24 photo.ppm     (ffmpeg)
 *
 * Writes the fine mask as a PGM (255 = object; default: mask.pgm), then prints every box of
 * the mask, the object box and the time each stage took. The model defaults to
 * $SEMPART_MODEL, else models/sempart-default-int8.onnx on the CPU (the int8 variant, about
 * twice as fast there) and models/sempart-default.onnx (float32) with a GPU provider. A
 * provider other than cpu falls back to the CPU when it is not available.
 *
 * Build:  cc segment_image.c $(pkg-config --cflags --libs sempart) -o segment_image
 */
#include <sempart.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    unsigned char *pixels;
    unsigned width;
    unsigned height;
    unsigned channels; /* 3 (P6) or 1 (P5) */
} image;

/* Reads the next header number of a PNM file, skipping white space and # comments. */
static int pnm_number(FILE *f, unsigned *out) {
    int c = fgetc(f);
    unsigned long v = 0;
    int digits = 0;
    for (;;) {
        while (c != EOF && isspace(c)) {
            c = fgetc(f);
        }
        if (c != '#') {
            break;
        }
        while (c != EOF && c != '\n') {
            c = fgetc(f);
        }
    }
    while (c != EOF && isdigit(c)) {
        v = v * 10 + (unsigned long)(c - '0');
        if (v > 1000000) {
            return 0;
        }
        digits++;
        c = fgetc(f);
    }
    /* exactly one white space character separates the header from the pixels */
    if (digits == 0 || (c != EOF && !isspace(c))) {
        return 0;
    }
    *out = (unsigned)v;
    return 1;
}

static int read_pnm(const char *path, image *img) {
    FILE *f = fopen(path, "rb");
    char magic[2];
    unsigned maxval = 0;
    size_t size;
    if (f == NULL) {
        perror(path);
        return 0;
    }
    if (fread(magic, 1, 2, f) != 2 || magic[0] != 'P' || (magic[1] != '6' && magic[1] != '5')) {
        fprintf(stderr, "%s: not a binary PPM (P6) or PGM (P5) file; convert it, e.g. `convert %s out.ppm`\n", path,
                path);
        fclose(f);
        return 0;
    }
    img->channels = magic[1] == '6' ? 3 : 1;
    if (!pnm_number(f, &img->width) || !pnm_number(f, &img->height) || !pnm_number(f, &maxval) || img->width == 0 ||
        img->height == 0) {
        fprintf(stderr, "%s: unreadable PNM header\n", path);
        fclose(f);
        return 0;
    }
    if (maxval == 0 || maxval > 255) {
        fprintf(stderr, "%s: only 8-bit samples are supported (maxval %u)\n", path, maxval);
        fclose(f);
        return 0;
    }
    size = (size_t)img->width * img->height * img->channels;
    img->pixels = malloc(size);
    if (img->pixels == NULL || fread(img->pixels, 1, size, f) != size) {
        fprintf(stderr, "%s: the file ends before its %ux%u pixels\n", path, img->width, img->height);
        free(img->pixels);
        fclose(f);
        return 0;
    }
    if (maxval != 255) { /* rescale to 0..255 */
        size_t i;
        for (i = 0; i < size; i++) {
            img->pixels[i] = (unsigned char)((img->pixels[i] * 255u + maxval / 2) / maxval);
        }
    }
    fclose(f);
    return 1;
}

static int write_pgm(const char *path, const unsigned char *pixels, unsigned width, unsigned height) {
    FILE *f = fopen(path, "wb");
    size_t size = (size_t)width * height;
    int ok;
    if (f == NULL) {
        perror(path);
        return 0;
    }
    ok = fprintf(f, "P5\n%u %u\n255\n", width, height) > 0 && fwrite(pixels, 1, size, f) == size;
    ok = (fclose(f) == 0) && ok;
    if (!ok) {
        fprintf(stderr, "%s: write failed\n", path);
    }
    return ok;
}

static int fail(const char *what, sempart_status status) {
    fprintf(stderr, "%s: %s: %s\n", what, sempart_status_string(status), sempart_last_error_message());
    return 1;
}

static void usage(const char *argv0) {
    fprintf(stderr, "usage: %s [--model PATH] [--provider cpu|cuda|tensorrt] [--out MASK.pgm] IMAGE.ppm|IMAGE.pgm\n",
            argv0);
}

int main(int argc, char **argv) {
    const char *model_path = getenv("SEMPART_MODEL");
    const char *out_path = "mask.pgm";
    const char *input = NULL;
    sempart_options options;
    sempart_model *model = NULL;
    sempart_result *result = NULL;
    sempart_frame frame;
    sempart_provider provider = SEMPART_PROVIDER_CPU;
    sempart_status status;
    sempart_timing timing;
    image img = {NULL, 0, 0, 0};
    size_t i, count;
    int64_t object;
    int rc = 1, a;

    sempart_options_init(&options);
    for (a = 1; a < argc; a++) {
        if (strcmp(argv[a], "--model") == 0 && a + 1 < argc) {
            model_path = argv[++a];
        } else if (strcmp(argv[a], "--out") == 0 && a + 1 < argc) {
            out_path = argv[++a];
        } else if (strcmp(argv[a], "--provider") == 0 && a + 1 < argc) {
            const char *p = argv[++a];
            if (strcmp(p, "cpu") == 0) {
                options.providers[0] = SEMPART_PROVIDER_CPU;
            } else if (strcmp(p, "cuda") == 0) {
                options.providers[0] = SEMPART_PROVIDER_CUDA;
            } else if (strcmp(p, "tensorrt") == 0) {
                options.providers[0] = SEMPART_PROVIDER_TENSOR_RT;
            } else {
                usage(argv[0]);
                return 2;
            }
        } else if (strcmp(argv[a], "--help") == 0 || strcmp(argv[a], "-h") == 0) {
            usage(argv[0]);
            return 0;
        } else if (argv[a][0] == '-' || input != NULL) {
            usage(argv[0]);
            return 2;
        } else {
            input = argv[a];
        }
    }
    if (model_path == NULL || model_path[0] == '\0') {
        model_path = options.providers[0] == SEMPART_PROVIDER_CPU ? "models/sempart-default-int8.onnx"
                                                                   : "models/sempart-default.onnx";
    }
    if (input == NULL) {
        usage(argv[0]);
        return 2;
    }
    if (!read_pnm(input, &img)) {
        return 1;
    }

    status = sempart_model_open(model_path, &options, &model);
    if (status != SEMPART_STATUS_OK) {
        rc = fail(model_path, status);
        goto done;
    }
    sempart_model_provider(model, &provider);

    frame.data = img.pixels;
    frame.data_size_bytes = (size_t)img.width * img.height * img.channels;
    frame.width_px = img.width;
    frame.height_px = img.height;
    frame.row_stride_bytes = (size_t)img.width * img.channels;
    frame.pixel_format = img.channels == 3 ? SEMPART_PIXEL_FORMAT_RGB8 : SEMPART_PIXEL_FORMAT_GRAY8;
    status = sempart_segment(model, &frame, &result);
    if (status != SEMPART_STATUS_OK) {
        rc = fail(input, status);
        goto done;
    }

    if (!write_pgm(out_path, sempart_result_fine_mask(result), img.width, img.height)) {
        goto done;
    }
    printf("image: %s (%ux%u, %s)\n", input, img.width, img.height, img.channels == 3 ? "RGB" : "gray");
    printf("mask: %s\n", out_path);
    count = sempart_result_box_count(result);
    printf("boxes: %zu\n", count);
    for (i = 0; i < count; i++) {
        sempart_box b;
        sempart_result_box(result, i, &b);
        printf("box %zu: x0=%u y0=%u x1=%u y1=%u pixels=%u\n", i, b.x0, b.y0, b.x1, b.y1, b.pixel_count);
    }
    object = sempart_result_object_index(result);
    if (object >= 0) {
        sempart_box b;
        sempart_result_box(result, (size_t)object, &b);
        printf("object: box %lld: x0=%u y0=%u x1=%u y1=%u\n", (long long)object, b.x0, b.y0, b.x1, b.y1);
    } else {
        printf("object: none (empty mask)\n");
    }
    timing = sempart_result_timing(result);
    printf("timing: preprocess %.2f ms, inference %.2f ms, postprocess %.2f ms (%s)\n", timing.preprocess_ms,
           timing.inference_ms, timing.postprocess_ms,
           provider == SEMPART_PROVIDER_CPU ? "cpu" : provider == SEMPART_PROVIDER_CUDA ? "cuda" : "tensorrt");
    rc = 0;

done:
    sempart_result_free(result);
    sempart_model_free(model);
    free(img.pixels);
    return rc;
}
