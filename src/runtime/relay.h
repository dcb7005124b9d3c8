// Relay: connects SDK clients on agent.sock with the guest agent behind the console port.
//
// Frames are forwarded without decoding their bodies (PROTOCOL.md "Relay handshake"):
//   - nothing is accepted before the guest's first frame, core.ready, which is cached;
//   - a new client gets [id_offset: u32 BE] + the cached ready frame, and owns the correlation
//     ids [slot * step, (slot + 1) * step) with step = 0xFFFFFFFF / 16 (16 slots);
//   - guest frames go to the client whose range holds their id;
//   - sessions a client opened (SESSION_START) and the guest has not finished (TERMINAL) are
//     killed with core.exec.signal{9} when the client goes away;
//   - a client frame with the SHUTDOWN flag is forwarded and reported via on_shutdown.
//
// Flow control: client frames wait in one bounded queue toward the guest ring (clients stop
// being read while it is full); guest frames wait in per-client bounded queues. A client whose
// queue is full stops the relay from reading the guest (backpressure reaches the guest's
// console driver) for at most `slow_client_grace`, then that client is disconnected so it
// cannot stall the others for ever.
//
// Thread model: run() executes on one thread (the relay thread); stop() is thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "runtime/byte_ring.h"

namespace msb::runtime {

struct RelayOptions {
    std::string socket_path;
    std::chrono::milliseconds ready_timeout{std::chrono::seconds(300)};
    size_t client_queue_limit = 8 << 20;    // bytes queued toward one client
    size_t to_guest_queue_limit = 8 << 20;  // bytes queued toward the guest
    std::chrono::milliseconds slow_client_grace{std::chrono::seconds(30)};
};

struct RelayStats {
    uint64_t frames_from_guest = 0;
    uint64_t frames_to_guest = 0;
    uint64_t unroutable_guest_frames = 0;
    uint64_t corrupt_guest_streams = 0;
    uint64_t clients_accepted = 0;
    uint64_t clients_refused = 0;
    uint64_t clients_dropped_for_bad_frames = 0;
    uint64_t sessions_killed = 0;
};

class Relay {
public:
    static constexpr int kMaxClients = 16;
    static constexpr uint32_t kIdStep = 0xFFFFFFFFu / kMaxClients;

    // Binds and listens on options.socket_path (replacing a stale socket file).
    // REQUIRES: `to_guest` and `from_guest` outlive the relay; the relay is the only producer
    // of `to_guest` and the only consumer of `from_guest`.
    static Result<std::unique_ptr<Relay>> create(RelayOptions options, ByteRing& to_guest,
                                                 ByteRing& from_guest);
    ~Relay();

    // Called on the relay thread. Set before run().
    std::function<void()> on_ready;                            // core.ready arrived
    std::function<void()> on_shutdown;                         // a client asked for shutdown
    std::function<void(const std::string&)> on_ready_timeout;  // no core.ready in time

    // Serves until stop(). Errors only for failures of the relay's own fds.
    Status run();
    void stop();

    // Thread-safe: queues a whole frame (e.g. core.shutdown from the host itself) toward the
    // guest, after any frame already queued.
    void send_to_guest(std::vector<uint8_t> frame);

    // Snapshot for tests and logs (call from the relay thread or after run() returned).
    RelayStats stats() const;

private:
    struct Impl;
    explicit Relay(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> m_impl;
};

}  // namespace msb::runtime
