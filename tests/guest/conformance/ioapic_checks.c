/* The IOAPIC as a guest programs it (82093AA model, ACPI MADT address
 * 0xFEC00000) and COM1's THRE interrupt on ISA IRQ 4 through it: edge,
 * masked, level with remote IRR cleared by the LAPIC's EOI broadcast, and a
 * logical destination. Vectors: 0x50 edge, 0x51 logical, 0xf1 level (no
 * automatic EOI, see trap()). */
#include "conform.h"

#define COM1 0x3f8
#define WAIT 20000000u

static uint32_t io_read(uint32_t index) {
  mmio_write(IOAPIC, index);
  return mmio_read(IOAPIC + 0x10);
}
static void io_write(uint32_t index, uint32_t v) {
  mmio_write(IOAPIC, index);
  mmio_write(IOAPIC + 0x10, v);
}
static void route_irq4(uint32_t low, uint32_t dest) {
  io_write(0x10 + 2 * 4, 0x10000);  /* mask while changing */
  io_write(0x11 + 2 * 4, dest << 24);
  io_write(0x10 + 2 * 4, low);
}
/* COM1 THRE interrupt on (raises IRQ 4: THR is always empty) or off. */
static void uart_thre_irq(int on) {
  outb(COM1 + 4, 0x0B);  /* MCR: DTR, RTS, OUT2 (gates IRQ on PC boards) */
  outb(COM1 + 1, on ? 0x02 : 0x00);
}

void check_ioapic(void) {
  uint32_t ver = io_read(1);
  EXPECT("ioapic_version_has_24_entries", ((ver >> 16) & 0xFF) == 23 && (ver & 0xFF) >= 0x11,
         ver);
  uint32_t unmasked = 0;
  for (uint32_t pin = 0; pin < 24; ++pin)
    if (!(io_read(0x10 + 2 * pin) & 0x10000)) ++unmasked;
  EXPECT("ioapic_entries_masked_at_reset", unmasked == 0, unmasked);
  uint32_t id = io_read(0);
  io_write(0, 0x0A000000);
  EXPECT("ioapic_id_writable", (io_read(0) & 0x0F000000) == 0x0A000000, io_read(0));
  io_write(0, id);
  io_write(0x10 + 2 * 4, 0x1A950);
  io_write(0x11 + 2 * 4, 0x5A000000);
  EXPECT("ioapic_entry_reads_back", io_read(0x10 + 2 * 4) == 0x1A950 &&
         io_read(0x11 + 2 * 4) == 0x5A000000, io_read(0x10 + 2 * 4));

  uint32_t apic_id = lapic_read(0x20) >> 24;
  route_irq4(0x10050, apic_id);  /* masked */
  uart_thre_irq(1);
  wait_irqs(&irq_count[0x50], 1, 200000);
  uart_thre_irq(0);
  inb(COM1 + 2);
  EXPECT("ioapic_masked_pin_delivers_nothing", irq_count[0x50] == 0, irq_count[0x50]);

  route_irq4(0x00050, apic_id);  /* edge, physical */
  uart_thre_irq(1);
  int got = wait_irqs(&irq_count[0x50], 1, WAIT);
  uint8_t iir = inb(COM1 + 2);
  uart_thre_irq(0);
  EXPECT("uart_irq4_edge_delivers_through_ioapic", got && irq_count[0x50] == 1, irq_count[0x50]);
  EXPECT("uart_iir_reports_thre", (iir & 0x0F) == 0x02, iir);

  lapic_write(0xD0, 0x02000000);  /* flat LDR bit 1 */
  route_irq4(0x00851, 0x02);      /* edge, logical destination 0x02 */
  uart_thre_irq(1);
  got = wait_irqs(&irq_count[0x51], 1, WAIT);
  uart_thre_irq(0);
  inb(COM1 + 2);
  lapic_write(0xD0, 0);
  EXPECT("ioapic_logical_destination_delivers", got, irq_count[0x51]);

  route_irq4(0x080F1, apic_id);  /* level */
  uart_thre_irq(1);
  got = wait_irqs(&irq_count[0xf1], 1, WAIT);
  uint32_t irr_before = io_read(0x10 + 2 * 4) & 0x4000;
  uart_thre_irq(0);              /* line low before the EOI: no redelivery */
  lapic_write(0xB0, 0);
  uint32_t irr_after = io_read(0x10 + 2 * 4) & 0x4000;
  wait_irqs(&irq_count[0xf1], 2, 200000);
  EXPECT("ioapic_level_sets_remote_irr", got && irr_before, irr_before);
  EXPECT("ioapic_eoi_broadcast_clears_remote_irr", !irr_after && irq_count[0xf1] == 1,
         irq_count[0xf1]);
  io_write(0x10 + 2 * 4, 0x10000);
}
