// Vcpu: per-vCPU KVM ioctls and the decoding of kvm_run exits.
#include "kvm/vcpu.h"

#include <sys/ioctl.h>
#include <sys/mman.h>
#include "kvm/uapi.h"

#include <algorithm>
#include <cerrno>
#include <utility>

namespace msb::kvm {

namespace {

kvm_segment to_kvm(const Segment& s) {
    kvm_segment k{};
    k.base = s.base;
    k.limit = s.limit;
    k.selector = s.selector;
    k.type = s.type;
    k.present = s.present;
    k.dpl = s.dpl;
    k.db = s.db;
    k.s = s.s;
    k.l = s.l;
    k.g = s.g;
    return k;
}

Segment from_kvm(const kvm_segment& k) {
    Segment s;
    s.base = k.base;
    s.limit = k.limit;
    s.selector = k.selector;
    s.type = k.type;
    s.present = k.present;
    s.dpl = k.dpl;
    s.db = k.db;
    s.s = k.s;
    s.l = k.l;
    s.g = k.g;
    return s;
}

}  // namespace

Vcpu::Vcpu(Vcpu&& other) noexcept
    : m_fd(std::move(other.m_fd)),
      m_id(other.m_id),
      m_run(std::exchange(other.m_run, nullptr)),
      m_run_size(std::exchange(other.m_run_size, 0)) {}

Vcpu& Vcpu::operator=(Vcpu&& other) noexcept {
    if (this != &other) {
        if (m_run) ::munmap(m_run, m_run_size);
        m_fd = std::move(other.m_fd);
        m_id = other.m_id;
        m_run = std::exchange(other.m_run, nullptr);
        m_run_size = std::exchange(other.m_run_size, 0);
    }
    return *this;
}

Vcpu::~Vcpu() {
    if (m_run) ::munmap(m_run, m_run_size);
}

Status Vcpu::set_cpuid(const std::vector<CpuidEntry>& entries) {
    uapi::FlexBuffer<uapi::Cpuid2Header, kvm_cpuid_entry2> buffer(entries.size());
    buffer.header()->nent = static_cast<__u32>(entries.size());
    for (size_t i = 0; i < entries.size(); ++i) {
        kvm_cpuid_entry2& k = buffer.entries()[i];
        const CpuidEntry& e = entries[i];
        k.function = e.function;
        k.index = e.index;
        k.flags = e.flags;
        k.eax = e.eax;
        k.ebx = e.ebx;
        k.ecx = e.ecx;
        k.edx = e.edx;
    }
    if (::ioctl(m_fd.get(), uapi::kSetCpuid2, buffer.header()) < 0)
        return Error::from_errno("KVM_SET_CPUID2");
    return {};
}

Result<size_t> Vcpu::set_msrs(std::span<const MsrEntry> entries) {
    uapi::FlexBuffer<uapi::MsrsHeader, kvm_msr_entry> buffer(entries.size());
    buffer.header()->nmsrs = static_cast<__u32>(entries.size());
    for (size_t i = 0; i < entries.size(); ++i) {
        buffer.entries()[i].index = entries[i].index;
        buffer.entries()[i].data = entries[i].data;
    }
    int n = ::ioctl(m_fd.get(), uapi::kSetMsrs, buffer.header());
    if (n < 0) return Error::from_errno("KVM_SET_MSRS");
    return static_cast<size_t>(n);
}

Result<Registers> Vcpu::registers() const {
    kvm_regs k{};
    if (::ioctl(m_fd.get(), KVM_GET_REGS, &k) < 0) return Error::from_errno("KVM_GET_REGS");
    return Registers{k.rax, k.rbx, k.rcx, k.rdx, k.rsi, k.rdi, k.rsp, k.rbp, k.r8,
                     k.r9,  k.r10, k.r11, k.r12, k.r13, k.r14, k.r15, k.rip, k.rflags};
}

Status Vcpu::set_registers(const Registers& r) {
    kvm_regs k{r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rsp, r.rbp, r.r8,
               r.r9,  r.r10, r.r11, r.r12, r.r13, r.r14, r.r15, r.rip, r.rflags};
    if (::ioctl(m_fd.get(), KVM_SET_REGS, &k) < 0) return Error::from_errno("KVM_SET_REGS");
    return {};
}

Result<SpecialRegisters> Vcpu::special_registers() const {
    kvm_sregs k{};
    if (::ioctl(m_fd.get(), KVM_GET_SREGS, &k) < 0) return Error::from_errno("KVM_GET_SREGS");
    SpecialRegisters s;
    s.cs = from_kvm(k.cs);
    s.ds = from_kvm(k.ds);
    s.es = from_kvm(k.es);
    s.fs = from_kvm(k.fs);
    s.gs = from_kvm(k.gs);
    s.ss = from_kvm(k.ss);
    s.gdt_base = k.gdt.base;
    s.gdt_limit = k.gdt.limit;
    s.cr0 = k.cr0;
    s.cr3 = k.cr3;
    s.cr4 = k.cr4;
    s.efer = k.efer;
    return s;
}

Status Vcpu::set_special_registers(const SpecialRegisters& s) {
    kvm_sregs k{};
    if (::ioctl(m_fd.get(), KVM_GET_SREGS, &k) < 0) return Error::from_errno("KVM_GET_SREGS");
    k.cs = to_kvm(s.cs);
    k.ds = to_kvm(s.ds);
    k.es = to_kvm(s.es);
    k.fs = to_kvm(s.fs);
    k.gs = to_kvm(s.gs);
    k.ss = to_kvm(s.ss);
    k.gdt.base = s.gdt_base;
    k.gdt.limit = s.gdt_limit;
    k.cr0 = s.cr0;
    k.cr3 = s.cr3;
    k.cr4 = s.cr4;
    k.efer = s.efer;
    if (::ioctl(m_fd.get(), KVM_SET_SREGS, &k) < 0) return Error::from_errno("KVM_SET_SREGS");
    return {};
}

Result<uint64_t> Vcpu::translate(uint64_t guest_virtual) const {
    kvm_translation t{};
    t.linear_address = guest_virtual;
    if (::ioctl(m_fd.get(), KVM_TRANSLATE, &t) < 0) return Error::from_errno("KVM_TRANSLATE");
    if (!t.valid) return Error("KVM_TRANSLATE: address not mapped");
    return static_cast<uint64_t>(t.physical_address);
}

void Vcpu::set_immediate_exit(bool on) {
    // A plain byte store into the shared kvm_run page; async-signal-safe.
    *static_cast<volatile __u8*>(&m_run->immediate_exit) = on ? 1 : 0;
}

VcpuExit Vcpu::run() {
    VcpuExit exit;
    if (::ioctl(m_fd.get(), KVM_RUN, 0) < 0) {
        exit.error = errno;
        exit.kind = (exit.error == EINTR || exit.error == EAGAIN) ? VcpuExit::Kind::Interrupted
                                                                  : VcpuExit::Kind::RunFailed;
        return exit;
    }
    auto* base = reinterpret_cast<uint8_t*>(m_run);
    exit.raw_reason = m_run->exit_reason;
    switch (m_run->exit_reason) {
        case KVM_EXIT_IO: {
            exit.kind = VcpuExit::Kind::Io;
            exit.port = m_run->io.port;
            exit.size = m_run->io.size;
            exit.count = m_run->io.count;
            exit.direction =
                m_run->io.direction == KVM_EXIT_IO_OUT ? Direction::Out : Direction::In;
            size_t bytes = size_t{exit.size} * exit.count;
            // Safe: KVM places the data inside the kvm_run mapping; refuse anything that is not.
            if (m_run->io.data_offset < m_run_size && bytes <= m_run_size - m_run->io.data_offset)
                exit.data = {base + m_run->io.data_offset, bytes};
            break;
        }
        case KVM_EXIT_MMIO:
            exit.kind = VcpuExit::Kind::Mmio;
            exit.address = m_run->mmio.phys_addr;
            exit.direction = m_run->mmio.is_write ? Direction::Out : Direction::In;
            exit.data = {m_run->mmio.data,
                         std::min<size_t>(m_run->mmio.len, sizeof m_run->mmio.data)};
            break;
        case KVM_EXIT_HLT:
            exit.kind = VcpuExit::Kind::Hlt;
            break;
        case KVM_EXIT_SHUTDOWN:
            exit.kind = VcpuExit::Kind::Shutdown;
            break;
        case KVM_EXIT_SYSTEM_EVENT:
            exit.kind = VcpuExit::Kind::SystemEvent;
            exit.system_event_type = m_run->system_event.type;
            break;
        case KVM_EXIT_FAIL_ENTRY:
            exit.kind = VcpuExit::Kind::FailEntry;
            exit.hardware_reason = m_run->fail_entry.hardware_entry_failure_reason;
            break;
        case KVM_EXIT_INTERNAL_ERROR: {
            exit.kind = VcpuExit::Kind::InternalError;
            exit.suberror = m_run->internal.suberror;
            uint32_t n = std::min<uint32_t>(m_run->internal.ndata, std::size(m_run->internal.data));
            exit.internal_data.assign(m_run->internal.data, m_run->internal.data + n);
            if (exit.suberror == KVM_INTERNAL_ERROR_EMULATION &&
                (m_run->emulation_failure.flags &
                 KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES)) {
                exit.instruction_size = std::min<uint8_t>(m_run->emulation_failure.insn_size, 15);
                std::copy_n(m_run->emulation_failure.insn_bytes, exit.instruction_size,
                            exit.instruction.begin());
            }
            break;
        }
        default:
            exit.kind = VcpuExit::Kind::Unknown;
            break;
    }
    return exit;
}

}  // namespace msb::kvm
