// A minimal fanotify pre-content listener, the in-run floor of the fanotify path for
// scripts/bench/host-read.sh: one thread, blocking calls, no decompression, no verification.
// It marks each sparse cache file with FAN_PRE_ACCESS, says "ready" on stdout (the caller
// mounts only then: a mark placed after the mount is never consulted), and answers every event
// by copying the requested range, widened to whole 4 KiB blocks and clipped to the file size,
// from the matching flat (unpacked) blob into the cache file through the event's fd, then
// FAN_ALLOW. Writing through the event's fd raises no event; any other fd opened after the
// mark would deadlock on its own write. Facts: /work/shared/design/kernel.md section 3.
//
//   hostread-clistener <flat blob>=<sparse cache file>...     runs until SIGTERM/SIGINT
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

// Defined here because Debian bookworm's headers (6.1) predate pre-content events.
#define FAN_CLASS_PRE_CONTENT 0x8
#define FAN_CLOEXEC 0x1
#define FAN_UNLIMITED_QUEUE 0x10
#define FAN_MARK_ADD 0x1
#define FAN_PRE_ACCESS 0x00100000ULL
#define FAN_EVENT_INFO_TYPE_RANGE 6
#define FAN_ALLOW 0x1
#define BLOCK 4096

struct meta { uint32_t event_len; uint8_t vers, reserved; uint16_t metadata_len; uint64_t mask; int32_t fd, pid; } __attribute__((packed));
struct info_hdr { uint8_t info_type, pad; uint16_t len; };
struct info_range { struct info_hdr hdr; uint32_t pad; uint64_t offset, count; };
struct response { int32_t fd; uint32_t response; };
struct object { dev_t dev; ino_t ino; int src_fd; off_t size; };

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }
static void die(const char *what) { perror(what); exit(1); }

int main(int argc, char **argv) {
  if (argc < 2) { fprintf(stderr, "usage: hostread-clistener <flat blob>=<cache file>...\n"); return 2; }
  int nobj = argc - 1;
  struct object *objs = calloc((size_t)nobj, sizeof *objs);
  int group = (int)syscall(SYS_fanotify_init, FAN_CLASS_PRE_CONTENT | FAN_CLOEXEC | FAN_UNLIMITED_QUEUE, O_RDWR | O_LARGEFILE);
  if (group < 0) die("fanotify_init");
  for (int i = 0; i < nobj; i++) {
    char *eq = strchr(argv[i + 1], '=');
    if (!eq) { fprintf(stderr, "hostread-clistener: %s is not blob=cache\n", argv[i + 1]); return 2; }
    *eq = 0;
    const char *src = argv[i + 1], *cache = eq + 1;
    objs[i].src_fd = open(src, O_RDONLY | O_CLOEXEC);
    if (objs[i].src_fd < 0) die(src);
    struct stat st;
    if (stat(cache, &st) < 0) die(cache);
    objs[i].dev = st.st_dev;
    objs[i].ino = st.st_ino;
    objs[i].size = st.st_size;
    if (syscall(SYS_fanotify_mark, group, FAN_MARK_ADD, FAN_PRE_ACCESS, AT_FDCWD, cache) < 0) die("fanotify_mark");
  }
  struct sigaction sa = { .sa_handler = on_signal };
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  printf("ready\n");
  fflush(stdout);

  size_t bufsize = 8 << 20;
  uint8_t *data;
  if (posix_memalign((void **)&data, BLOCK, bufsize)) die("posix_memalign");
  static uint8_t events[64 << 10] __attribute__((aligned(8)));
  unsigned long served = 0, copied = 0;
  while (!stop) {
    struct pollfd pfd = { .fd = group, .events = POLLIN };
    int pr = poll(&pfd, 1, 500);
    if (pr < 0) { if (errno == EINTR) continue; die("poll"); }
    if (pr == 0) continue;
    ssize_t n = read(group, events, sizeof events);
    if (n < 0) { if (errno == EINTR || errno == EAGAIN) continue; die("read fanotify"); }
    for (uint8_t *p = events; p + sizeof(struct meta) <= events + n;) {
      struct meta m;
      memcpy(&m, p, sizeof m);
      if (m.event_len < sizeof m || p + m.event_len > events + n) break;
      const struct info_range *range = NULL;
      for (uint8_t *q = p + m.metadata_len; q + sizeof(struct info_hdr) <= p + m.event_len;) {
        struct info_hdr h;
        memcpy(&h, q, sizeof h);
        if (h.len == 0) break;
        if (h.info_type == FAN_EVENT_INFO_TYPE_RANGE && h.len >= sizeof(struct info_range)) range = (const struct info_range *)q;
        q += h.len;
      }
      if (m.fd >= 0 && range && (m.mask & FAN_PRE_ACCESS)) {
        struct stat st;
        struct object *o = NULL;
        if (fstat(m.fd, &st) == 0) {
          for (int i = 0; i < nobj && !o; i++) if (objs[i].dev == st.st_dev && objs[i].ino == st.st_ino) o = &objs[i];
        }
        uint64_t off, count;
        memcpy(&off, &range->offset, 8);
        memcpy(&count, &range->count, 8);
        if (o) {
          uint64_t start = off & ~(uint64_t)(BLOCK - 1);
          uint64_t end = (off + count + BLOCK - 1) & ~(uint64_t)(BLOCK - 1);
          if (end > (uint64_t)o->size) end = (uint64_t)o->size;
          for (uint64_t at = start; at < end;) {
            size_t step = end - at > bufsize ? bufsize : (size_t)(end - at);
            ssize_t got = pread(o->src_fd, data, step, (off_t)at);
            if (got <= 0) { perror("pread"); break; }
            if (pwrite(m.fd, data, (size_t)got, (off_t)at) != got) { perror("pwrite"); break; }
            copied += (unsigned long)got;
            at += (uint64_t)got;
          }
        }
      }
      if (m.fd >= 0) {
        struct response r = { m.fd, FAN_ALLOW };
        if (write(group, &r, sizeof r) != (ssize_t)sizeof r) perror("fanotify response");
        close(m.fd);
        served++;
      }
      p += m.event_len;
    }
  }
  fprintf(stderr, "hostread-clistener: %lu events answered, %lu bytes copied\n", served, copied);
  return 0;
}
