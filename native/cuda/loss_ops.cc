// Launcher of the fused losses (kernels and formulas: loss.cu).
//
//   lossForward(scores[B,L], labelPtr[B+1], labelIds[nnz], dScores[B,L] | null, loss[1],
//               {kind = 'squared-hinge' | 'bce', labelOffset = 0, normaliser = L})
//
// Checks and messages are the CPU backend's (native/cpu/loss.cc); the label
// structure is checked on the GPU (ranks 1-3 of check_label_ptr).
#include <algorithm>

#include "backend.h"
#include "common/loss_args.h"

namespace xmc::cuda {
namespace {

Napi::Value LossForward(const Napi::CallbackInfo& info) {
  return guarded(info, "lossForward", [&]() -> Napi::Value {
    OpCall call(info, "lossForward");
    Tensor scores = call.tensor(1, "scores"), labelPtr = call.tensor(2, "labelPtr"), labelIds = call.tensor(3, "labelIds");
    std::optional<Tensor> dScores = call.optional_tensor(4, "dScores");
    Tensor loss = call.tensor(5, "loss");
    Napi::Object opts = call.options(6);
    const common::LossShape sh = common::loss_forward_arguments(call, scores, labelPtr, labelIds, dScores, loss, opts);
    const int64_t B = sh.B, L = sh.L;
    const common::LossOptions o = sh.loss;
    const int64_t nids = labelIds.size;
    const uint32_t serial = call.device().register_check([nids](const DeviceStatus& s) {
      return "lossForward: " + common::label_ptr_error(static_cast<int>(s.code), s.v0, static_cast<int64_t>(s.position), nids);
    });
    const Launch ctx = call.launch();
    check_label_ptr(ctx, labelPtr.data<uint32_t>(), B, nids);
    CheckValues values;
    values.v0_src[0] = values.v0_src[1] = values.v0_src[2] = labelPtr.data<uint32_t>();
    finalize_checks(ctx, serial, values);
    std::shared_ptr<Buffer> scratch = call.scratch(loss_scratch_bytes(B, L, nids));
    LossArgs a;
    a.bce = o.bce;
    a.scores = scores.data<float>();
    a.d = dScores ? dScores->data<float>() : nullptr;
    a.label_ptr = labelPtr.data<uint32_t>();
    a.label_ids = labelIds.data<uint32_t>();
    a.nids = nids;
    a.B = B;
    a.L = L;
    a.offset = o.label_offset;
    a.inv = B > 0 ? 1.0 / (static_cast<double>(B) * o.normaliser) : 0.0;
    a.loss = loss.data<float>();
    loss_forward(ctx, a, scratch->data());
    return info.Env().Undefined();
  });
}

}  // namespace

void register_loss_ops(Napi::Env env, Napi::Object ops) {
  ops.Set("lossForward", Napi::Function::New(env, LossForward, "lossForward"));
}

}  // namespace xmc::cuda
