// AgentClient: one connection to a sandbox's agent.sock (PROTOCOL.md "Relay handshake").
//
// On connect the relay sends [id_offset u32 BE][cached core.ready frame]; the client then owns
// the correlation ids [id_offset, id_offset + Relay::kIdStep) (id 0 is never used). A reader
// thread splits incoming frames and routes each to the Channel registered for its id; frames
// for unknown ids are counted and dropped. A TERMINAL frame closes its channel after delivery.
// When the connection ends every open channel is woken with a disconnect error.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "protocol/frame.h"

namespace msb::sdk {

// Frames of one session, in arrival order.
struct Channel {
    uint32_t id = 0;
    std::mutex mutex;
    std::condition_variable cv;
    std::deque<protocol::Message> messages;  // GUARDED_BY(mutex)
    bool terminal = false;                   // a TERMINAL frame was queued
    bool disconnected = false;

    // Next message; timeout 0 = wait for ever. Errors: timeout, connection lost.
    Result<protocol::Message> pop(std::chrono::milliseconds timeout);
};

struct ClientStats {
    uint64_t frames_routed = 0;
    uint64_t frames_unroutable = 0;
};

class AgentClient {
public:
    // Connects to `socket_path` and reads the handshake before `timeout`.
    static Result<std::shared_ptr<AgentClient>> connect(const std::string& socket_path,
                                                        std::chrono::milliseconds timeout);
    // Reads the handshake on an already connected socket. `keep_waiting` is polled every
    // 50 ms while the handshake has not arrived; returning false aborts with an error.
    static Result<std::shared_ptr<AgentClient>> from_fd(
        UniqueFd fd, std::chrono::milliseconds timeout,
        const std::function<bool()>& keep_waiting = {});
    ~AgentClient();
    AgentClient(const AgentClient&) = delete;
    AgentClient& operator=(const AgentClient&) = delete;

    uint32_t id_offset() const { return m_id_offset; }
    // Next unused id of the range (wrapping, never 0, never an id with an open channel).
    Result<uint32_t> allocate_id();
    // Allocates an id and registers its channel.
    Result<std::shared_ptr<Channel>> open_channel();
    void close_channel(uint32_t id);

    Status send(const std::vector<uint8_t>& frame);
    template <typename P>
    Status send_message(uint32_t id, const P& payload);

    bool connected() const { return !m_closed.load(); }
    ClientStats stats() const;
    const std::vector<uint8_t>& ready_frame() const { return m_ready_frame; }

private:
    explicit AgentClient(UniqueFd fd) : m_fd(std::move(fd)) {}
    void reader_loop();
    void route(protocol::RawFrame&& frame);

    UniqueFd m_fd;
    UniqueFd m_stop_read, m_stop_write;  // wakes the reader on destruction
    uint32_t m_id_offset = 0;
    std::vector<uint8_t> m_ready_frame;
    std::thread m_reader;
    std::mutex m_send_mutex;
    mutable std::mutex m_mutex;
    uint32_t m_next = 0;                                      // GUARDED_BY(m_mutex)
    std::map<uint32_t, std::shared_ptr<Channel>> m_channels;  // GUARDED_BY(m_mutex)
    ClientStats m_stats;                                      // GUARDED_BY(m_mutex)
    std::atomic<bool> m_closed{false};
};

}  // namespace msb::sdk

#include "protocol/messages.h"

namespace msb::sdk {
template <typename P>
Status AgentClient::send_message(uint32_t id, const P& payload) {
    return send(TRY(protocol::encode_message(id, payload)));
}
}  // namespace msb::sdk
