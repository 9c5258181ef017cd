// Naming schemes of DeepSeek-V4 checkpoints in the wild, each a table mapping its
// tensor names to DeepSeek's own (canonical) names and back. No string surgery:
// a stored name is generalized (numeric path components -> '#') and looked up.
//
//   deepseek-native     layers.3.attn.wq_a.weight / .scale, layers.3.ffn.experts.7.w1.weight, embed.weight
//   transformers-saved  what DeepseekV4ForCausalLM.save_pretrained writes: model.layers.3.attn.wq_a.weight,
//                       model.layers.3.attn.norm.weight (= attention kv_norm), model.hc_head.hc_fn,
//                       model.embed_tokens.weight, head.weight
//   transformers        transformers' in-memory names (and ModelOpt's HF exports of them):
//                       model.layers.3.self_attn.q_a_proj.weight, fused mlp.experts.gate_up_proj [E, 2I, D]
//                       and down_proj [E, D, I], or per expert mlp.experts.7.{gate,up,down}_proj.weight
//                       with .weight_scale / .weight_scale_2 / .input_scale; lm_head.weight
// MTP blocks keep DeepSeek's names (mtp.0.*) in every scheme: transformers does not
// instantiate them and leaves such keys as they are.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fp4serve {

enum class NamingScheme : uint8_t { kDeepSeekNative, kTransformersSaved, kTransformers };
inline constexpr NamingScheme kAllNamingSchemes[] = {NamingScheme::kDeepSeekNative, NamingScheme::kTransformersSaved,
                                                     NamingScheme::kTransformers};

std::string_view naming_scheme_name(NamingScheme scheme);  // "deepseek-native", ...

// What a stored tensor is to the model.
enum class TensorRole : uint8_t {
  kTensor,        // a tensor that is not a linear's: canonical full name ("layers.0.attn_norm.weight")
  kLinearWeight,  // <module>.weight; canonical = module ("layers.0.attn.wq_a")
  kBlockScale,    // <module>.scale (DeepSeek), .weight_scale_inv (HF FP8) or .weight_scale (ModelOpt NVFP4)
  kGlobalScale,   // <module>.weight_scale_2 (NVFP4 per-tensor scale)
  kInputScale,    // <module>.input_scale (NVFP4 activation scale)
  kFusedGateUp,   // experts.gate_up_proj [E, 2I, D]; canonical = "layers.N.ffn.experts"
  kFusedDown,     // experts.down_proj [E, D, I]; canonical = "layers.N.ffn.experts"
};

struct MappedName {
  TensorRole role = TensorRole::kTensor;
  std::string canonical;
  std::string suffix;  // the stored suffix of a linear's tensor ("weight", "scale", "weight_scale_inv", ...)
};

// Maps a stored name; nullopt when the scheme does not know it.
std::optional<MappedName> to_canonical(NamingScheme scheme, const std::string& stored_name);

// The stored name of a canonical tensor (kTensor), of a linear's tensor (module + the
// stored suffix, e.g. "scale" or "weight_scale_2"), or of fused experts. Throws Error
// when the scheme has no such name.
std::string to_stored(NamingScheme scheme, TensorRole role, const std::string& canonical,
                      const std::string& suffix = "weight");

// The module part of a stored linear tensor name in `scheme` (no suffix): what
// ModelOpt's exclude globs and quantized_layers refer to.
std::string stored_module_name(NamingScheme scheme, const std::string& canonical_module);

}  // namespace fp4serve
