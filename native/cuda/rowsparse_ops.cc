// Launchers of the row-sparse layers (kernels: rowsparse.cu, whose block
// comment has the formulas and layouts):
//
//   ffiForward(x[B,I], W[L,k], idx[L,k], b[L], out[B,L])
//   ffiBackward(x, W, idx, dOut[B,L], dX[B,I] | null, dW[L,k], dB[L])
//   ffiLossBackward(x, W, idx, b[L], labelPtr[B+1], labelIds[nnz], dX | null, dW, dB, loss[1], options)
//     (fused: the label bitmap, then one kernel for scores, loss, gradient and
//     backward per label; the [B, L] scores are never stored)
//   sparseForward(x[B,I], rowPtr[L+1], col[nnz], W[nnz], b[L], out[B,L])
//   sparseBackward(x, rowPtr, col, W, dOut[B,L], dX | null, dW[nnz], dB[L])
//
// Each op: the CPU backend's enqueue-time checks (same messages), a serial
// with a formatter for its run-time checks, x transposed into scratch
// (xT [I, B]; x itself when B = 1), the kernels, finalize_checks. The
// backward scatters dX into a zeroed dXT [I, B] scratch with atomics and
// transposes it into dX (B = 1: straight into dX).
#include "backend.h"
#include "common/layer_args.h"
#include "common/loss_args.h"

namespace xmc::cuda {

std::pair<int64_t, int64_t> check_ffi_layer(const OpCall& call, const Tensor& W, const Tensor& idx, const Tensor* b) {
  return common::ffi_layer(call, W, idx, b);
}

std::pair<int64_t, int64_t> check_csr_layer(const OpCall& call, const Tensor& rowPtr, const Tensor& col, const Tensor& W,
                                            const Tensor* b, const char* b_name) {
  return common::csr_layer(call, rowPtr, col, W, b, b_name);
}

Formatter ffi_idx_formatter(const char* op, DType dtype, int64_t k, int64_t I) {
  return [op, dtype, k, I](const DeviceStatus& s) {
    const int64_t pos = static_cast<int64_t>(s.position), kk = k > 0 ? k : 1;
    return std::string(op) + ": idx[" + std::to_string(pos / kk) + ", " + std::to_string(pos % kk) + "] = " +
           index_text(dtype, s.v0) + " is not a valid source: it must be in [0, I = " + std::to_string(I) + ")";
  };
}

Formatter csr_formatter(const char* op, DType rp_dtype, DType col_dtype, int64_t L, int64_t nnz, int64_t I) {
  return [=](const DeviceStatus& s) {
    const std::string pos = std::to_string(s.position);
    std::string reason;
    switch (s.code) {
      case 1: reason = "rowPtr[0] = " + index_text(rp_dtype, s.v0) + ", must be 0"; break;
      case 2:
        reason = "rowPtr is not non-decreasing: rowPtr[" + pos + "] = " + index_text(rp_dtype, s.v0) + " > rowPtr[" +
                 std::to_string(s.position + 1) + "] = " + index_text(rp_dtype, s.v1);
        break;
      case 3:
        reason = "rowPtr[L = " + std::to_string(L) + "] = " + index_text(rp_dtype, s.v0) + " must equal nnz = " + std::to_string(nnz);
        break;
      default:
        reason = "col[" + pos + "] = " + index_text(col_dtype, s.v0) + " is not a valid source: it must be in [0, I = " +
                 std::to_string(I) + ")";
    }
    return std::string(op) + ": " + reason;
  };
}

CheckValues csr_check_values(const Tensor& rowPtr, const Tensor& col) {
  CheckValues v;
  const uint32_t* rp = rowPtr.data<uint32_t>();
  v.v0_src[0] = rp;
  v.v0_src[1] = rp;
  v.v1_src[1] = rp + 1;
  v.v0_src[2] = rp;
  v.v0_src[3] = col.data<uint32_t>();
  return v;
}

TransposedInput transposed_input(const OpCall& call, const Tensor& x, int64_t B, int64_t I, bool relu) {
  if (B <= 1 && !relu) return {nullptr, x.data<float>()};
  TransposedInput t;
  t.scratch = call.scratch(sizeof(float) * std::max<int64_t>(1, B * I));
  if (B <= 1) relu_forward(call.launch(), x.data<float>(), static_cast<float*>(t.scratch->data()), B * I);
  else transpose(call.launch(), x.data<float>(), B, I, static_cast<float*>(t.scratch->data()), relu);
  t.data = static_cast<const float*>(t.scratch->data());
  return t;
}

GatherScratch gather_input(const OpCall& call, const Tensor& x, int64_t B, int64_t I, bool relu) {
  if (!call.device().bf16_gathers()) {
    TransposedInput t = transposed_input(call, x, B, I, relu);
    GatherScratch g;
    g.scratch = t.scratch;
    g.input = {t.data, false};
    return g;
  }
  GatherScratch g;
  g.scratch = call.scratch(sizeof(uint16_t) * std::max<int64_t>(1, B * I));
  transpose_bf16(call.launch(), x.data<float>(), B, I, static_cast<uint16_t*>(g.scratch->data()), relu);
  g.input = {g.scratch->data(), true};
  return g;
}

GatherScratch topk_gather_input(const OpCall& call, const Tensor& x, int64_t B, int64_t I) {
  if (!call.device().int8_topk()) return gather_input(call, x, B, I);
  GatherScratch g;
  const int64_t ld = std::max<int64_t>(16, (B + 15) / 16 * 16);  // 16-byte rows for the kernel's uint4 loads
  g.scale = call.scratch(sizeof(float) * std::max<int64_t>(1, B));
  g.scratch = call.scratch(std::max<int64_t>(1, I * ld));
  float* scale = static_cast<float*>(g.scale->data());
  int8_row_scales(call.launch(), x.data<float>(), B, I, scale);
  transpose_int8(call.launch(), x.data<float>(), scale, B, I, ld, static_cast<uint8_t*>(g.scratch->data()));
  g.input = {g.scratch->data(), false, scale, ld};
  return g;
}

namespace {

// Where the row-sparse backward kernels scatter dX: a zeroed dXT [I, B] scratch, transposed into
// dX by finish(); with B = 1 dX itself (the same layout). data is null without dX. relu_mask [B, I]:
// dX = 0 where relu_mask <= 0 (the inputRelu option: the mask is the ReLU's input).
struct ScatterTarget {
  std::shared_ptr<Buffer> scratch;
  float* data = nullptr;
  void finish(const Launch& ctx, const std::optional<Tensor>& dX, int64_t B, int64_t I,
              const float* relu_mask = nullptr) const {
    if (scratch) transpose(ctx, data, I, B, dX->data<float>(), false, relu_mask);
    else if (data && relu_mask) relu_backward(ctx, relu_mask, data, data, B * I);
  }
};

ScatterTarget scatter_target(const OpCall& call, const std::optional<Tensor>& dX, int64_t B, int64_t I) {
  ScatterTarget t;
  if (!dX || B * I == 0) return t;
  if (B == 1) {
    t.data = dX->data<float>();
  } else {
    t.scratch = call.scratch(sizeof(float) * B * I);
    t.data = static_cast<float*>(t.scratch->data());
  }
  fill_u32(call.launch(), reinterpret_cast<uint32_t*>(t.data), B * I, 0);
  return t;
}

// The backward's shared part: dX scatter target, kernels, finalize, transpose.
void run_backward(const OpCall& call, const RowSparseDev& rows, uint32_t serial, const CheckValues& values, const Tensor& x,
                  const Tensor& dOut, const std::optional<Tensor>& dX, const Tensor& dW, const Tensor& dB, int64_t B,
                  int64_t I, int64_t L) {
  const Launch ctx = call.launch();
  TransposedInput xT = transposed_input(call, x, B, I);
  ScatterTarget dXT = scatter_target(call, dX, B, I);
  rowsparse_backward(ctx, rows, L, I, xT.data, B, dOut.data<float>(), dXT.data, dW.data<float>(), dB.data<float>());
  finalize_checks(ctx, serial, values);
  dXT.finish(ctx, dX, B, I);
}

Napi::Value FfiForward(const Napi::CallbackInfo& info) {
  return guarded(info, "ffiForward", [&]() -> Napi::Value {
    OpCall call(info, "ffiForward");
    Tensor x = call.tensor(1, "x"), W = call.tensor(2, "W"), idx = call.tensor(3, "idx"), b = call.tensor(4, "b"),
           out = call.tensor(5, "out");
    const common::RowSparseDims d = common::ffi_forward_arguments(call, x, W, idx, b, out);
    const int64_t B = d.B, I = d.I, L = d.L, k = d.n;
    const uint32_t serial = call.device().register_check(ffi_idx_formatter("ffiForward", idx.dtype, k, I));
    TransposedInput xT = transposed_input(call, x, B, I);
    const RowSparseDev rows{nullptr, k, idx.data<uint32_t>(), W.data<float>(), 1};
    rowsparse_forward(call.launch(), rows, b.data<float>(), xT.data, B, I, 0, L, out.data<float>(), L);
    CheckValues values;
    values.v0_src[0] = idx.data<uint32_t>();
    finalize_checks(call.launch(), serial, values);
    return info.Env().Undefined();
  });
}

Napi::Value FfiBackward(const Napi::CallbackInfo& info) {
  return guarded(info, "ffiBackward", [&]() -> Napi::Value {
    OpCall call(info, "ffiBackward");
    Tensor x = call.tensor(1, "x"), W = call.tensor(2, "W"), idx = call.tensor(3, "idx"), dOut = call.tensor(4, "dOut");
    std::optional<Tensor> dX = call.optional_tensor(5, "dX");
    Tensor dW = call.tensor(6, "dW"), dB = call.tensor(7, "dB");
    const common::RowSparseDims d = common::ffi_backward_arguments(call, x, W, idx, dOut, dX, dW, dB);
    const int64_t B = d.B, I = d.I, L = d.L, k = d.n;
    const uint32_t serial = call.device().register_check(ffi_idx_formatter("ffiBackward", idx.dtype, k, I));
    const RowSparseDev rows{nullptr, k, idx.data<uint32_t>(), W.data<float>(), 1};
    CheckValues values;
    values.v0_src[0] = idx.data<uint32_t>();
    run_backward(call, rows, serial, values, x, dOut, dX, dW, dB, B, I, L);
    return info.Env().Undefined();
  });
}

Napi::Value FfiLossBackward(const Napi::CallbackInfo& info) {
  return guarded(info, "ffiLossBackward", [&]() -> Napi::Value {
    OpCall call(info, "ffiLossBackward");
    Tensor x = call.tensor(1, "x"), W = call.tensor(2, "W"), idx = call.tensor(3, "idx"), b = call.tensor(4, "b"),
           labelPtr = call.tensor(5, "labelPtr"), labelIds = call.tensor(6, "labelIds");
    std::optional<Tensor> dX = call.optional_tensor(7, "dX");
    Tensor dW = call.tensor(8, "dW"), dB = call.tensor(9, "dB"), loss = call.tensor(10, "loss");
    const common::FfiLossShape sh =
        common::ffi_loss_backward_arguments(call, x, W, idx, b, labelPtr, labelIds, dX, dW, dB, loss, call.options(11));
    const int64_t B = sh.B, I = sh.I, L = sh.L, k = sh.k, nids = labelIds.size;
    const Formatter idx_message = ffi_idx_formatter("ffiLossBackward", idx.dtype, k, I);
    const uint32_t serial = call.device().register_check([idx_message, nids](const DeviceStatus& st) {
      if (st.code == 4) return idx_message(st);
      return "ffiLossBackward: " + common::label_ptr_error(static_cast<int>(st.code), st.v0, static_cast<int64_t>(st.position), nids);
    });
    CheckValues values;
    values.v0_src[0] = values.v0_src[1] = values.v0_src[2] = labelPtr.data<uint32_t>();
    values.v0_src[3] = idx.data<uint32_t>();
    const Launch ctx = call.launch();
    check_label_ptr(ctx, labelPtr.data<uint32_t>(), B, nids);
    finalize_checks(ctx, serial, values);  // a bad labelPtr stops the op before the bitmap reads it

    const int64_t words = (L + 31) / 32, blocks = rowsparse_loss_backward_blocks(L, call.device().multiprocessors());
    std::shared_ptr<Buffer> bits = call.scratch(sizeof(uint32_t) * std::max<int64_t>(1, B * words));
    std::shared_ptr<Buffer> partial = call.scratch(sizeof(double) * std::max<int64_t>(1, blocks));
    fill_u32(ctx, static_cast<uint32_t*>(bits->data()), B * words, 0);
    label_bitmap(ctx, labelPtr.data<uint32_t>(), labelIds.data<uint32_t>(), B, nids, sh.loss.label_offset, L,
                 static_cast<uint32_t*>(bits->data()));
    const double inv = B > 0 ? 1.0 / (static_cast<double>(B) * sh.loss.normaliser) : 0.0;
    const FusedLossDev fused{static_cast<const uint32_t*>(bits->data()), sh.loss.bce, static_cast<float>(inv),
                             static_cast<double*>(partial->data())};

    GatherScratch xT = gather_input(call, x, B, I, sh.input_relu);
    ScatterTarget dXT = scatter_target(call, dX, B, I);
    const RowSparseDev rows{nullptr, k, idx.data<uint32_t>(), W.data<float>(), 4};
    rowsparse_loss_backward(ctx, rows, b.data<float>(), L, I, xT.input, B, fused, blocks, dXT.data, dW.data<float>(), dB.data<float>());
    finalize_checks(ctx, serial, values);
    if (L > 0) loss_reduce(ctx, fused.partial, blocks, inv, loss.data<float>());
    else fill_u32(ctx, loss.data<uint32_t>(), 1, 0);
    dXT.finish(ctx, dX, B, I, sh.input_relu ? x.data<float>() : nullptr);
    return info.Env().Undefined();
  });
}

Napi::Value SparseForward(const Napi::CallbackInfo& info) {
  return guarded(info, "sparseForward", [&]() -> Napi::Value {
    OpCall call(info, "sparseForward");
    Tensor x = call.tensor(1, "x"), rowPtr = call.tensor(2, "rowPtr"), col = call.tensor(3, "col"), W = call.tensor(4, "W"),
           b = call.tensor(5, "b"), out = call.tensor(6, "out");
    const common::RowSparseDims d = common::csr_forward_arguments(call, x, rowPtr, col, W, b, out);
    const int64_t B = d.B, I = d.I, L = d.L, nnz = d.n;
    const uint32_t serial =
        call.device().register_check(csr_formatter("sparseForward", rowPtr.dtype, col.dtype, L, nnz, I));
    const CheckValues values = csr_check_values(rowPtr, col);
    const Launch ctx = call.launch();
    check_csr_row_ptr(ctx, rowPtr.data<uint32_t>(), L, nnz);
    finalize_checks(ctx, serial, values);
    TransposedInput xT = transposed_input(call, x, B, I);
    const RowSparseDev rows{rowPtr.data<uint32_t>(), 0, col.data<uint32_t>(), W.data<float>(), 4};
    rowsparse_forward(ctx, rows, b.data<float>(), xT.data, B, I, 0, L, out.data<float>(), L);
    finalize_checks(ctx, serial, values);
    return info.Env().Undefined();
  });
}

Napi::Value SparseBackward(const Napi::CallbackInfo& info) {
  return guarded(info, "sparseBackward", [&]() -> Napi::Value {
    OpCall call(info, "sparseBackward");
    Tensor x = call.tensor(1, "x"), rowPtr = call.tensor(2, "rowPtr"), col = call.tensor(3, "col"), W = call.tensor(4, "W"),
           dOut = call.tensor(5, "dOut");
    std::optional<Tensor> dX = call.optional_tensor(6, "dX");
    Tensor dW = call.tensor(7, "dW"), dB = call.tensor(8, "dB");
    const common::RowSparseDims d = common::csr_backward_arguments(call, x, rowPtr, col, W, dOut, dX, dW, dB);
    const int64_t B = d.B, I = d.I, L = d.L, nnz = d.n;
    const uint32_t serial =
        call.device().register_check(csr_formatter("sparseBackward", rowPtr.dtype, col.dtype, L, nnz, I));
    const CheckValues values = csr_check_values(rowPtr, col);
    check_csr_row_ptr(call.launch(), rowPtr.data<uint32_t>(), L, nnz);
    finalize_checks(call.launch(), serial, values);
    const RowSparseDev rows{rowPtr.data<uint32_t>(), 0, col.data<uint32_t>(), W.data<float>(), 4};
    run_backward(call, rows, serial, values, x, dOut, dX, dW, dB, B, I, L);
    return info.Env().Undefined();
  });
}

}  // namespace

void register_rowsparse_ops(Napi::Env env, Napi::Object ops) {
  ops.Set("ffiForward", Napi::Function::New(env, FfiForward, "ffiForward"));
  ops.Set("ffiBackward", Napi::Function::New(env, FfiBackward, "ffiBackward"));
  ops.Set("ffiLossBackward", Napi::Function::New(env, FfiLossBackward, "ffiLossBackward"));
  ops.Set("sparseForward", Napi::Function::New(env, SparseForward, "sparseForward"));
  ops.Set("sparseBackward", Napi::Function::New(env, SparseBackward, "sparseBackward"));
}

}  // namespace xmc::cuda
