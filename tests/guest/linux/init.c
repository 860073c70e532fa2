/* A tiny static /init for Linux guest tests: prints what the kernel built
 * from ssi's ACPI tables (online CPUs, NUMA nodes and their SLIT distances,
 * as sysfs shows them) and ends the run through isa-debug-exit (port 0xf4,
 * value 0 -> exit status 1), so the test sees that userspace ran.
 * It makes ordinary system calls: fine under QEMU/TCG and on VMX hardware;
 * on kvm_pvm hosts ring-3 system calls do not work: `syscall` stays at CPL3
 * and the kernel faults in entry_SYSCALL_64 (docs/vcpu.md). */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/io.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

/* Lines go to the tty and to the kernel log (/dev/kmsg): the kernel console
 * polls the UART, while tty output needs COM1's interrupt, routed only
 * because ssi's DSDT describes COM1 (a hardware-reduced machine has no
 * legacy ISA IRQs). The test checks both paths. */
static int kmsg = -1;

static void say(const char* line) {
  printf("%s", line);
  if (kmsg >= 0) (void)!write(kmsg, line, strlen(line));
}

static void show(const char* label, const char* path) {
  char buf[256] = {0};
  int fd = open(path, O_RDONLY);
  ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
  if (fd >= 0) close(fd);
  if (n > 0 && buf[n - 1] == '\n') buf[n - 1] = 0;
  char line[320];
  snprintf(line, sizeof(line), "ssi-init: %s %s\n", label, n > 0 ? buf : "(unreadable)");
  say(line);
}

int main(void) {
  kmsg = open("/dev/kmsg", O_WRONLY);
  mkdir("/sys", 0555);
  if (mount("sysfs", "/sys", "sysfs", 0, NULL) != 0) perror("ssi-init: mount /sys");
  show("cpus-online", "/sys/devices/system/cpu/online");
  show("nodes-online", "/sys/devices/system/node/online");
  char path[64];
  for (int node = 0; node < 8; ++node) {
    snprintf(path, sizeof(path), "/sys/devices/system/node/node%d/distance", node);
    if (access(path, R_OK) != 0) break;
    char label[32];
    snprintf(label, sizeof(label), "node%d-distance", node);
    show(label, path);
  }
  /* A 200 ms sleep needs the kernel's timer interrupts (the LAPIC's
   * TSC-deadline timer under ssi): without them it never returns, with
   * late ones it takes seconds. */
  struct timespec a, b, nap = {0, 200 * 1000 * 1000};
  clock_gettime(CLOCK_MONOTONIC, &a);
  nanosleep(&nap, NULL);
  clock_gettime(CLOCK_MONOTONIC, &b);
  char line[64];
  snprintf(line, sizeof(line), "ssi-init: slept 200 ms in %ld ms\n",
           (long)((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000));
  say(line);
  /* Only through the tty: shows COM1's interrupt works (ssi's DSDT routes it). */
  printf("ssi-init-tty: hello from /dev/console\n");
  say("ssi-init: done\n");
  fflush(stdout);
  tcdrain(STDOUT_FILENO); /* the UART sends asynchronously: let it finish before QEMU exits */
  if (ioperm(0xf4, 4, 1) == 0) outb(0, 0xf4);
  perror("ssi-init: isa-debug-exit");
  return 1;
}
