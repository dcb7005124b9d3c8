// GuestLog: the sandbox's guest.log, size-rotated like host.log (10 MiB, three old files), so
// that a guest flooding its console cannot fill the host's disk.
//
//   auto log = TRY(GuestLog::open(log_dir));
//   console options: .output = log                        (virtio hvc port, device thread)
//   VmBuilder console: .writer = log->serial_writer()      (8250 serial, vCPU thread)
//
// Both consoles write into the one file; a mutex keeps their records whole. A failed write
// (full disk) is counted and dropped: the guest never waits on the host's disk.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>

#include "devices/console/port_backend.h"
#include "runtime/rotating_log.h"
#include "vmm/serial.h"

namespace msb::runtime {

class GuestLog final : public devices::ConsoleOutputSink,
                       public std::enable_shared_from_this<GuestLog> {
public:
    static Result<std::shared_ptr<GuestLog>> open(
        const std::string& log_dir, uint64_t max_bytes = RotatingLog::kDefaultMaxBytes,
        unsigned keep = RotatingLog::kDefaultKeep);

    void write(std::span<const uint8_t> bytes) override;  // thread-safe
    vmm::Serial::Writer serial_writer();
    const std::string& path() const { return m_path; }
    uint64_t failed_writes() const { return m_failed.load(std::memory_order_relaxed); }

private:
    explicit GuestLog(RotatingLog log) : m_path(log.path()), m_log(std::move(log)) {}

    std::string m_path;
    std::mutex m_mutex;
    RotatingLog m_log;  // GUARDED_BY(m_mutex)
    std::atomic<uint64_t> m_failed{0};
};

}  // namespace msb::runtime
