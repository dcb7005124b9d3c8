// Frame splitting, header parsing and envelope decoding, including corrupt input.
#include "protocol/frame.h"

#include <gtest/gtest.h>

#include <string>

#include "protocol/cbor.h"
#include "protocol/messages.h"

namespace msb::protocol {
namespace {

std::vector<uint8_t> be32(uint32_t v) {
    return {static_cast<uint8_t>(v >> 24), static_cast<uint8_t>(v >> 16),
            static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)};
}

std::vector<uint8_t> frame_of(uint32_t id, const auto& payload) {
    auto frame = encode_message(id, payload);
    EXPECT_TRUE(frame.ok());
    return std::move(frame).value();
}

bool contains(const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
}

TEST(FrameFlags, AreDerivedFromTheMessageType) {
    EXPECT_EQ(flags_for_type(MessageType::ExecExited), kFlagTerminal);
    EXPECT_EQ(flags_for_type(MessageType::FsResponse), kFlagTerminal);
    EXPECT_EQ(flags_for_type(MessageType::ExecRequest), kFlagSessionStart);
    EXPECT_EQ(flags_for_type(MessageType::FsRequest), kFlagSessionStart);
    EXPECT_EQ(flags_for_type(MessageType::Shutdown), kFlagShutdown);
    for (auto t : {MessageType::Ready, MessageType::ExecStarted, MessageType::ExecStdin,
                   MessageType::ExecStdout, MessageType::ExecStderr, MessageType::ExecResize,
                   MessageType::ExecSignal, MessageType::FsData}) {
        EXPECT_EQ(flags_for_type(t), 0) << message_type_name(t);
    }
}

TEST(FrameTypeNames, RoundTripAndRejectUnknownNames) {
    for (int i = 0; i <= static_cast<int>(MessageType::FsData); ++i) {
        auto type = static_cast<MessageType>(i);
        EXPECT_EQ(message_type_from_name(message_type_name(type)), type);
    }
    EXPECT_FALSE(message_type_from_name("core.unknown").has_value());
    EXPECT_FALSE(message_type_from_name("").has_value());
}

TEST(FrameEncoding, WritesTheHeaderFieldsBigEndian) {
    auto frame = frame_of(0x12345678, ExecRequest{.cmd = "x"});
    ASSERT_GE(frame.size(), kFramePrefixSize);
    auto header = parse_frame_header(frame);
    ASSERT_TRUE(header.ok());
    ASSERT_TRUE(header->has_value());
    EXPECT_EQ((*header)->len + 4, frame.size());
    EXPECT_EQ(frame[4], 0x12);
    EXPECT_EQ(frame[7], 0x78);
    EXPECT_EQ((*header)->id, 0x12345678u);
    EXPECT_EQ(frame[8], kFlagSessionStart);
}

TEST(FrameEncoding, RejectsAPayloadThatWouldExceedTheMaximumFrame) {
    FsData data;
    data.data.resize(kMaxFrameSize);
    auto frame = encode_message(1, data);
    ASSERT_FALSE(frame.ok());
    EXPECT_TRUE(contains(frame.error().message(), "exceeds maximum")) << frame.error().message();
    data.data.resize(kFsChunkSize);
    EXPECT_TRUE(encode_message(1, data).ok()) << "a full 3 MiB chunk must fit";
}

TEST(FrameHeaderParse, NeedsNineBytesAndRejectsBadLengthsEarly) {
    auto frame = frame_of(5, ExecExited{0});
    for (size_t n = 0; n < kFramePrefixSize; ++n) {
        auto header = parse_frame_header(std::span(frame).first(n));
        ASSERT_TRUE(header.ok());
        EXPECT_FALSE(header->has_value()) << n;
    }
    auto too_big = be32(kMaxFrameSize + 1);
    auto big = parse_frame_header(too_big);
    ASSERT_FALSE(big.ok());
    EXPECT_EQ(big.error().message(), "frame length 4194305 exceeds maximum 4194304");
    auto short_len = be32(4);
    auto small = parse_frame_header(short_len);
    ASSERT_FALSE(small.ok());
    EXPECT_EQ(small.error().message(), "frame length 4 is shorter than the 5-byte header");
}

TEST(FrameDecoder, SplitsAStreamFedOneByteAtATime) {
    std::vector<uint8_t> stream;
    for (uint32_t id = 1; id <= 3; ++id) {
        auto f = frame_of(id, ExecStdout{{1, 2, 3, static_cast<uint8_t>(id)}});
        stream.insert(stream.end(), f.begin(), f.end());
    }
    auto empty_body = be32(5);  // legal: a frame with an empty body (rejected later by decoding)
    empty_body.insert(empty_body.end(), {0, 0, 0, 9, 0});
    stream.insert(stream.end(), empty_body.begin(), empty_body.end());

    FrameDecoder decoder;
    std::vector<RawFrame> frames;
    size_t max_buffered = 0;
    for (uint8_t byte : stream) {
        ASSERT_TRUE(
            decoder.feed(std::span(&byte, 1), [&](RawFrame&& f) { frames.push_back(std::move(f)); })
                .ok());
        max_buffered = std::max(max_buffered, decoder.buffered());
    }
    ASSERT_EQ(frames.size(), 4u);
    for (uint32_t id = 1; id <= 3; ++id) {
        auto message = decode_message(frames[id - 1]);
        ASSERT_TRUE(message.ok()) << message.error().message();
        EXPECT_EQ(message->id, id);
        auto out = decode_payload<ExecStdout>(message->payload);
        ASSERT_TRUE(out.ok());
        EXPECT_EQ(out->data, (std::vector<uint8_t>{1, 2, 3, static_cast<uint8_t>(id)}));
    }
    EXPECT_EQ(frames[3].header.id, 9u);
    EXPECT_EQ(frames[3].bytes, empty_body);
    EXPECT_FALSE(decode_message(frames[3]).ok());
    EXPECT_EQ(decoder.buffered(), 0u);
    EXPECT_LE(max_buffered, frames[0].bytes.size());
}

TEST(FrameDecoder, DeliversEveryFrameOfOneLargeRead) {
    std::vector<uint8_t> stream;
    for (uint32_t id = 1; id <= 50; ++id) {
        auto f = frame_of(id, ExecSignal{static_cast<int32_t>(id)});
        stream.insert(stream.end(), f.begin(), f.end());
    }
    auto partial = frame_of(51, ExecSignal{51});
    stream.insert(stream.end(), partial.begin(), partial.begin() + 6);
    FrameDecoder decoder;
    std::vector<uint32_t> ids;
    ASSERT_TRUE(decoder.feed(stream, [&](RawFrame&& f) { ids.push_back(f.header.id); }).ok());
    ASSERT_EQ(ids.size(), 50u);
    EXPECT_EQ(ids.back(), 50u);
    EXPECT_EQ(decoder.buffered(), 6u);
    ASSERT_TRUE(
        decoder
            .feed(std::span(partial).subspan(6), [&](RawFrame&& f) { ids.push_back(f.header.id); })
            .ok());
    EXPECT_EQ(ids.back(), 51u);
}

TEST(FrameDecoder, RejectsAnOversizedLengthBeforeBufferingTheBody) {
    FrameDecoder decoder;
    auto bytes = be32(0xFFFFFFFF);
    bytes.resize(64, 0xAB);
    int frames = 0;
    auto st = decoder.feed(bytes, [&](RawFrame&&) { ++frames; });
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.error().message(), "frame length 4294967295 exceeds maximum 4194304");
    EXPECT_EQ(frames, 0);
    EXPECT_LE(decoder.buffered(), kLengthPrefixSize);
    EXPECT_TRUE(decoder.failed());
    // Stays failed until reset.
    auto again = decoder.consume(bytes);
    ASSERT_FALSE(again.ok());
    decoder.reset();
    EXPECT_FALSE(decoder.failed());
    auto good = frame_of(1, ExecExited{3});
    ASSERT_TRUE(decoder.feed(good, [&](RawFrame&&) { ++frames; }).ok());
    EXPECT_EQ(frames, 1);
}

TEST(FrameDecoder, RejectsALengthShorterThanTheHeader) {
    for (uint32_t len = 0; len < kFrameHeaderSize; ++len) {
        FrameDecoder decoder;
        auto bytes = be32(len);
        bytes.resize(16, 0);
        auto st = decoder.feed(bytes, [](RawFrame&&) { FAIL() << "no frame expected"; });
        ASSERT_FALSE(st.ok()) << len;
        EXPECT_TRUE(contains(st.error().message(), "shorter than the 5-byte header"));
    }
}

TEST(FrameDecoder, BuffersOnlyWhatArrivedOfALargeAnnouncedFrame) {
    FrameDecoder decoder;
    auto bytes = be32(kMaxFrameSize);
    bytes.resize(100, 0);
    ASSERT_TRUE(decoder.feed(bytes, [](RawFrame&&) { FAIL(); }).ok());
    EXPECT_EQ(decoder.buffered(), 100u);
}

TEST(FrameDecoding, RejectsATruncatedFrame) {
    auto frame = frame_of(2, ExecStarted{42});
    frame.pop_back();
    auto message = decode_frame(frame);
    ASSERT_FALSE(message.ok());
    EXPECT_TRUE(contains(message.error().message(), "truncated frame"))
        << message.error().message();
    auto header_only = decode_frame(std::span(frame).first(6));
    ASSERT_FALSE(header_only.ok());
    EXPECT_TRUE(contains(header_only.error().message(), "truncated header"));
}

TEST(FrameDecoding, RejectsGarbageBodies) {
    const std::vector<std::vector<uint8_t>> bodies = {
        {0xff, 0xff, 0xff},                                      // break outside anything
        {0x1c},                                                  // reserved additional info
        {0xa1, 0x61, 0x76},                                      // map missing its value
        {0x83, 0x01, 0x02, 0x03},                                // an array, not a map
        {0xa3, 0x61, 0x76, 0x01, 0x61, 0x74},                    // truncated
        {0xc0, 0x60},                                            // a tag
        {0x7a, 0xff, 0xff, 0xff, 0xff},                          // text longer than the input
        {0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},  // array longer than the input
    };
    for (const auto& body : bodies) {
        auto frame = be32(static_cast<uint32_t>(kFrameHeaderSize + body.size()));
        frame.insert(frame.end(), {0, 0, 0, 1, 0});
        frame.insert(frame.end(), body.begin(), body.end());
        auto message = decode_frame(frame);
        ASSERT_FALSE(message.ok());
        EXPECT_TRUE(contains(message.error().message(), "decode envelope"))
            << message.error().message();
    }
}

TEST(FrameDecoding, RejectsDeeplyNestedCborWithoutRecursingIntoIt) {
    std::vector<uint8_t> body(1 << 20, 0x81);  // a million nested one-element arrays
    body.push_back(0x00);
    auto checked = cbor::check(body);
    ASSERT_FALSE(checked.ok());
    EXPECT_TRUE(contains(checked.error().message(), "nested too deeply"));
    auto envelope = decode_envelope(body);
    EXPECT_FALSE(envelope.ok());
}

TEST(FrameDecoding, RejectsEnvelopeFieldsOfTheWrongType) {
    auto body_with = [](cbor::Json v, cbor::Json t, cbor::Json p) {
        cbor::Json j = cbor::Json::object();
        j["v"] = std::move(v);
        j["t"] = std::move(t);
        j["p"] = std::move(p);
        return cbor::serialize(j);
    };
    auto ok = decode_envelope(body_with(1, "core.ready", cbor::bytes({})));
    ASSERT_TRUE(ok.ok()) << ok.error().message();
    EXPECT_EQ(ok->type, MessageType::Ready);

    auto bad_v = decode_envelope(body_with(-1, "core.ready", cbor::bytes({})));
    ASSERT_FALSE(bad_v.ok());
    EXPECT_TRUE(contains(bad_v.error().message(), "field 'v'"));
    EXPECT_FALSE(decode_envelope(body_with(256, "core.ready", cbor::bytes({}))).ok());
    auto bad_t = decode_envelope(body_with(1, 7, cbor::bytes({})));
    ASSERT_FALSE(bad_t.ok());
    EXPECT_TRUE(contains(bad_t.error().message(), "field 't'"));
    auto bad_p = decode_envelope(body_with(1, "core.ready", "text, not bytes"));
    ASSERT_FALSE(bad_p.ok());
    EXPECT_TRUE(contains(bad_p.error().message(), "field 'p'"));
    auto unknown = decode_envelope(body_with(1, "core.teleport", cbor::bytes({})));
    ASSERT_FALSE(unknown.ok());
    EXPECT_EQ(unknown.error().message(), "unknown message type: core.teleport");
}

TEST(FrameDecoding, AcceptsIndefiniteLengthAndExtraKeysInTheEnvelope) {
    // {_ "x": [1], "v": 1, "t": "core.exec.exited", "p": (_ h'a164636f6465', h'07')}
    std::vector<uint8_t> body = {0xbf, 0x61, 'x', 0x81, 0x01, 0x61, 'v', 0x01, 0x61, 't', 0x70};
    const std::string type = "core.exec.exited";
    body.insert(body.end(), type.begin(), type.end());
    body.insert(body.end(),
                {0x61, 'p', 0x5f, 0x46, 0xa1, 0x64, 'c', 'o', 'd', 'e', 0x41, 0x07, 0xff, 0xff});
    auto message = decode_envelope(body);
    ASSERT_TRUE(message.ok()) << message.error().message();
    EXPECT_EQ(message->type, MessageType::ExecExited);
    auto exited = decode_payload<ExecExited>(message->payload);
    ASSERT_TRUE(exited.ok()) << exited.error().message();
    EXPECT_EQ(exited->code, 7);

    // {"extra": {"k": null}, "data": h'0102'} through the fast data path.
    const std::vector<uint8_t> data = {0xa2, 0x65, 'e', 'x', 't', 'r', 'a',  0xa1, 0x61, 'k',
                                       0xf6, 0x64, 'd', 'a', 't', 'a', 0x42, 0x01, 0x02};
    auto out = decode_payload<ExecStdout>(data);
    ASSERT_TRUE(out.ok()) << out.error().message();
    EXPECT_EQ(out->data, (std::vector<uint8_t>{1, 2}));
    // A truncated byte string falls back to the general parser, which reports it.
    auto truncated = decode_payload<ExecStdout>(std::span(data).first(data.size() - 1));
    ASSERT_FALSE(truncated.ok());
    EXPECT_TRUE(contains(truncated.error().message(), "malformed CBOR"))
        << truncated.error().message();
}

TEST(CborCheck, AcceptsIndefiniteLengthItemsAndRejectsBadChunks) {
    // {_ "a": [_ 1, 2], "b": (_ h'01', h'02')}
    const std::vector<uint8_t> good = {0xbf, 0x61, 0x61, 0x9f, 0x01, 0x02, 0xff, 0x61,
                                       0x62, 0x5f, 0x41, 0x01, 0x41, 0x02, 0xff, 0xff};
    EXPECT_TRUE(cbor::check(good).ok());
    auto parsed = cbor::parse(good);
    ASSERT_TRUE(parsed.ok()) << parsed.error().message();
    EXPECT_EQ(parsed->at("a").size(), 2u);
    // A text chunk inside an indefinite byte string.
    EXPECT_FALSE(cbor::check(std::vector<uint8_t>{0x5f, 0x61, 0x61, 0xff}).ok());
    // An indefinite map with a dangling key.
    EXPECT_FALSE(cbor::check(std::vector<uint8_t>{0xbf, 0x61, 0x61, 0xff}).ok());
    // Negative integer below INT64_MIN.
    EXPECT_FALSE(cbor::check(std::vector<uint8_t>{0x3b, 0x80, 0, 0, 0, 0, 0, 0, 0}).ok());
    EXPECT_TRUE(
        cbor::check(std::vector<uint8_t>{0x3b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
            .ok());
    // Trailing bytes.
    EXPECT_FALSE(cbor::check(std::vector<uint8_t>{0x01, 0x02}).ok());
    EXPECT_FALSE(cbor::check(std::vector<uint8_t>{}).ok());
}

}  // namespace
}  // namespace msb::protocol
