/*
 * sempart.hpp: header-only C++17 wrapper over the C API of the Sempart SDK (sempart.h).
 *
 *   sempart::Model model("models/sempart-default.onnx",
 *                        sempart::Options().providers({SEMPART_PROVIDER_CUDA}).allow_fallback(true));
 *   sempart::Result r = model.segment(sempart::FrameView::packed(pixels, w, h, SEMPART_PIXEL_FORMAT_BGR8));
 *   for (uint8_t v : r.fine_mask()) { ... }
 *
 * Everything here is inline and adds nothing to the C calls but RAII and exceptions: every
 * failing call throws sempart::Error, which carries the sempart_status and the SDK's message.
 * Model and Result are move-only owners of the C handles. A Model may be used by many threads
 * at once (segment is const); a Result belongs to one thread at a time.
 *
 * Link with libsempart.so (`pkg-config --cflags --libs sempart`). See docs/C_API.md.
 */
#ifndef SEMPART_HPP
#define SEMPART_HPP

#include "sempart.h"

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#if __cplusplus < 201703L && !(defined(_MSVC_LANG) && _MSVC_LANG >= 201703L)
#error "sempart.hpp needs C++17 (-std=c++17)"
#endif

namespace sempart {

/// The SDK version, e.g. "0.1.0".
inline const char* version() noexcept { return sempart_version(); }

/// Static description of a status value.
inline const char* status_string(sempart_status status) noexcept {
    return sempart_status_string(static_cast<int32_t>(status));
}

/// Short lowercase name of a provider: "tensorrt", "cuda", "cpu" ("unknown" otherwise).
inline const char* provider_name(sempart_provider provider) noexcept {
    switch (provider) {
        case SEMPART_PROVIDER_TENSOR_RT: return "tensorrt";
        case SEMPART_PROVIDER_CUDA: return "cuda";
        case SEMPART_PROVIDER_CPU: return "cpu";
    }
    return "unknown";
}

/// Bytes per pixel of the first plane of a format (0 for an unknown format).
constexpr std::size_t bytes_per_pixel(sempart_pixel_format format) noexcept {
    switch (format) {
        case SEMPART_PIXEL_FORMAT_RGB8:
        case SEMPART_PIXEL_FORMAT_BGR8: return 3;
        case SEMPART_PIXEL_FORMAT_RGBA8:
        case SEMPART_PIXEL_FORMAT_BGRA8: return 4;
        case SEMPART_PIXEL_FORMAT_GRAY8:
        case SEMPART_PIXEL_FORMAT_NV12: return 1;
    }
    return 0;
}

/// Number of rows of `row_stride` bytes a frame occupies (NV12: Y rows plus half as many UV rows).
constexpr std::size_t plane_rows(sempart_pixel_format format, std::uint32_t height_px) noexcept {
    return format == SEMPART_PIXEL_FORMAT_NV12 ? static_cast<std::size_t>(height_px) * 3 / 2
                                               : static_cast<std::size_t>(height_px);
}

/// A failed SDK call: the status and the message of sempart_last_error_message().
class Error : public std::runtime_error {
public:
    Error(sempart_status status, const std::string& message)
        : std::runtime_error(message), status_(status) {}

    /// The status the C call returned.
    sempart_status status() const noexcept { return status_; }

private:
    sempart_status status_;
};

namespace detail {

/// Throws the Error of a failed call, with this thread's last error message.
[[noreturn]] inline void throw_status(sempart_status status) {
    const char* message = sempart_last_error_message();
    std::string text = status_string(status);
    if (message != nullptr && message[0] != '\0') {
        text += ": ";
        text += message;
    }
    throw Error(status, text);
}

inline void check(sempart_status status) {
    if (status != SEMPART_STATUS_OK) {
        throw_status(status);
    }
}

}  // namespace detail

/// A read-only view of contiguous values owned by a Result (C++17 has no std::span).
template <typename T>
class Span {
public:
    constexpr Span() noexcept = default;
    constexpr Span(const T* data, std::size_t size) noexcept : data_(data), size_(size) {}

    constexpr const T* data() const noexcept { return data_; }
    constexpr std::size_t size() const noexcept { return size_; }
    constexpr bool empty() const noexcept { return size_ == 0; }
    constexpr const T* begin() const noexcept { return data_; }
    constexpr const T* end() const noexcept { return data_ + size_; }
    constexpr const T& operator[](std::size_t i) const noexcept { return data_[i]; }

private:
    const T* data_ = nullptr;
    std::size_t size_ = 0;
};

/// Options for opening a model; setters chain. Strings are owned here, so an Options may
/// outlive the values it was given.
class Options {
public:
    /// The SDK's defaults: CPU only, fallback allowed, ONNX Runtime picks the threads.
    Options() noexcept {
        // Cannot fail: the pointer is not NULL.
        (void)sempart_options_init(&raw_);
        providers_.push_back(SEMPART_PROVIDER_CPU);
    }

    /// Providers in order of preference (1 to 3 of them; the SDK rejects other counts).
    Options& providers(std::initializer_list<sempart_provider> list) {
        providers_.assign(list.begin(), list.end());
        return *this;
    }
    Options& providers(const std::vector<sempart_provider>& list) {
        providers_ = list;
        return *this;
    }
    /// When a provider cannot be used, try the next one and finally the CPU.
    Options& allow_fallback(bool allow) noexcept {
        raw_.allow_fallback = allow ? 1 : 0;
        return *this;
    }
    /// Threads for CPU inference; 0 lets ONNX Runtime choose.
    Options& cpu_threads(std::uint32_t threads) noexcept {
        raw_.cpu_threads = threads;
        return *this;
    }
    /// GPU index for CUDA and TensorRT.
    Options& device_id(std::int32_t id) noexcept {
        raw_.device_id = id;
        return *this;
    }
    /// Let TensorRT build fp16 engines.
    Options& tensorrt_fp16(bool fp16) noexcept {
        raw_.tensorrt_fp16 = fp16 ? 1 : 0;
        return *this;
    }
    /// Folder for TensorRT's engine cache (empty: none).
    Options& tensorrt_engine_cache_dir(std::string dir) {
        engine_cache_dir_ = std::move(dir);
        return *this;
    }
    /// Path of libonnxruntime.so.1.31.1 to load (empty: search next to libsempart.so).
    Options& ort_library(std::string path) {
        ort_library_ = std::move(path);
        return *this;
    }

    /// Edge-aware refinement of the fine mask (guided filter with the frame as the guide):
    /// radius in model-input pixels (0: off, the plain resize), regulariser eps > 0.
    /// Defaults: 8 and 0.001. Checked when the model is opened.
    Options& refine(float radius, float eps = 0.001f) noexcept {
        raw_.refine_radius = radius;
        raw_.refine_eps = eps;
        return *this;
    }

    /// Components smaller than this share of the frame's area get no box (the mask keeps them;
    /// the object box is always listed), 0..=1; 0 lists every component. Default 0.0005.
    /// Checked when the model is opened (set with sempart_model_set_min_component_fraction).
    Options& min_component_fraction(float fraction) noexcept {
        min_component_fraction_ = fraction;
        return *this;
    }

    const std::vector<sempart_provider>& providers() const noexcept { return providers_; }
    bool allow_fallback() const noexcept { return raw_.allow_fallback != 0; }
    std::uint32_t cpu_threads() const noexcept { return raw_.cpu_threads; }
    std::int32_t device_id() const noexcept { return raw_.device_id; }
    bool tensorrt_fp16() const noexcept { return raw_.tensorrt_fp16 != 0; }
    const std::string& tensorrt_engine_cache_dir() const noexcept { return engine_cache_dir_; }
    const std::string& ort_library() const noexcept { return ort_library_; }
    float refine_radius() const noexcept { return raw_.refine_radius; }
    float refine_eps() const noexcept { return raw_.refine_eps; }
    /// NaN until set: the model keeps the SDK's default.
    float min_component_fraction() const noexcept { return min_component_fraction_; }

    /// The C struct; its string pointers point into this object and live as long as it does.
    /// More than 3 providers give a provider_count the SDK rejects.
    sempart_options raw() const noexcept {
        sempart_options out = raw_;
        const std::size_t capacity = sizeof(out.providers) / sizeof(out.providers[0]);
        for (std::size_t i = 0; i < providers_.size() && i < capacity; ++i) {
            out.providers[i] = static_cast<std::uint32_t>(providers_[i]);
        }
        out.provider_count = static_cast<std::uint32_t>(providers_.size());
        out.tensorrt_engine_cache_dir = engine_cache_dir_.empty() ? nullptr : engine_cache_dir_.c_str();
        out.ort_library = ort_library_.empty() ? nullptr : ort_library_.c_str();
        return out;
    }

private:
    sempart_options raw_{};
    std::vector<sempart_provider> providers_;
    std::string engine_cache_dir_;
    std::string ort_library_;
    float min_component_fraction_ = std::numeric_limits<float>::quiet_NaN();
};

/// A frame in caller memory (not owned): a thin wrapper of sempart_frame. The SDK reads the
/// pixels during segment() only.
class FrameView {
public:
    /// A frame with an explicit buffer size and row stride.
    FrameView(const void* data, std::size_t size_bytes, std::uint32_t width_px, std::uint32_t height_px,
              std::size_t row_stride_bytes, sempart_pixel_format format) noexcept
        : raw_{static_cast<const std::uint8_t*>(data), size_bytes, width_px, height_px, row_stride_bytes,
               static_cast<std::uint32_t>(format)} {}

    /// A frame whose rows follow each other without padding (NV12: Y plane then UV plane).
    static FrameView packed(const void* data, std::uint32_t width_px, std::uint32_t height_px,
                            sempart_pixel_format format) noexcept {
        const std::size_t stride = static_cast<std::size_t>(width_px) * bytes_per_pixel(format);
        return FrameView(data, stride * plane_rows(format, height_px), width_px, height_px, stride, format);
    }

    /// A frame with padded rows, every row (the last included) `row_stride_bytes` long.
    static FrameView strided(const void* data, std::uint32_t width_px, std::uint32_t height_px,
                             std::size_t row_stride_bytes, sempart_pixel_format format) noexcept {
        return FrameView(data, row_stride_bytes * plane_rows(format, height_px), width_px, height_px,
                         row_stride_bytes, format);
    }

    const std::uint8_t* data() const noexcept { return raw_.data; }
    std::size_t size_bytes() const noexcept { return raw_.data_size_bytes; }
    std::uint32_t width() const noexcept { return raw_.width_px; }
    std::uint32_t height() const noexcept { return raw_.height_px; }
    std::size_t row_stride() const noexcept { return raw_.row_stride_bytes; }
    sempart_pixel_format format() const noexcept { return static_cast<sempart_pixel_format>(raw_.pixel_format); }
    const sempart_frame& raw() const noexcept { return raw_; }

private:
    sempart_frame raw_;
};

/// Timing of one call, in milliseconds.
using Timing = sempart_timing;
/// One connected component of the fine mask (x1, y1 exclusive).
using Box = sempart_box;

/// The result of segmenting one frame; owns a sempart_result. Move-only.
class Result {
public:
    /// Takes ownership of a result from the C API (NULL gives an empty Result).
    explicit Result(sempart_result* raw) noexcept : raw_(raw) {
        if (raw_ != nullptr) {
            (void)sempart_result_size(raw_, &width_, &height_, &grid_width_, &grid_height_);
        }
    }
    ~Result() { sempart_result_free(raw_); }
    Result(Result&& other) noexcept
        : raw_(std::exchange(other.raw_, nullptr)),
          width_(other.width_),
          height_(other.height_),
          grid_width_(other.grid_width_),
          grid_height_(other.grid_height_) {}
    Result& operator=(Result&& other) noexcept {
        if (this != &other) {
            sempart_result_free(raw_);
            raw_ = std::exchange(other.raw_, nullptr);
            width_ = other.width_;
            height_ = other.height_;
            grid_width_ = other.grid_width_;
            grid_height_ = other.grid_height_;
        }
        return *this;
    }
    Result(const Result&) = delete;
    Result& operator=(const Result&) = delete;

    /// Frame width and height in pixels.
    std::uint32_t width() const noexcept { return width_; }
    std::uint32_t height() const noexcept { return height_; }
    /// Coarse grid width and height (model input / patch size).
    std::uint32_t grid_width() const noexcept { return grid_width_; }
    std::uint32_t grid_height() const noexcept { return grid_height_; }

    /// Fine mask: width x height bytes, row-major, 255 = foreground, 0 = background.
    Span<std::uint8_t> fine_mask() const noexcept { return {sempart_result_fine_mask(raw_), pixels()}; }
    /// Foreground probability of each frame pixel (0..1).
    Span<float> fine_probability() const noexcept { return {sempart_result_fine_probability(raw_), pixels()}; }
    /// Coarse mask on the model grid, 255 = foreground.
    Span<std::uint8_t> coarse_mask() const noexcept { return {sempart_result_coarse_mask(raw_), cells()}; }
    /// Foreground probability of each grid cell.
    Span<float> coarse_probability() const noexcept { return {sempart_result_coarse_probability(raw_), cells()}; }

    /// Number of connected components of the fine mask.
    std::size_t box_count() const noexcept { return sempart_result_box_count(raw_); }
    /// Component `index`; throws Error (SEMPART_STATUS_INVALID_ARGUMENT) when out of range.
    Box box(std::size_t index) const {
        Box out{};
        detail::check(sempart_result_box(raw_, index, &out));
        return out;
    }
    /// All components, in the SDK's order.
    std::vector<Box> boxes() const {
        std::vector<Box> out(box_count());
        for (std::size_t i = 0; i < out.size(); ++i) {
            detail::check(sempart_result_box(raw_, i, &out[i]));
        }
        return out;
    }
    /// Index of the object box, or -1 when the mask is empty.
    std::int64_t object_index() const noexcept { return sempart_result_object_index(raw_); }
    /// The object box (the component with the largest bounding box), if any.
    std::optional<Box> object_box() const {
        const std::int64_t i = object_index();
        if (i < 0) {
            return std::nullopt;
        }
        return box(static_cast<std::size_t>(i));
    }
    /// Time spent per stage of the call that produced this result.
    Timing timing() const noexcept { return sempart_result_timing(raw_); }
    /// On a Stream: whether and why the temporal smoothing started again at this frame
    /// (SEMPART_RESET_REASON_NONE for every Model::segment result).
    sempart_reset_reason reset_reason() const {
        sempart_reset_reason out = SEMPART_RESET_REASON_NONE;
        detail::check(sempart_result_reset_reason(raw_, &out));
        return out;
    }

    /// The C handle (still owned by this Result).
    const sempart_result* get() const noexcept { return raw_; }
    /// Gives up ownership: the caller must sempart_result_free() the handle.
    sempart_result* release() noexcept { return std::exchange(raw_, nullptr); }
    explicit operator bool() const noexcept { return raw_ != nullptr; }

private:
    std::size_t pixels() const noexcept { return raw_ ? static_cast<std::size_t>(width_) * height_ : 0; }
    std::size_t cells() const noexcept { return raw_ ? static_cast<std::size_t>(grid_width_) * grid_height_ : 0; }

    sempart_result* raw_ = nullptr;
    std::uint32_t width_ = 0;
    std::uint32_t height_ = 0;
    std::uint32_t grid_width_ = 0;
    std::uint32_t grid_height_ = 0;
};

/// Model input size and coarse grid size.
struct InputSize {
    std::uint32_t width_px;
    std::uint32_t height_px;
    std::uint32_t grid_width;
    std::uint32_t grid_height;
};

/// A loaded model; owns a sempart_model. Move-only. segment() may be called from many
/// threads at once.
class Model {
public:
    /// Opens a model file; throws Error on failure.
    explicit Model(const std::string& path, const Options& options = Options()) {
        const sempart_options raw = options.raw();
        detail::check(sempart_model_open(path.c_str(), &raw, &raw_));
        if (!std::isnan(options.min_component_fraction())) {
            const sempart_status status = sempart_model_set_min_component_fraction(raw_, options.min_component_fraction());
            if (status != SEMPART_STATUS_OK) {
                sempart_model_free(std::exchange(raw_, nullptr));
                detail::check(status);
            }
        }
    }
    /// Takes ownership of a model handle from the C API.
    explicit Model(sempart_model* raw) noexcept : raw_(raw) {}
    ~Model() { sempart_model_free(raw_); }
    Model(Model&& other) noexcept : raw_(std::exchange(other.raw_, nullptr)) {}
    Model& operator=(Model&& other) noexcept {
        if (this != &other) {
            sempart_model_free(raw_);
            raw_ = std::exchange(other.raw_, nullptr);
        }
        return *this;
    }
    Model(const Model&) = delete;
    Model& operator=(const Model&) = delete;

    /// The smallest component the box lists keep, as a share of the frame's area.
    float min_component_fraction() const {
        float out = 0.0f;
        detail::check(sempart_model_min_component_fraction(raw_, &out));
        return out;
    }
    /// Changes it for the results and streams from now on (0..=1; throws Error otherwise).
    void set_min_component_fraction(float fraction) {
        detail::check(sempart_model_set_min_component_fraction(raw_, fraction));
    }

    /// The execution provider the model runs on.
    sempart_provider provider() const {
        sempart_provider out = SEMPART_PROVIDER_CPU;
        detail::check(sempart_model_provider(raw_, &out));
        return out;
    }

    /// The model's input size and coarse grid size.
    InputSize input_size() const {
        InputSize out{};
        detail::check(sempart_model_input_size(raw_, &out.width_px, &out.height_px, &out.grid_width, &out.grid_height));
        return out;
    }

    /// A metadata value (e.g. "sempart.backbone.origin"); throws Error when the key is absent.
    std::string metadata(const std::string& key) const {
        std::size_t length = 0;
        detail::check(sempart_model_metadata(raw_, key.c_str(), nullptr, 0, &length));
        std::vector<char> buffer(length + 1);
        detail::check(sempart_model_metadata(raw_, key.c_str(), buffer.data(), buffer.size(), &length));
        return std::string(buffer.data(), length);
    }

    /// Segments one frame.
    Result segment(const FrameView& frame) const {
        sempart_result* out = nullptr;
        detail::check(sempart_segment(raw_, &frame.raw(), &out));
        return Result(out);
    }

    /// Segments `count` frames in one inference run; one Result per frame, in order. An empty
    /// batch gives an empty vector without calling the SDK.
    std::vector<Result> segment_batch(const FrameView* frames, std::size_t count) const {
        if (count == 0) {
            return {};
        }
        std::vector<sempart_frame> raw_frames;
        raw_frames.reserve(count);
        for (std::size_t i = 0; i < count; ++i) {
            raw_frames.push_back(frames[i].raw());
        }
        std::vector<sempart_result*> raw_results(count, nullptr);
        std::vector<Result> out;
        out.reserve(count);  // reserved first: nothing below can throw once the C call succeeded
        detail::check(sempart_segment_batch(raw_, raw_frames.data(), count, raw_results.data()));
        for (sempart_result* r : raw_results) {
            out.emplace_back(r);
        }
        return out;
    }
    std::vector<Result> segment_batch(const std::vector<FrameView>& frames) const {
        return segment_batch(frames.data(), frames.size());
    }

    /// The C handle (still owned by this Model).
    const sempart_model* get() const noexcept { return raw_; }
    /// Gives up ownership: the caller must sempart_model_free() the handle.
    sempart_model* release() noexcept { return std::exchange(raw_, nullptr); }
    explicit operator bool() const noexcept { return raw_ != nullptr; }

private:
    sempart_model* raw_ = nullptr;
};

/// Options of a Stream: sempart_stream_options with the SDK's defaults (stability on).
class StreamOptions {
public:
    StreamOptions() { detail::check(sempart_stream_options_init(&raw_)); }
    /// Weight of the past where the frame did not change, 0 <= strength < 1 (0: per-frame masks).
    StreamOptions& strength(float v) noexcept { raw_.strength = v; return *this; }
    /// Half-width of the mask's hysteresis around 0.5 where the frame did not change (0..0.5).
    StreamOptions& hysteresis(float v) noexcept { raw_.hysteresis = v; return *this; }
    /// Block luma change (0..255) from which a block follows the new frame alone.
    StreamOptions& motion_threshold(float v) noexcept { raw_.motion_threshold = v; return *this; }
    /// Mean luma change (0..255) from which a frame is a scene cut.
    StreamOptions& scene_cut_threshold(float v) noexcept { raw_.scene_cut_threshold = v; return *this; }
    /// Largest timestamp step, in nanoseconds, that continues the smoothing.
    StreamOptions& max_gap_ns(std::int64_t v) noexcept { raw_.max_gap_ns = v; return *this; }
    const sempart_stream_options& raw() const noexcept { return raw_; }

private:
    sempart_stream_options raw_{};
};

/// The frames of one camera or video, in order, with temporal stability; owns a
/// sempart_stream. Move-only. Keeps its model alive in the SDK (the Model may be destroyed
/// first). Calls on one Stream are serialised by the SDK.
class Stream {
public:
    /// Opens a stream on `model`; throws Error on failure (e.g. options out of range).
    explicit Stream(const Model& model, const StreamOptions& options = StreamOptions()) {
        detail::check(sempart_stream_open(model.get(), &options.raw(), &raw_));
    }
    ~Stream() { sempart_stream_free(raw_); }
    Stream(Stream&& other) noexcept : raw_(std::exchange(other.raw_, nullptr)) {}
    Stream& operator=(Stream&& other) noexcept {
        if (this != &other) {
            sempart_stream_free(raw_);
            raw_ = std::exchange(other.raw_, nullptr);
        }
        return *this;
    }
    Stream(const Stream&) = delete;
    Stream& operator=(const Stream&) = delete;

    /// Segments the next frame, taken at `timestamp_ns` (a clock that only moves forward).
    Result segment(const FrameView& frame, std::int64_t timestamp_ns) const {
        sempart_result* out = nullptr;
        detail::check(sempart_stream_segment(raw_, &frame.raw(), timestamp_ns, &out));
        return Result(out);
    }
    /// Forgets the past frames: the next result reports SEMPART_RESET_REASON_REQUESTED.
    void reset() const { detail::check(sempart_stream_reset(raw_)); }

    const sempart_stream* get() const noexcept { return raw_; }
    explicit operator bool() const noexcept { return raw_ != nullptr; }

private:
    sempart_stream* raw_ = nullptr;
};

}  // namespace sempart

#endif  // SEMPART_HPP
