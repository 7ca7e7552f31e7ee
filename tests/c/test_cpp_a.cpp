// Test of the C++ wrapper (bindings/cpp/sempart.hpp). Linked with test_cpp_b.cpp, which
// includes the header too: the link proves it is ODR-safe; this file includes it first, which
// proves it self-contained.
//
//   test_cpp [MODEL.onnx]
//
// Without a model only the checks that need none run. Exit status 0 only when all passed.
#include <sempart.hpp>

#include <cstdio>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "test_cpp.h"

static_assert(!std::is_copy_constructible_v<sempart::Model> && !std::is_copy_assignable_v<sempart::Model>,
              "Model is move-only");
static_assert(!std::is_copy_constructible_v<sempart::Result> && !std::is_copy_assignable_v<sempart::Result>,
              "Result is move-only");
static_assert(std::is_nothrow_move_constructible_v<sempart::Model> && std::is_nothrow_move_assignable_v<sempart::Model>,
              "Model moves without throwing");
static_assert(std::is_nothrow_move_constructible_v<sempart::Result> &&
                  std::is_nothrow_move_assignable_v<sempart::Result>,
              "Result moves without throwing");
static_assert(std::is_base_of_v<std::exception, sempart::Error>, "Error is a std::exception");
static_assert(sempart::bytes_per_pixel(SEMPART_PIXEL_FORMAT_BGRA8) == 4, "bytes_per_pixel is constexpr");
static_assert(sempart::plane_rows(SEMPART_PIXEL_FORMAT_NV12, 10) == 15, "plane_rows is constexpr");
static_assert(sizeof(sempart::FrameView) == sizeof(sempart_frame), "FrameView adds nothing to sempart_frame");

namespace {

int g_checks = 0;
int g_failures = 0;

void check(bool ok, const std::string& what) {
    ++g_checks;
    if (!ok) {
        ++g_failures;
    }
    std::printf("%s - %s\n", ok ? "ok  " : "FAIL", what.c_str());
    std::fflush(stdout);
}

// Runs `body`, which must throw sempart::Error with `want`.
template <typename F>
void expect_error(sempart_status want, const char* needle, const std::string& what, F body) {
    try {
        body();
        check(false, what + ": no exception");
    } catch (const sempart::Error& e) {
        const bool ok = e.status() == want && (needle == nullptr || std::strstr(e.what(), needle) != nullptr);
        check(ok, what + ": sempart::Error " + std::to_string(static_cast<int>(e.status())) + " \"" + e.what() + "\"");
    } catch (const std::exception& e) {
        check(false, what + ": wrong exception type: " + e.what());
    }
}

std::vector<std::uint8_t> picture(std::uint32_t w, std::uint32_t h) {
    std::vector<std::uint8_t> rgb(static_cast<std::size_t>(w) * h * 3);
    for (std::uint32_t y = 0; y < h; ++y) {
        for (std::uint32_t x = 0; x < w; ++x) {
            std::uint8_t* p = &rgb[(static_cast<std::size_t>(y) * w + x) * 3];
            const int dx = static_cast<int>(x) - 40, dy = static_cast<int>(y) - 30;
            const bool disc = dx * dx + dy * dy < 15 * 15;
            p[0] = disc ? 230 : static_cast<std::uint8_t>(20 + x / 3);
            p[1] = disc ? 140 : static_cast<std::uint8_t>(30 + y / 3);
            p[2] = disc ? 20 : 60;
        }
    }
    return rgb;
}

bool same_boxes(const std::vector<sempart::Box>& a, const std::vector<sempart::Box>& b) {
    return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(a[0])) == 0);
}

void test_without_model() {
    check(std::string(sempart::version()) == version_from_second_unit(), "version() agrees across translation units");
    check(std::string(sempart::status_string(SEMPART_STATUS_MODEL_FOREIGN)) == "ONNX file is not a Sempart model",
          "status_string");
    check(std::string(sempart::provider_name(SEMPART_PROVIDER_TENSOR_RT)) == "tensorrt", "provider_name");
    const sempart::Options defaults;
    const sempart_options raw = defaults.raw();
    check(raw.provider_count == 1 && raw.providers[0] == SEMPART_PROVIDER_CPU && raw.allow_fallback == 1 &&
              raw.ort_library == nullptr && raw.tensorrt_engine_cache_dir == nullptr && raw.refine_radius == 8.0f &&
              raw.refine_eps == 0.001f,
          "Options() are the SDK defaults");
    sempart::Options o;
    o.providers({SEMPART_PROVIDER_TENSOR_RT, SEMPART_PROVIDER_CUDA}).allow_fallback(false).cpu_threads(2).device_id(1);
    o.tensorrt_fp16(true).tensorrt_engine_cache_dir("/tmp/engines").ort_library("/opt/ort.so").refine(0.0f);
    const sempart_options r2 = o.raw();
    check(r2.provider_count == 2 && r2.providers[0] == SEMPART_PROVIDER_TENSOR_RT &&
              r2.providers[1] == SEMPART_PROVIDER_CUDA && r2.allow_fallback == 0 && r2.cpu_threads == 2 &&
              r2.device_id == 1 && r2.tensorrt_fp16 == 1 &&
              std::strcmp(r2.tensorrt_engine_cache_dir, "/tmp/engines") == 0 &&
              std::strcmp(r2.ort_library, "/opt/ort.so") == 0 && r2.refine_radius == 0.0f && r2.refine_eps == 0.001f &&
              o.refine_radius() == 0.0f,
          "Options setters fill the C struct");
    const std::vector<std::uint8_t> px(12);
    const sempart::FrameView packed = sempart::FrameView::packed(px.data(), 2, 2, SEMPART_PIXEL_FORMAT_RGB8);
    check(packed.size_bytes() == 12 && packed.row_stride() == 6 && packed.raw().data == px.data(),
          "FrameView::packed computes stride and size");
    const sempart::FrameView nv12 = sempart::FrameView::strided(px.data(), 2, 2, 4, SEMPART_PIXEL_FORMAT_NV12);
    check(nv12.size_bytes() == 12 && nv12.format() == SEMPART_PIXEL_FORMAT_NV12, "FrameView::strided counts NV12 rows");

    expect_error(SEMPART_STATUS_MODEL_NOT_FOUND, "/nonexistent/model.onnx", "open a missing model",
                 [] { sempart::Model m("/nonexistent/model.onnx"); });
    sempart::Model empty(static_cast<sempart_model*>(nullptr));
    check(!empty, "a Model made from NULL is empty");
    expect_error(SEMPART_STATUS_NULL_ARGUMENT, "model is NULL", "provider() of an empty Model",
                 [&] { (void)empty.provider(); });
    const sempart::Result none(nullptr);
    check(!none && none.fine_mask().empty() && none.box_count() == 0 && none.object_index() == -1 &&
              !none.object_box().has_value(),
          "an empty Result has empty spans and no boxes");
}

void test_with_model(const std::string& path) {
    expect_error(SEMPART_STATUS_PROVIDER_UNAVAILABLE, "cuda", "CUDA without fallback", [&] {
        sempart::Model m(path, sempart::Options().providers({SEMPART_PROVIDER_CUDA}).allow_fallback(false));
    });
    expect_error(SEMPART_STATUS_INVALID_ARGUMENT, "provider_count", "four providers", [&] {
        sempart::Model m(path, sempart::Options().providers({SEMPART_PROVIDER_CPU, SEMPART_PROVIDER_CPU,
                                                             SEMPART_PROVIDER_CPU, SEMPART_PROVIDER_CPU}));
    });
    expect_error(SEMPART_STATUS_INVALID_ARGUMENT, "provider_count", "no provider",
                 [&] { sempart::Model m(path, sempart::Options().providers(std::vector<sempart_provider>{})); });
    expect_error(SEMPART_STATUS_INVALID_ARGUMENT, "refinement eps", "refinement eps 0",
                 [&] { sempart::Model m(path, sempart::Options().refine(8.0f, 0.0f)); });
    expect_error(SEMPART_STATUS_INVALID_ARGUMENT, "min_component_fraction", "min_component_fraction 2",
                 [&] { sempart::Model m(path, sempart::Options().min_component_fraction(2.0f)); });
    {
        // Only the object is listed at 1; every component at 0; the default in between.
        sempart::Model boxes(path, sempart::Options().min_component_fraction(1.0f));
        check(boxes.min_component_fraction() == 1.0f, "min_component_fraction from the options");
        const std::vector<std::uint8_t> rgb = picture(80, 60);
        const sempart::FrameView frame = sempart::FrameView::packed(rgb.data(), 80, 60, SEMPART_PIXEL_FORMAT_RGB8);
        const std::size_t only_object = boxes.segment(frame).box_count();
        boxes.set_min_component_fraction(0.0f);
        const std::size_t every = boxes.segment(frame).box_count();
        check(only_object <= 1 && every >= only_object, "the box list follows min_component_fraction");
        expect_error(SEMPART_STATUS_INVALID_ARGUMENT, "min_component_fraction", "set_min_component_fraction(-1)",
                     [&] { boxes.set_min_component_fraction(-1.0f); });
        check(boxes.min_component_fraction() == 0.0f, "a refused value leaves the setting");
    }

    sempart::Model model(path, sempart::Options().providers({SEMPART_PROVIDER_CUDA}).allow_fallback(true));
    check(model.provider() == SEMPART_PROVIDER_CPU, "CUDA with fallback runs on the CPU");
    const sempart::InputSize size = model.input_size();
    check(size.width_px > 0 && size.grid_width > 0 && size.width_px / size.grid_width ==
                                                          static_cast<std::uint32_t>(std::stoi(model.metadata("sempart.patch_size"))),
          "input_size agrees with the patch size");
    check(model.metadata("sempart.format_version") == "2", "metadata(sempart.format_version) is \"2\"");
    check(!model.metadata("sempart.backbone.origin").empty(), "metadata(sempart.backbone.origin) is not empty");
    expect_error(SEMPART_STATUS_INVALID_ARGUMENT, "no.such.key", "metadata of a missing key",
                 [&] { (void)model.metadata("no.such.key"); });

    const std::uint32_t w = 80, h = 60;
    const std::vector<std::uint8_t> rgb = picture(w, h);
    const sempart::FrameView frame = sempart::FrameView::packed(rgb.data(), w, h, SEMPART_PIXEL_FORMAT_RGB8);
    sempart::Result result = model.segment(frame);
    check(result.width() == w && result.height() == h && result.grid_width() == size.grid_width &&
              result.fine_mask().size() == w * h && result.fine_probability().size() == w * h &&
              result.coarse_mask().size() == size.grid_width * size.grid_height &&
              result.coarse_probability().size() == size.grid_width * size.grid_height,
          "Result sizes and spans");

    // The wrapper returns exactly what the C API returns.
    sempart_result* raw = nullptr;
    const sempart_status s = sempart_segment(model.get(), &frame.raw(), &raw);
    check(s == SEMPART_STATUS_OK && std::memcmp(sempart_result_fine_mask(raw), result.fine_mask().data(), w * h) == 0,
          "fine mask equals the C API's");
    sempart::Result from_c(raw);
    const std::vector<sempart::Box> boxes = result.boxes();
    check(same_boxes(boxes, from_c.boxes()), "boxes equal the C API's");
    bool each = boxes.size() == result.box_count();
    for (std::size_t i = 0; each && i < boxes.size(); ++i) {
        const sempart::Box b = result.box(i);
        each = std::memcmp(&boxes[i], &b, sizeof(sempart::Box)) == 0;
    }
    check(each, "boxes() equals box(i) for every i");
    const std::optional<sempart::Box> object = result.object_box();
    check(object.has_value() == (result.object_index() >= 0) &&
              (!object || std::memcmp(&*object, &boxes[static_cast<std::size_t>(result.object_index())],
                                      sizeof(sempart::Box)) == 0),
          "object_box() is boxes()[object_index()]");
    check(result.timing().inference_ms > 0, "timing().inference_ms > 0");
    expect_error(SEMPART_STATUS_INVALID_ARGUMENT, "out of range", "box(count)",
                 [&] { (void)result.box(result.box_count()); });
    check(same_boxes(boxes_from_second_unit(model, rgb, w, h), boxes), "the other translation unit gets the same boxes");

    expect_error(SEMPART_STATUS_INVALID_ARGUMENT, "stride", "segment a frame with a short stride", [&] {
        (void)model.segment(sempart::FrameView(rgb.data(), rgb.size(), w, h, w, SEMPART_PIXEL_FORMAT_RGB8));
    });

    // Batch equals single calls.
    const std::vector<std::uint8_t> small = picture(32, 24);
    const std::vector<sempart::FrameView> frames = {
        frame, sempart::FrameView::packed(small.data(), 32, 24, SEMPART_PIXEL_FORMAT_RGB8), frame};
    const std::vector<sempart::Result> batch = model.segment_batch(frames);
    bool batch_ok = batch.size() == 3;
    for (std::size_t i = 0; batch_ok && i < 3; ++i) {
        const sempart::Result single = model.segment(frames[i]);
        batch_ok = batch[i].width() == single.width() &&
                   std::memcmp(batch[i].fine_mask().data(), single.fine_mask().data(), single.fine_mask().size()) == 0 &&
                   same_boxes(batch[i].boxes(), single.boxes());
    }
    check(batch_ok, "segment_batch equals segment for each frame");
    check(model.segment_batch(nullptr, 0).empty(), "an empty batch gives no results");
    const std::vector<sempart::FrameView> bad = {frame, sempart::FrameView(rgb.data(), rgb.size(), 0, h, w * 3,
                                                                            SEMPART_PIXEL_FORMAT_RGB8)};
    expect_error(SEMPART_STATUS_INVALID_ARGUMENT, "frame 1", "a batch with a bad frame",
                 [&] { (void)model.segment_batch(bad); });

    // Streams: strength 0 gives segment()'s mask; the reset reasons; bad options throw; the
    // stream outlives a moved-from or destroyed Model.
    {
        sempart::Stream per_frame(model, sempart::StreamOptions().strength(0.0f));
        const sempart::Result first = per_frame.segment(frame, 0);
        check(first.reset_reason() == SEMPART_RESET_REASON_FIRST_FRAME &&
                  std::memcmp(first.fine_mask().data(), model.segment(frame).fine_mask().data(), w * h) == 0,
              "a strength-0 Stream's first result is segment()'s, with reset FIRST_FRAME");
        check(per_frame.segment(frame, 40000000).reset_reason() == SEMPART_RESET_REASON_NONE,
              "the next frame continues the stream");
        check(per_frame.segment(frame, 1).reset_reason() == SEMPART_RESET_REASON_TIMESTAMP_BACKWARDS,
              "a timestamp going backwards resets it");
        per_frame.reset();
        check(per_frame.segment(frame, 2).reset_reason() == SEMPART_RESET_REASON_REQUESTED, "reset() is reported");
        check(model.segment(frame).reset_reason() == SEMPART_RESET_REASON_NONE, "segment() results report no reset");
        expect_error(SEMPART_STATUS_INVALID_ARGUMENT, "strength", "a Stream with strength 1",
                     [&] { sempart::Stream bad_stream(model, sempart::StreamOptions().strength(1.0f)); });
        sempart::Model owner(path);
        sempart::Stream kept(owner);
        { sempart::Model gone = std::move(owner); }
        check(kept.segment(frame, 0).width() == w, "a Stream keeps working after its Model is destroyed");
    }

    // Moves.
    sempart::Result moved = std::move(result);
    check(moved && !result && moved.fine_mask().size() == w * h && result.fine_mask().empty(),
          "a moved Result owns the handle; the source is empty");
    sempart::Model other = std::move(model);
    check(other && !model, "a moved Model owns the handle; the source is empty");
    expect_error(SEMPART_STATUS_NULL_ARGUMENT, "model is NULL", "segment on a moved-from Model",
                 [&] { (void)model.segment(frame); });
    model = std::move(other);
    check(model && model.provider() == SEMPART_PROVIDER_CPU, "move assignment back");
    sempart_result* released = moved.release();
    check(released != nullptr && !moved, "release() gives up ownership");
    sempart_result_free(released);
}

}  // namespace

int main(int argc, char** argv) {
    try {
        test_without_model();
        if (argc > 1) {
            test_with_model(argv[1]);
        } else {
            std::printf("skip - no model given: the checks that need one are skipped\n");
        }
    } catch (const std::exception& e) {
        check(false, std::string("unexpected exception: ") + e.what());
    }
    std::printf("%d checks, %d failed\n", g_checks, g_failures);
    return g_failures == 0 ? 0 : 1;
}
