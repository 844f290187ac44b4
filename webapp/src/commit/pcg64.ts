// numpy's PCG64 bit generator seeded through SeedSequence, and `Generator.permutation`, exactly:
// the held-out split of your own data (offchain/ml/data.py) draws its row order from them.
const M32 = 0xffffffffn, M64 = (1n << 64n) - 1n, M128 = (1n << 128n) - 1n;
const PCG_MULT = 0x2360ed051fc65da44385df649fccf645n;

/** `np.random.SeedSequence(entropy).generate_state(words, np.uint64)`. */
function seedSequence(entropy: bigint, words: number): bigint[] {
  const chunks: bigint[] = [];
  do { chunks.push(entropy & M32); entropy >>= 32n; } while (entropy > 0n);
  let hashConst = 0x43b0d7e5n;
  const hashmix = (value: bigint) => {
    value = (value ^ hashConst) & M32;
    hashConst = (hashConst * 0x931e8875n) & M32;
    value = (value * hashConst) & M32;
    return value ^ (value >> 16n);
  };
  const mix = (x: bigint, y: bigint) => {
    const result = (0xca01f9ddn * x - 0x4973f715n * y) & M32;
    return result ^ (result >> 16n);
  };
  const pool = [0, 1, 2, 3].map((i) => hashmix(chunks[i] ?? 0n));
  for (let src = 0; src < 4; src++) for (let dst = 0; dst < 4; dst++) if (src !== dst) pool[dst] = mix(pool[dst], hashmix(pool[src]));
  for (let src = 4; src < chunks.length; src++) for (let dst = 0; dst < 4; dst++) pool[dst] = mix(pool[dst], hashmix(chunks[src]));
  let stateConst = 0x8b51f9ddn;
  const halves = Array.from({ length: words * 2 }, (_, i) => {
    let value = (pool[i % 4] ^ stateConst) & M32;
    stateConst = (stateConst * 0x58f38dedn) & M32;
    value = (value * stateConst) & M32;
    return value ^ (value >> 16n);
  });
  return Array.from({ length: words }, (_, i) => halves[2 * i] | (halves[2 * i + 1] << 32n));
}

/** `np.random.PCG64(seed)`: its raw 64-bit outputs. */
function pcg64Raw(seed: number | bigint): () => bigint {
  const [s0, s1, i0, i1] = seedSequence(BigInt(seed), 4);
  const inc = ((((i0 << 64n) | i1) << 1n) | 1n) & M128;
  let state = 0n;
  const step = () => { state = (state * PCG_MULT + inc) & M128; };
  step();
  state = (state + ((s0 << 64n) | s1)) & M128;
  step();
  return () => {
    step();
    const rot = state >> 122n;
    const x = ((state >> 64n) ^ state) & M64;
    return ((x >> rot) | (x << ((64n - rot) & 63n))) & M64;
  };
}

/** `np.random.Generator(np.random.PCG64(seed)).permutation(n)`: the Fisher-Yates shuffle of
 *  `arange(n)` that `Generator.shuffle` runs, with numpy's bounded draws (`random_interval`: a
 *  masked 32-bit draw, the low half of a 64-bit output first, below 2^32; else masked 64-bit). */
export function permutation(seed: number | bigint, n: number): Uint32Array {
  const next = pcg64Raw(seed);
  let spare: number | null = null;
  const next32 = () => {
    if (spare !== null) { const out = spare; spare = null; return out; }
    const value = next();
    spare = Number(value >> 32n);
    return Number(value & M32);
  };
  const out = Uint32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i >= 1; i--) {
    let mask = i;
    for (const shift of [1, 2, 4, 8, 16]) mask |= mask >>> shift;
    let j: number;
    do j = (next32() & mask) >>> 0; while (j > i);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}
