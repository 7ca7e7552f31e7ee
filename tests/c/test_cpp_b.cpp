// Second translation unit of the C++ wrapper test: includes sempart.hpp again (twice, to
// check the include guard), so a link of both units proves the header is ODR-safe (every
// definition inline) and self-contained (it is the first include of this file).
#include <sempart.hpp>
#include <sempart.hpp>

#include <string>
#include <vector>

#include "test_cpp.h"

// Segments a frame through a model opened in the other translation unit.
std::vector<sempart::Box> boxes_from_second_unit(const sempart::Model& model, const std::vector<std::uint8_t>& rgb,
                                                  std::uint32_t width, std::uint32_t height) {
    return model.segment(sempart::FrameView::packed(rgb.data(), width, height, SEMPART_PIXEL_FORMAT_RGB8)).boxes();
}

std::string version_from_second_unit() { return sempart::version(); }
