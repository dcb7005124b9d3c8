// Vcpu: one KVM vCPU and its mmap'd kvm_run area.
//
//   auto vcpu = TRY(vm.create_vcpu(0));
//   TRY(vcpu.set_cpuid(entries));
//   TRY(vcpu.set_special_registers(sregs));
//   TRY(vcpu.set_registers(regs));
//   for (;;) { VcpuExit exit = vcpu.run(); switch (exit.kind) { ... } }
//
// Thread-safety: run() and the register accessors belong to the vCPU's own thread.
// set_immediate_exit() is a single store into kvm_run and may be called from a signal handler
// on that thread (that is how a kick makes KVM_RUN return EINTR without racing).
// Move-only owner of the vCPU fd and its mapping.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "kvm/system.h"

struct kvm_run;

namespace msb::kvm {

struct Registers {
    uint64_t rax = 0, rbx = 0, rcx = 0, rdx = 0, rsi = 0, rdi = 0, rsp = 0, rbp = 0;
    uint64_t r8 = 0, r9 = 0, r10 = 0, r11 = 0, r12 = 0, r13 = 0, r14 = 0, r15 = 0;
    uint64_t rip = 0, rflags = 0;
};

struct Segment {
    uint64_t base = 0;
    uint32_t limit = 0;
    uint16_t selector = 0;
    uint8_t type = 0, present = 0, dpl = 0, db = 0, s = 0, l = 0, g = 0;
};

// The subset of struct kvm_sregs a boot needs; set_special_registers() keeps KVM's values for
// everything else (TR, LDT, IDT, APIC base).
struct SpecialRegisters {
    Segment cs, ds, es, fs, gs, ss;
    uint64_t gdt_base = 0;
    uint16_t gdt_limit = 0;
    uint64_t cr0 = 0, cr3 = 0, cr4 = 0, efer = 0;
};

struct MsrEntry {
    uint32_t index;
    uint64_t data;
};

enum class Direction { In, Out };

// Why KVM_RUN returned. `data` spans point into kvm_run and are valid until the next run().
struct VcpuExit {
    enum class Kind {
        Io,             // port I/O: port, size, count, direction, data (size * count bytes)
        Mmio,           // address, direction, data (1..8 bytes)
        Hlt,            // HLT without an in-kernel irqchip
        Shutdown,       // triple fault
        SystemEvent,    // system_event_type (KVM_SYSTEM_EVENT_*)
        InternalError,  // suberror, internal_data, instruction bytes when KVM supplied them
        FailEntry,      // hardware_reason
        Interrupted,    // KVM_RUN returned EINTR/EAGAIN (a kick, or immediate_exit)
        RunFailed,      // KVM_RUN failed: error (errno)
        Unknown,        // raw_reason
    };
    Kind kind = Kind::Unknown;
    uint32_t raw_reason = 0;
    int error = 0;

    uint16_t port = 0;
    uint8_t size = 0;
    uint32_t count = 0;
    uint64_t address = 0;
    Direction direction = Direction::In;
    std::span<uint8_t> data;

    uint32_t suberror = 0;
    std::vector<uint64_t> internal_data;
    std::array<uint8_t, 15> instruction{};
    uint8_t instruction_size = 0;  // 0 when KVM did not report the bytes

    uint64_t hardware_reason = 0;
    uint32_t system_event_type = 0;
};

class Vcpu {
public:
    Vcpu(Vcpu&& other) noexcept;
    Vcpu& operator=(Vcpu&& other) noexcept;
    Vcpu(const Vcpu&) = delete;
    Vcpu& operator=(const Vcpu&) = delete;
    ~Vcpu();

    uint32_t id() const { return m_id; }

    Status set_cpuid(const std::vector<CpuidEntry>& entries);
    // Sets MSRs in order; KVM stops at the first one it refuses. Returns how many were set.
    Result<size_t> set_msrs(std::span<const MsrEntry> entries);
    Result<Registers> registers() const;
    Status set_registers(const Registers& regs);
    Result<SpecialRegisters> special_registers() const;
    Status set_special_registers(const SpecialRegisters& sregs);
    // Guest-virtual → guest-physical through the vCPU's current page tables (KVM_TRANSLATE).
    Result<uint64_t> translate(uint64_t guest_virtual) const;

    // One KVM_RUN. Never fails as a Result: a failing ioctl is reported as RunFailed.
    VcpuExit run();
    // Async-signal-safe: sets kvm_run.immediate_exit.
    void set_immediate_exit(bool on);

private:
    friend class Vm;
    Vcpu(UniqueFd fd, uint32_t id, ::kvm_run* run, size_t run_size)
        : m_fd(std::move(fd)), m_id(id), m_run(run), m_run_size(run_size) {}

    UniqueFd m_fd;
    uint32_t m_id = 0;
    ::kvm_run* m_run = nullptr;
    size_t m_run_size = 0;
};

}  // namespace msb::kvm
