// Placeholder entry point; the native helper replaces this with the real module table.
#include <napi.h>
static Napi::Object Init(Napi::Env env, Napi::Object exports) { return exports; }
NODE_API_MODULE(ondine, Init)
