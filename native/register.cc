#include "register.h"

namespace xmc {

void register_all(Napi::Env env, Napi::Object exports) {
  register_synth(env, exports);
}

}  // namespace xmc
