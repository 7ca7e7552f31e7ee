// examples/quickstart/quickstart.cpp
// Segments a synthetic 64x48 RGB frame; prints the foreground pixel count and the object box.
// c++ -std=c++17 quickstart.cpp $(pkg-config --cflags --libs sempart) -o quickstart && ./quickstart [MODEL.onnx]
#include <sempart.hpp>
#include <cstdint>
#include <cstdio>
#include <vector>

int main(int argc, char** argv) {
    const char* path = argc > 1 ? argv[1] : "models/sempart-default-int8.onnx";  // in a checkout
    const std::uint32_t width = 64, height = 48;
    std::vector<std::uint8_t> rgb;  // a gradient: no image decoder needed
    for (std::uint32_t i = 0; i < width * height; ++i) {
        rgb.insert(rgb.end(), {std::uint8_t(i % width * 4), std::uint8_t(i / width * 5), 128});
    }
    try {  // Model and Result free their handles; every failing call throws sempart::Error
        const sempart::Model model(path);
        const sempart::Result result =
            model.segment(sempart::FrameView::packed(rgb.data(), width, height, SEMPART_PIXEL_FORMAT_RGB8));
        std::size_t foreground = 0;
        for (std::uint8_t v : result.fine_mask()) foreground += v == 255;
        std::printf("foreground pixels: %zu of %u\n", foreground, width * height);
        if (const auto b = result.object_box()) {
            std::printf("object box: x0=%u y0=%u x1=%u y1=%u (x1, y1 exclusive)\n", b->x0, b->y0, b->x1, b->y1);
        } else {
            std::printf("object box: none\n");
        }
    } catch (const sempart::Error& e) {
        std::fprintf(stderr, "quickstart: %s\n", e.what());
        return 1;
    }
    return 0;
}
