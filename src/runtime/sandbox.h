// The sandbox process: the seed's enter(). One process per running sandbox, started by the
// CLI/SDK as the hidden `msb sandbox` subcommand.
//
//   runtime::Config config = ...;   // from the command line
//   runtime::enter(std::move(config));   // never returns
//
// In order: print {"pid":N} on stdout; send stdout to /dev/null and stderr into the rotating
// host.log; create the runtime dir; bind agent.sock and open the store; insert the `run` row;
// build the VM with the exit observer; start the relay, metrics sampler and watchers; enter the
// VM. When the guest powers off (or a watcher ends it) the observer finalises the run, marks
// the sandbox Stopped, removes agent.sock, and the process exits with the guest's status.
// If the VM cannot be built the run is finalised as InternalError with the reason, the reason
// is printed on the original stderr, and the process exits 1.
#pragma once

#include "runtime/config.h"

namespace msb::runtime {

[[noreturn]] void enter(Config config);

// Exit status of the sandbox process when it fails before the VM runs.
inline constexpr int kExitSetupFailed = 1;

}  // namespace msb::runtime
