/* mbtest: a QEMU-convention test kernel (multiboot v1, 32-bit, no ssi
 * runtime) that checks what a loader and a machine told it against the
 * command line it was given, "cpus=N mem=M [nodes=K] [module=TEXT]":
 *  - multiboot magic, info flags, mem_upper and the mmap top against M MiB;
 *  - the module (--initrd) starts with TEXT;
 *  - fw_cfg (ports 0x510/0x511): signature "QEMU", CPU count N, RAM M MiB;
 *  - ACPI found through the EBDA or the BIOS area: checksums, MADT with N
 *    local APICs, and with nodes=K an SRAT with K proximity domains and a
 *    K x K SLIT.
 * Console: COM1, polling LSR.THRE. Result: isa-debug-exit (0xf4), value 0 on
 * success (process exit (0 << 1) | 1 = 1), else the number of the failed
 * check. Built -m32 without libgcc: no 64-bit division anywhere. */
#include <stdint.h>

#define COM1 0x3f8
#define DEBUG_EXIT 0xf4
#define FW_CFG_SEL 0x510
#define FW_CFG_DATA 0x511

static inline void outb(uint16_t port, uint8_t v) {
  __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}
static inline void outw(uint16_t port, uint16_t v) {
  __asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port));
}
static inline uint8_t inb(uint16_t port) {
  uint8_t v;
  __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}

static void putc_(char c) {
  for (int i = 0; i < 100000 && !(inb(COM1 + 5) & 0x20); ++i) {
  }
  outb(COM1, (uint8_t)c);
}
static void puts_(const char* s) {
  while (*s) putc_(*s++);
}
static void putu(uint32_t v) {
  char buf[11];
  int n = 0;
  do {
    buf[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  while (n) putc_(buf[--n]);
}

static void __attribute__((noreturn)) finish(uint32_t failed_check) {
  puts_(failed_check ? "mbtest: FAIL check " : "mbtest: PASS\n");
  if (failed_check) {
    putu(failed_check);
    putc_('\n');
  }
  outb(DEBUG_EXIT, (uint8_t)failed_check);
  for (;;) __asm__ volatile("cli; hlt");
}

#define CHECK(n, cond)      \
  do {                      \
    if (!(cond)) finish(n); \
  } while (0)

static int starts_with(const char* s, const char* p) {
  while (*p)
    if (*s++ != *p++) return 0;
  return 1;
}

/* Value of "key=" in the command line (a number, or a pointer to text). */
static const char* arg(const char* cmdline, const char* key) {
  for (const char* s = cmdline; s && *s; ++s) {
    if ((s == cmdline || s[-1] == ' ') && starts_with(s, key)) {
      while (*s && *s != '=') ++s;
      return *s ? s + 1 : 0;
    }
  }
  return 0;
}
static uint32_t num(const char* s) {
  uint32_t v = 0;
  while (s && *s >= '0' && *s <= '9') v = v * 10 + (uint32_t)(*s++ - '0');
  return v;
}

static void fw_cfg_read(uint16_t key, void* out, uint32_t len) {
  outw(FW_CFG_SEL, key);
  for (uint32_t i = 0; i < len; ++i) ((uint8_t*)out)[i] = inb(FW_CFG_DATA);
}

static uint8_t sum(const uint8_t* p, uint32_t len) {
  uint8_t s = 0;
  for (uint32_t i = 0; i < len; ++i) s = (uint8_t)(s + p[i]);
  return s;
}

/* A pointer to a fixed physical address that GCC does not treat as a null
 * or out-of-bounds object (-Warray-bounds on constant addresses). */
static const void* phys(uint32_t addr) {
  const void* p;
  __asm__("" : "=r"(p) : "0"(addr));
  return p;
}

static const uint8_t* find_rsdp(void) {
  uint32_t ebda = (uint32_t)(*(const uint16_t*)phys(0x40E)) << 4;
  uint32_t ranges[2][2] = {{ebda, ebda + 1024}, {0xE0000, 0x100000}};
  for (int r = 0; r < 2; ++r) {
    if (ranges[r][0] == 0) continue;
    for (uint32_t a = ranges[r][0]; a + 36 <= ranges[r][1]; a += 16) {
      const uint8_t* p = (const uint8_t*)a;
      if (starts_with((const char*)p, "RSD PTR ") && sum(p, 20) == 0) return p;
    }
  }
  return 0;
}

static uint32_t u32_at(const uint8_t* p) { return *(const uint32_t*)p; }

static void check_acpi(uint32_t cpus, uint32_t nodes) {
  const uint8_t* rsdp = find_rsdp();
  CHECK(40, rsdp != 0);
  /* ACPI 2.0+: the XSDT (64-bit pointers; all tables are below 4 GiB here). */
  const uint8_t* root = (const uint8_t*)(rsdp[15] >= 2 ? u32_at(rsdp + 24) : u32_at(rsdp + 16));
  const uint32_t entry = rsdp[15] >= 2 ? 8 : 4;
  CHECK(41, root && sum(root, u32_at(root + 4)) == 0);
  uint32_t lapics = 0, srat_cpus = 0, slit_n = 0;
  uint32_t domains = 0; /* bitmask of proximity domains with memory (< 32) */
  for (uint32_t off = 36; off + entry <= u32_at(root + 4); off += entry) {
    const uint8_t* t = (const uint8_t*)u32_at(root + off);
    CHECK(42, sum(t, u32_at(t + 4)) == 0);
    const uint32_t len = u32_at(t + 4);
    if (starts_with((const char*)t, "APIC")) {
      for (uint32_t o = 44; o + 2 <= len && t[o + 1]; o += t[o + 1])
        lapics += t[o] == 0 && (t[o + 4] & 1);
    } else if (starts_with((const char*)t, "SRAT")) {
      for (uint32_t o = 48; o + 2 <= len && t[o + 1]; o += t[o + 1]) {
        if (t[o] == 0 && (t[o + 4] & 1)) ++srat_cpus;
        if (t[o] == 1 && (t[o + 28] & 1) && u32_at(t + o + 2) < 32)
          domains |= 1u << u32_at(t + o + 2);
      }
    } else if (starts_with((const char*)t, "SLIT")) {
      slit_n = u32_at(t + 36);
      for (uint32_t i = 0; i < slit_n && i < 16; ++i) {
        for (uint32_t j = 0; j < slit_n && j < 16; ++j) {
          uint8_t d = t[44 + i * slit_n + j];
          CHECK(43, i == j ? d == 10 : (d > 10 && d < 255));
        }
      }
    }
  }
  uint32_t ndomains = 0;
  for (uint32_t b = domains; b; b &= b - 1) ++ndomains;
  puts_("acpi: lapics=");
  putu(lapics);
  puts_(" srat_cpus=");
  putu(srat_cpus);
  puts_(" memory_domains=");
  putu(ndomains);
  puts_(" slit=");
  putu(slit_n);
  putc_('\n');
  CHECK(44, lapics == cpus);
  if (nodes) {
    CHECK(45, srat_cpus == cpus);
    CHECK(46, ndomains == nodes);
    CHECK(47, slit_n == nodes);
  }
}

struct mb_info {
  uint32_t flags, mem_lower, mem_upper, boot_device, cmdline, mods_count, mods_addr;
  uint32_t syms[4];
  uint32_t mmap_length, mmap_addr;
};

void mb_main(uint32_t magic, const struct mb_info* info) {
  puts_("mbtest: multiboot entry\n");
  CHECK(1, magic == 0x2BADB002);
  CHECK(2, (info->flags & 0x45) == 0x45); /* mem, cmdline, mmap */
  const char* cmdline = (const char*)info->cmdline;
  puts_("cmdline: ");
  puts_(cmdline);
  putc_('\n');
  const uint32_t cpus = num(arg(cmdline, "cpus")), mem_mib = num(arg(cmdline, "mem"));
  const uint32_t nodes = num(arg(cmdline, "nodes"));
  CHECK(3, cpus > 0 && mem_mib > 0);

  puts_("mem_lower=");
  putu(info->mem_lower);
  puts_(" mem_upper=");
  putu(info->mem_upper);
  putc_('\n');
  CHECK(4, info->mem_lower > 0 && info->mem_lower <= 640);
  /* RAM from 1 MiB up to the end (below the PCI hole for these sizes),
   * rounded up to a MiB: firmware may keep a few top pages for itself. */
  CHECK(5, (info->mem_upper + 1023) / 1024 + 1 == mem_mib);
  /* Highest RAM byte, rounded up to a MiB (firmware may reserve a few top pages). */
  uint32_t top_mib = 0, entries = 0;
  for (uint32_t off = 0; off < info->mmap_length; ++entries) {
    const uint8_t* e = (const uint8_t*)(info->mmap_addr + off);
    const uint64_t end = *(const uint64_t*)(e + 4) + *(const uint64_t*)(e + 12);
    const uint32_t end_mib = (uint32_t)((end + (1u << 20) - 1) >> 20);
    if (u32_at(e + 20) == 1 && end_mib > top_mib) top_mib = end_mib;
    off += u32_at(e) + 4;
  }
  puts_("mmap: entries=");
  putu(entries);
  puts_(" ram_top_mib=");
  putu(top_mib);
  putc_('\n');
  CHECK(6, top_mib == mem_mib);

  const char* want_module = arg(cmdline, "module");
  if (want_module) {
    CHECK(10, (info->flags & 0x8) && info->mods_count == 1);
    const uint32_t* mod = (const uint32_t*)info->mods_addr;
    puts_("module: bytes=");
    putu(mod[1] - mod[0]);
    puts_(" string=");
    puts_(mod[2] ? (const char*)mod[2] : "(none)");
    putc_('\n');
    CHECK(11, (mod[0] & 0xFFF) == 0); /* page aligned: header flag 0 */
    const char* m = (const char*)mod[0];
    for (const char* w = want_module; *w && *w != ' '; ++w, ++m) CHECK(12, *m == *w);
  }

  char sig[5] = {0};
  uint16_t fw_cpus = 0;
  uint64_t fw_ram = 0;
  fw_cfg_read(0x00, sig, 4);
  fw_cfg_read(0x05, &fw_cpus, 2);
  fw_cfg_read(0x03, &fw_ram, 8);
  puts_("fw_cfg: signature=");
  puts_(sig);
  puts_(" cpus=");
  putu(fw_cpus);
  puts_(" ram_mib=");
  putu((uint32_t)(fw_ram >> 20));
  putc_('\n');
  CHECK(20, starts_with(sig, "QEMU"));
  CHECK(21, fw_cpus == cpus);
  CHECK(22, (fw_ram >> 20) == mem_mib);

  check_acpi(cpus, nodes);
  finish(0);
}
