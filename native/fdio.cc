// Plain fd I/O Node lacks or does differently: SEEK_DATA/SEEK_HOLE, single read/write calls
// on device fds (one command or message per call), a whole-buffer positional write on
// the thread pool that keeps the caller's (aligned) memory as is, and openat2(2) (glibc has
// no wrapper), which opens a name strictly beneath a directory fd.
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <string>

#include "errors.h"

namespace ondine {
namespace {

Napi::Value Seek(const Napi::CallbackInfo& info, int whence, const char* name) {
  Napi::Env env = info.Env();
  int fd = FdArg(info, 0);
  int64_t offset = IntArg(info, 1, 0, INT64_MAX, "offset");
  off_t r = lseek(fd, static_cast<off_t>(offset), whence);
  if (r < 0) {
    // ENXIO: no data (or no hole) at or after offset; a normal answer, not a failure.
    if (errno == ENXIO) return Napi::Number::New(env, -1);
    ThrowErrno(env, errno, name);
  }
  return Napi::Number::New(env, static_cast<double>(r));
}

Napi::Value SeekData(const Napi::CallbackInfo& info) { return Seek(info, SEEK_DATA, "lseek"); }
Napi::Value SeekHole(const Napi::CallbackInfo& info) { return Seek(info, SEEK_HOLE, "lseek"); }

Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  // No retry on EINTR: on Linux the fd is gone whatever close() returned.
  if (close(FdArg(info, 0)) != 0 && errno != EINTR) ThrowErrno(env, errno, "close");
  return env.Undefined();
}

// Sets or clears FD_CLOEXEC: fds inherited at exec (the supervisor's link and group) must not
// leak further into the worker's own children, where they would keep the group alive.
Napi::Value SetCloexec(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info, 0);
  bool on = info[1].ToBoolean().Value();
  int flags = fcntl(fd, F_GETFD);
  if (flags < 0) ThrowErrno(env, errno, "fcntl");
  flags = on ? (flags | FD_CLOEXEC) : (flags & ~FD_CLOEXEC);
  if (fcntl(fd, F_SETFD, flags) != 0) ThrowErrno(env, errno, "fcntl");
  return env.Undefined();
}

Napi::Value DevRead(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info, 0);
  Napi::Uint8Array buf = BytesArg(info, 1, "buf");
  ssize_t n;
  do {
    n = read(fd, buf.Data(), buf.ByteLength());
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return Napi::Number::New(env, 0);
    ThrowErrno(env, errno, "read");
  }
  return Napi::Number::New(env, static_cast<double>(n));
}

// One write(2); a device consumes a command or a response whole or not at all.
ssize_t WriteOnce(int fd, const void* data, size_t len) {
  ssize_t n;
  do {
    n = write(fd, data, len);
  } while (n < 0 && errno == EINTR);
  return n;
}

Napi::Value DevWrite(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info, 0);
  std::string command = StringArg(info, 1, "command");
  ssize_t n = WriteOnce(fd, command.data(), command.size());
  // The command is in the message: "copen 7,-2" failing says more than "write" alone.
  if (n < 0) {
    int err = errno;
    throw ErrnoError(env, err, "write", std::string(), Describe(err) + " (command '" + command + "')");
  }
  if (static_cast<size_t>(n) != command.size()) {
    throw ErrnoError(env, EIO, "write", std::string(),
                     "short write of command '" + command + "' (" + std::to_string(n) + " of " +
                         std::to_string(command.size()) + " bytes)");
  }
  return env.Undefined();
}

Napi::Value WriteBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info, 0);
  Napi::Uint8Array buf = BytesArg(info, 1, "buf");
  ssize_t n = WriteOnce(fd, buf.Data(), buf.ByteLength());
  if (n < 0) ThrowErrno(env, errno, "write");
  return Napi::Number::New(env, static_cast<double>(n));
}

class PwriteWorker : public PromiseWorker {
 public:
  PwriteWorker(Napi::Env env, int fd, Napi::Uint8Array buf, int64_t offset)
      : PromiseWorker(env, "ondine.pwrite"), fd_(fd), data_(buf.Data()),
        len_(buf.ByteLength()), offset_(offset) {
    Keep(buf);
  }

 protected:
  void Execute() override {
    while (done_ < len_) {
      ssize_t n = pwrite(fd_, data_ + done_, len_ - done_, static_cast<off_t>(offset_ + done_));
      if (n < 0) {
        if (errno == EINTR) continue;
        Fail(errno, "pwrite");
        return;
      }
      if (n == 0) {  // no progress and no errno: report rather than spin
        Fail(EIO, "pwrite", "wrote 0 bytes at offset " + std::to_string(offset_ + done_));
        return;
      }
      done_ += static_cast<size_t>(n);
    }
  }
  Napi::Value Result(Napi::Env env) override {
    return Napi::Number::New(env, static_cast<double>(done_));
  }

 private:
  int fd_;
  const uint8_t* data_;
  size_t len_;
  int64_t offset_;
  size_t done_ = 0;
};

Napi::Value PwriteAsync(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0);
  Napi::Uint8Array buf = BytesArg(info, 1, "buf");
  int64_t offset = IntArg(info, 2, 0, INT64_MAX, "offset");
  return (new PwriteWorker(info.Env(), fd, buf, offset))->Start();
}

}  // namespace

// openat2(dirfd, path, {flags, mode, resolve}): the resolve flags are the caller's policy.
Napi::Value Openat2(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  // dirfd may be AT_FDCWD (-100), so it is not an FdArg.
  int dirfd = static_cast<int>(IntArg(info, 0, INT32_MIN, INT32_MAX, "dirfd"));
  std::string path = PathArg(info, 1, "path");
  struct open_how how = {};
  how.flags = static_cast<uint64_t>(IntArg(info, 2, 0, UINT32_MAX, "flags"));
  how.mode = static_cast<uint64_t>(IntArg(info, 3, 0, 07777, "mode"));
  how.resolve = static_cast<uint64_t>(IntArg(info, 4, 0, UINT32_MAX, "resolve"));
  long fd;
  do {
    fd = syscall(SYS_openat2, dirfd, path.c_str(), &how, sizeof(how));
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) ThrowErrno(env, errno, "openat2", path);
  return Napi::Number::New(env, static_cast<double>(fd));
}

void InitFdio(Napi::Env env, Napi::Object exports) {
  exports.Set("openat2", Napi::Function::New(env, Openat2, "openat2"));
  exports.Set("seekData", Napi::Function::New(env, SeekData, "seekData"));
  exports.Set("seekHole", Napi::Function::New(env, SeekHole, "seekHole"));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd, "closeFd"));
  exports.Set("setCloexec", Napi::Function::New(env, SetCloexec, "setCloexec"));
  exports.Set("devRead", Napi::Function::New(env, DevRead, "devRead"));
  exports.Set("devWrite", Napi::Function::New(env, DevWrite, "devWrite"));
  exports.Set("writeBuffer", Napi::Function::New(env, WriteBuffer, "writeBuffer"));
  exports.Set("pwriteAsync", Napi::Function::New(env, PwriteAsync, "pwriteAsync"));
}

}  // namespace ondine
