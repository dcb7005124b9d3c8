// Payload round trips and payload decoding rules (defaults, unknown keys, wrong types).
#include "protocol/messages.h"

#include <gtest/gtest.h>

#include "protocol/cbor.h"
#include "protocol/heartbeat.h"

namespace msb::protocol {
namespace {

// Encodes `payload` into a whole frame, splits it with FrameDecoder, decodes it back.
template <typename P>
P round_trip(uint32_t id, const P& payload) {
    auto frame = encode_message(id, payload);
    EXPECT_TRUE(frame.ok());
    FrameDecoder decoder;
    std::optional<RawFrame> raw;
    EXPECT_TRUE(decoder.feed(frame.value(), [&](RawFrame&& f) { raw = std::move(f); }).ok());
    EXPECT_TRUE(raw.has_value());
    auto message = decode_message(*raw);
    EXPECT_TRUE(message.ok());
    EXPECT_EQ(message->type, P::kType);
    EXPECT_EQ(message->id, id);
    EXPECT_EQ(message->flags, flags_for_type(P::kType));
    auto decoded = decode_payload<P>(message->payload);
    EXPECT_TRUE(decoded.ok()) << decoded.error().message();
    return std::move(decoded).value_or(P{});
}

std::vector<uint8_t> map_of(const cbor::Json& j) { return cbor::serialize(j); }

bool contains(const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
}

TEST(MessagesRoundTrip, Ready) {
    auto r = round_trip(0, Ready{1, UINT64_MAX, 3});
    EXPECT_EQ(r.boot_time_ns, 1u);
    EXPECT_EQ(r.init_time_ns, UINT64_MAX);
    EXPECT_EQ(r.ready_time_ns, 3u);
}

TEST(MessagesRoundTrip, ShutdownHasAnEmptyPayload) {
    EXPECT_TRUE(encode_payload(Shutdown{}).empty());
    round_trip(0, Shutdown{});
}

TEST(MessagesRoundTrip, ExecRequestWithEveryField) {
    ExecRequest req;
    req.cmd = "python3";
    req.args = {"-c", "print(1)", ""};
    req.env = {"A=B", "EMPTY="};
    req.cwd = "/work";
    req.user = "1000:1000";
    req.tty = true;
    req.rows = 0;
    req.cols = 65535;
    req.rlimits = {{"nproc", 1, 2}, {"cpu", 0, UINT64_MAX}};
    auto r = round_trip(77, req);
    EXPECT_EQ(r.cmd, req.cmd);
    EXPECT_EQ(r.args, req.args);
    EXPECT_EQ(r.env, req.env);
    EXPECT_EQ(r.cwd, req.cwd);
    EXPECT_EQ(r.user, req.user);
    EXPECT_TRUE(r.tty);
    EXPECT_EQ(r.rows, 0);
    EXPECT_EQ(r.cols, 65535);
    ASSERT_EQ(r.rlimits.size(), 2u);
    EXPECT_EQ(r.rlimits[1].resource, "cpu");
    EXPECT_EQ(r.rlimits[1].hard, UINT64_MAX);
}

TEST(MessagesRoundTrip, ExecStreamsAndControl) {
    std::vector<uint8_t> bytes(1000);
    for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(i);
    EXPECT_EQ(round_trip(1, ExecStarted{123}).pid, 123u);
    EXPECT_EQ(round_trip(1, ExecStdin{bytes}).data, bytes);
    EXPECT_TRUE(round_trip(1, ExecStdin{}).data.empty());
    EXPECT_EQ(round_trip(1, ExecStdout{bytes}).data, bytes);
    EXPECT_EQ(round_trip(1, ExecStderr{bytes}).data, bytes);
    EXPECT_EQ(round_trip(1, ExecExited{-1}).code, -1);
    EXPECT_EQ(round_trip(1, ExecExited{INT32_MAX}).code, INT32_MAX);
    auto resize = round_trip(1, ExecResize{40, 120});
    EXPECT_EQ(resize.rows, 40);
    EXPECT_EQ(resize.cols, 120);
    EXPECT_EQ(round_trip(1, ExecSignal{15}).signal, 15);
    EXPECT_EQ(round_trip(1, FsData{bytes}).data, bytes);
}

TEST(MessagesRoundTrip, EveryFsOperation) {
    const std::vector<FsOp> ops = {FsOp::stat("/a"),       FsOp::list("/b"),
                                   FsOp::read("/c"),       FsOp::write("/d", 0600),
                                   FsOp::write("/e"),      FsOp::mkdir("/f"),
                                   FsOp::remove("/g"),     FsOp::remove_dir("/h"),
                                   FsOp::copy("/i", "/j"), FsOp::rename("/k", "/l")};
    for (const auto& op : ops) {
        SCOPED_TRACE(fs_op_kind_name(op.kind));
        auto r = round_trip(5, FsRequest{op});
        EXPECT_EQ(r.op.kind, op.kind);
        EXPECT_EQ(r.op.path, op.path);
        EXPECT_EQ(r.op.mode, op.mode);
        EXPECT_EQ(r.op.src, op.src);
        EXPECT_EQ(r.op.dst, op.dst);
    }
}

TEST(MessagesRoundTrip, FsResponses) {
    auto err = round_trip(5, FsResponse{.ok = false, .error = "denied"});
    EXPECT_FALSE(err.ok);
    EXPECT_EQ(err.error, "denied");
    EXPECT_EQ(err.data_kind, FsResponseDataKind::None);

    FsEntryInfo e{"/x", "file", 12, 0644, 1700000000};
    auto stat = round_trip(
        5, FsResponse{.ok = true, .data_kind = FsResponseDataKind::Stat, .entries = {e}});
    EXPECT_EQ(stat.data_kind, FsResponseDataKind::Stat);
    ASSERT_EQ(stat.entries.size(), 1u);
    EXPECT_EQ(stat.entries[0].path, "/x");
    EXPECT_EQ(stat.entries[0].size, 12u);
    EXPECT_EQ(stat.entries[0].modified, 1700000000);

    auto list = round_trip(5, FsResponse{.ok = true, .data_kind = FsResponseDataKind::List});
    EXPECT_EQ(list.data_kind, FsResponseDataKind::List);
    EXPECT_TRUE(list.entries.empty());
}

TEST(MessagesDecoding, FillsDefaultsForAbsentOptionalFields) {
    cbor::Json j = cbor::Json::object();
    j["cmd"] = "ls";
    auto req = decode_payload<ExecRequest>(map_of(j));
    ASSERT_TRUE(req.ok()) << req.error().message();
    EXPECT_EQ(req->rows, 24);
    EXPECT_EQ(req->cols, 80);
    EXPECT_FALSE(req->tty);
    EXPECT_FALSE(req->user.has_value());
    EXPECT_TRUE(req->rlimits.empty());
}

TEST(MessagesDecoding, IgnoresUnknownFields) {
    cbor::Json j = cbor::Json::object();
    j["extra"] = cbor::Json::array({1, "two", nullptr});
    j["code"] = 4;
    auto exited = decode_payload<ExecExited>(map_of(j));
    ASSERT_TRUE(exited.ok()) << exited.error().message();
    EXPECT_EQ(exited->code, 4);
}

TEST(MessagesDecoding, RejectsMissingRequiredFields) {
    auto missing = decode_payload<ExecExited>(map_of(cbor::Json::object()));
    ASSERT_FALSE(missing.ok());
    EXPECT_EQ(missing.error().message(), "decode core.exec.exited: missing field 'code'");
    auto no_cmd = decode_payload<ExecRequest>(map_of(cbor::Json::object()));
    ASSERT_FALSE(no_cmd.ok());
    EXPECT_TRUE(contains(no_cmd.error().message(), "missing field 'cmd'"));
}

TEST(MessagesDecoding, RejectsWrongTypesAndOutOfRangeValues) {
    auto with = [](const char* key, cbor::Json value) {
        cbor::Json j = cbor::Json::object();
        j["cmd"] = "ls";
        j[key] = std::move(value);
        return map_of(j);
    };
    auto rows = decode_payload<ExecRequest>(with("rows", 65536));
    ASSERT_FALSE(rows.ok());
    EXPECT_TRUE(contains(rows.error().message(), "field 'rows'")) << rows.error().message();
    EXPECT_FALSE(decode_payload<ExecRequest>(with("rows", -1)).ok());
    EXPECT_FALSE(decode_payload<ExecRequest>(with("tty", 1)).ok());
    EXPECT_FALSE(decode_payload<ExecRequest>(with("args", "not a list")).ok());
    EXPECT_FALSE(decode_payload<ExecRequest>(with("args", cbor::Json::array({1}))).ok());
    EXPECT_FALSE(decode_payload<ExecRequest>(with("cwd", 3)).ok());
    EXPECT_FALSE(decode_payload<ExecRequest>(with("rlimits", cbor::Json::array({1}))).ok());
    EXPECT_FALSE(decode_payload<ExecRequest>(with("rows", 1.5)).ok());

    cbor::Json code = cbor::Json::object();
    code["code"] = int64_t{INT32_MAX} + 1;
    EXPECT_FALSE(decode_payload<ExecExited>(map_of(code)).ok());
    code["code"] = int64_t{INT32_MIN} - 1;
    EXPECT_FALSE(decode_payload<ExecExited>(map_of(code)).ok());

    cbor::Json data = cbor::Json::object();
    data["data"] = "text instead of bytes";
    auto stdout_text = decode_payload<ExecStdout>(map_of(data));
    ASSERT_FALSE(stdout_text.ok());
    EXPECT_TRUE(contains(stdout_text.error().message(), "expected a byte string"));
}

TEST(MessagesDecoding, RejectsMalformedFsVariants) {
    auto request_with = [](cbor::Json op) {
        cbor::Json j = cbor::Json::object();
        j["op"] = std::move(op);
        return map_of(j);
    };
    cbor::Json two = cbor::Json::object();
    two["Stat"] = cbor::Json::object({{"path", "/"}});
    two["List"] = cbor::Json::object({{"path", "/"}});
    EXPECT_FALSE(decode_payload<FsRequest>(request_with(two)).ok());
    auto unknown = decode_payload<FsRequest>(
        request_with(cbor::Json::object({{"Chmod", cbor::Json::object({{"path", "/"}})}})));
    ASSERT_FALSE(unknown.ok());
    EXPECT_TRUE(contains(unknown.error().message(), "unknown variant 'Chmod'"));
    EXPECT_FALSE(decode_payload<FsRequest>(request_with("Stat")).ok());
    EXPECT_FALSE(decode_payload<FsRequest>(request_with(cbor::Json::object(
                                               {{"Copy", cbor::Json::object({{"src", "/"}})}})))
                     .ok());
    EXPECT_FALSE(decode_payload<FsRequest>(map_of(cbor::Json::object())).ok());

    cbor::Json resp = cbor::Json::object();
    resp["ok"] = true;
    resp["data"] = cbor::Json::object({{"List", "nope"}});
    EXPECT_FALSE(decode_payload<FsResponse>(map_of(resp)).ok());
}

TEST(MessagesDecoding, RejectsNonMapsAndGarbage) {
    EXPECT_FALSE(decode_payload<Ready>(std::vector<uint8_t>{}).ok());
    EXPECT_FALSE(decode_payload<Ready>(std::vector<uint8_t>{0x01}).ok());
    EXPECT_FALSE(decode_payload<Ready>(std::vector<uint8_t>{0xa1, 0x01, 0x02}).ok()) << "int key";
    // Shutdown ignores its payload entirely.
    EXPECT_TRUE(decode_payload<Shutdown>(std::vector<uint8_t>{0xff}).ok());
}

TEST(Heartbeat, JsonRoundTripKeepsNanoseconds) {
    Heartbeat hb{1764390000123456789, 2, 1764389990500000000};
    std::string json = encode_heartbeat_json(hb);
    EXPECT_NE(json.find("\"timestamp\": \"2025-11-29T04:20:00.123456789Z\""), std::string::npos)
        << json;
    EXPECT_NE(json.find("\"last_activity\": \"2025-11-29T04:19:50.500Z\""), std::string::npos)
        << json;
    auto parsed = parse_heartbeat_json(json);
    ASSERT_TRUE(parsed.ok()) << parsed.error().message();
    EXPECT_EQ(parsed->timestamp_ns, hb.timestamp_ns);
    EXPECT_EQ(parsed->active_sessions, 2u);
    EXPECT_EQ(parsed->last_activity_ns, hb.last_activity_ns);
}

TEST(Heartbeat, ParsesOffsetsAndRejectsBadFiles) {
    auto parsed =
        parse_heartbeat_json(R"({"timestamp":"2026-01-01T01:00:00+01:00","active_sessions":0,)"
                             R"("last_activity":"2026-01-01T00:00:00.25Z","extra":1})");
    ASSERT_TRUE(parsed.ok()) << parsed.error().message();
    EXPECT_EQ(parsed->timestamp_ns, parsed->last_activity_ns - 250'000'000);
    EXPECT_FALSE(parse_heartbeat_json("").ok());
    EXPECT_FALSE(parse_heartbeat_json("{\"timestamp\":").ok());
    EXPECT_FALSE(parse_heartbeat_json(R"({"timestamp":"2026-01-01T00:00:00Z","active_sessions":-1,)"
                                      R"("last_activity":"2026-01-01T00:00:00Z"})")
                     .ok());
    EXPECT_FALSE(parse_heartbeat_json(R"({"timestamp":"yesterday","active_sessions":0,)"
                                      R"("last_activity":"2026-01-01T00:00:00Z"})")
                     .ok());
    EXPECT_FALSE(parse_heartbeat_json("[1,2]").ok());
}

}  // namespace
}  // namespace msb::protocol
