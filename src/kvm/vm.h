// Vm: one KVM virtual machine (KVM_CREATE_VM) and the VM-wide ioctls msb uses: memory slots,
// the in-kernel interrupt controllers and PIT, ioeventfds and irqfds, interrupt lines.
//
//   auto vm = TRY(kvm::Vm::create(system));
//   TRY(vm.set_tss_address(0xfffbd000));
//   TRY(vm.create_irqchip());
//   TRY(vm.add_memory(memory));
//   auto vcpu = TRY(vm.create_vcpu(0));
//
// Thread-safety: set_irq_line, register_* may be called from any thread (the ioctls are).
// Move-only; the Vm must outlive its Vcpus and the GuestMemory must outlive the Vm.
#pragma once

#include <cstdint>
#include <optional>

#include "base/result.h"
#include "base/unique_fd.h"
#include "kvm/guest_memory.h"
#include "kvm/system.h"
#include "kvm/vcpu.h"

namespace msb::kvm {

enum class IrqLevel { Low, High };
enum class AddressSpace { Mmio, Pio };

class Vm {
public:
    static Result<Vm> create(const System& system);

    int fd() const { return m_fd.get(); }

    Status set_tss_address(uint64_t address);
    Status set_identity_map_address(uint64_t address);
    // In-kernel PIC + IOAPIC + local APICs (KVM_CREATE_IRQCHIP). Before creating vCPUs.
    Status create_irqchip();
    // In-kernel i8254 with the speaker port left to KVM's dummy (KVM_CREATE_PIT2).
    Status create_pit2();
    // One memory slot per region of `memory`, starting at slot 0.
    // REQUIRES: `memory` outlives this Vm.
    Status add_memory(const GuestMemory& memory);

    // KVM_IRQ_LINE on the in-kernel irqchip.
    Status set_irq_line(uint32_t irq, IrqLevel level) const;
    // A write to `fd` (eventfd) raises `gsi` (edge).
    Status register_irqfd(int fd, uint32_t gsi) const;
    // A guest write of `length` bytes at `address` (matching `datamatch` if given) signals
    // `fd` without a vCPU exit.
    Status register_ioeventfd(int fd, AddressSpace space, uint64_t address, uint32_t length,
                              std::optional<uint64_t> datamatch) const;

    // KVM_CREATE_VCPU with id `id` (= initial APIC id) and its kvm_run mapping.
    Result<Vcpu> create_vcpu(uint32_t id) const;

private:
    Vm(UniqueFd fd, size_t run_size) : m_fd(std::move(fd)), m_run_size(run_size) {}

    UniqueFd m_fd;
    size_t m_run_size;
    uint32_t m_next_slot = 0;
};

}  // namespace msb::kvm
