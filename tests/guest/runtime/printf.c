/* Polled COM1 console and a small printf: %d %i %u %x %p %s %c %% with l/ll
 * and a '#' flag, zero padding and width. */
#include "rt.h"

#define COM1 SSI_PORT_COM1
#define LSR_THRE 0x20

static rt_spinlock g_console_lock;

static void serial_putc(char c) {
  while (!(rt_inb(COM1 + 5) & LSR_THRE)) rt_pause();
  rt_outb(COM1, (uint8_t)c);
}

struct out {
  char* buf;
  unsigned size, len;
};

static void put(struct out* o, char c) {
  if (o->len + 1 < o->size) o->buf[o->len] = c;
  o->len++;
}

static void put_num(struct out* o, uint64_t v, unsigned base, int negative, unsigned width,
                    char pad, int alt) {
  char tmp[24];
  unsigned n = 0;
  do {
    unsigned d = (unsigned)(v % base);
    tmp[n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
    v /= base;
  } while (v);
  unsigned total = n + (negative ? 1 : 0) + (alt ? 2 : 0);
  if (pad == ' ') {
    for (; total < width; ++total) put(o, ' ');
  }
  if (negative) put(o, '-');
  if (alt) {
    put(o, '0');
    put(o, 'x');
  }
  if (pad == '0') {
    for (; total < width; ++total) put(o, '0');
  }
  while (n) put(o, tmp[--n]);
}

int rt_vsnprintf(char* buf, unsigned size, const char* fmt, va_list ap) {
  struct out o = {buf, size, 0};
  for (; *fmt; ++fmt) {
    if (*fmt != '%') {
      put(&o, *fmt);
      continue;
    }
    ++fmt;
    int alt = 0;
    char pad = ' ';
    unsigned width = 0, longs = 0;
    if (*fmt == '#') alt = 1, ++fmt;
    if (*fmt == '0') pad = '0', ++fmt;
    while (*fmt >= '0' && *fmt <= '9') width = width * 10 + (unsigned)(*fmt++ - '0');
    while (*fmt == 'l') ++longs, ++fmt;
    switch (*fmt) {
      case 'd':
      case 'i': {
        int64_t v = longs ? va_arg(ap, int64_t) : va_arg(ap, int);
        put_num(&o, v < 0 ? (uint64_t)(-(v + 1)) + 1 : (uint64_t)v, 10, v < 0, width, pad, 0);
        break;
      }
      case 'u':
      case 'x': {
        uint64_t v = longs ? va_arg(ap, uint64_t) : va_arg(ap, unsigned);
        put_num(&o, v, *fmt == 'u' ? 10 : 16, 0, width, pad, alt && *fmt == 'x');
        break;
      }
      case 'p': put_num(&o, (uint64_t)(uintptr_t)va_arg(ap, void*), 16, 0, width, pad, 1); break;
      case 's': {
        const char* s = va_arg(ap, const char*);
        for (s = s ? s : "(null)"; *s; ++s) put(&o, *s);
        break;
      }
      case 'c': put(&o, (char)va_arg(ap, int)); break;
      case '%': put(&o, '%'); break;
      case '\0': --fmt; break;
      default: put(&o, '%'), put(&o, *fmt); break;
    }
  }
  if (size) buf[o.len < size ? o.len : size - 1] = '\0';
  return (int)o.len;
}

void rt_printf(const char* fmt, ...) {
  char buf[256];
  va_list ap;
  va_start(ap, fmt);
  rt_vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  rt_spin_lock(&g_console_lock);
  for (const char* p = buf; *p; ++p) serial_putc(*p);
  rt_spin_unlock(&g_console_lock);
}
