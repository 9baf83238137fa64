/* The C library functions libaom refers to beyond those imaging/src/c_runtime.rs supplies
 * (allocation and qsort), for the edge Worker, where no C library exists. libaom's encoder
 * reaches the file functions only to write debugging dumps and first-pass statistics, which a
 * one-frame, one-pass encode never does: they fail as a C library without files would. Its
 * formatted strings are error messages: they are kept unformatted. */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int strcmp(const char *a, const char *b) {
  while (*a && *a == *b) a++, b++;
  return (unsigned char)*a - (unsigned char)*b;
}

int strncmp(const char *a, const char *b, size_t n) {
  for (; n > 0; n--, a++, b++) {
    if (*a != *b || !*a) return (unsigned char)*a - (unsigned char)*b;
  }
  return 0;
}

static unsigned long parse_unsigned(const char *text, char **end, int base, int *negative) {
  const char *p = text;
  while (*p == ' ' || (*p >= '\t' && *p <= '\r')) p++;
  *negative = *p == '-';
  if (*p == '-' || *p == '+') p++;
  if ((base == 0 || base == 16) && p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
    p += 2;
    base = 16;
  } else if (base == 0) {
    base = *p == '0' ? 8 : 10;
  }
  unsigned long value = 0;
  const char *digits = p;
  for (;; p++) {
    int digit = *p >= '0' && *p <= '9'   ? *p - '0'
                : *p >= 'a' && *p <= 'z' ? *p - 'a' + 10
                : *p >= 'A' && *p <= 'Z' ? *p - 'A' + 10
                                         : 99;
    if (digit >= base) break;
    value = value * base + digit;
  }
  if (end) *end = (char *)(p == digits ? text : p);
  return value;
}

long strtol(const char *text, char **end, int base) {
  int negative;
  unsigned long value = parse_unsigned(text, end, base, &negative);
  return negative ? -(long)value : (long)value;
}

unsigned long strtoul(const char *text, char **end, int base) {
  int negative;
  unsigned long value = parse_unsigned(text, end, base, &negative);
  return negative ? -value : value;
}

int vsnprintf(char *out, size_t size, const char *format, va_list args) {
  (void)args;
  size_t length = strlen(format);
  if (size > 0) {
    size_t kept = length < size - 1 ? length : size - 1;
    memcpy(out, format, kept);
    out[kept] = '\0';
  }
  return (int)length;
}

int snprintf(char *out, size_t size, const char *format, ...) {
  va_list args;
  va_start(args, format);
  int length = vsnprintf(out, size, format, args);
  va_end(args);
  return length;
}

/* No streams: writing to them fails like writing to a closed file. */
FILE *const stdout = NULL;
FILE *const stderr = NULL;

FILE *fopen(const char *path, const char *mode) {
  (void)path;
  (void)mode;
  return NULL;
}
int fclose(FILE *file) { (void)file; return EOF; }
size_t fread(void *out, size_t size, size_t count, FILE *file) {
  (void)out, (void)size, (void)count, (void)file;
  return 0;
}
size_t fwrite(const void *data, size_t size, size_t count, FILE *file) {
  (void)data, (void)size, (void)count, (void)file;
  return 0;
}
int fseek(FILE *file, long offset, int whence) {
  (void)file, (void)offset, (void)whence;
  return -1;
}
int feof(FILE *file) { (void)file; return 1; }
int fputc(int c, FILE *file) { (void)c, (void)file; return EOF; }
int fprintf(FILE *file, const char *format, ...) { (void)file, (void)format; return -1; }
int fscanf(FILE *file, const char *format, ...) { (void)file, (void)format; return EOF; }

static unsigned long rand_state = 1;
int rand(void) {
  rand_state = rand_state * 1103515245 + 12345;
  return (int)((rand_state >> 16) & 0x7fff);
}

long lrint(double x) { return (long)__builtin_rint(x); }
