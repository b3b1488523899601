// Each op family file exposes a register_<family>(env, exports) function;
// register_all (native/register.cc) calls them all. Adding a family means
// adding one line there and one declaration here.
#pragma once
#include <napi.h>
#include <thread>

namespace xmc {

void register_synth(Napi::Env env, Napi::Object exports);
void register_all(Napi::Env env, Napi::Object exports);

}  // namespace xmc
