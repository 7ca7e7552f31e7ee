// Functions the second translation unit of the C++ wrapper test defines.
#ifndef SEMPART_TEST_CPP_H
#define SEMPART_TEST_CPP_H

#include <sempart.hpp>

#include <cstdint>
#include <string>
#include <vector>

std::vector<sempart::Box> boxes_from_second_unit(const sempart::Model& model, const std::vector<std::uint8_t>& rgb,
                                                  std::uint32_t width, std::uint32_t height);
std::string version_from_second_unit();

#endif
