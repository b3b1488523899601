// Synthetic XMC data generator (filled in by the synth work; see docs/SYNTHETIC_DATA.md).
#include "register.h"

namespace xmc {

void register_synth(Napi::Env, Napi::Object) {}

}  // namespace xmc
