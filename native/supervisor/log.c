// One JSON object per line, written with a single write(2) so lines from the supervisor and
// the worker (sharing stderr) never interleave mid-line.
#define _GNU_SOURCE
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

const char *log_json_string(char *out, unsigned long size, const char *s) {
  unsigned long n = 0;
  if (size < 3) {
    if (size > 0) out[0] = '\0';
    return out;
  }
  out[n++] = '"';
  for (; *s != '\0' && n + 8 < size; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') {
      out[n++] = '\\';
      out[n++] = (char)c;
    } else if (c < 0x20) {
      n += (unsigned long)snprintf(out + n, size - n, "\\u%04x", c);
    } else {
      out[n++] = (char)c;
    }
  }
  out[n++] = '"';
  out[n] = '\0';
  return out;
}

void log_line(int level, const char *msg, const char *fields, ...) {
  char line[2048];
  char quoted[512];
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  long long ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
  int n = snprintf(line, sizeof(line),
                   "{\"level\":%d,\"time\":%lld,\"pid\":%d,\"name\":\"supervisor\",\"msg\":%s",
                   level, ms, (int)getpid(), log_json_string(quoted, sizeof(quoted), msg));
  if (n < 0 || (size_t)n >= sizeof(line) - 3) n = (int)sizeof(line) - 3;
  if (fields != NULL && fields[0] != '\0') {
    line[n++] = ',';
    va_list ap;
    va_start(ap, fields);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 2, fields, ap);
    va_end(ap);
    if (m < 0) m = 0;
    n += m;
    if ((size_t)n > sizeof(line) - 3) n = (int)sizeof(line) - 3;
  }
  line[n++] = '}';
  line[n++] = '\n';
  ssize_t ignored = write(STDERR_FILENO, line, (size_t)n);
  (void)ignored;
}
