// libFuzzer target for the agent's text parsers: MSB_* variables, the boot config JSON and the
// passwd/group files of a (user-supplied) root. None may crash, hang or over-allocate.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "agent/boot_config.h"
#include "agent/guest_config.h"
#include "agent/user.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view input(reinterpret_cast<const char*>(data), size);

    std::vector<std::string> env;
    size_t start = 0;
    while (start <= input.size()) {
        size_t end = input.find('\n', start);
        if (end == std::string_view::npos) end = input.size();
        env.emplace_back(input.substr(start, end - start));
        start = end + 1;
    }
    (void)msb::agent::GuestConfig::parse(env);
    (void)msb::agent::BootConfig::from_json(input);

    size_t split = input.find('\f');
    std::string_view passwd = input.substr(0, split);
    std::string_view group =
        split == std::string_view::npos ? std::string_view() : input.substr(split + 1);
    for (const char* user : {"root", "app", "1000", "nobody"}) {
        (void)msb::agent::resolve_user({user, std::nullopt}, passwd, group);
        (void)msb::agent::resolve_user({user, "staff"}, passwd, group);
    }
    return 0;
}
