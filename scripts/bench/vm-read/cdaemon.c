// A minimal cachefiles on-demand daemon, the in-run baseline of scripts/bench/vm-read.sh: one
// thread, blocking calls, no decompression and no verification. It serves flat files (the
// bootstrap, the unpacked blob) by cookie key, so its numbers are the floor of the kernel
// path in this VM: READ message -> pread -> O_DIRECT pwrite into the cache file -> READ_COMPLETE.
// Protocol facts: /work/shared/design/kernel.md section 1.
//
//   vmread-cdaemon <cache dir> <cookie key>=<file>...      runs until SIGTERM/SIGINT
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#define OP_OPEN 0
#define OP_CLOSE 1
#define OP_READ 2
#define IOC_READ_COMPLETE 0x40049801
#define BLOCK 4096

struct object { int anon_fd; int src_fd; off_t size; };

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

static void die(const char *what) { perror(what); exit(1); }

__attribute__((format(printf, 2, 3)))
static void command(int dev, const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (write(dev, buf, (size_t)n) != n) {
    fprintf(stderr, "vmread-cdaemon: command '%s': %s\n", buf, strerror(errno));
    if (strncmp(buf, "copen", 5) != 0) exit(1);
  }
}

static uint32_t u32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t u64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

int main(int argc, char **argv) {
  if (argc < 3) { fprintf(stderr, "usage: vmread-cdaemon <cache dir> <cookie>=<file>...\n"); return 2; }
  int nkeys = argc - 2;
  char **keys = calloc((size_t)nkeys, sizeof *keys);
  char **files = calloc((size_t)nkeys, sizeof *files);
  for (int i = 0; i < nkeys; i++) {
    char *eq = strchr(argv[i + 2], '=');
    if (!eq) { fprintf(stderr, "vmread-cdaemon: %s is not cookie=file\n", argv[i + 2]); return 2; }
    *eq = 0;
    keys[i] = argv[i + 2];
    files[i] = eq + 1;
  }
  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);

  int dev = open("/dev/cachefiles", O_RDWR | O_CLOEXEC);
  if (dev < 0) die("open /dev/cachefiles");
  command(dev, "dir %s", argv[1]);
  command(dev, "tag vmread-c");
  command(dev, "bind ondemand");

  size_t cap = 0, bufsize = 4 << 20;
  struct object *objs = NULL;
  uint8_t *data;
  if (posix_memalign((void **)&data, BLOCK, bufsize)) die("posix_memalign");
  uint8_t msg[65536];
  unsigned long reads = 0;
  fprintf(stderr, "vmread-cdaemon: bound %s\n", argv[1]);

  while (!stop) {
    struct pollfd pfd = { .fd = dev, .events = POLLIN };
    int pr = poll(&pfd, 1, 500);
    if (pr < 0) { if (errno == EINTR) continue; die("poll"); }
    if (pr == 0) continue;
    for (;;) {
      ssize_t n = read(dev, msg, sizeof msg);
      if (n < 0) { if (errno == EINTR || errno == EAGAIN) break; die("read /dev/cachefiles"); }
      if (n == 0) break;
      if (n < 16) { fprintf(stderr, "vmread-cdaemon: short message\n"); continue; }
      uint32_t id = u32(msg), op = u32(msg + 4), obj = u32(msg + 12);
      if (obj >= cap) {
        size_t ncap = cap ? cap : 64;
        while (ncap <= obj) ncap *= 2;
        objs = realloc(objs, ncap * sizeof *objs);
        for (size_t i = cap; i < ncap; i++) objs[i] = (struct object){ -1, -1, 0 };
        cap = ncap;
      }
      if (op == OP_OPEN) {
        uint32_t vsize = u32(msg + 16), csize = u32(msg + 20);
        int anon = (int)u32(msg + 24);
        char cookie[256] = {0};
        size_t cl = csize < sizeof cookie - 1 ? csize : sizeof cookie - 1;
        memcpy(cookie, msg + 32 + vsize, cl);
        int src = -1;
        for (int i = 0; i < nkeys && src < 0; i++) {
          if (strcmp(keys[i], cookie) == 0) src = open(files[i], O_RDONLY | O_CLOEXEC);
        }
        struct stat st;
        if (src < 0 || fstat(src, &st) < 0) {
          fprintf(stderr, "vmread-cdaemon: unknown cookie %s\n", cookie);
          command(dev, "copen %u,-2", id);
          close(anon);
          if (src >= 0) close(src);
          continue;
        }
        if (objs[obj].anon_fd >= 0) { close(objs[obj].anon_fd); close(objs[obj].src_fd); }
        objs[obj] = (struct object){ anon, src, st.st_size };
        command(dev, "copen %u,%lld", id, (long long)st.st_size);
      } else if (op == OP_CLOSE) {
        if (objs[obj].anon_fd >= 0) { close(objs[obj].anon_fd); close(objs[obj].src_fd); }
        objs[obj] = (struct object){ -1, -1, 0 };
      } else if (op == OP_READ && n >= 32) {
        struct object *o = &objs[obj];
        if (o->anon_fd < 0) continue;
        uint64_t off = u64(msg + 16), len = u64(msg + 24);
        uint64_t end = off + len;
        for (uint64_t at = off; at < end;) {
          size_t step = end - at > bufsize ? bufsize : (size_t)(end - at);
          ssize_t got = pread(o->src_fd, data, step, (off_t)at);
          if (got < 0) { perror("pread"); break; }
          size_t padded = ((size_t)got + BLOCK - 1) / BLOCK * BLOCK;
          if (padded == 0) break;
          memset(data + got, 0, padded - (size_t)got);
          if (pwrite(o->anon_fd, data, padded, (off_t)at) != (ssize_t)padded) { perror("pwrite"); break; }
          if ((size_t)got < step) break;
          at += step;
        }
        if (ioctl(o->anon_fd, IOC_READ_COMPLETE, (unsigned long)id) < 0) perror("ioctl READ_COMPLETE");
        reads++;
      }
    }
  }
  fprintf(stderr, "vmread-cdaemon: %lu READs served\n", reads);
  return 0;
}
