// mount(2)/umount2(2) straight to the kernel: util-linux mount(8) would put a loop device
// under a file-backed EROFS image, and over a loop device no fanotify events arrive.
// Async variants exist because a mount may read from files whose pre-content events this
// same process has to answer; blocking the JS thread there would deadlock.
// File-backed EROFS with many blobs goes through the new mount API (fsopen, fsconfig,
// fsmount, move_mount): mount(2) packs every option into one comma-separated page.
#include <fcntl.h>
#include <sys/mount.h>  // glibc >= 2.36 wraps fsopen/fsconfig/fsmount/move_mount
#include <unistd.h>

#include <cerrno>
#include <string>
#include <utility>
#include <vector>

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

// fsconfig copies each string value with a 256-byte limit (strndup_user in fs/fsopen.c) and
// EROFS opens `source` and every `device` by name with filp_open. A longer path is therefore
// handed over as /proc/self/fd/<n> of an O_PATH fd: the magic link resolves to the same
// file, and O_PATH neither reads the file nor raises a fanotify event on it.
constexpr size_t kFsconfigValueMax = 255;

class PathHandles {
 public:
  PathHandles() = default;
  PathHandles(const PathHandles&) = delete;
  PathHandles& operator=(const PathHandles&) = delete;
  ~PathHandles() {
    for (int fd : fds_) close(fd);
  }

  // The name to give fsconfig for `path`; -1 with errno set when a long path cannot be opened.
  int Name(const std::string& path, std::string* out) {
    if (path.size() <= kFsconfigValueMax) {
      *out = path;
      return 0;
    }
    int fd = open(path.c_str(), O_PATH | O_CLOEXEC);
    if (fd < 0) return -1;
    fds_.push_back(fd);
    *out = "/proc/self/fd/" + std::to_string(fd);
    return 0;
  }

 private:
  std::vector<int> fds_;
};

struct ErofsFileArgs {
  std::string source, target;
  std::vector<std::string> devices;
  std::vector<std::pair<std::string, std::string>> options;  // empty value: a flag

  static ErofsFileArgs From(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    ErofsFileArgs a;
    a.source = StringArg(info, 0, "source");
    a.target = StringArg(info, 1, "target");
    if (!info[2].IsArray()) ThrowType(env, "devices must be an array of strings");
    Napi::Array devices = info[2].As<Napi::Array>();
    for (uint32_t i = 0; i < devices.Length(); i++) {
      Napi::Value v = devices.Get(i);
      if (!v.IsString()) ThrowType(env, "devices must be an array of strings");
      a.devices.push_back(v.As<Napi::String>().Utf8Value());
    }
    if (!info[3].IsArray()) ThrowType(env, "options must be an array of [key, value] pairs");
    Napi::Array options = info[3].As<Napi::Array>();
    for (uint32_t i = 0; i < options.Length(); i++) {
      Napi::Value pair = options.Get(i);
      if (!pair.IsArray() || pair.As<Napi::Array>().Length() != 2 ||
          !pair.As<Napi::Array>().Get(0u).IsString() || !pair.As<Napi::Array>().Get(1u).IsString()) {
        ThrowType(env, "options must be an array of [key, value] pairs");
      }
      a.options.emplace_back(pair.As<Napi::Array>().Get(0u).As<Napi::String>().Utf8Value(),
                             pair.As<Napi::Array>().Get(1u).As<Napi::String>().Utf8Value());
    }
    for (const std::string& d : a.devices) {
      if (d.find('\0') != std::string::npos) ThrowType(env, "devices must not contain NUL bytes");
    }
    for (const auto& [k, v] : a.options) {
      if (k.find('\0') != std::string::npos || v.find('\0') != std::string::npos) {
        ThrowType(env, "options must not contain NUL bytes");
      }
    }
    return a;
  }
};

// Lines the filesystem left in the fs context's log ("e erofs: ...", "w ..."), joined by
// "; ". Each read(2) returns one message; ENODATA ends the log.
std::string DrainContextLog(int fsfd) {
  std::string log;
  char buf[1024];
  for (int i = 0; i < 64; i++) {
    ssize_t n = read(fsfd, buf, sizeof(buf) - 1);
    if (n <= 0) break;
    std::string line(buf, static_cast<size_t>(n));
    while (!line.empty() && line.back() == '\n') line.pop_back();
    if (line.empty()) continue;
    if (!log.empty()) log += "; ";
    log += line;
  }
  return log;
}

class ErofsFileWorker : public PromiseWorker {
 public:
  ErofsFileWorker(Napi::Env env, ErofsFileArgs args)
      : PromiseWorker(env, "ondine.mountErofsFile"), args_(std::move(args)) {}

 protected:
  void Execute() override {
    int fsfd = fsopen("erofs", FSOPEN_CLOEXEC);
    if (fsfd < 0) {
      Step(errno, "fsopen", "fsopen(\"erofs\")", "erofs", std::string());
      return;
    }
    Run(fsfd);
    close(fsfd);
  }
  Napi::Value Result(Napi::Env env) override { return env.Undefined(); }

 private:
  void Step(int err, const char* syscall, const std::string& step, const std::string& path,
            const std::string& log) {
    std::string detail = step + " failed: " + Describe(err);
    if (!log.empty()) detail += " (kernel: " + log + ")";
    Fail(err, syscall, detail, path);
  }

  // fsconfig(FSCONFIG_SET_STRING, key, path) with the long-path fallback of PathHandles.
  bool SetPath(int fsfd, PathHandles* handles, const char* key, const std::string& path) {
    std::string name;
    if (handles->Name(path, &name) != 0) {
      Step(errno, "open", std::string("open (O_PATH) of ") + key, path, std::string());
      return false;
    }
    if (fsconfig(fsfd, FSCONFIG_SET_STRING, key, name.c_str(), 0) != 0) {
      int err = errno;
      Step(err, "fsconfig", std::string("fsconfig(FSCONFIG_SET_STRING, \"") + key + "\")", path,
           DrainContextLog(fsfd));
      return false;
    }
    return true;
  }

  void Run(int fsfd) {
    PathHandles handles;  // must outlive FSCONFIG_CMD_CREATE, where EROFS opens the files
    if (!SetPath(fsfd, &handles, "source", args_.source)) return;
    for (const std::string& device : args_.devices) {
      if (!SetPath(fsfd, &handles, "device", device)) return;
    }
    for (const auto& [key, value] : args_.options) {
      bool flag = value.empty();
      int rc = flag ? fsconfig(fsfd, FSCONFIG_SET_FLAG, key.c_str(), nullptr, 0)
                    : fsconfig(fsfd, FSCONFIG_SET_STRING, key.c_str(), value.c_str(), 0);
      if (rc != 0) {
        int err = errno;
        Step(err, "fsconfig",
             std::string("fsconfig(") + (flag ? "FSCONFIG_SET_FLAG" : "FSCONFIG_SET_STRING") +
                 ", \"" + key + "\")",
             args_.source, DrainContextLog(fsfd));
        return;
      }
    }
    if (fsconfig(fsfd, FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) != 0) {
      int err = errno;
      std::string log = DrainContextLog(fsfd);
      std::string path = args_.source;
      // The kernel opens every file only here and rarely says which one it could not open.
      if (access(args_.source.c_str(), R_OK) == 0) {
        for (const std::string& device : args_.devices) {
          if (access(device.c_str(), R_OK) != 0) {
            path = device;
            std::string why = "device '" + device + "' cannot be opened: " + Describe(errno);
            log = log.empty() ? why : log + "; " + why;
            break;
          }
        }
      }
      Step(err, "fsconfig", "fsconfig(FSCONFIG_CMD_CREATE)", path, log);
      return;
    }
    int mfd = fsmount(fsfd, FSMOUNT_CLOEXEC, MOUNT_ATTR_RDONLY);
    if (mfd < 0) {
      int err = errno;
      Step(err, "fsmount", "fsmount(MOUNT_ATTR_RDONLY)", args_.source, DrainContextLog(fsfd));
      return;
    }
    if (move_mount(mfd, "", AT_FDCWD, args_.target.c_str(), MOVE_MOUNT_F_EMPTY_PATH) != 0) {
      int err = errno;
      Step(err, "move_mount", "move_mount", args_.target, std::string());
    }
    close(mfd);  // after a failed move_mount this also drops the detached mount
  }

  ErofsFileArgs args_;
};

Napi::Value MountErofsFileAsync(const Napi::CallbackInfo& info) {
  return (new ErofsFileWorker(info.Env(), ErofsFileArgs::From(info)))->Start();
}

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
  exports.Set("mountErofsFileAsync",
              Napi::Function::New(env, MountErofsFileAsync, "mountErofsFileAsync"));
}

}  // namespace ondine
