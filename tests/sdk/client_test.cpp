// AgentClient against an in-process fake server that speaks the relay handshake.
#include "sdk/client.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include "protocol/messages.h"

namespace msb::sdk {
namespace {

using namespace std::chrono_literals;
constexpr uint32_t kStep = 0xFFFFFFFFu / 16;

std::vector<uint8_t> handshake(uint32_t offset, protocol::MessageType first = protocol::MessageType::Ready) {
    std::vector<uint8_t> out = {uint8_t(offset >> 24), uint8_t(offset >> 16), uint8_t(offset >> 8), uint8_t(offset)};
    auto frame = MUST(protocol::encode_frame(protocol::make_message(
        first, 0, first == protocol::MessageType::Ready ? protocol::encode_payload(protocol::Ready{}) : std::vector<uint8_t>{})));
    out.insert(out.end(), frame.begin(), frame.end());
    return out;
}

struct FakeServer {
    UniqueFd server, client;
    FakeServer() {
        int fds[2];
        EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
        server.reset(fds[0]);
        client.reset(fds[1]);
    }
    void send(const std::vector<uint8_t>& bytes) { ASSERT_TRUE(write_all(server.get(), bytes.data(), bytes.size()).ok()); }
    template <typename P>
    void send_msg(uint32_t id, const P& p) { send(MUST(protocol::encode_message(id, p))); }
    protocol::Message receive() {
        protocol::FrameDecoder decoder;
        std::optional<protocol::Message> out;
        uint8_t b;
        while (!out && ::read(server.get(), &b, 1) == 1)
            EXPECT_TRUE(decoder.feed({&b, 1}, [&](protocol::RawFrame&& f) { out = MUST(protocol::decode_message(f)); }).ok());
        return out.value_or(protocol::Message{});
    }
};

TEST(AgentClient, AllocatesIdsFromTheRangeTheHandshakeGives) {
    FakeServer fake;
    fake.send(handshake(3 * kStep));
    auto client = MUST(AgentClient::from_fd(std::move(fake.client), 2s));
    EXPECT_EQ(client->id_offset(), 3 * kStep);
    auto a = MUST(client->open_channel());
    auto b = MUST(client->open_channel());
    EXPECT_EQ(a->id, 3 * kStep);
    EXPECT_EQ(b->id, 3 * kStep + 1);
    for (int i = 0; i < 100; i++) {
        uint32_t id = MUST(client->allocate_id());
        EXPECT_GE(id, 3 * kStep);
        EXPECT_LT(id, 4 * kStep);
    }
}

TEST(AgentClient, NeverUsesIdZeroInTheFirstRange) {
    FakeServer fake;
    fake.send(handshake(0));
    auto client = MUST(AgentClient::from_fd(std::move(fake.client), 2s));
    EXPECT_EQ(MUST(client->allocate_id()), 1u);
}

TEST(AgentClient, RoutesFramesToTheirChannelsAndDropsUnknownIds) {
    FakeServer fake;
    fake.send(handshake(kStep));
    auto client = MUST(AgentClient::from_fd(std::move(fake.client), 2s));
    auto a = MUST(client->open_channel());
    auto b = MUST(client->open_channel());
    MUST(client->send_message(a->id, protocol::ExecRequest{.cmd = "true"}));
    auto req = fake.receive();
    EXPECT_EQ(req.type, protocol::MessageType::ExecRequest);
    EXPECT_EQ(req.id, a->id);

    fake.send_msg(b->id, protocol::ExecStdout{{'b'}});
    fake.send_msg(kStep + 999, protocol::ExecStdout{{'x'}});  // nobody's
    fake.send_msg(a->id, protocol::ExecStdout{{'a'}});
    fake.send_msg(a->id, protocol::ExecExited{.code = 7});
    auto ma = MUST(a->pop(2s));
    EXPECT_EQ(MUST(protocol::decode_payload<protocol::ExecStdout>(ma.payload)).data, std::vector<uint8_t>{'a'});
    auto exited = MUST(a->pop(2s));
    EXPECT_EQ(MUST(protocol::decode_payload<protocol::ExecExited>(exited.payload)).code, 7);
    auto mb = MUST(b->pop(2s));
    EXPECT_EQ(MUST(protocol::decode_payload<protocol::ExecStdout>(mb.payload)).data, std::vector<uint8_t>{'b'});
    EXPECT_EQ(client->stats().frames_unroutable, 1u);
    EXPECT_EQ(client->stats().frames_routed, 3u);
    // The terminal frame closed a's channel: more frames for it are unroutable.
    fake.send_msg(a->id, protocol::ExecStdout{{'z'}});
    EXPECT_FALSE(b->pop(100ms).ok());
    EXPECT_EQ(client->stats().frames_unroutable, 2u);
}

TEST(AgentClient, DisconnectWakesWaitersWithAnError) {
    FakeServer fake;
    fake.send(handshake(kStep));
    auto client = MUST(AgentClient::from_fd(std::move(fake.client), 2s));
    auto a = MUST(client->open_channel());
    fake.server.reset();
    auto r = a->pop(5s);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), ECONNRESET);
    EXPECT_FALSE(client->open_channel().ok());
}

TEST(AgentClient, RejectsABadHandshake) {
    {
        FakeServer fake;
        fake.send(handshake(kStep + 5));  // not a range start
        EXPECT_FALSE(AgentClient::from_fd(std::move(fake.client), 1s).ok());
    }
    {
        FakeServer fake;
        fake.send(handshake(kStep, protocol::MessageType::Shutdown));
        EXPECT_FALSE(AgentClient::from_fd(std::move(fake.client), 1s).ok());
    }
    {
        FakeServer fake;  // silent server
        auto r = AgentClient::from_fd(std::move(fake.client), 200ms);
        ASSERT_FALSE(r.ok());
        EXPECT_NE(r.error().message().find("timed out"), std::string::npos);
    }
    {
        FakeServer fake;
        bool asked = false;
        auto r = AgentClient::from_fd(std::move(fake.client), 5s, [&] { asked = true; return false; });
        ASSERT_FALSE(r.ok());
        EXPECT_TRUE(asked);
        EXPECT_NE(r.error().message().find("exited"), std::string::npos);
    }
}

}  // namespace
}  // namespace msb::sdk
