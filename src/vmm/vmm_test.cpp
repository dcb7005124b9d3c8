// Unit tests for the VMM's pure parts: exit-status decoding, buses, the UART, the i8042 and the
// exit port. No KVM needed.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include "base/unique_fd.h"
#include "vmm/bus.h"
#include "vmm/exit_status.h"
#include "vmm/legacy_devices.h"
#include "vmm/serial.h"

namespace msb::vmm {
namespace {

TEST(ExitStatus, DecodesInitsWaitStatusLikeAShell) {
    EXPECT_EQ(exit_code_from_wait_status(0), 0);
    EXPECT_EQ(exit_code_from_wait_status(3 << 8), 3);
    EXPECT_EQ(exit_code_from_wait_status(255 << 8), 255);
    EXPECT_EQ(exit_code_from_wait_status(9), 128 + 9);           // SIGKILL
    EXPECT_EQ(exit_code_from_wait_status(11 | 0x80), 128 + 11);  // SIGSEGV with core dump
}

TEST(ExitState, KeepsTheFirstRequestOnly) {
    auto state = std::make_shared<ExitState>();
    ExitHandle handle(state);
    EXPECT_FALSE(state->requested());
    std::thread t([&] { handle.trigger(7); });
    ExitStatus status = state->wait();
    t.join();
    EXPECT_EQ(status.reason, ExitReason::Triggered);
    EXPECT_EQ(status.code, 7);
    EXPECT_FALSE(state->request({ExitReason::GuestExit, 1, ""}));
    EXPECT_EQ(state->wait().code, 7);
}

class RecordingDevice final : public PioDevice {
public:
    void pio_read(uint16_t offset, std::span<uint8_t> data) override {
        last_offset = offset;
        std::memset(data.data(), 0x5a, data.size());
    }
    void pio_write(uint16_t offset, std::span<const uint8_t> data) override {
        last_offset = offset;
        last_value = data[0];
    }
    uint16_t last_offset = 0xffff;
    uint8_t last_value = 0;
};

TEST(IoBus, RoutesByRangeAndReadsAllOnesWhereNothingDecodes) {
    IoBus bus;
    RecordingDevice device;
    ASSERT_TRUE(bus.add(0x3f8, 8, &device).ok());
    EXPECT_FALSE(bus.add(0x3fc, 8, &device).ok());  // overlaps
    uint8_t byte = 0;
    bus.read(0x3fd, {&byte, 1});
    EXPECT_EQ(device.last_offset, 5);
    EXPECT_EQ(byte, 0x5a);
    const uint8_t v = 0x41;
    bus.write(0x3f8, {&v, 1});
    EXPECT_EQ(device.last_value, 0x41);
    uint32_t word = 0;
    bus.read(0x80, {reinterpret_cast<uint8_t*>(&word), 4});
    EXPECT_EQ(word, 0xffffffffu);
}

struct SerialFixture : ::testing::Test {
    SerialFixture() : pipe(MUST(Pipe::create())) {}
    void write(uint16_t offset, uint8_t v) { serial->pio_write(offset, {&v, 1}); }
    uint8_t read(uint16_t offset) {
        uint8_t v = 0;
        serial->pio_read(offset, {&v, 1});
        return v;
    }
    Pipe pipe;
    std::vector<bool> irq_levels;
    std::unique_ptr<Serial> serial = std::make_unique<Serial>(
        [this](bool high) { irq_levels.push_back(high); }, std::vector<int>{pipe.write.get()});
};

TEST_F(SerialFixture, WritesWholeLinesToTheSink) {
    write(0, 'o');
    write(0, 'k');
    char buffer[16] = {};
    ASSERT_TRUE(set_nonblocking(pipe.read.get()).ok());
    EXPECT_LT(::read(pipe.read.get(), buffer, sizeof buffer), 0);  // no newline yet
    write(0, '\n');
    EXPECT_EQ(::read(pipe.read.get(), buffer, sizeof buffer), 3);
    EXPECT_EQ(std::string(buffer, 3), "ok\n");
    write(0, 'x');
    serial->flush();
    EXPECT_EQ(::read(pipe.read.get(), buffer, sizeof buffer), 1);
}

TEST_F(SerialFixture, RaisesAndClearsTheTransmitterEmptyInterrupt) {
    EXPECT_EQ(read(5) & 0x60, 0x60);  // THRE and TEMT: always ready
    write(1, 0x02);                   // IER: THRI
    ASSERT_FALSE(irq_levels.empty());
    EXPECT_TRUE(irq_levels.back());
    EXPECT_EQ(read(2) & 0x0f, 0x02);  // IIR: THRE is the source; reading clears it
    EXPECT_FALSE(irq_levels.back());
    EXPECT_EQ(read(2) & 0x0f, 0x01);  // nothing pending
    write(0, 'a');
    EXPECT_TRUE(irq_levels.back());
}

TEST_F(SerialFixture, KeepsTheDivisorLatchApartFromTheData) {
    write(3, 0x80);  // DLAB
    write(0, 0x01);
    write(1, 0x00);
    EXPECT_EQ(read(0), 0x01);
    write(3, 0x03);
    EXPECT_EQ(read(3), 0x03);
    write(7, 0x99);
    EXPECT_EQ(read(7), 0x99);
    write(4, 0x10);  // loopback
    EXPECT_EQ(read(6) & 0xf0, 0x90);
}

TEST(LegacyDevices, I8042ResetCommandAndExitPortWriteEndTheVm) {
    int resets = 0;
    I8042 i8042([&] { ++resets; });
    uint8_t v = 0xfe;
    i8042.pio_write(0, {&v, 1});  // to 0x60: not a reset
    EXPECT_EQ(resets, 0);
    i8042.pio_write(4, {&v, 1});
    EXPECT_EQ(resets, 1);
    uint8_t status = 0xff;
    i8042.pio_read(4, {&status, 1});
    EXPECT_EQ(status, 0);

    std::vector<uint32_t> statuses;
    ExitPort port([&](uint32_t s) { statuses.push_back(s); });
    uint32_t word = 3 << 8;
    port.pio_write(0, {reinterpret_cast<uint8_t*>(&word), 4});
    uint8_t byte = 1;
    port.pio_write(0, {&byte, 1});  // wrong width: ignored
    ASSERT_EQ(statuses.size(), 1u);
    EXPECT_EQ(statuses[0], 3u << 8);
}

}  // namespace
}  // namespace msb::vmm
