// msb: the command-line entry point.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <cstdlib>
#include <exception>

#include "base/log.h"
#include "cli/commands.h"
#include "cli/sandbox_command.h"
#include "cli/vmm_commands.h"

namespace {

int run(int argc, char** argv) {
    CLI::App app{"msb: local microVM sandboxes"};
    app.require_subcommand(1);
    std::string log_level = "warn";
    app.add_option("--log-level", log_level, "trace|debug|info|warn|error|off (env MSB_LOG)");
    if (const char* env = std::getenv("MSB_LOG")) log_level = env;
    app.parse_complete_callback([&] {
        auto level = msb::log::parse_level(log_level);
        msb::log::init({.level = level.value_or(msb::log::Level::Warn)});
    });
    msb::cli::add_vmm_commands(app);
    msb::cli::add_sandbox_command(app);
    msb::cli::add_user_commands(app);
    CLI11_PARSE(app, argc, argv);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    // CLI11 reports through exceptions (CLI11_PARSE handles its parse errors); nothing else in
    // msb throws, so anything reaching here is a bug or an allocation failure.
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        (void)std::fprintf(stderr, "msb: %s\n", e.what());
        return 1;
    }
}
