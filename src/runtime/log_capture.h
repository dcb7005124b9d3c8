// Host log capture for the sandbox process: stdout goes to /dev/null (nothing useful is
// printed there after the start-up JSON, and the parent may have closed the pipe) and stderr
// goes through a pipe into the rotating <log_dir>/host.log, written by a background thread.
#pragma once

#include <string>

#include "base/result.h"

namespace msb::runtime {

// `tee_fd` >= 0: also copy everything to that fd (the original stderr, for --forward).
Status start_log_capture(const std::string& log_dir, int tee_fd);

// Closes the capture pipe (stderr becomes /dev/null) and waits until everything written to
// stderr so far is in host.log. Call right before _exit, or the last lines are lost.
void finish_log_capture();

}  // namespace msb::runtime
