#include "decode_variants.h"

namespace fp4serve::bench {

const std::vector<const DecodeVariant*>& decode_variants() {
  static const std::vector<const DecodeVariant*> all = {&kDecodeOnMmaSync, &kWgmmaDecodePrefetch,
                                                        &kSkinnyBurst4OneCtaPerSm};
  return all;
}

}  // namespace fp4serve::bench
