// fanotify_init/fanotify_mark for the pre-content path (kernel.md section 3). Events are
// read with devRead under an FdPoller and answered with writeBuffer; parsing them is pure
// TypeScript in src/kernel.
#include <fcntl.h>
#include <sys/fanotify.h>

#include <cerrno>
#include <string>

#include "errors.h"

namespace ondine {
namespace {

Napi::Value Init(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  unsigned int flags = static_cast<unsigned int>(IntArg(info, 0, 0, 0xffffffffLL, "flags"));
  unsigned int eventFlags =
      static_cast<unsigned int>(IntArg(info, 1, 0, 0xffffffffLL, "eventFlags"));
  int fd = fanotify_init(flags, eventFlags);
  if (fd < 0) ThrowErrno(env, errno, "fanotify_init");
  return Napi::Number::New(env, fd);
}

Napi::Value Mark(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info, 0);
  unsigned int flags = static_cast<unsigned int>(IntArg(info, 1, 0, 0xffffffffLL, "flags"));
  if (!info[2].IsBigInt()) ThrowType(env, "mask must be a bigint");
  bool lossless = false;
  uint64_t mask = info[2].As<Napi::BigInt>().Uint64Value(&lossless);
  if (!lossless) throw Napi::RangeError::New(env, "mask must fit in 64 unsigned bits");
  // dirfd may be AT_FDCWD (-100), so it is not an FdArg.
  int dirfd = static_cast<int>(IntArg(info, 3, INT32_MIN, INT32_MAX, "dirfd"));
  std::string path;
  bool hasPath = OptionalStringArg(info, 4, "path", &path);
  if (fanotify_mark(fd, flags, mask, dirfd, hasPath ? path.c_str() : nullptr) != 0) {
    ThrowErrno(env, errno, "fanotify_mark", path);
  }
  return env.Undefined();
}

}  // namespace

void InitFanotify(Napi::Env env, Napi::Object exports) {
  exports.Set("fanotifyInit", Napi::Function::New(env, Init, "fanotifyInit"));
  exports.Set("fanotifyMark", Napi::Function::New(env, Mark, "fanotifyMark"));
}

}  // namespace ondine
