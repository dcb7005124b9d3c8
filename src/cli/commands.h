// The user-facing msb commands (run, create, start, stop, rm, ls/list, ps, exec, logs, metrics,
// inspect, cp, completion), all on top of the SDK (include/msb/sandbox.h). docs/cli.md.
#pragma once

#include <CLI/CLI.hpp>

namespace msb::cli {

void add_user_commands(CLI::App& app);

}  // namespace msb::cli
