// camera_pipeline.cpp: segment a stream of raw video frames read from stdin, frame after
// frame, as a camera pipeline would, with the C++ wrapper (sempart.hpp).
//
//   camera_pipeline --size WxH [--format bgr24] [--model PATH] [--provider cpu|cuda|tensorrt]
//                   [--max-frames N] [--fps F] [--strength S] < frames.raw
//
// Frames are raw and back to back, exactly what ffmpeg writes with `-f rawvideo`:
//
//   ffmpeg -loglevel error -i input.mp4 -f rawvideo -pix_fmt bgr24 - |
//     camera_pipeline --size 1280x720 --format bgr24
//   ffmpeg -loglevel error -f v4l2 -video_size 640x480 -i /dev/video0 -f rawvideo -pix_fmt nv12 - |
//     camera_pipeline --size 640x480 --format nv12
//
// Formats (ffmpeg -pix_fmt names): rgb24, bgr24, rgba, bgra, gray, nv12. The frames go through
// a sempart::Stream (temporal stability, timestamps at --fps, default 30); --strength 0 gives
// per-frame masks.
// Prints one line per frame with its boxes ("x0,y0,x1,y1" with exclusive x1/y1; the object
// box is marked with *), and the mean time per stage at the end (on stderr). The model
// defaults to $SEMPART_MODEL, else models/sempart-default-int8.onnx on the CPU and
// models/sempart-default.onnx (float32) with a GPU provider.
//
// Build:  c++ -std=c++17 camera_pipeline.cpp $(pkg-config --cflags --libs sempart) -o camera_pipeline
#include <sempart.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

struct FormatName {
    const char* name;
    sempart_pixel_format format;
};

constexpr FormatName kFormats[] = {
    {"rgb24", SEMPART_PIXEL_FORMAT_RGB8}, {"bgr24", SEMPART_PIXEL_FORMAT_BGR8},
    {"rgba", SEMPART_PIXEL_FORMAT_RGBA8},  {"bgra", SEMPART_PIXEL_FORMAT_BGRA8},
    {"gray", SEMPART_PIXEL_FORMAT_GRAY8},  {"nv12", SEMPART_PIXEL_FORMAT_NV12},
};

void usage(const char* argv0) {
    std::fprintf(stderr,
                 "usage: %s --size WxH [--format rgb24|bgr24|rgba|bgra|gray|nv12] [--model PATH]\n"
                 "          [--provider cpu|cuda|tensorrt] [--max-frames N] [--fps F] [--strength S] < raw-frames\n",
                 argv0);
}

// Reads exactly `size` bytes; returns how many were read (less only at the end of the input).
std::size_t read_full(std::FILE* in, std::uint8_t* buffer, std::size_t size) {
    std::size_t done = 0;
    while (done < size) {
        const std::size_t n = std::fread(buffer + done, 1, size - done, in);
        if (n == 0) {
            break;
        }
        done += n;
    }
    return done;
}

}  // namespace

int main(int argc, char** argv) {
    const char* env_model = std::getenv("SEMPART_MODEL");
    std::string model_path = env_model && *env_model ? env_model : "";
    unsigned width = 0, height = 0;
    sempart_pixel_format format = SEMPART_PIXEL_FORMAT_BGR8;
    sempart_provider provider = SEMPART_PROVIDER_CPU;
    long max_frames = -1;
    double fps = 30.0;
    double strength = -1.0;  // below 0: the SDK's default

    for (int a = 1; a < argc; ++a) {
        const std::string arg = argv[a];
        const bool has_value = a + 1 < argc;
        if (arg == "--size" && has_value) {
            if (std::sscanf(argv[++a], "%ux%u", &width, &height) != 2 || width == 0 || height == 0) {
                usage(argv[0]);
                return 2;
            }
        } else if (arg == "--format" && has_value) {
            const std::string name = argv[++a];
            bool known = false;
            for (const FormatName& f : kFormats) {
                if (name == f.name) {
                    format = f.format;
                    known = true;
                }
            }
            if (!known) {
                std::fprintf(stderr, "unknown pixel format '%s'\n", name.c_str());
                return 2;
            }
        } else if (arg == "--model" && has_value) {
            model_path = argv[++a];
        } else if (arg == "--provider" && has_value) {
            const std::string name = argv[++a];
            if (name == "cpu") {
                provider = SEMPART_PROVIDER_CPU;
            } else if (name == "cuda") {
                provider = SEMPART_PROVIDER_CUDA;
            } else if (name == "tensorrt") {
                provider = SEMPART_PROVIDER_TENSOR_RT;
            } else {
                usage(argv[0]);
                return 2;
            }
        } else if (arg == "--max-frames" && has_value) {
            max_frames = std::atol(argv[++a]);
        } else if (arg == "--fps" && has_value) {
            fps = std::atof(argv[++a]);
            if (!(fps > 0)) {
                usage(argv[0]);
                return 2;
            }
        } else if (arg == "--strength" && has_value) {
            strength = std::atof(argv[++a]);
        } else if (arg == "--help" || arg == "-h") {
            usage(argv[0]);
            return 0;
        } else {
            usage(argv[0]);
            return 2;
        }
    }
    if (width == 0) {
        usage(argv[0]);
        return 2;
    }
    if (model_path.empty()) {
        model_path = provider == SEMPART_PROVIDER_CPU ? "models/sempart-default-int8.onnx" : "models/sempart-default.onnx";
    }

    try {
        sempart::Model model(model_path, sempart::Options().providers({provider}).allow_fallback(true));
        sempart::StreamOptions stream_options;
        if (strength >= 0) {
            stream_options.strength(static_cast<float>(strength));
        }
        const sempart::Stream stream(model, stream_options);
        std::fprintf(stderr, "model %s on %s; frames %ux%u\n", model_path.c_str(),
                     sempart::provider_name(model.provider()), width, height);

        const std::size_t stride = width * sempart::bytes_per_pixel(format);
        const std::size_t frame_bytes = stride * sempart::plane_rows(format, height);
        std::vector<std::uint8_t> buffer(frame_bytes);
        double sum_pre = 0, sum_inf = 0, sum_post = 0, sum_wall = 0;
        long frames = 0;

        while (max_frames < 0 || frames < max_frames) {
            const std::size_t got = read_full(stdin, buffer.data(), frame_bytes);
            if (got == 0) {
                break;
            }
            if (got < frame_bytes) {
                std::fprintf(stderr, "warning: the input ends with a partial frame (%zu of %zu bytes), ignored\n", got,
                             frame_bytes);
                break;
            }
            const auto start = std::chrono::steady_clock::now();
            const auto timestamp_ns = static_cast<std::int64_t>(static_cast<double>(frames) * 1e9 / fps);
            const sempart::Result result =
                stream.segment(sempart::FrameView::packed(buffer.data(), width, height, format), timestamp_ns);
            sum_wall += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();

            const std::int64_t object = result.object_index();
            std::printf("frame %ld: %zu boxes", frames, result.box_count());
            const std::vector<sempart::Box> boxes = result.boxes();
            for (std::size_t i = 0; i < boxes.size(); ++i) {
                const sempart::Box& b = boxes[i];
                std::printf(" %s%u,%u,%u,%u", static_cast<std::int64_t>(i) == object ? "*" : "", b.x0, b.y0, b.x1,
                            b.y1);
            }
            std::printf("\n");
            std::fflush(stdout);

            const sempart::Timing t = result.timing();
            sum_pre += t.preprocess_ms;
            sum_inf += t.inference_ms;
            sum_post += t.postprocess_ms;
            ++frames;
        }
        if (frames > 0) {
            const double n = static_cast<double>(frames);
            std::fprintf(stderr,
                         "%ld frames: mean preprocess %.2f ms, inference %.2f ms, postprocess %.2f ms, "
                         "per frame %.2f ms (%.1f frames/s)\n",
                         frames, sum_pre / n, sum_inf / n, sum_post / n, sum_wall / n,
                         sum_wall > 0 ? 1000.0 * n / sum_wall : 0.0);
        } else {
            std::fprintf(stderr, "no frames on stdin\n");
        }
    } catch (const sempart::Error& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
    return 0;
}
