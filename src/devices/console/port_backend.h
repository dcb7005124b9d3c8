// The host side of virtio-console ports: ConsolePortBackend for named ports (e.g. "agent") and
// ConsoleOutputSink for port 0, the guest's hvc console.
//
// The device runs on its event-loop thread and never blocks on a backend: all backend calls
// are non-blocking, and the two wake fds tell the device when to try again.
//
//   Host→guest: the device calls read() only while the guest has the port open and has posted
//   receive buffers; otherwise the data stays in the backend (nothing is dropped).
//   Guest→host: the device calls write() with guest bytes; when the backend is full it stops
//   taking buffers from the guest's transmit queue until write_wake_fd() becomes readable,
//   then resumes exactly where it stopped (nothing is dropped).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "base/result.h"
#include "base/unique_fd.h"

namespace msb::devices {

class ConsolePortBackend {
public:
    virtual ~ConsolePortBackend() = default;

    // Host→guest. Copies up to out.size() bytes of pending data into `out` (guest memory) and
    // returns the count (> 0). When nothing is pending returns an Error with code EAGAIN
    // ("would block"). Any other error marks the port broken: the device stops reading it.
    virtual Result<size_t> read(std::span<uint8_t> out) = 0;
    // Guest→host. Takes up to in.size() bytes and returns the count taken (> 0). When it can
    // take nothing now returns an Error with code EAGAIN. Any other error marks the port
    // broken: the device then discards what the guest sends on it (counted).
    virtual Result<size_t> write(std::span<const uint8_t> in) = 0;

    // Polled for EPOLLIN, level-triggered, only while the device waits on the condition:
    //   read_wake_fd():  readable when read() may return data;
    //   write_wake_fd(): readable when write() may take data again.
    // Contract: after read() (write()) returned EAGAIN, the fd must not stay readable unless
    // data (space) has arrived since — e.g. drain an eventfd inside read() before checking
    // for data, and signal it after adding data. Otherwise the device thread spins. The two
    // fds must be distinct from each other and from every other port's.
    virtual int read_wake_fd() const = 0;
    virtual int write_wake_fd() const = 0;

    // The guest opened (true) or closed (false) the port (VIRTIO_CONSOLE_PORT_OPEN). Called on
    // the device thread; must not block. Optional.
    virtual void guest_open_changed(bool open) { (void)open; }
};

// Where port 0 (the guest's hvc console) output goes. Called on the device thread.
class ConsoleOutputSink {
public:
    virtual ~ConsoleOutputSink() = default;
    virtual void write(std::span<const uint8_t> bytes) = 0;
};

// Appends console output to a file (the sandbox's guest.log).
class FileOutputSink final : public ConsoleOutputSink {
public:
    // Opens `path` for appending, creating it (0644) if needed.
    static Result<std::shared_ptr<FileOutputSink>> open(const std::string& path);
    void write(std::span<const uint8_t> bytes) override;

private:
    explicit FileOutputSink(UniqueFd fd, std::string path)
        : m_fd(std::move(fd)), m_path(std::move(path)) {}
    UniqueFd m_fd;
    std::string m_path;
};

}  // namespace msb::devices
