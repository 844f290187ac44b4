// Your own data, read in the page exactly as offchain/ml/data.py `load_dataset` reads it (.csv,
// .npy, .npz, .safetensors; docs/protocol.md §9.1): the same validation and one-line errors, the
// same float32 conversions and labels, and the same seeded held-out split (numpy's PCG64
// permutation), so the training rows, their dataset root and CID are those the CLI publishes.
import { permutation } from "./commit/pcg64";
import { pythonFloat, roundHalfEven } from "./commit/task";
import { AppError } from "./errors";
import type { Dataset } from "./publish";
import { readHeader, reprText, saveTensors } from "./safetensors";

export const MAX_DATA_BYTES = 256 * 1024 * 1024;
export const MAX_ROWS = 1 << 24;
export const MAX_DATASET_DIM = 4096;
export const MAX_CLASSES = 256;
const EXACT_FLOAT32_INT = 1 << 24;
const FORMATS = [".safetensors", ".npz", ".npy", ".csv", ".txt"];

/** A file the page cannot use; the message is one line naming the file. */
export class DataError extends AppError {
  name = "DataError"; // data.js is a bundle of its own: the page knows its errors by name
}

export interface LoadedData {
  train: Dataset;
  holdout: Dataset | null;
  numClasses: number; // max label + 1 over all rows
  description: string; // what `dtm task post --data` prints after "data "
  classNames: string[] | null;
}
export interface LoadOptions { labelColumn?: string; holdout?: number; seed?: number | bigint }

// ── arrays ──────────────────────────────────────────────────────────
type Numbers = Float32Array | Float64Array | Int8Array | Int16Array | Int32Array | Uint8Array | Uint16Array | Uint32Array
  | BigInt64Array | BigUint64Array;
/** A numeric array as numpy holds it: its dtype's name and kind, its shape, its values in C order. */
interface NdArray { dtype: string; kind: "f" | "i" | "u" | "b"; shape: number[]; data: Numbers }

const DTYPES: Record<string, [string, "f" | "i" | "u" | "b", number]> = {
  f2: ["float16", "f", 2], f4: ["float32", "f", 4], f8: ["float64", "f", 8], i1: ["int8", "i", 1], i2: ["int16", "i", 2],
  i4: ["int32", "i", 4], i8: ["int64", "i", 8], u1: ["uint8", "u", 1], u2: ["uint16", "u", 2], u4: ["uint32", "u", 4],
  u8: ["uint64", "u", 8], b1: ["bool", "b", 1],
};
const ST_DTYPES: Record<string, string> = { F16: "f2", F32: "f4", F64: "f8", I8: "i1", I16: "i2", I32: "i4", I64: "i8",
  U8: "u1", U16: "u2", U32: "u4", U64: "u8" };

function half(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1, exponent = (bits >> 10) & 0x1f, fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 31) return fraction ? NaN : sign * Infinity;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

/** Values of dtype `code` (a key of DTYPES) from little- or big-endian bytes. */
function decode(bytes: Uint8Array, code: string, count: number, littleEndian = true): Numbers {
  const size = DTYPES[code][2];
  const copy = new Uint8Array(bytes.subarray(0, count * size)); // a copy, aligned
  if (!littleEndian && size > 1) for (let i = 0; i < copy.length; i += size) copy.subarray(i, i + size).reverse();
  const buffer = copy.buffer;
  switch (code) {
    case "f2": {
      const bits = new Uint16Array(buffer);
      return Float32Array.from(bits, half);
    }
    case "f4": return new Float32Array(buffer);
    case "f8": return new Float64Array(buffer);
    case "i1": return new Int8Array(buffer);
    case "i2": return new Int16Array(buffer);
    case "i4": return new Int32Array(buffer);
    case "i8": return new BigInt64Array(buffer);
    case "u2": return new Uint16Array(buffer);
    case "u4": return new Uint32Array(buffer);
    case "u8": return new BigUint64Array(buffer);
    default: return new Uint8Array(buffer); // u1, b1
  }
}

const shapeText = (shape: number[]) => (shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(", ")})`);
const product = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
const listText = (names: string[]) => `[${names.map(reprText).join(", ")}]`;
/** Python's `sorted` on strings: by code point. */
function byCodePoint(a: string, b: string): number {
  for (let i = 0, j = 0; i < a.length && j < b.length;) {
    const x = a.codePointAt(i)!, y = b.codePointAt(j)!;
    if (x !== y) return x - y;
    i += x > 0xffff ? 2 : 1;
    j += y > 0xffff ? 2 : 1;
  }
  return a.length - b.length;
}

// ── Python's number parsing ─────────────────────────────────────────
const SPACE = "\\t\\n\\v\\f\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
const STRIP = new RegExp(`^[${SPACE}]+|[${SPACE}]+$`, "g");
/** `str.strip()`. */
export const strip = (text: string) => text.replace(STRIP, "");
const DIGITS = "[0-9](?:_?[0-9])*";
const FLOAT = new RegExp(`^[+-]?(?:(?:(?:${DIGITS}(?:\\.(?:${DIGITS})?)?|\\.${DIGITS})(?:[eE][+-]?${DIGITS})?)|inf|infinity|nan)$`, "i");
const INT = new RegExp(`^[+-]?${DIGITS}$`);

/** `float(text)`, or null where Python raises ValueError. */
export function parseFloatPy(text: string): number | null {
  const s = strip(text);
  if (!FLOAT.test(s)) return null;
  const body = s.replace(/_/g, "").toLowerCase(), negative = body.startsWith("-");
  const word = body.replace(/^[+-]/, "");
  if (word === "nan") return NaN;
  if (word.startsWith("inf")) return negative ? -Infinity : Infinity;
  return Number(body);
}
/** `_integer` of data.py: `int(text)`, else an integral `float(text)`; null where it raises. */
function integerPy(text: string): bigint | null {
  const s = strip(text);
  if (INT.test(s)) return BigInt(s.replace(/_/g, "").replace(/^\+/, ""));
  const value = parseFloatPy(s);
  return value !== null && Number.isInteger(value) ? BigInt(value) : null;
}

// ── the CSV reader ──────────────────────────────────────────────────
/** Python's `csv.reader` (excel dialect) over a file opened with `newline=""`: each non-empty row
 *  with the number of the physical line it ends on (`reader.line_num`). */
function* csvRows(text: string, fail: (message: string) => never): Generator<[number, string[]]> {
  const lines = text.match(/[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$/g) ?? [];
  let fields: string[] = [], field = "", quoted = false, afterQuote = false, inField = false, lineNum = 0;
  const save = () => {
    fields.push(field);
    field = "";
    inField = quoted = afterQuote = false;
  };
  const add = (c: string) => {
    if (field.length >= 131072) fail("malformed CSV: field larger than field limit (131072)");
    field += c;
  };
  for (const line of lines) {
    lineNum++;
    let ended = false;
    for (const c of line) {
      if (ended) continue; // the '\n' of a '\r\n'
      if (quoted) {
        if (c === '"') { quoted = false; afterQuote = true; } else add(c);
      } else if (afterQuote) {
        if (c === '"') { add(c); quoted = true; afterQuote = false; } else if (c === ",") save();
        else if (c === "\r" || c === "\n") { save(); ended = true; } else { add(c); afterQuote = false; inField = true; }
      } else if (c === ",") save();
      else if (c === "\r" || c === "\n") {
        if (inField || fields.length) save();
        ended = true;
      } else if (c === '"' && !inField) quoted = true;
      else { add(c); inField = true; }
    }
    if (quoted) continue; // a quoted field goes on on the next line
    if (!ended && (inField || afterQuote || fields.length)) save();
    if (fields.length) yield [lineNum, fields];
    fields = [];
  }
  if (quoted) { // end of data inside a quoted field: the row as read so far
    save();
    yield [lineNum, fields];
  }
}

/** Why `bytes` is not UTF-8, as Python's decoder words it. */
function utf8Error(bytes: Uint8Array): string | null {
  for (let i = 0; i < bytes.length;) {
    const b = bytes[i];
    const need = b < 0x80 ? 0 : b >= 0xc2 && b <= 0xdf ? 1 : b >= 0xe0 && b <= 0xef ? 2 : b >= 0xf0 && b <= 0xf4 ? 3 : -1;
    if (need < 0) return "invalid start byte";
    for (let k = 1; k <= need; k++) {
      if (i + k >= bytes.length) return "unexpected end of data";
      const c = bytes[i + k];
      const low = k === 1 ? (b === 0xe0 ? 0xa0 : b === 0xf0 ? 0x90 : 0x80) : 0x80;
      const high = k === 1 ? (b === 0xed ? 0x9f : b === 0xf4 ? 0x8f : 0xbf) : 0xbf;
      if (c < low || c > high) return "invalid continuation byte";
    }
    i += need + 1;
  }
  return null;
}

/** `_column`: the label column by header name or index (negative counts from the end). */
function column(fail: (m: string) => never, labelColumn: string | undefined, width: number, header: string[] | null): number {
  if (labelColumn === undefined) return width - 1;
  if (header !== null && header.includes(labelColumn)) return header.indexOf(labelColumn);
  const s = strip(labelColumn);
  if (!INT.test(s)) {
    const where = header ? `columns: ${header.join(", ")}` : "the file has no header";
    fail(`no label column ${reprText(labelColumn)} (${where})`);
  }
  const index = Number(s.replace(/_/g, ""));
  if (!(-width <= index && index < width)) fail(`label column ${index} out of range for ${width} columns`);
  return ((index % width) + width) % width;
}

function readCsv(fail: (m: string) => never, bytes: Uint8Array, labelColumn: string | undefined): [NdArray, bigint[], string[] | null] {
  const reason = utf8Error(bytes);
  if (reason) fail(`not UTF-8 text (${reason})`);
  const text = new TextDecoder("utf-8").decode(bytes); // a leading BOM is dropped, as by utf-8-sig
  const rows = csvRows(text, fail);
  const take = () => { const next = rows.next(); return next.done ? null : next.value; };
  let first = take();
  const second = take();
  if (first === null) fail("no data rows");
  let header: string[] | null = null;
  const below = second ? second[1] : [];
  if (first[1].some((a, i) => i < below.length && parseFloatPy(a) === null && parseFloatPy(below[i]) !== null)) {
    header = first[1];
    first = null;
  }
  const width = (header ?? first![1]).length;
  const label = column(fail, labelColumn, width, header);
  let values = new Float64Array(1024), count = 0;
  const labels: string[] = [];
  const each = function* () {
    if (first) yield first;
    if (second) yield second;
    yield* rows;
  };
  for (const [line, row] of each()) {
    if (row.length !== width) fail(`line ${line} has ${row.length} fields, expected ${width}`);
    const [cell] = row.splice(label, 1);
    if (count + row.length > values.length) {
      const grown = new Float64Array(Math.max(values.length * 2, count + row.length));
      grown.set(values);
      values = grown;
    }
    for (const feature of row) {
      const value = parseFloatPy(feature);
      if (value === null) fail(`line ${line}: non-numeric feature ${reprText(feature)}`);
      values[count++] = value;
    }
    labels.push(strip(cell));
    if (labels.length > MAX_ROWS || count * 4 > MAX_DATA_BYTES) checkSize(fail, labels.length, width - 1);
  }
  const x: NdArray = { dtype: "float64", kind: "f", shape: [labels.length, width - 1], data: values.slice(0, count) };
  const empty = labels.indexOf("");
  if (empty >= 0) fail(`data row ${empty + 1} has an empty label`);
  const ints: bigint[] = [];
  for (const text of labels) {
    const value = integerPy(text);
    if (value === null) { // string labels: class ids by sorted order
      const names = [...new Set(labels)].sort(byCodePoint);
      const ids = new Map(names.map((name, i) => [name, BigInt(i)]));
      return [x, labels.map((name) => ids.get(name)!), names];
    }
    ints.push(value);
  }
  if (ints.length) labelRange(fail, ints.reduce((a, b) => (b < a ? b : a)), ints.reduce((a, b) => (b > a ? b : a)));
  return [x, ints, null];
}

// ── binary formats ──────────────────────────────────────────────────
export function readSafetensors(fail: (m: string) => never, data: Uint8Array): Map<string, NdArray> {
  return new Map([...readHeader(fail, data)].map(([name, t]) => {
    const code = ST_DTYPES[t.dtype], [dtypeName, kind] = DTYPES[code];
    return [name, { dtype: dtypeName, kind, shape: t.shape, data: decode(t.bytes, code, product(t.shape)) }];
  }));
}

/** One .npy array: the header (shape, dtype) is checked before the data is read. */
function readNpy(fail: (m: string) => never, data: Uint8Array, what: string): NdArray {
  const invalid = (why: string): never => fail(`${what} is not a valid .npy array (${why})`);
  const magic = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59];
  if (data.length < 8 || magic.some((b, i) => data[i] !== b)) invalid("the magic string is not correct");
  const version = `(${data[6]}, ${data[7]})`;
  let start: number, length: number;
  if (version === "(1, 0)" && data.length >= 10) [start, length] = [10, data[8] | (data[9] << 8)];
  else if (version === "(2, 0)" && data.length >= 12) [start, length] = [12, new DataView(data.buffer, data.byteOffset + 8, 4).getUint32(0, true)];
  else return invalid(`unsupported .npy version ${version}`);
  if (data.length < start + length) invalid("the header is truncated");
  const header = new TextDecoder("latin1").decode(data.subarray(start, start + length));
  const descr = /'descr':\s*'([<>|=]?)([a-zA-Z])(\d*)'/.exec(header);
  const fortran = /'fortran_order':\s*(True|False)/.exec(header);
  const shapeMatch = /'shape':\s*\(([\d,\s]*)\)/.exec(header);
  if (!descr || !fortran || !shapeMatch) return invalid(`cannot parse header: ${reprText(header.trim())}`);
  const shape = shapeMatch[1].split(",").map((s) => s.trim()).filter(Boolean).map(Number);
  const code = `${descr[2]}${descr[3]}`;
  if (!(code in DTYPES)) fail(`${what} has dtype ${descr[1] === "|" ? "" : descr[1]}${code}; only numeric arrays are read`);
  const [dtype, kind, itemsize] = DTYPES[code];
  const size = product(shape) * itemsize;
  if (size > MAX_DATA_BYTES) fail(`${what} is ${size} bytes, limit ${MAX_DATA_BYTES}`);
  if (data.length - start - length < size) fail(`${what} is truncated`);
  let values = decode(data.subarray(start + length), code, product(shape), descr[1] !== ">");
  if (fortran[1] === "True" && shape.length >= 2) {
    const rows = shape[0], cols = product(shape.slice(1));
    const c = new (values.constructor as { new(n: number): Numbers })(values.length);
    for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) c[i * cols + j] = values[j * rows + i];
    values = c;
  }
  return { dtype, kind, shape, data: values };
}

const u16 = (d: Uint8Array, at: number) => d[at] | (d[at + 1] << 8);
const u32 = (d: Uint8Array, at: number) => (d[at] | (d[at + 1] << 8) | (d[at + 2] << 16) | (d[at + 3] << 24)) >>> 0;

/** The members of a zip archive (stored or deflated), by name. */
async function unzip(fail: (m: string) => never, data: Uint8Array): Promise<Map<string, Uint8Array>> {
  let end = -1;
  for (let i = data.length - 22; i >= Math.max(0, data.length - 22 - 65535); i--) {
    if (u32(data, i) === 0x06054b50) { end = i; break; }
  }
  if (end < 0) fail("cannot read: File is not a zip file");
  const members = new Map<string, Uint8Array>();
  let at = u32(data, end + 16);
  for (let n = u16(data, end + 10); n > 0; n--) {
    if (u32(data, at) !== 0x02014b50) fail("cannot read: Bad magic number for central directory");
    const method = u16(data, at + 10), compressed = u32(data, at + 20), size = u32(data, at + 24);
    const nameLength = u16(data, at + 28), local = u32(data, at + 42);
    const name = new TextDecoder().decode(data.subarray(at + 46, at + 46 + nameLength));
    at += 46 + nameLength + u16(data, at + 30) + u16(data, at + 32);
    if (u32(data, local) !== 0x04034b50) fail("cannot read: Bad magic number for file header");
    const begin = local + 30 + u16(data, local + 26) + u16(data, local + 28);
    if (size > MAX_DATA_BYTES) fail(`cannot read: a member of ${size} bytes, limit ${MAX_DATA_BYTES}`);
    const packed = data.subarray(begin, begin + compressed);
    if (method === 0) members.set(name, packed);
    else if (method !== 8) fail(`cannot read: compression method ${method} is not supported`);
    else {
      try {
        const stream = new Blob([packed.slice()]).stream().pipeThrough(new DecompressionStream("deflate-raw"));
        members.set(name, new Uint8Array(await new Response(stream).arrayBuffer()));
      } catch {
        fail("cannot read: Error -3 while decompressing data");
      }
    }
  }
  return members;
}

// ── features and labels ─────────────────────────────────────────────
function checkSize(fail: (m: string) => never, rows: number, dim: number): void {
  if (rows === 0) fail("no data rows");
  if (dim === 0) fail("no feature columns");
  if (rows > MAX_ROWS || dim > MAX_DATASET_DIM) fail(`${rows} rows x ${dim} features exceeds the limits ${MAX_ROWS} x ${MAX_DATASET_DIM}`);
  if (rows * (4 * dim + 8) > MAX_DATA_BYTES) fail(`the dataset would be ${rows * (4 * dim + 8)} bytes, limit ${MAX_DATA_BYTES}`);
}

function labelRange(fail: (m: string) => never, low: bigint, high: bigint): void {
  if (high >= 1n << 63n) fail(`label ${high} does not fit in int64 (>= 2^63)`);
  if (low < 0n) fail(`negative label ${low}`);
}

/** `_features`: x as float32 under the conversion rules. */
function features(fail: (m: string) => never, x: NdArray): Float32Array {
  if (x.shape.length !== 2) fail(`x must be 2-D (rows, features), got shape ${shapeText(x.shape)}`);
  checkSize(fail, x.shape[0], x.shape[1]);
  const dim = x.shape[1];
  if (x.kind === "f") {
    const bad = (x.data as Float64Array).findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) fail(`data row ${Math.floor(bad / dim) + 1} contains NaN or infinity`);
    const out = Float32Array.from(x.data as Float64Array);
    if (!out.every(Number.isFinite)) fail("feature values beyond the float32 range");
    return out;
  }
  if (x.kind === "i" || x.kind === "u") {
    const limit = BigInt(EXACT_FLOAT32_INT);
    for (const v of x.data) if (BigInt(v) > limit || BigInt(v) < -limit) fail("integer features beyond +-2^24 are not exact in float32");
    return Float32Array.from(x.data as Int32Array, Number);
  }
  return fail(`features must be numbers, got dtype ${x.dtype}`);
}

/** `_labels`: integer dtypes (or integral floats where allowed), in [0, 2^63). */
function labels(fail: (m: string) => never, y: NdArray, integralFloats = false): bigint[] {
  if (y.shape.length !== 1) fail(`y must be 1-D, got shape ${shapeText(y.shape)}`);
  if (y.kind === "f" && integralFloats) {
    if (!(y.data as Float64Array).every((v) => Number.isFinite(v) && v === Math.round(v))) fail("labels must be integers");
    const values = Array.from(y.data as Float64Array);
    if (values.length) {
      const [low, high] = [values.reduce((a, b) => Math.min(a, b)), values.reduce((a, b) => Math.max(a, b))];
      if (high >= 2 ** 63) fail(`label ${BigInt(high)} does not fit in int64 (>= 2^63)`);
      if (low < 0) fail(`negative label ${BigInt(low)}`);
    }
    return values.map((v) => BigInt(v));
  }
  if (y.kind !== "i" && y.kind !== "u") fail(`labels must be integers, got dtype ${y.dtype}`);
  const values = Array.from(y.data as BigInt64Array, (v) => BigInt(v));
  if (values.length) labelRange(fail, values.reduce((a, b) => (b < a ? b : a)), values.reduce((a, b) => (b > a ? b : a)));
  return values;
}

/** `_split_columns`: (x, labels) from {x, y} tensors, or from one 2-D table and its label column. */
function splitColumns(fail: (m: string) => never, arrays: Map<string, NdArray>, labelColumn: string | undefined): [NdArray, bigint[]] {
  const names = [...arrays.keys()].sort(byCodePoint);
  if (!arrays.has("y")) {
    const table = arrays.get("x");
    if (!table) return fail(`expected tensors x and y, found ${listText(names)}`);
    if (table.shape.length !== 2) {
      fail(`a .npy file must be a 2-D array (rows, features + label), got shape ${shapeText(table.shape)}; 1-D token data needs --seq-len`);
    }
    const [rows, width] = table.shape;
    const label = column(fail, labelColumn, width, null);
    const Make = table.data.constructor as { new(n: number): Numbers };
    const kept = new Make(rows * (width - 1)), picked = new Make(rows);
    for (let i = 0, k = 0; i < rows; i++) {
      for (let j = 0; j < width; j++) {
        if (j === label) picked[i] = table.data[i * width + j];
        else kept[k++] = table.data[i * width + j];
      }
    }
    const y = labels(fail, { ...table, shape: [rows], data: picked }, true);
    return [{ ...table, shape: [rows, width - 1], data: kept }, y];
  }
  if (names.join() !== "x,y") fail(`expected tensors x and y, found ${listText(names)}`);
  return [arrays.get("x")!, labels(fail, arrays.get("y")!)];
}

// ── the split and the result ────────────────────────────────────────
function subset(x: Float32Array, y: bigint[], dim: number, rows: number[]): Dataset {
  const xs = new Float32Array(rows.length * dim), ys = new BigInt64Array(rows.length);
  rows.forEach((row, i) => {
    xs.set(x.subarray(row * dim, (row + 1) * dim), i * dim);
    ys[i] = y[row];
  });
  const classes = Number(ys.reduce((a, b) => (b > a ? b : a), 0n)) + 1;
  const bytes = saveTensors({ x: { dtype: "F32", shape: [rows.length, dim], data: xs }, y: { dtype: "I64", shape: [rows.length], data: ys } });
  return { bytes, x: xs, y: ys, rows: rows.length, dim, classes };
}

/** `_split`: a seeded choice of `round(rows * holdout)` rows (at least one when asked for); both
 *  parts keep the file's row order. */
function split(fail: (m: string) => never, x: Float32Array, y: bigint[], dim: number, holdout: number, seed: number | bigint): [Dataset, Dataset | null] {
  const rows = y.length;
  const held = holdout > 0 ? Math.max(1, roundHalfEven(rows * holdout)) : 0;
  if (held >= rows) fail(`${rows} rows: too few to hold ${held} out and train on the rest`);
  const order = permutation(seed, rows);
  const sorted = (part: Uint32Array) => Array.from(part).sort((a, b) => a - b);
  const kept = sorted(order.subarray(0, held));
  return [subset(x, y, dim, sorted(order.subarray(held))), kept.length ? subset(x, y, dim, kept) : null];
}

/** Reads, validates and splits a data file as `load_dataset(name, label_column=…, holdout=…,
 *  seed=…)` does; throws a DataError naming the file. */
export async function loadDataset(name: string, bytes: Uint8Array, options: LoadOptions = {}): Promise<LoadedData> {
  const fail = (message: string): never => { throw new DataError(`${name}: ${message}`); };
  const { labelColumn, holdout = 0.1, seed = 0 } = options;
  const dot = name.lastIndexOf(".");
  const extension = dot > 0 ? name.slice(dot) : "";
  const suffix = extension.toLowerCase();
  if (!FORMATS.includes(suffix)) fail(`unknown extension ${reprText(extension)} (use one of ${FORMATS.join(", ")})`);
  if (!(holdout >= 0 && holdout < 1)) fail(`held-out fraction must be in [0, 1), got ${pythonFloat(holdout)}`);
  if (suffix === ".txt") fail("text is token data, which needs a sequence model; the MLP preset trains classifiers only");
  if (labelColumn !== undefined && suffix !== ".npy" && suffix !== ".csv") fail("a label column applies to .csv and .npy files only");
  if (bytes.length > MAX_DATA_BYTES) fail(`file is ${bytes.length} bytes, limit ${MAX_DATA_BYTES}`);
  let x: NdArray, y: bigint[], names: string[] | null = null;
  if (suffix === ".csv") [x, y, names] = readCsv(fail, bytes, labelColumn);
  else {
    let arrays: Map<string, NdArray>;
    if (suffix === ".safetensors") arrays = readSafetensors(fail, bytes);
    else if (suffix === ".npy") arrays = new Map([["x", readNpy(fail, bytes, "array")]]);
    else {
      const members = await unzip(fail, bytes);
      const keys = [...members.keys()].map((key) => key.replace(/\.npy$/, ""));
      if (keys.sort(byCodePoint).join("\n") !== "x\ny") fail(`an .npz file must hold exactly arrays x and y, found ${listText([...new Set(keys)])}`);
      arrays = new Map([...members].map(([key, data]) => {
        const short = key.replace(/\.npy$/, "");
        return [short, readNpy(fail, data, `array ${reprText(short)}`)];
      }));
    }
    [x, y] = splitColumns(fail, arrays, labelColumn);
  }
  const notes = suffix !== ".csv" && x.dtype !== "float32" ? [`features ${x.dtype} -> float32`] : [];
  const xs = features(fail, x);
  // `_classification`
  const [rows, dim] = x.shape;
  if (rows !== y.length) fail(`x has ${rows} rows but y has ${y.length}`);
  checkSize(fail, rows, dim);
  const classes = Number(y.reduce((a, b) => (b > a ? b : a))) + 1;
  if (classes > MAX_CLASSES) fail(`label ${classes - 1} too large: at most ${MAX_CLASSES} classes`);
  if (new Set(y).size < 2) fail(`fewer than 2 classes (every label is ${names ? names[0] : y[0]})`);
  if (names) notes.push(`labels ${names.slice(0, 8).map((label, i) => `${label}=${i}`).join(", ")}${names.length > 8 ? ", ..." : ""}`);
  const [train, held] = split(fail, xs, y, dim, holdout, seed);
  const text = `${dim} features, ${classes} classes${notes.map((note) => `; ${note}`).join("")}`;
  const base = name.slice(name.lastIndexOf("/") + 1);
  return { train, holdout: held, numClasses: classes, classNames: names,
    description: `${base}: ${train.rows} training rows + ${held ? held.rows : 0} held-out, ${text}` };
}
