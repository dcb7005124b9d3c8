// Interop with an independent encoder: tests/protocol/gen_frames.py builds frames with
// python3-cbor2 the way microsandbox 0.4.3 (serde + ciborium) does. Our decoder must accept
// every one of them, and for the "exact" cases our encoder must produce the same bytes from the
// equivalent C++ struct.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdio>
#include <functional>
#include <map>
#include <string>

#include "protocol/frame.h"
#include "protocol/messages.h"
#include "protocol/test_util.h"

namespace msb::protocol {
namespace {

constexpr const char* kPython = "/usr/bin/python3";

struct PythonCase {
    bool exact = false;
    std::vector<uint8_t> frame;
};

std::vector<uint8_t> from_hex(const std::string& hex) {
    std::vector<uint8_t> out;
    out.reserve(hex.size() / 2);
    for (size_t i = 0; i + 1 < hex.size(); i += 2) {
        out.push_back(static_cast<uint8_t>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    }
    return out;
}

// Runs the generator; an empty map with `skip_reason` set when python/cbor2 is missing.
std::map<std::string, PythonCase> run_generator(std::string& skip_reason) {
    std::map<std::string, PythonCase> cases;
    struct stat st {};
    if (::stat(kPython, &st) != 0) {
        skip_reason = std::string(kPython) + " is not installed";
        return cases;
    }
    if (std::system((std::string(kPython) + " -c 'import cbor2' 2>/dev/null").c_str()) != 0) {
        skip_reason = "python3-cbor2 is not installed for /usr/bin/python3";
        return cases;
    }
    std::string command =
        std::string(kPython) + " " + MSB_SOURCE_DIR + "/tests/protocol/gen_frames.py";
    FILE* pipe = ::popen(command.c_str(), "r");
    if (pipe == nullptr) return cases;
    std::string output;
    char buffer[65536];
    size_t n;
    while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) output.append(buffer, n);
    int status = ::pclose(pipe);
    EXPECT_EQ(status, 0) << "gen_frames.py failed";
    size_t pos = 0;
    while (pos < output.size()) {
        size_t end = output.find('\n', pos);
        if (end == std::string::npos) end = output.size();
        std::string line = output.substr(pos, end - pos);
        pos = end + 1;
        size_t a = line.find(' ');
        size_t b = line.find(' ', a + 1);
        if (a == std::string::npos || b == std::string::npos) continue;
        cases[line.substr(0, a)] = {line.substr(a + 1, b - a - 1) == "exact",
                                    from_hex(line.substr(b + 1))};
    }
    return cases;
}

std::vector<uint8_t> pattern(size_t size, uint8_t step) {
    std::vector<uint8_t> out(size);
    for (size_t i = 0; i < size; ++i) out[i] = static_cast<uint8_t>(i * step);
    return out;
}

FsEntryInfo entry(std::string path, std::string kind, uint64_t size, uint32_t mode,
                  std::optional<int64_t> modified) {
    return {std::move(path), std::move(kind), size, mode, modified};
}

// The C++ message equivalent to each python case.
std::map<std::string, Message> expected_messages() {
    std::map<std::string, Message> m;
    m["ready"] = make_message(0, Ready{123456789012, 4096, UINT64_MAX});
    m["shutdown"] = make_message(0, Shutdown{});
    ExecRequest full;
    full.cmd = "/bin/sh";
    full.args = {"-c", "echo h\xc3\xa9llo"};
    full.env = {"A=1", "PATH=/.msb/scripts:/usr/bin"};
    full.cwd = "/tmp";
    full.user = "nobody";
    full.tty = true;
    full.rows = 50;
    full.cols = 300;
    full.rlimits = {{"nofile", 1024, 65536}, {"as", uint64_t{1} << 40, uint64_t{1} << 40}};
    m["exec_request_full"] = make_message(0x10000001, full);
    m["exec_request_defaults_written"] = make_message(7, ExecRequest{.cmd = "ls"});
    m["exec_request_minimal"] = make_message(7, ExecRequest{.cmd = "ls"});
    m["exec_request_unknown_field"] = make_message(8, ExecRequest{.cmd = "true", .tty = true});
    m["exec_started"] = make_message(3, ExecStarted{UINT32_MAX});
    m["exec_stdin"] = make_message(3, ExecStdin{{'h', 'e', 'l', 'l', 'o', '\n'}});
    m["exec_stdin_close"] = make_message(3, ExecStdin{});
    m["exec_stdout"] = make_message(3, ExecStdout{pattern(256, 1)});
    m["exec_stderr"] = make_message(3, ExecStderr{pattern(70000, 7)});
    m["exec_exited"] = make_message(3, ExecExited{137});
    m["exec_exited_negative"] = make_message(3, ExecExited{INT32_MIN});
    m["exec_resize"] = make_message(3, ExecResize{65535, 0});
    m["exec_signal"] = make_message(0xFFFFFFFF, ExecSignal{9});
    m["fs_stat"] = make_message(9, FsRequest{FsOp::stat("/etc/hosts")});
    m["fs_list"] = make_message(9, FsRequest{FsOp::list("/")});
    m["fs_read"] = make_message(9, FsRequest{FsOp::read("/a b")});
    m["fs_write_mode"] = make_message(9, FsRequest{FsOp::write("/w", 0644)});
    m["fs_write_no_mode"] = make_message(9, FsRequest{FsOp::write("/w")});
    m["fs_write_mode_absent"] = make_message(9, FsRequest{FsOp::write("/w")});
    m["fs_mkdir"] = make_message(9, FsRequest{FsOp::mkdir("/d/e")});
    m["fs_remove"] = make_message(9, FsRequest{FsOp::remove("/f")});
    m["fs_remove_dir"] = make_message(9, FsRequest{FsOp::remove_dir("/d")});
    m["fs_copy"] = make_message(9, FsRequest{FsOp::copy("/s", "/t")});
    m["fs_rename"] = make_message(9, FsRequest{FsOp::rename("/s", "/t")});
    m["fs_data"] = make_message(9, FsData{pattern(70000, 7)});
    m["fs_data_end"] = make_message(9, FsData{});
    m["fs_response_error"] =
        make_message(9, FsResponse{.ok = false, .error = "No such file or directory"});
    m["fs_response_ok"] = make_message(9, FsResponse{.ok = true});
    m["fs_response_stat"] = make_message(
        9, FsResponse{
               .ok = true,
               .data_kind = FsResponseDataKind::Stat,
               .entries = {entry("/etc/hosts", "file", uint64_t{1} << 33, 0100644, 1764390000)}});
    m["fs_response_list"] =
        make_message(9, FsResponse{.ok = true,
                                   .data_kind = FsResponseDataKind::List,
                                   .entries = {entry("/a", "dir", 4096, 040755, -5),
                                               entry("/b", "symlink", 1, 0120777, std::nullopt)}});
    m["fs_response_minimal"] = make_message(9, FsResponse{.ok = true});
    return m;
}

class ProtocolInterop : public ::testing::Test {
protected:
    static void SetUpTestSuite() { s_cases = run_generator(s_skip_reason); }
    void SetUp() override {
        if (!s_skip_reason.empty()) GTEST_SKIP() << s_skip_reason;
        ASSERT_FALSE(s_cases.empty()) << "gen_frames.py produced no cases";
    }
    static inline std::map<std::string, PythonCase> s_cases;
    static inline std::string s_skip_reason;
};

TEST_F(ProtocolInterop, EveryPythonCaseHasACppEquivalentAndViceVersa) {
    auto expected = expected_messages();
    for (const auto& [name, c] : s_cases) EXPECT_TRUE(expected.count(name)) << name;
    for (const auto& [name, m] : expected) EXPECT_TRUE(s_cases.count(name)) << name;
    EXPECT_GE(s_cases.size(), 30u);
}

TEST_F(ProtocolInterop, DecoderAcceptsEveryFrameOfTheIndependentEncoder) {
    auto expected = expected_messages();
    for (const auto& [name, c] : s_cases) {
        SCOPED_TRACE(name);
        auto want = expected.find(name);
        ASSERT_NE(want, expected.end());
        // Through the stream decoder, as a receiver would see it.
        FrameDecoder decoder;
        std::vector<RawFrame> frames;
        ASSERT_TRUE(
            decoder.feed(c.frame, [&](RawFrame&& f) { frames.push_back(std::move(f)); }).ok());
        ASSERT_EQ(frames.size(), 1u);
        auto message = decode_message(frames[0]);
        ASSERT_TRUE(message.ok()) << message.error().message();
        EXPECT_EQ(message->type, want->second.type);
        EXPECT_EQ(message->id, want->second.id);
        EXPECT_EQ(message->flags, want->second.flags);
        EXPECT_EQ(message->version, 1);
        auto reencoded = testing::reencode_payload(message.value());
        ASSERT_TRUE(reencoded.ok()) << reencoded.error().message();
        EXPECT_EQ(reencoded.value(), want->second.payload)
            << "decoded fields differ from the expected struct";
    }
}

TEST_F(ProtocolInterop, EncoderProducesByteIdenticalFrames) {
    auto expected = expected_messages();
    size_t exact = 0;
    for (const auto& [name, c] : s_cases) {
        if (!c.exact) continue;
        SCOPED_TRACE(name);
        ++exact;
        auto frame = encode_frame(expected.at(name));
        ASSERT_TRUE(frame.ok()) << frame.error().message();
        EXPECT_EQ(frame.value(), c.frame);
    }
    EXPECT_GE(exact, 25u);
}

TEST_F(ProtocolInterop, DecodedPayloadFieldsMatchThePythonValues) {
    auto request = decode_frame(s_cases.at("exec_request_full").frame);
    ASSERT_TRUE(request.ok());
    auto req = decode_payload<ExecRequest>(request->payload);
    ASSERT_TRUE(req.ok()) << req.error().message();
    EXPECT_EQ(req->cmd, "/bin/sh");
    EXPECT_EQ(req->args.at(1), "echo h\xc3\xa9llo");
    EXPECT_EQ(req->cwd, "/tmp");
    EXPECT_EQ(req->user, "nobody");
    EXPECT_TRUE(req->tty);
    EXPECT_EQ(req->rows, 50);
    EXPECT_EQ(req->cols, 300);
    ASSERT_EQ(req->rlimits.size(), 2u);
    EXPECT_EQ(req->rlimits[1].resource, "as");
    EXPECT_EQ(req->rlimits[1].hard, uint64_t{1} << 40);

    auto minimal = decode_frame(s_cases.at("exec_request_minimal").frame);
    ASSERT_TRUE(minimal.ok());
    auto min_req = decode_payload<ExecRequest>(minimal->payload);
    ASSERT_TRUE(min_req.ok());
    EXPECT_EQ(min_req->rows, 24);
    EXPECT_EQ(min_req->cols, 80);
    EXPECT_FALSE(min_req->cwd.has_value());
    EXPECT_TRUE(min_req->args.empty());

    auto list = decode_frame(s_cases.at("fs_response_list").frame);
    ASSERT_TRUE(list.ok());
    auto resp = decode_payload<FsResponse>(list->payload);
    ASSERT_TRUE(resp.ok());
    EXPECT_EQ(resp->data_kind, FsResponseDataKind::List);
    ASSERT_EQ(resp->entries.size(), 2u);
    EXPECT_EQ(resp->entries[0].modified, -5);
    EXPECT_FALSE(resp->entries[1].modified.has_value());
    EXPECT_EQ(resp->entries[1].mode, 0120777u);
}

}  // namespace
}  // namespace msb::protocol
