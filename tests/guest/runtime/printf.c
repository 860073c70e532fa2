/* Polled COM1 console and a small printf: %d %i %u %x %p %s %c %% with l/ll,
 * the '#', '0' and '-' flags and a width. */
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

/* Writes `len` bytes of `s` padded to `width` (left-justified with `left`,
 * zeros after the sign / 0x prefix `prefix_len` chars when pad is '0'). */
static void emit(struct out* o, const char* s, unsigned len, unsigned prefix_len, unsigned width,
                 char pad, int left) {
  unsigned fill = width > len ? width - len : 0;
  if (!left && pad == ' ') {
    for (unsigned i = 0; i < fill; ++i) put(o, ' ');
  }
  for (unsigned i = 0; i < prefix_len; ++i) put(o, s[i]);
  if (!left && pad == '0') {
    for (unsigned i = 0; i < fill; ++i) put(o, '0');
  }
  for (unsigned i = prefix_len; i < len; ++i) put(o, s[i]);
  if (left) {
    for (unsigned i = 0; i < fill; ++i) put(o, ' ');
  }
}

static void put_num(struct out* o, uint64_t v, unsigned base, int negative, unsigned width,
                    char pad, int left, int alt) {
  char digits[24], text[28];
  unsigned n = 0, len = 0;
  do {
    unsigned d = (unsigned)(v % base);
    digits[n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
    v /= base;
  } while (v);
  if (negative) text[len++] = '-';
  if (alt) text[len++] = '0', text[len++] = 'x';
  unsigned prefix = len;
  while (n) text[len++] = digits[--n];
  emit(o, text, len, prefix, width, pad, left);
}

int rt_vsnprintf(char* buf, unsigned size, const char* fmt, va_list ap) {
  struct out o = {buf, size, 0};
  for (; *fmt; ++fmt) {
    if (*fmt != '%') {
      put(&o, *fmt);
      continue;
    }
    ++fmt;
    int alt = 0, left = 0;
    char pad = ' ';
    unsigned width = 0, longs = 0;
    for (;; ++fmt) {
      if (*fmt == '#') {
        alt = 1;
      } else if (*fmt == '0') {
        pad = '0';
      } else if (*fmt == '-') {
        left = 1;
      } else {
        break;
      }
    }
    while (*fmt >= '0' && *fmt <= '9') width = width * 10 + (unsigned)(*fmt++ - '0');
    while (*fmt == 'l') ++longs, ++fmt;
    switch (*fmt) {
      case 'd':
      case 'i': {
        int64_t v = longs ? va_arg(ap, int64_t) : va_arg(ap, int);
        put_num(&o, v < 0 ? (uint64_t)(-(v + 1)) + 1 : (uint64_t)v, 10, v < 0, width, pad, left,
                0);
        break;
      }
      case 'u':
      case 'x': {
        uint64_t v = longs ? va_arg(ap, uint64_t) : va_arg(ap, unsigned);
        put_num(&o, v, *fmt == 'u' ? 10 : 16, 0, width, pad, left, alt && *fmt == 'x');
        break;
      }
      case 'p':
        put_num(&o, (uint64_t)(uintptr_t)va_arg(ap, void*), 16, 0, width, pad, left, 1);
        break;
      case 's': {
        const char* s = va_arg(ap, const char*);
        if (!s) s = "(null)";
        unsigned len = 0;
        while (s[len]) ++len;
        emit(&o, s, len, 0, width, ' ', left);
        break;
      }
      case 'c': {
        char c = (char)va_arg(ap, int);
        emit(&o, &c, 1, 0, width, ' ', left);
        break;
      }
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
