// Relay against a fake guest on the ring buffers and real clients on a unix socket.
#include "runtime/relay.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <thread>

#include "base/time.h"
#include "base/unique_fd.h"
#include "protocol/frame.h"
#include "protocol/messages.h"

namespace msb::runtime {
namespace {

using namespace std::chrono_literals;
using protocol::MessageType;

std::vector<uint8_t> frame_of(MessageType type, uint32_t id, std::vector<uint8_t> payload = {}) {
    return MUST(protocol::encode_frame(protocol::make_message(type, id, std::move(payload))));
}

std::vector<uint8_t> ready_frame() {
    return frame_of(MessageType::Ready, 0, protocol::encode_payload(protocol::Ready{}));
}

class RelayTest : public ::testing::Test {
protected:
    void SetUp() override {
        dir = std::filesystem::temp_directory_path() /
              ("relay-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
        std::filesystem::create_directories(dir);
        to_guest = MUST(ByteRing::create(1 << 16));
        from_guest = MUST(ByteRing::create(1 << 16));
    }
    void TearDown() override {
        if (relay) relay->stop();
        if (thread.joinable()) thread.join();
        relay.reset();
        std::filesystem::remove_all(dir);
    }

    void start(RelayOptions options = {}) {
        options.socket_path = (dir / "agent.sock").string();
        relay = MUST(Relay::create(options, *to_guest, *from_guest));
        relay->on_shutdown = [this] { shutdowns++; };
        relay->on_ready_timeout = [this](const std::string& why) {
            timeout_reason = why;
            timed_out = true;
        };
        thread = std::thread([this] { ASSERT_TRUE(relay->run().ok()); });
    }

    void guest_send(const std::vector<uint8_t>& bytes) {
        size_t off = 0;
        while (off < bytes.size()) {
            off += from_guest->write({bytes.data() + off, bytes.size() - off});
            if (off < bytes.size()) std::this_thread::sleep_for(1ms);
        }
    }

    // Reads whole frames the relay wrote toward the guest, waiting up to `timeout`.
    std::vector<protocol::Message> guest_receive(size_t count,
                                                 std::chrono::milliseconds timeout = 5s) {
        std::vector<protocol::Message> out;
        auto deadline = Deadline::after(timeout);
        std::vector<uint8_t> buf(1 << 16);
        while (out.size() < count && !deadline.expired()) {
            size_t n = to_guest->read(buf);
            if (n == 0) {
                std::this_thread::sleep_for(1ms);
                continue;
            }
            EXPECT_TRUE(guest_decoder
                            .feed({buf.data(), n},
                                  [&](protocol::RawFrame&& f) {
                                      out.push_back(MUST(protocol::decode_message(f)));
                                  })
                            .ok());
        }
        return out;
    }

    UniqueFd connect_client() {
        UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::string path = (dir / "agent.sock").string();
        std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
        EXPECT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
        timeval tv{5, 0};
        ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        return fd;
    }

    static bool read_exact(int fd, uint8_t* p, size_t n) {
        while (n > 0) {
            ssize_t r = ::read(fd, p, n);
            if (r <= 0) return false;
            p += r;
            n -= static_cast<size_t>(r);
        }
        return true;
    }

    // Reads the handshake: returns the id offset and checks the cached ready frame follows.
    uint32_t handshake(int fd) {
        uint8_t off[4];
        EXPECT_TRUE(read_exact(fd, off, 4));
        auto expected = ready_frame();
        std::vector<uint8_t> got(expected.size());
        EXPECT_TRUE(read_exact(fd, got.data(), got.size()));
        EXPECT_EQ(got, expected);
        return (uint32_t{off[0]} << 24) | (uint32_t{off[1]} << 16) | (uint32_t{off[2]} << 8) |
               off[3];
    }

    static protocol::Message client_receive(int fd) {
        uint8_t prefix[4];
        if (!read_exact(fd, prefix, 4)) return {};
        uint32_t len = (uint32_t{prefix[0]} << 24) | (uint32_t{prefix[1]} << 16) |
                       (uint32_t{prefix[2]} << 8) | prefix[3];
        std::vector<uint8_t> bytes(4 + len);
        std::memcpy(bytes.data(), prefix, 4);
        EXPECT_TRUE(read_exact(fd, bytes.data() + 4, len));
        return MUST(protocol::decode_frame(bytes));
    }

    static void client_send(int fd, const std::vector<uint8_t>& bytes) {
        ASSERT_TRUE(write_all(fd, bytes.data(), bytes.size()).ok());
    }

    static bool closed_by_peer(int fd) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 5000) != 1) return false;
        char c;
        return ::read(fd, &c, 1) == 0;
    }

    static inline int counter = 0;
    std::filesystem::path dir;
    std::unique_ptr<ByteRing> to_guest, from_guest;
    std::unique_ptr<Relay> relay;
    std::thread thread;
    protocol::FrameDecoder guest_decoder;
    std::atomic<int> shutdowns{0};
    std::atomic<bool> timed_out{false};
    std::string timeout_reason;
};

TEST_F(RelayTest, HandshakeGivesDisjointRangesAndTheCachedReadyFrame) {
    start();
    guest_send(ready_frame());
    auto a = connect_client();
    auto b = connect_client();
    uint32_t off_a = handshake(a.get());
    uint32_t off_b = handshake(b.get());
    EXPECT_EQ(off_a, 0u);
    EXPECT_EQ(off_b, Relay::kIdStep);
}

TEST_F(RelayTest, RoutesGuestFramesByIdRangeAndForwardsClientFrames) {
    start();
    guest_send(ready_frame());
    auto a = connect_client();
    auto b = connect_client();
    uint32_t off_a = handshake(a.get());
    uint32_t off_b = handshake(b.get());

    protocol::ExecRequest req;
    req.cmd = "/bin/true";
    client_send(a.get(),
                frame_of(MessageType::ExecRequest, off_a + 1, protocol::encode_payload(req)));
    client_send(b.get(),
                frame_of(MessageType::ExecRequest, off_b + 7, protocol::encode_payload(req)));
    auto got = guest_receive(2);
    ASSERT_EQ(got.size(), 2u);

    guest_send(frame_of(MessageType::ExecStarted, off_b + 7,
                        protocol::encode_payload(protocol::ExecStarted{.pid = 42})));
    guest_send(frame_of(MessageType::ExecExited, off_a + 1,
                        protocol::encode_payload(protocol::ExecExited{.code = 3})));
    auto to_b = client_receive(b.get());
    EXPECT_EQ(to_b.type, MessageType::ExecStarted);
    EXPECT_EQ(to_b.id, off_b + 7);
    auto to_a = client_receive(a.get());
    EXPECT_EQ(to_a.type, MessageType::ExecExited);
    EXPECT_EQ(MUST(protocol::decode_payload<protocol::ExecExited>(to_a.payload)).code, 3);
}

TEST_F(RelayTest, KillsOpenSessionsOfADisconnectedClientOnly) {
    start();
    guest_send(ready_frame());
    auto a = connect_client();
    uint32_t off = handshake(a.get());
    protocol::ExecRequest req;
    req.cmd = "sleep";
    client_send(a.get(),
                frame_of(MessageType::ExecRequest, off + 1, protocol::encode_payload(req)));
    client_send(a.get(),
                frame_of(MessageType::ExecRequest, off + 2, protocol::encode_payload(req)));
    ASSERT_EQ(guest_receive(2).size(), 2u);
    // Session 2 finishes; only session 1 is still open when the client goes away.
    guest_send(frame_of(MessageType::ExecExited, off + 2,
                        protocol::encode_payload(protocol::ExecExited{.code = 0})));
    EXPECT_EQ(client_receive(a.get()).type, MessageType::ExecExited);
    a.reset();
    auto kills = guest_receive(1);
    ASSERT_EQ(kills.size(), 1u);
    EXPECT_EQ(kills[0].type, MessageType::ExecSignal);
    EXPECT_EQ(kills[0].id, off + 1);
    EXPECT_EQ(MUST(protocol::decode_payload<protocol::ExecSignal>(kills[0].payload)).signal, 9);
    EXPECT_TRUE(guest_receive(1, 200ms).empty());
}

TEST_F(RelayTest, RefusesTheSeventeenthClient) {
    start();
    guest_send(ready_frame());
    std::vector<UniqueFd> clients;
    for (int i = 0; i < Relay::kMaxClients; ++i) {
        clients.push_back(connect_client());
        handshake(clients.back().get());
    }
    auto extra = connect_client();
    EXPECT_TRUE(closed_by_peer(extra.get()));
    // A freed slot is reused.
    clients[3].reset();
    std::this_thread::sleep_for(100ms);
    auto again = connect_client();
    EXPECT_EQ(handshake(again.get()), 3 * Relay::kIdStep);
}

TEST_F(RelayTest, ClosesOnlyTheClientThatSendsGarbageOrForeignIds) {
    start();
    guest_send(ready_frame());
    auto good = connect_client();
    auto bad = connect_client();
    auto thief = connect_client();
    uint32_t off_good = handshake(good.get());
    handshake(bad.get());
    handshake(thief.get());
    std::vector<uint8_t> garbage = {0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5};  // length 4 GiB
    client_send(bad.get(), garbage);
    EXPECT_TRUE(closed_by_peer(bad.get()));
    client_send(thief.get(), frame_of(MessageType::ExecStdin, off_good + 1,
                                      protocol::encode_payload(protocol::ExecStdin{})));
    EXPECT_TRUE(closed_by_peer(thief.get()));
    protocol::ExecRequest req;
    req.cmd = "x";
    client_send(good.get(),
                frame_of(MessageType::ExecRequest, off_good + 1, protocol::encode_payload(req)));
    auto got = guest_receive(1);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].id, off_good + 1);
    EXPECT_EQ(relay->stats().clients_dropped_for_bad_frames, 2u);
}

TEST_F(RelayTest, ShutdownFrameIsForwardedAndReported) {
    start();
    guest_send(ready_frame());
    auto a = connect_client();
    handshake(a.get());
    client_send(a.get(),
                frame_of(MessageType::Shutdown, 0, protocol::encode_payload(protocol::Shutdown{})));
    auto got = guest_receive(1);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].type, MessageType::Shutdown);
    EXPECT_EQ(shutdowns.load(), 1);
}

TEST_F(RelayTest, AcceptsNoClientBeforeReadyAndReportsTheTimeout) {
    RelayOptions options;
    options.ready_timeout = 300ms;
    start(options);
    auto early = connect_client();  // queued in the backlog, not served
    pollfd p{early.get(), POLLIN, 0};
    EXPECT_EQ(::poll(&p, 1, 600), 0);
    EXPECT_TRUE(timed_out.load());
    EXPECT_NE(timeout_reason.find("core.ready"), std::string::npos);
}

TEST_F(RelayTest, SurvivesGarbageFromTheGuestAndKeepsRouting) {
    start();
    guest_send({0, 0, 0, 1, 9, 9, 9, 9});  // length 1 < 5: corrupt; the relay drops what it holds
    std::this_thread::sleep_for(300ms);    // ... and reads the next write as a fresh stream
    guest_send(ready_frame());
    auto a = connect_client();
    EXPECT_EQ(handshake(a.get()), 0u);
    EXPECT_GE(relay->stats().corrupt_guest_streams, 1u);
}

}  // namespace
}  // namespace msb::runtime
