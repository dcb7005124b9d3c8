// What tests/guests/fsx.c prints about the file it leaves behind ("size=N fnv=HEX", FNV-1a 64 of
// its model's bytes), computed here from the bytes a test reads back, so a test can check that
// the file it sees is the one fsx meant to write.
//
//   EXPECT_NE(fsx_output.find(testing::fsx_summary(slurp(path))), std::string::npos);
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace msb::testing {

inline std::string fsx_summary(std::string_view bytes) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (unsigned char c : bytes) h = (h ^ c) * 0x100000001b3ULL;
    char text[64];
    std::snprintf(text, sizeof text, "size=%zu fnv=%016llx", bytes.size(),
                  static_cast<unsigned long long>(h));
    return text;
}

}  // namespace msb::testing
