// examples/quickstart/quickstart.c
// Segments a synthetic 64x48 RGB frame; prints the foreground pixel count and the object box.
// cc quickstart.c $(pkg-config --cflags --libs sempart) -o quickstart && ./quickstart [MODEL.onnx]
#include <sempart.h>
#include <stdio.h>

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "models/sempart-default-int8.onnx"; /* in a checkout */
    enum { W = 64, H = 48 };
    static uint8_t rgb[W * H * 3]; /* a gradient: no image decoder needed */
    for (int i = 0; i < W * H; i++) {
        rgb[3 * i] = (uint8_t)(i % W * 4); rgb[3 * i + 1] = (uint8_t)(i / W * 5); rgb[3 * i + 2] = 128;
    }
    sempart_model *model = NULL; /* both freed below; a NULL handle is ignored */
    sempart_result *result = NULL;
    sempart_status status = sempart_model_open(path, NULL, &model); /* NULL: default options */
    if (status == SEMPART_STATUS_OK) {
        sempart_frame frame = {rgb, sizeof rgb, W, H, W * 3, SEMPART_PIXEL_FORMAT_RGB8};
        status = sempart_segment(model, &frame, &result);
    }
    if (status != SEMPART_STATUS_OK) {
        fprintf(stderr, "quickstart: %s: %s\n", sempart_status_string(status), sempart_last_error_message());
        sempart_model_free(model);
        return 1;
    }
    const uint8_t *mask = sempart_result_fine_mask(result); /* W x H bytes, 255 = foreground */
    size_t foreground = 0;
    for (size_t i = 0; i < (size_t)W * H; i++) foreground += mask[i] == 255;
    printf("foreground pixels: %zu of %d\n", foreground, W * H);
    int64_t object = sempart_result_object_index(result); /* -1 when the mask is empty */
    sempart_box b;
    if (object >= 0 && sempart_result_box(result, (size_t)object, &b) == SEMPART_STATUS_OK) {
        printf("object box: x0=%u y0=%u x1=%u y1=%u (x1, y1 exclusive)\n", b.x0, b.y0, b.x1, b.y1);
    } else {
        printf("object box: none\n");
    }
    sempart_result_free(result);
    sempart_model_free(model);
    return 0;
}
