// The /dev/cachefiles device in on-demand mode (kernel.md section 1): open it and complete
// READ requests. Commands and messages go through devWrite/devRead, readiness through
// FdPoller; what the errors mean for the user is said in TypeScript.
#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "errors.h"

// include/uapi/linux/cachefiles.h: _IOW(0x98, 1, int) = 0x40049801.
#ifndef CACHEFILES_IOC_READ_COMPLETE
#define CACHEFILES_IOC_READ_COMPLETE _IOW(0x98, 1, int)
#endif

namespace ondine {
namespace {

Napi::Value Open(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = PathArg(info, 0, "path");
  int fd;
  do {
    fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) ThrowErrno(env, errno, "open", path);
  return Napi::Number::New(env, fd);
}

Napi::Value ReadComplete(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info, 0);
  uint32_t msgId = static_cast<uint32_t>(IntArg(info, 1, 0, 0xffffffffLL, "msgId"));
  // The kernel takes the id as the ioctl argument itself, not as a pointer to it.
  int r;
  do {
    r = ioctl(fd, CACHEFILES_IOC_READ_COMPLETE, static_cast<unsigned long>(msgId));
  } while (r < 0 && errno == EINTR);
  if (r < 0) {
    int err = errno;
    throw ErrnoError(env, err, "ioctl", std::string(),
                     Describe(err) + " (CACHEFILES_IOC_READ_COMPLETE, msg_id " +
                         std::to_string(msgId) + ")");
  }
  return env.Undefined();
}

}  // namespace

void InitCachefiles(Napi::Env env, Napi::Object exports) {
  exports.Set("openDevice", Napi::Function::New(env, Open, "openDevice"));
  exports.Set("ioctlReadComplete", Napi::Function::New(env, ReadComplete, "ioctlReadComplete"));
}

}  // namespace ondine
