// SDK example: create a sandbox, run a command, write and read a file, stop it.
//
//   build/examples/hello_sandbox            # needs /dev/kvm and the guest kernel
//
// Exit status: 0 on success; 2 with one line "hello_sandbox: <reason>" when the sandbox cannot
// be created (e.g. no /dev/kvm on this machine); 1 for any later failure.
#include <cstdio>

#include "msb/sandbox.h"

int main() {  // NOLINT(bugprone-exception-escape): the SDK reports errors as values
    auto sandbox = msb::Sandbox::builder("").cpus(1).memory_mib(256).create();
    if (!sandbox.ok()) {
        (void)std::fprintf(stderr, "hello_sandbox: %s\n", sandbox.error().message().c_str());
        return 2;
    }
    auto out = sandbox->exec("uname", {"-a"});
    if (!out.ok()) {
        (void)std::fprintf(stderr, "hello_sandbox: exec: %s\n", out.error().message().c_str());
        return 1;
    }
    std::printf("guest: %s", out->stdout_data.c_str());
    auto fs = sandbox->fs();
    if (auto st = fs.write("/tmp/hello.txt", "hello from the host\n"); !st.ok()) return 1;
    auto back = fs.read("/tmp/hello.txt");
    std::printf("file: %s", back.ok() ? back->c_str() : "?\n");
    std::string name = sandbox->name();
    (void)sandbox->stop();
    (void)msb::Sandbox::remove(name);
    return out->exit_code;
}
