// Aligned memory: Node Buffers are not page aligned, but O_DIRECT writes into cachefiles'
// anonymous fds need the buffer address aligned (kernel.md, "Rules that bite").
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "errors.h"

namespace ondine {
namespace {

Napi::Value AlignedBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t size = static_cast<size_t>(IntArg(info, 0, 0, int64_t(1) << 45, "size"));
  size_t align = static_cast<size_t>(IntArg(info, 1, 1, int64_t(1) << 30, "align"));
  if ((align & (align - 1)) != 0 || align < sizeof(void*)) {
    throw Napi::RangeError::New(env, "align must be a power of two >= pointer size");
  }
  void* p = nullptr;
  // A zero-byte request still gets a real aligned block, so the Buffer's memory is aligned too.
  int err = posix_memalign(&p, align, size == 0 ? align : size);
  if (err != 0) ThrowErrno(env, err, "posix_memalign");
  std::memset(p, 0, size);
  // V8 counts an external Buffer's length as external memory itself, so GC pressure
  // follows these allocations without napi_adjust_external_memory.
  return Napi::Buffer<uint8_t>::New(env, static_cast<uint8_t*>(p), size,
                                    [](Napi::Env, uint8_t* data) { std::free(data); });
}

}  // namespace

void InitMemory(Napi::Env env, Napi::Object exports) {
  exports.Set("alignedBuffer", Napi::Function::New(env, AlignedBuffer, "alignedBuffer"));
}

}  // namespace ondine
