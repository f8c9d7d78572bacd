// lz4 block format through Debian's liblz4. Decompression insists on the exact size the
// chunk table promised: a short or long output is as corrupt as a malformed block.
#include <lz4.h>

#include <cerrno>
#include <cstdlib>
#include <string>

#include "errors.h"

namespace ondine {
namespace {

constexpr const char* kDecompress = "LZ4_decompress_safe";
constexpr const char* kCompress = "LZ4_compress_default";

// Empty on success, else why the block is refused (reported as EBADMSG).
std::string Decode(const uint8_t* src, size_t srcLen, uint8_t* dst, size_t dstLen) {
  int n = LZ4_decompress_safe(reinterpret_cast<const char*>(src), reinterpret_cast<char*>(dst),
                              static_cast<int>(srcLen), static_cast<int>(dstLen));
  if (n < 0) {
    return "corrupt lz4 block, or it decodes to more than " + std::to_string(dstLen) + " bytes";
  }
  if (static_cast<size_t>(n) != dstLen) {
    return "lz4 block decodes to " + std::to_string(n) + " bytes, expected " +
           std::to_string(dstLen);
  }
  return std::string();
}

// Returns malloc'ed memory holding exactly *outLen compressed bytes, or nullptr (errno set).
uint8_t* Encode(const uint8_t* src, size_t srcLen, size_t* outLen) {
  int bound = LZ4_compressBound(static_cast<int>(srcLen));
  char* dst = static_cast<char*>(std::malloc(static_cast<size_t>(bound)));
  if (dst == nullptr) {
    errno = ENOMEM;
    return nullptr;
  }
  int n = LZ4_compress_default(reinterpret_cast<const char*>(src), dst,
                               static_cast<int>(srcLen), bound);
  if (n <= 0) {  // cannot happen with a compressBound-sized output; keep it an error anyway
    std::free(dst);
    errno = EIO;
    return nullptr;
  }
  char* shrunk = static_cast<char*>(std::realloc(dst, static_cast<size_t>(n)));
  *outLen = static_cast<size_t>(n);
  return reinterpret_cast<uint8_t*>(shrunk != nullptr ? shrunk : dst);
}

// Hands malloc'ed memory to a Buffer without copying; freed when the Buffer is collected.
Napi::Buffer<uint8_t> AdoptMalloced(Napi::Env env, uint8_t* data, size_t len) {
  return Napi::Buffer<uint8_t>::New(env, data, len, [](Napi::Env, uint8_t* p) { std::free(p); });
}

Napi::Uint8Array SourceArg(const Napi::CallbackInfo& info) {
  Napi::Uint8Array src = BytesArg(info, 0, "src");
  if (src.ByteLength() > LZ4_MAX_INPUT_SIZE) {
    throw Napi::RangeError::New(info.Env(), "src is larger than LZ4_MAX_INPUT_SIZE");
  }
  return src;
}

size_t SizeArg(const Napi::CallbackInfo& info) {
  return static_cast<size_t>(IntArg(info, 1, 0, 0x7fffffff, "uncompressedSize"));
}

Napi::Value Decompress(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Uint8Array src = SourceArg(info);
  size_t size = SizeArg(info);
  Napi::Buffer<uint8_t> out = Napi::Buffer<uint8_t>::New(env, size);
  std::string bad = Decode(src.Data(), src.ByteLength(), out.Data(), size);
  if (!bad.empty()) throw ErrnoError(env, EBADMSG, kDecompress, std::string(), bad);
  return out;
}

Napi::Value Compress(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Uint8Array src = SourceArg(info);
  size_t len = 0;
  uint8_t* data = Encode(src.Data(), src.ByteLength(), &len);
  if (data == nullptr) ThrowErrno(env, errno, kCompress);
  return AdoptMalloced(env, data, len);
}

}  // namespace

void InitLz4(Napi::Env env, Napi::Object exports) {
  exports.Set("lz4Decompress", Napi::Function::New(env, Decompress, "lz4Decompress"));
  exports.Set("lz4Compress", Napi::Function::New(env, Compress, "lz4Compress"));
}

}  // namespace ondine
