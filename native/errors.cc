// errno -> NativeError and argument unpacking shared by every section of the addon.
#include "errors.h"

#include <cstring>
#include <limits>

namespace ondine {

AddonData* Data(Napi::Env env) { return env.GetInstanceData<AddonData>(); }

static std::string ErrnoName(int err) {
  // glibc >= 2.32; Node's uv_err_name lacks many kernel codes (EBADMSG, EUCLEAN, ...).
  const char* name = strerrorname_np(err);
  return name != nullptr ? name : "UNKNOWN";
}

std::string Describe(int err) {
  const char* desc = strerrordesc_np(err);
  return desc != nullptr ? desc : "Unknown error " + std::to_string(err);
}

Napi::Error ErrnoError(Napi::Env env, int err, const std::string& syscall,
                       const std::string& path, const std::string& detail) {
  std::string code = ErrnoName(err);
  std::string message = code + ": " + (detail.empty() ? Describe(err) : detail) +
                        ", " + syscall;
  if (!path.empty()) message += " '" + path + "'";

  AddonData* data = Data(env);
  if (data != nullptr && !data->errorClass.IsEmpty()) {
    Napi::Value pathValue = path.empty() ? env.Undefined() : Napi::String::New(env, path);
    Napi::Object obj = data->errorClass.New({Napi::String::New(env, message),
                                             Napi::String::New(env, code),
                                             Napi::Number::New(env, err),
                                             Napi::String::New(env, syscall), pathValue});
    return Napi::Error(env, obj);
  }
  Napi::Error e = Napi::Error::New(env, message);
  e.Set("code", Napi::String::New(env, code));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, syscall));
  if (!path.empty()) e.Set("path", Napi::String::New(env, path));
  return e;
}

void ThrowErrno(Napi::Env env, int err, const std::string& syscall, const std::string& path) {
  throw ErrnoError(env, err, syscall, path);
}

void ThrowType(Napi::Env env, const std::string& message) {
  throw Napi::TypeError::New(env, message);
}

int64_t IntArg(const Napi::CallbackInfo& info, size_t i, int64_t min, int64_t max,
               const char* what) {
  Napi::Env env = info.Env();
  if (!info[i].IsNumber()) ThrowType(env, std::string(what) + " must be a number");
  double d = info[i].As<Napi::Number>().DoubleValue();
  // 2^63 is exactly representable; anything at or beyond it would overflow int64_t.
  if (!(d >= static_cast<double>(min)) || !(d <= static_cast<double>(max)) ||
      d >= 9223372036854775808.0 || d != static_cast<double>(static_cast<int64_t>(d))) {
    throw Napi::RangeError::New(env, std::string(what) + " is out of range or not an integer");
  }
  return static_cast<int64_t>(d);
}

int FdArg(const Napi::CallbackInfo& info, size_t i) {
  return static_cast<int>(IntArg(info, i, 0, std::numeric_limits<int>::max(), "fd"));
}

static std::string NoNul(Napi::Env env, std::string s, const char* what) {
  if (s.find('\0') != std::string::npos) {
    ThrowType(env, std::string(what) + " must not contain NUL bytes");
  }
  return s;
}

std::string StringArg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (!info[i].IsString()) ThrowType(info.Env(), std::string(what) + " must be a string");
  return NoNul(info.Env(), info[i].As<Napi::String>().Utf8Value(), what);
}

bool OptionalStringArg(const Napi::CallbackInfo& info, size_t i, const char* what,
                       std::string* out) {
  if (info[i].IsNull() || info[i].IsUndefined()) return false;
  *out = StringArg(info, i, what);
  return true;
}

Napi::Uint8Array BytesArg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (!info[i].IsTypedArray() ||
      info[i].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    ThrowType(info.Env(), std::string(what) + " must be a Uint8Array or Buffer");
  }
  return info[i].As<Napi::Uint8Array>();
}

std::string PathArg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info[i].IsString()) return StringArg(info, i, what);
  Napi::Uint8Array bytes = BytesArg(info, i, what);
  return NoNul(info.Env(),
               std::string(reinterpret_cast<const char*>(bytes.Data()), bytes.ByteLength()),
               what);
}

}  // namespace ondine
