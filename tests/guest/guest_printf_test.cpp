// The guest runtime's formatter, compiled for the host: rt_vsnprintf must
// agree with the C library's snprintf on every conversion the kernels use.
#include <gtest/gtest.h>

#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <string>

extern "C" {
int rt_vsnprintf(char* buf, unsigned size, const char* fmt, va_list ap);
// printf.c's console path needs these; the formatter test never calls it.
struct rt_spinlock_stub { volatile std::uint32_t locked; };
void rt_spin_lock(rt_spinlock_stub*) {}
void rt_spin_unlock(rt_spinlock_stub*) {}
}

namespace {

std::string guest_format(const char* fmt, ...) {
  char buf[256];
  va_list ap;
  va_start(ap, fmt);
  rt_vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return buf;
}

std::string host_format(const char* fmt, ...) {
  char buf[256];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return buf;
}

#define EXPECT_SAME(...) EXPECT_EQ(guest_format(__VA_ARGS__), host_format(__VA_ARGS__))

TEST(GuestPrintf, MatchesHostSnprintf) {
  EXPECT_SAME("hello from cpu %u of %u (apic %u, node %u)\n", 3u, 4u, 3u, 0u);
  EXPECT_SAME("%d %d %d", 0, -1, -2147483647 - 1);
  EXPECT_SAME("%ld %lu", static_cast<long>(-1234567890123), 18446744073709551615ul);
  EXPECT_SAME("%x %lx %#lx %#x", 0xbeefu, 0xdeadbeefcafeul, 0x100000ul, 0x10u);
  EXPECT_SAME("%08x|%5u|%-s|%c|%%", 0x1234u, 42u, "str", 'z');
  EXPECT_SAME("%s", "");
  EXPECT_SAME("[%-6d|%-8s|%6s|%-#8x|%#08x]", -42, "ab", "cd", 0x1fu, 0x1fu);
  EXPECT_SAME("%3c|%-3c|", 'a', 'b');
}

TEST(GuestPrintf, TruncatesToTheBufferAndReportsFullLength) {
  char buf[8];
  auto call = [&](const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = rt_vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return n;
  };
  EXPECT_EQ(call("%s", "0123456789"), 10);
  EXPECT_STREQ(buf, "0123456");
}

}  // namespace
