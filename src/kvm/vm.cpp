// Vm: VM-wide KVM ioctls.
#include "kvm/vm.h"

#include <sys/ioctl.h>
#include <sys/mman.h>
#include "kvm/uapi.h"

#include <fmt/format.h>

namespace msb::kvm {

Result<Vm> Vm::create(const System& system) {
    size_t run_size = TRY(system.vcpu_mmap_size());
    int fd = ::ioctl(system.fd(), KVM_CREATE_VM, 0);
    if (fd < 0) return Error::from_errno("KVM_CREATE_VM");
    return Vm(UniqueFd(fd), run_size);
}

Status Vm::set_tss_address(uint64_t address) {
    if (::ioctl(m_fd.get(), KVM_SET_TSS_ADDR, static_cast<unsigned long>(address)) < 0)
        return Error::from_errno("KVM_SET_TSS_ADDR");
    return {};
}

Status Vm::set_identity_map_address(uint64_t address) {
    __u64 value = address;
    if (::ioctl(m_fd.get(), KVM_SET_IDENTITY_MAP_ADDR, &value) < 0)
        return Error::from_errno("KVM_SET_IDENTITY_MAP_ADDR");
    return {};
}

Status Vm::create_irqchip() {
    if (::ioctl(m_fd.get(), KVM_CREATE_IRQCHIP, 0) < 0)
        return Error::from_errno("KVM_CREATE_IRQCHIP");
    return {};
}

Status Vm::create_pit2() {
    kvm_pit_config config{};
    config.flags = KVM_PIT_SPEAKER_DUMMY;
    if (::ioctl(m_fd.get(), KVM_CREATE_PIT2, &config) < 0)
        return Error::from_errno("KVM_CREATE_PIT2");
    return {};
}

Status Vm::add_memory(const GuestMemory& memory) {
    for (const auto& m : memory.mappings()) {
        kvm_userspace_memory_region region{};
        region.slot = m_next_slot;
        region.guest_phys_addr = m.guest_address;
        region.memory_size = m.size;
        region.userspace_addr = reinterpret_cast<uint64_t>(m.host);
        if (::ioctl(m_fd.get(), KVM_SET_USER_MEMORY_REGION, &region) < 0)
            return Error::from_errno(
                fmt::format("KVM_SET_USER_MEMORY_REGION slot {} at {:#x} ({} MiB)", m_next_slot,
                            m.guest_address, m.size >> 20));
        ++m_next_slot;
    }
    return {};
}

Status Vm::set_irq_line(uint32_t irq, IrqLevel level) const {
    kvm_irq_level line{};
    line.irq = irq;
    line.level = level == IrqLevel::High ? 1 : 0;
    if (::ioctl(m_fd.get(), KVM_IRQ_LINE, &line) < 0)
        return Error::from_errno(fmt::format("KVM_IRQ_LINE {}", irq));
    return {};
}

Status Vm::register_irqfd(int fd, uint32_t gsi) const {
    kvm_irqfd irqfd{};
    irqfd.fd = static_cast<__u32>(fd);
    irqfd.gsi = gsi;
    if (::ioctl(m_fd.get(), KVM_IRQFD, &irqfd) < 0)
        return Error::from_errno(fmt::format("KVM_IRQFD gsi {}", gsi));
    return {};
}

Status Vm::register_ioeventfd(int fd, AddressSpace space, uint64_t address, uint32_t length,
                              std::optional<uint64_t> datamatch) const {
    kvm_ioeventfd event{};
    event.addr = address;
    event.len = length;
    event.fd = fd;
    if (space == AddressSpace::Pio) event.flags |= KVM_IOEVENTFD_FLAG_PIO;
    if (datamatch) {
        event.flags |= KVM_IOEVENTFD_FLAG_DATAMATCH;
        event.datamatch = *datamatch;
    }
    if (::ioctl(m_fd.get(), KVM_IOEVENTFD, &event) < 0)
        return Error::from_errno(fmt::format("KVM_IOEVENTFD at {:#x}", address));
    return {};
}

Result<Vcpu> Vm::create_vcpu(uint32_t id) const {
    int fd = ::ioctl(m_fd.get(), KVM_CREATE_VCPU, static_cast<unsigned long>(id));
    if (fd < 0) return Error::from_errno(fmt::format("KVM_CREATE_VCPU {}", id));
    UniqueFd owned(fd);
    void* run = ::mmap(nullptr, m_run_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (run == MAP_FAILED) return Error::from_errno(fmt::format("map kvm_run of vCPU {}", id));
    return Vcpu(std::move(owned), id, static_cast<kvm_run*>(run), m_run_size);
}

}  // namespace msb::kvm
