// Tests of virtio-console, driven the way Linux's virtio_console driver drives it.
#include "devices/console/console_device.h"

#include <gtest/gtest.h>
#include <linux/virtio_console.h>

#include <mutex>
#include <thread>

#include <poll.h>

#include "base/event_fd.h"
#include "devices/console/buffered_port_backend.h"
#include "testing/fake_driver.h"
#include "testing/loop_thread.h"
#include "virtio/features.h"
#include "virtio/mmio_transport.h"

namespace msb::devices {
namespace {

using msb::testing::FakeDriver;
using msb::testing::LoopThread;

// A ring-buffer backend with the contract the runtime's agent relay implements.
class TestBackend : public ConsolePortBackend {
public:
    explicit TestBackend(size_t capacity)
        : m_capacity(capacity),
          m_read_wake(MUST(EventFd::create())),
          m_write_wake(MUST(EventFd::create())) {}

    Result<size_t> read(std::span<uint8_t> out) override {
        m_read_wake.drain();
        std::lock_guard lock(m_mutex);
        if (m_to_guest.empty()) return Error("nothing to read", EAGAIN);
        size_t n = std::min(out.size(), m_to_guest.size());
        std::copy_n(m_to_guest.begin(), n, out.begin());
        m_to_guest.erase(0, n);
        return n;
    }
    Result<size_t> write(std::span<const uint8_t> in) override {
        m_write_wake.drain();
        std::lock_guard lock(m_mutex);
        size_t room = m_capacity - m_from_guest.size();
        if (room == 0) return Error("full", EAGAIN);
        size_t n = std::min(room, in.size());
        m_from_guest.append(reinterpret_cast<const char*>(in.data()), n);
        return n;
    }
    int read_wake_fd() const override { return m_read_wake.fd(); }
    int write_wake_fd() const override { return m_write_wake.fd(); }
    void guest_open_changed(bool open) override { opened = open; }

    void push(std::string_view data) {
        {
            std::lock_guard lock(m_mutex);
            m_to_guest.append(data);
        }
        m_read_wake.signal();
    }
    std::string take() {
        std::string out;
        {
            std::lock_guard lock(m_mutex);
            out.swap(m_from_guest);
        }
        m_write_wake.signal();
        return out;
    }
    size_t pending_to_guest() {
        std::lock_guard lock(m_mutex);
        return m_to_guest.size();
    }
    size_t buffered_from_guest() {
        std::lock_guard lock(m_mutex);
        return m_from_guest.size();
    }
    std::atomic<bool> opened{false};

private:
    size_t m_capacity;
    EventFd m_read_wake;
    EventFd m_write_wake;
    std::mutex m_mutex;
    std::string m_to_guest;
    std::string m_from_guest;
};

class CaptureSink : public ConsoleOutputSink {
public:
    void write(std::span<const uint8_t> bytes) override {
        std::lock_guard lock(m_mutex);
        m_text.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    }
    std::string text() {
        std::lock_guard lock(m_mutex);
        return m_text;
    }

private:
    std::mutex m_mutex;
    std::string m_text;
};

struct Control {
    uint32_t id;
    uint16_t event;
    uint16_t value;
    std::string extra;
};

std::vector<uint8_t> bytes_of(std::string_view s) { return {s.begin(), s.end()}; }

constexpr uint16_t kControlRx = 2;
constexpr uint16_t kControlTx = 3;
constexpr uint16_t kAgentRx = 4;
constexpr uint16_t kAgentTx = 5;

class ConsoleDeviceTest : public ::testing::Test {
protected:
    void SetUp() override {
        memory.emplace(MUST(kvm::GuestMemory::create({{0, 16 << 20}})));
        thread = MUST(LoopThread::create());
        backend = std::make_shared<TestBackend>(100);
        sink = std::make_shared<CaptureSink>();
        std::shared_ptr<ConsolePortBackend> port = backend;
        if (use_buffered_backend()) port = buffered = MUST(BufferedPortBackend::create(4096));
        console = MUST(
            ConsoleDevice::create({.output = sink, .ports = {{.name = "agent", .backend = port}}}));
        transport = MUST(virtio::MmioTransport::create(console));
        transport->attach_memory(*memory);
        MUST(transport->start(thread->loop()));
        driver.emplace(*transport, *memory);
    }
    void TearDown() override { thread.reset(); }
    virtual bool use_buffered_backend() const { return false; }

    // virtcons_probe: negotiate, read max_nr_ports, set up (max_nr_ports + 1) * 2 queues,
    // DRIVER_OK, fill the control receiveq, send DEVICE_READY.
    void probe() {
        ASSERT_TRUE(driver->negotiate(~0ull).ok());
        ASSERT_TRUE(virtio::has_feature(driver->accepted_features(), VIRTIO_CONSOLE_F_MULTIPORT));
        uint32_t ports = driver->read_config(4, 4);
        ASSERT_EQ(ports, 2u);
        for (uint32_t q = 0; q < 2 * (ports + 1); ++q)
            ASSERT_TRUE(driver->setup_queue(static_cast<uint16_t>(q), 16).ok());
        driver->driver_ok();
        for (int i = 0; i < 8; ++i) ASSERT_TRUE(driver->queue(kControlRx).add({}, {4096}));
        driver->queue(kControlRx).kick();
        send(VIRTIO_CONSOLE_BAD_ID, VIRTIO_CONSOLE_DEVICE_READY, 1);
    }
    void send(uint32_t id, uint16_t event, uint16_t value) {
        virtio_console_control c{id, event, value};
        auto* p = reinterpret_cast<const uint8_t*>(&c);
        ASSERT_TRUE(driver->queue(kControlTx).add({{p, p + sizeof c}}, {}));
        driver->queue(kControlTx).kick();
    }
    std::optional<Control> receive(std::chrono::milliseconds timeout = std::chrono::seconds(2)) {
        auto used = driver->queue(kControlRx).wait_used(timeout);
        if (!used) return std::nullopt;
        EXPECT_GE(used->written.size(), sizeof(virtio_console_control));
        if (used->written.size() < sizeof(virtio_console_control)) return std::nullopt;
        virtio_console_control c;
        std::memcpy(&c, used->written.data(), sizeof c);
        // Linux re-posts a buffer for every control message it consumes.
        EXPECT_TRUE(driver->queue(kControlRx).add({}, {4096}));
        driver->queue(kControlRx).kick();
        return Control{c.id, c.event, c.value,
                       std::string(used->written.begin() + sizeof c, used->written.end())};
    }
    // probe() + the PORT_ADD / PORT_READY exchange for both ports.
    void bring_up() {
        probe();
        for (uint32_t port = 0; port < 2; ++port) {
            auto add = receive();
            ASSERT_TRUE(add);
            ASSERT_EQ(add->event, VIRTIO_CONSOLE_PORT_ADD);
            ASSERT_EQ(add->id, port);
        }
        send(0, VIRTIO_CONSOLE_PORT_READY, 1);
        send(1, VIRTIO_CONSOLE_PORT_READY, 1);
    }
    void open_agent() {
        send(1, VIRTIO_CONSOLE_PORT_OPEN, 1);
        for (int i = 0; i < 400 && !console->guest_open(1); ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        ASSERT_TRUE(console->guest_open(1));
    }
    // Waits until nothing more arrives on queue `q` for a while.
    bool quiet(uint16_t q) {
        return !driver->queue(q).wait_used(std::chrono::milliseconds(100)).has_value();
    }

    std::optional<kvm::GuestMemory> memory;
    std::unique_ptr<LoopThread> thread;
    std::shared_ptr<TestBackend> backend;
    std::shared_ptr<BufferedPortBackend> buffered;
    std::shared_ptr<CaptureSink> sink;
    std::shared_ptr<ConsoleDevice> console;
    std::shared_ptr<virtio::MmioTransport> transport;
    std::optional<FakeDriver> driver;
};

TEST_F(ConsoleDeviceTest, ConfigReportsMaxPortsAndMultiportIsOffered) {
    EXPECT_EQ(driver->read32(0x008), 3u);  // device ID 3
    EXPECT_TRUE(virtio::has_feature(driver->device_features(), VIRTIO_CONSOLE_F_MULTIPORT));
    EXPECT_EQ(driver->read_config(4, 4), 2u);
    EXPECT_EQ(console->queue_max_sizes().size(), 6u);
}

TEST_F(ConsoleDeviceTest, AnnouncesTheConsolePortAndTheNamedPortLikeLinuxExpects) {
    bring_up();
    // Port 0 becomes the console; port 1 gets its name and is opened by the host.
    std::vector<Control> got;
    for (int i = 0; i < 3; ++i) {
        auto c = receive();
        ASSERT_TRUE(c) << "message " << i;
        got.push_back(*c);
    }
    EXPECT_EQ(got[0].id, 0u);
    EXPECT_EQ(got[0].event, VIRTIO_CONSOLE_CONSOLE_PORT);
    EXPECT_EQ(got[1].id, 1u);
    EXPECT_EQ(got[1].event, VIRTIO_CONSOLE_PORT_NAME);
    EXPECT_EQ(got[1].extra, "agent");
    EXPECT_EQ(got[2].id, 1u);
    EXPECT_EQ(got[2].event, VIRTIO_CONSOLE_PORT_OPEN);
    EXPECT_EQ(got[2].value, 1);
    EXPECT_EQ(console->bad_control_messages(), 0u);
}

TEST_F(ConsoleDeviceTest, ConsoleOutputReachesTheSink) {
    bring_up();
    auto& tx = driver->queue(1);
    ASSERT_TRUE(tx.add({bytes_of("Linux version 6.1"), bytes_of(" booted\n")}, {}));
    tx.kick();
    ASSERT_TRUE(tx.wait_used(std::chrono::seconds(2)));
    EXPECT_EQ(sink->text(), "Linux version 6.1 booted\n");
}

TEST_F(ConsoleDeviceTest, HostDataWaitsUntilTheGuestOpensThePortAndPostsBuffers) {
    bring_up();
    backend->push("hello guest");
    auto& rx = driver->queue(kAgentRx);
    ASSERT_TRUE(rx.add({}, {64}));
    rx.kick();
    EXPECT_TRUE(quiet(kAgentRx)) << "delivered before the guest opened the port";
    EXPECT_EQ(backend->pending_to_guest(), 11u);
    open_agent();
    EXPECT_TRUE(backend->opened);
    auto used = rx.wait_used(std::chrono::seconds(2));
    ASSERT_TRUE(used);
    EXPECT_EQ(std::string(used->written.begin(), used->written.end()), "hello guest");
    // More data with no buffer posted waits; posting one delivers it.
    backend->push("second");
    EXPECT_TRUE(quiet(kAgentRx));
    ASSERT_TRUE(rx.add({}, {64}));
    rx.kick();
    used = rx.wait_used(std::chrono::seconds(2));
    ASSERT_TRUE(used);
    EXPECT_EQ(std::string(used->written.begin(), used->written.end()), "second");
}

TEST_F(ConsoleDeviceTest, HostToGuestDataIsNeverDroppedUnderBackpressure) {
    bring_up();
    open_agent();
    std::string data;
    for (int i = 0; i < 5000; ++i) data += static_cast<char>('a' + i % 26);
    backend->push(data);
    auto& rx = driver->queue(kAgentRx);
    std::string got;
    // The guest posts one small buffer at a time, slowly.
    while (got.size() < data.size()) {
        ASSERT_TRUE(rx.add({}, {700}));
        rx.kick();
        auto used = rx.wait_used(std::chrono::seconds(2));
        ASSERT_TRUE(used) << "after " << got.size() << " bytes";
        EXPECT_LE(used->length, 700u);
        got.append(used->written.begin(), used->written.end());
    }
    EXPECT_EQ(got, data);
    EXPECT_EQ(backend->pending_to_guest(), 0u);
}

TEST_F(ConsoleDeviceTest, GuestToHostStopsWhenTheBackendIsFullAndResumes) {
    bring_up();
    open_agent();
    auto& tx = driver->queue(kAgentTx);
    std::string a(80, 'a'), b(80, 'b'), c(80, 'c');
    ASSERT_TRUE(tx.add({bytes_of(a)}, {}));
    ASSERT_TRUE(tx.add({bytes_of(b)}, {}));
    ASSERT_TRUE(tx.add({bytes_of(c)}, {}));
    tx.kick();
    // The backend holds 100 bytes: the first chain completes, the second is held part-way,
    // the third is not taken.
    ASSERT_TRUE(tx.wait_used(std::chrono::seconds(2)));
    EXPECT_TRUE(quiet(kAgentTx));
    EXPECT_EQ(backend->buffered_from_guest(), 100u);
    std::string received = backend->take();  // frees room and signals write_wake_fd
    // The rest of b and the first 40 bytes of c fill the backend again: b completes, c waits.
    ASSERT_TRUE(tx.wait_used(std::chrono::seconds(2)));
    EXPECT_TRUE(quiet(kAgentTx));
    EXPECT_EQ(backend->buffered_from_guest(), 100u);
    received += backend->take();
    ASSERT_TRUE(tx.wait_used(std::chrono::seconds(2)));
    received += backend->take();
    EXPECT_EQ(received, a + b + c);
    EXPECT_EQ(console->discarded_bytes(), 0u);
}

TEST_F(ConsoleDeviceTest, ClosingThePortStopsDelivery) {
    bring_up();
    open_agent();
    send(1, VIRTIO_CONSOLE_PORT_OPEN, 0);
    for (int i = 0; i < 400 && console->guest_open(1); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    ASSERT_FALSE(console->guest_open(1));
    EXPECT_FALSE(backend->opened);
    backend->push("kept");
    auto& rx = driver->queue(kAgentRx);
    ASSERT_TRUE(rx.add({}, {64}));
    rx.kick();
    EXPECT_TRUE(quiet(kAgentRx));
    EXPECT_EQ(backend->pending_to_guest(), 4u);
}

TEST_F(ConsoleDeviceTest, BadControlMessagesAreCountedAndIgnored) {
    bring_up();
    send(7, VIRTIO_CONSOLE_PORT_OPEN, 1);  // no such port
    send(1, 99, 0);                        // unknown event
    auto& q = driver->queue(kControlTx);
    ASSERT_TRUE(q.add({{1, 2, 3}}, {}));  // short message
    q.kick();
    for (int i = 0; i < 400 && console->bad_control_messages() < 3; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    EXPECT_EQ(console->bad_control_messages(), 3u);
    // The device still works.
    open_agent();
}

TEST_F(ConsoleDeviceTest, ResetClosesPortsAndTheDeviceComesBack) {
    bring_up();
    open_agent();
    driver->reset();
    EXPECT_FALSE(console->guest_open(1));
    EXPECT_FALSE(backend->opened);
    driver.emplace(*transport, *memory, 0x800000);  // fresh rings elsewhere
    bring_up();
    auto first = receive();
    ASSERT_TRUE(first);
    EXPECT_EQ(first->event, VIRTIO_CONSOLE_CONSOLE_PORT);
}

class BufferedConsoleTest : public ConsoleDeviceTest {
protected:
    bool use_buffered_backend() const override { return true; }
};

// Both directions at once through 4 KiB host buffers, with a host peer on its own thread (as
// the runtime's relay will be): every byte arrives, in order.
TEST_F(BufferedConsoleTest, StreamsBothWaysThroughSmallBuffersWithoutLoss) {
    bring_up();
    open_agent();
    EXPECT_TRUE(buffered->guest_open());
    constexpr size_t kBytes = size_t{256} * 1024;
    std::string to_guest(kBytes, 0), to_host(kBytes, 0);
    for (size_t i = 0; i < kBytes; ++i) {
        to_guest[i] = static_cast<char>(i * 7 + i / 4096);
        to_host[i] = static_cast<char>(i * 13 + i / 1000);
    }

    std::string host_received;
    std::atomic<bool> host_ok{true};
    std::thread host([&] {
        size_t sent = 0;
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        while ((sent < kBytes || host_received.size() < kBytes) &&
               std::chrono::steady_clock::now() < deadline) {
            pollfd fds[2] = {{buffered->host_writable_fd(), POLLIN, 0},
                             {buffered->host_readable_fd(), POLLIN, 0}};
            ::poll(fds, 2, 50);
            if (sent < kBytes)
                sent += buffered->send(
                    {reinterpret_cast<const uint8_t*>(to_guest.data()) + sent, kBytes - sent});
            uint8_t buf[1500];
            size_t n = buffered->receive(buf);
            host_received.append(reinterpret_cast<const char*>(buf), n);
        }
        host_ok = sent == kBytes;
    });

    auto& rx = driver->queue(kAgentRx);
    auto& tx = driver->queue(kAgentTx);
    std::string guest_received;
    size_t guest_sent = 0, rx_posted = 0, tx_outstanding = 0;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while ((guest_received.size() < kBytes || tx_outstanding > 0 || guest_sent < kBytes) &&
           std::chrono::steady_clock::now() < deadline) {
        bool progress = false;
        while (rx_posted < 8 && rx.add({}, {1000})) ++rx_posted, progress = true;
        while (guest_sent < kBytes && tx_outstanding < 8) {
            size_t n = std::min<size_t>(3000, kBytes - guest_sent);
            std::vector<uint8_t> chunk(to_host.begin() + guest_sent,
                                       to_host.begin() + guest_sent + n);
            if (!tx.add({chunk}, {})) break;
            guest_sent += n;
            ++tx_outstanding;
            progress = true;
        }
        if (progress) {
            rx.kick();
            tx.kick();
        }
        while (auto used = rx.take_used()) {
            guest_received.append(used->written.begin(), used->written.end());
            --rx_posted;
            progress = true;
        }
        while (tx.take_used()) --tx_outstanding, progress = true;
        if (!progress) std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
    host.join();
    EXPECT_TRUE(host_ok);
    ASSERT_EQ(guest_received.size(), kBytes);
    EXPECT_TRUE(guest_received == to_guest);
    ASSERT_EQ(host_received.size(), kBytes);
    EXPECT_TRUE(host_received == to_host);
    EXPECT_EQ(console->discarded_bytes(), 0u);
}

TEST(BufferedPortBackend, WrapsAroundAndReportsWouldBlock) {
    auto b = MUST(BufferedPortBackend::create(8));
    std::vector<uint8_t> in{1, 2, 3, 4, 5, 6};
    EXPECT_EQ(b->send(in), 6u);
    uint8_t out[4];
    EXPECT_EQ(MUST(b->read(out)), 4u);
    EXPECT_EQ(b->send(in), 6u);  // wraps: 2 + 6 = 8 buffered
    EXPECT_EQ(b->send(in), 0u);  // full
    std::vector<uint8_t> all(16);
    EXPECT_EQ(MUST(b->read(all)), 8u);
    EXPECT_EQ(std::vector<uint8_t>(all.begin(), all.begin() + 8),
              (std::vector<uint8_t>{5, 6, 1, 2, 3, 4, 5, 6}));
    auto empty = b->read(all);
    ASSERT_FALSE(empty.ok());
    EXPECT_EQ(empty.error().code(), EAGAIN);
    pollfd p{b->read_wake_fd(), POLLIN, 0};
    EXPECT_EQ(::poll(&p, 1, 0), 0) << "wake fd must not stay readable after EAGAIN";
    // Guest → host, with the host side full.
    EXPECT_EQ(MUST(b->write(std::vector<uint8_t>(10, 9))), 8u);
    auto full = b->write(in);
    ASSERT_FALSE(full.ok());
    EXPECT_EQ(full.error().code(), EAGAIN);
    pollfd w{b->write_wake_fd(), POLLIN, 0};
    EXPECT_EQ(::poll(&w, 1, 0), 0);
    EXPECT_EQ(b->receive(std::span<uint8_t>(all).first(3)), 3u);
    EXPECT_EQ(::poll(&w, 1, 0), 1) << "room must wake the device";
}

TEST(ConsoleDeviceCreate, RejectsTooManyPortsBadNamesAndSharedWakeFds) {
    auto backend = std::make_shared<TestBackend>(10);
    ConsoleConfig many;
    for (size_t i = 0; i <= ConsoleDevice::kMaxNamedPorts; ++i)
        many.ports.push_back({"p" + std::to_string(i), std::make_shared<TestBackend>(1)});
    EXPECT_FALSE(ConsoleDevice::create(std::move(many)).ok());
    EXPECT_FALSE(ConsoleDevice::create({.output = nullptr, .ports = {{"", backend}}}).ok());
    EXPECT_FALSE(ConsoleDevice::create({.output = nullptr, .ports = {{"x", nullptr}}}).ok());
    EXPECT_FALSE(
        ConsoleDevice::create({.output = nullptr, .ports = {{"a", backend}, {"b", backend}}}).ok());
    EXPECT_TRUE(ConsoleDevice::create({.output = nullptr, .ports = {{"agent", backend}}}).ok());
}

}  // namespace
}  // namespace msb::devices
