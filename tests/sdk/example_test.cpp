// The SDK example program runs: with KVM it prints the guest's uname; without, it stops at the
// /dev/kvm error with one clean line and leaves no sandbox behind.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>

TEST(SdkExample, RunsOrReportsTheMissingKvmCleanly) {
    char tmpl[] = "/tmp/msb-example-XXXXXX";
    std::string home = ::mkdtemp(tmpl);
    std::string err = home + "/err";
    std::string cmd = "MSB_HOME=" + home + " MSB_BIN=" MSB_BINARY_DIR "/msb " MSB_BINARY_DIR
                      "/examples/hello_sandbox 2>" + err;
    FILE* p = ::popen(cmd.c_str(), "r");
    std::string out;
    std::array<char, 4096> buf;
    size_t n;
    while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
    int status = ::pclose(p);
    std::ifstream e(err);
    std::string errors((std::istreambuf_iterator<char>(e)), std::istreambuf_iterator<char>());
    ASSERT_TRUE(WIFEXITED(status));
    if (::access("/dev/kvm", R_OK | W_OK) == 0) {
        EXPECT_EQ(WEXITSTATUS(status), 0) << errors;
        EXPECT_NE(out.find("guest: Linux"), std::string::npos) << out;
        EXPECT_NE(out.find("file: hello from the host"), std::string::npos) << out;
    } else {
        EXPECT_EQ(WEXITSTATUS(status), 2) << errors;
        EXPECT_EQ(errors.rfind("hello_sandbox: cannot start sandbox: ", 0), 0u) << errors;
        EXPECT_NE(errors.find("/dev/kvm"), std::string::npos) << errors;
        EXPECT_EQ(std::count(errors.begin(), errors.end(), '\n'), 1) << errors;
    }
    // Nothing left behind either way.
    std::error_code ec;
    if (std::filesystem::exists(home + "/sandboxes")) {
        EXPECT_TRUE(std::filesystem::is_empty(home + "/sandboxes", ec));
    }
    std::filesystem::remove_all(home);
}
