// The safetensors header checked as offchain/ml/artifacts.py `read_header` checks it (limits, one
// JSON object, exact entry keys, allowed dtypes, offsets inside the body and consistent with the
// shape, no overlap), with its one-line errors; shared by the data reader and the checkpoint reader;
// and the writer of the files the page publishes.
import { concatBytes, stringToBytes } from "viem";

export const MAX_ARTIFACT_BYTES = 512 * 1024 * 1024, MAX_HEADER_BYTES = 1024 * 1024;
/** Element size by safetensors dtype. */
export const ITEMSIZE: Record<string, number> = { F16: 2, F32: 4, F64: 8, I8: 1, I16: 2, I32: 4, I64: 8, U8: 1, U16: 2, U32: 4, U64: 8 };

/** Python's `repr` of a string. */
export const reprText = (text: string) => (text.includes("'") && !text.includes('"') ? `"${text}"` : `'${text.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`);

/** One tensor: its dtype, shape and bytes (a view into the file). */
export interface RawTensor { dtype: string; shape: number[]; bytes: Uint8Array }

/** Every tensor of a safetensors file by name, in header order; `fail` throws with the reason. */
export function readHeader(fail: (m: string) => never, data: Uint8Array): Map<string, RawTensor> {
  if (data.length > MAX_ARTIFACT_BYTES) fail(`artifact is ${data.length} bytes, limit ${MAX_ARTIFACT_BYTES}`);
  if (data.length < 8) fail("artifact too short for a safetensors header");
  const headerLength = new DataView(data.buffer, data.byteOffset, 8).getBigUint64(0, true);
  if (headerLength > BigInt(MAX_HEADER_BYTES) || 8n + headerLength > BigInt(data.length)) fail(`safetensors header length ${headerLength} is invalid`);
  const length = Number(headerLength);
  let text = "";
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(data.subarray(8, 8 + length));
  } catch {
    fail("safetensors header is not UTF-8");
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch {
    fail("safetensors header is not valid JSON");
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) fail("safetensors header must be a JSON object");
  const body = data.subarray(8 + length);
  const spans: [number, number][] = [];
  const out = new Map<string, RawTensor>();
  for (const [name, info] of Object.entries(header as Record<string, unknown>)) {
    if (name === "__metadata__") continue;
    const what = `tensor ${reprText(name)}`;
    if (typeof info !== "object" || info === null || Array.isArray(info)
      || Object.keys(info).sort().join() !== "data_offsets,dtype,shape") fail(`${what}: malformed header entry`);
    const { dtype, shape, data_offsets: offsets } = info as { dtype: unknown; shape: unknown; data_offsets: unknown };
    if (typeof dtype !== "string" || !(dtype in ITEMSIZE)) fail(`${what}: dtype ${typeof dtype === "string" ? reprText(dtype) : String(dtype)} not allowed`);
    if (!Array.isArray(shape) || !shape.every((s) => Number.isSafeInteger(s) && s >= 0)) fail(`${what}: bad shape ${JSON.stringify(shape)}`);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o))) fail(`${what}: bad data_offsets`);
    const numel = (shape as number[]).reduce((a, b) => a * b, 1), [start, stop] = offsets as number[];
    if (!(0 <= start && start <= stop && stop <= body.length) || stop - start !== numel * ITEMSIZE[dtype as string]) {
      fail(`${what}: data_offsets inconsistent with shape/dtype`);
    }
    spans.push([start, stop]);
    out.set(name, { dtype: dtype as string, shape: shape as number[], bytes: body.subarray(start, stop) });
  }
  spans.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  for (let i = 1; i < spans.length; i++) if (spans[i][0] < spans[i - 1][1]) fail("tensor data regions overlap");
  return out;
}

export interface Tensor { dtype: "F32" | "I64"; shape: number[]; data: Float32Array | BigInt64Array }

/** safetensors bytes as `safetensors.torch.save` writes them: tensors by element size, then name;
 *  the header padded with spaces to a multiple of 8. */
export function saveTensors(tensors: Record<string, Tensor>): Uint8Array {
  const size = (t: Tensor) => t.data.BYTES_PER_ELEMENT;
  const order = Object.keys(tensors).sort((a, b) => size(tensors[b]) - size(tensors[a]) || (a < b ? -1 : a > b ? 1 : 0));
  let offset = 0;
  const entries = order.map((name) => {
    const t = tensors[name];
    const start = offset;
    offset += t.data.byteLength;
    return `${JSON.stringify(name)}:{"dtype":"${t.dtype}","shape":[${t.shape.join(",")}],"data_offsets":[${start},${offset}]}`;
  });
  let header = `{${entries.join(",")}}`;
  header += " ".repeat((8 - ((header.length) % 8)) % 8);
  const length = new Uint8Array(8);
  new DataView(length.buffer).setBigUint64(0, BigInt(header.length), true);
  const body = order.map((name) => {
    const t = tensors[name];
    const out = new Uint8Array(t.data.byteLength);
    const view = new DataView(out.buffer);
    t.data.forEach((value: number | bigint, i: number) => (typeof value === "bigint" ? view.setBigInt64(i * 8, value, true) : view.setFloat32(i * 4, value, true)));
    return out;
  });
  return concatBytes([length, stringToBytes(header), ...body]);
}
