#include "runtime/guest_log.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

namespace msb::runtime {
namespace {

namespace fs = std::filesystem;

class GuestLogTest : public ::testing::Test {
protected:
    void SetUp() override {
        dir = fs::temp_directory_path() / ("msb-guest-log-" + std::to_string(::getpid()));
        fs::remove_all(dir);
    }
    void TearDown() override { fs::remove_all(dir); }
    std::string read(const std::string& name) {
        std::ifstream in(dir / name);
        std::stringstream s;
        s << in.rdbuf();
        return s.str();
    }
    fs::path dir;
};

std::span<const uint8_t> bytes(const std::string& s) {
    return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

TEST_F(GuestLogTest, BothConsolesFloodingKeepFourBoundedFilesOfWholeLines) {
    constexpr uint64_t kMax = 4096;
    auto log = MUST(GuestLog::open(dir.string(), kMax, 3));
    auto serial = log->serial_writer();
    // The serial console (vCPU thread) and the hvc port (device thread) at once.
    std::thread a([&] {
        for (int i = 0; i < 5000; i++) serial(bytes("serial line " + std::to_string(i) + "\n"));
    });
    std::thread b([&] {
        for (int i = 0; i < 5000; i++) log->write(bytes("hvc line " + std::to_string(i) + "\n"));
    });
    a.join();
    b.join();

    EXPECT_EQ(log->path(), (dir / "guest.log").string());
    EXPECT_FALSE(fs::exists(dir / "guest.log.4"));
    std::regex line_re(R"((serial|hvc) line \d+)");
    for (const char* name : {"guest.log", "guest.log.1", "guest.log.2", "guest.log.3"}) {
        ASSERT_TRUE(fs::exists(dir / name)) << name;
        std::string text = read(name);
        EXPECT_LE(text.size(), kMax) << name;
        EXPECT_TRUE(text.empty() || text.back() == '\n') << name;
        std::istringstream lines(text);
        for (std::string line; std::getline(lines, line);)
            EXPECT_TRUE(std::regex_match(line, line_re)) << name << " has a torn record: " << line;
    }
    // The newest lines of both writers are in the live file or just rotated out of it.
    std::string recent = read("guest.log.1") + read("guest.log");
    EXPECT_NE(recent.find("line 4999\n"), std::string::npos);
    EXPECT_EQ(log->failed_writes(), 0u);
}

TEST_F(GuestLogTest, AppendsToAnExistingLogAcrossRestarts) {
    {
        auto log = MUST(GuestLog::open(dir.string()));
        log->write(bytes("first boot\n"));
    }
    auto log = MUST(GuestLog::open(dir.string()));
    log->serial_writer()(bytes("second boot\n"));
    EXPECT_EQ(read("guest.log"), "first boot\nsecond boot\n");
}

}  // namespace
}  // namespace msb::runtime
