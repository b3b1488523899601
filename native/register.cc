#include "register.h"

namespace xmc {

void register_all(Napi::Env env, Napi::Object exports) {
  register_synth(env, exports);
  register_backend(env, exports);
  register_dense(env, exports);
  register_ffi(env, exports);
  register_sparse(env, exports);
  register_loss(env, exports);
  register_adam(env, exports);
  register_rewire(env, exports);
  register_topk(env, exports);
  register_cuda(env, exports);
}

}  // namespace xmc
