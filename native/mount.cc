// mount(2)/umount2(2) straight to the kernel: util-linux mount(8) would put a loop device
// under a file-backed EROFS image, and over a loop device no fanotify events arrive.
// Async variants exist because a mount may read from files whose pre-content events this
// same process has to answer; blocking the JS thread there would deadlock.
#include <sys/mount.h>

#include <cerrno>
#include <string>

#include "errors.h"

namespace ondine {
namespace {

struct MountArgs {
  bool hasSource = false, hasType = false, hasData = false;
  std::string source, target, fstype, data;
  unsigned long flags = 0;

  static MountArgs From(const Napi::CallbackInfo& info) {
    MountArgs a;
    a.hasSource = OptionalStringArg(info, 0, "source", &a.source);
    a.target = StringArg(info, 1, "target");
    a.hasType = OptionalStringArg(info, 2, "fstype", &a.fstype);
    a.flags = static_cast<unsigned long>(IntArg(info, 3, 0, 0xffffffffLL, "flags"));
    a.hasData = OptionalStringArg(info, 4, "data", &a.data);
    return a;
  }

  int Run() const {
    return mount(hasSource ? source.c_str() : nullptr, target.c_str(),
                 hasType ? fstype.c_str() : nullptr, flags, hasData ? data.c_str() : nullptr);
  }
};

struct UmountArgs {
  std::string target;
  int flags = 0;

  static UmountArgs From(const Napi::CallbackInfo& info) {
    UmountArgs a;
    a.target = StringArg(info, 0, "target");
    a.flags = static_cast<int>(IntArg(info, 1, 0, 0x7fffffff, "flags"));
    return a;
  }

  int Run() const { return umount2(target.c_str(), flags); }
};

template <typename Args>
class SyscallWorker : public PromiseWorker {
 public:
  SyscallWorker(Napi::Env env, Args args, const char* syscall)
      : PromiseWorker(env, "ondine.mount"), args_(std::move(args)), syscall_(syscall) {}

 protected:
  void Execute() override {
    if (args_.Run() != 0) Fail(errno, syscall_, std::string(), args_.target);
  }
  Napi::Value Result(Napi::Env env) override { return env.Undefined(); }

 private:
  Args args_;
  const char* syscall_;
};

Napi::Value Mount(const Napi::CallbackInfo& info) {
  MountArgs a = MountArgs::From(info);
  if (a.Run() != 0) ThrowErrno(info.Env(), errno, "mount", a.target);
  return info.Env().Undefined();
}

Napi::Value Umount2(const Napi::CallbackInfo& info) {
  UmountArgs a = UmountArgs::From(info);
  if (a.Run() != 0) ThrowErrno(info.Env(), errno, "umount2", a.target);
  return info.Env().Undefined();
}

Napi::Value MountAsync(const Napi::CallbackInfo& info) {
  return (new SyscallWorker<MountArgs>(info.Env(), MountArgs::From(info), "mount"))->Start();
}

Napi::Value Umount2Async(const Napi::CallbackInfo& info) {
  return (new SyscallWorker<UmountArgs>(info.Env(), UmountArgs::From(info), "umount2"))->Start();
}

}  // namespace

void InitMount(Napi::Env env, Napi::Object exports) {
  exports.Set("mount", Napi::Function::New(env, Mount, "mount"));
  exports.Set("umount2", Napi::Function::New(env, Umount2, "umount2"));
  exports.Set("mountAsync", Napi::Function::New(env, MountAsync, "mountAsync"));
  exports.Set("umount2Async", Napi::Function::New(env, Umount2Async, "umount2Async"));
}

}  // namespace ondine
