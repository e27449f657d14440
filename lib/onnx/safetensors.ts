/**
 * Checkpoint IO in the Hugging Face safetensors format.
 *
 * Layout: 8-byte little-endian u64 header length N, N bytes of UTF-8 JSON
 * (padded with spaces so that 8 + N is a multiple of 8), then the raw
 * little-endian tensor data, contiguous, with `data_offsets` relative to the
 * start of the data section.
 *
 * Encoding is deterministic and follows the reference writer (the Rust `safetensors` crate
 * behind `safetensors.torch.save_file` and transformers' `save_pretrained`): tensors are laid
 * out by descending dtype (the crate's `Dtype` order: I64, F64, F32, I32, BF16, F16, BOOL),
 * then by name, and the header lists them in that same order after `__metadata__` (whose keys
 * are sorted). Item sizes descend along the data section, so every tensor starts at a
 * multiple of its own item size from the 8-aligned data section: zero-copy readers can view
 * it in place. For a single-dtype file this is plain name order, byte-identical to the
 * reference.
 *
 * Half precision: `float16` (IEEE binary16, tag F16) and `bfloat16` (tag BF16) tensors hold
 * their raw bit patterns in a `Uint16Array`; {@link float16ToFloat32},
 * {@link bfloat16ToFloat32}, {@link float32ToFloat16} and {@link float32ToBfloat16} convert,
 * with the same rounding as torch's `.to(torch.float16 / torch.bfloat16)`.
 *
 * Large files: {@link openSafetensors} reads the header only and each tensor on demand, so a
 * multi-gigabyte checkpoint is never held in memory twice.
 *
 * @module
 */
export {
  bfloat16ToFloat32,
  castFloatTensor,
  float16ToFloat32,
  float32ToBfloat16,
  float32ToFloat16,
  floatValues,
  isFloatDType,
} from "./safetensors_half.ts";
export type { FloatDType, NamedTensor, TensorDType } from "./safetensors_dtypes.ts";
export {
  type ByteSink,
  encodeSafetensors,
  type SafetensorsLayout,
  safetensorsLayout,
  saveSafetensors,
  type TensorSpec,
  writeSafetensors,
} from "./safetensors_write.ts";
export {
  parseSafetensorsHeader,
  type SafetensorsEntry,
  type SafetensorsHeader,
} from "./safetensors_header.ts";
export {
  decodeSafetensors,
  loadSafetensors,
  openSafetensors,
  type SafetensorsFile,
} from "./safetensors_read.ts";
