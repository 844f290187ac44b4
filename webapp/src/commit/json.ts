// A strict JSON reader for untrusted files (what offchain/ml/strict_json.py `parse_json_object` accepts):
// integers come back as bigint, exactly (attrs hold uint256 roots), other numbers as number;
// duplicate keys, NaN/Infinity and trailing bytes are refused.
export type JsonValue = string | bigint | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

const NUMBER = /-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y;
const STRING = /"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/y;
const SPACE = /[ \t\n\r]*/y;

export function parseJson(text: string, what: string): JsonValue {
  let at = 0;
  const fail = (why: string): never => { throw new SyntaxError(`${what} is not valid JSON: ${why} at character ${at}`); };
  const space = () => { SPACE.lastIndex = at; SPACE.test(text); at = SPACE.lastIndex; };
  const match = (pattern: RegExp) => {
    pattern.lastIndex = at;
    const found = pattern.exec(text);
    if (found) at = pattern.lastIndex;
    return found;
  };
  const value = (depth: number): JsonValue => {
    if (depth > 64) fail("nested too deeply");
    space();
    const c = text[at];
    if (c === "{" || c === "[") {
      at++;
      const object = c === "{";
      const out: Record<string, JsonValue> | JsonValue[] = object ? Object.create(null) : [];
      space();
      if (text[at] === (object ? "}" : "]")) { at++; return out; }
      for (;;) {
        if (object) {
          space();
          const key = match(STRING) ?? fail("expected a key");
          const name = JSON.parse(key[0]) as string;
          if (Object.hasOwn(out, name)) fail(`duplicate key ${key[0]}`);
          space();
          if (text[at++] !== ":") fail("expected ':'");
          (out as Record<string, JsonValue>)[name] = value(depth + 1);
        } else (out as JsonValue[]).push(value(depth + 1));
        space();
        const next = text[at++];
        if (next === (object ? "}" : "]")) return out;
        if (next !== ",") fail("expected ','");
      }
    }
    if (c === '"') return JSON.parse((match(STRING) ?? fail("bad string"))[0]) as string;
    for (const [word, literal] of [["true", true], ["false", false], ["null", null]] as const) {
      if (text.startsWith(word, at)) { at += word.length; return literal; }
    }
    const number = match(NUMBER) ?? fail("unexpected character");
    if (number[1] === undefined && number[2] === undefined) return BigInt(number[0]);
    const float = Number(number[0]);
    return Number.isFinite(float) ? float : fail("a number out of range");
  };
  const out = value(0);
  space();
  if (at !== text.length) fail("trailing characters");
  return out;
}

/** UTF-8 bytes as text, refusing invalid sequences. */
export function utf8(bytes: Uint8Array, what: string): string {
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw new SyntaxError(`${what} is not UTF-8`);
  }
}
