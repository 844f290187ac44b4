// The content store through the Kubo RPC API: every upload's CID is computed here first, and the
// store's answer must be that CID (as `KuboStore.add_bytes` checks in offchain/storage/store.py).
import { computeCid } from "./commit/cid";
import { AppError } from "./errors";

/** The options that decide a CID, pinned on every add (`KuboStore._add_options`). */
const ADD_OPTIONS = "cid-version=0&raw-leaves=false&chunker=size-262144&hash=sha2-256&pin=true";

export async function add(api: string, data: Uint8Array, what: string): Promise<string> {
  const expected = computeCid(data);
  const form = new FormData();
  form.append("file", new Blob([data as Uint8Array<ArrayBuffer>]), what);
  let response: Response;
  try {
    response = await fetch(`${api}/api/v0/add?${ADD_OPTIONS}`, { method: "POST", body: form });
  } catch {
    throw new AppError(`The content store at ${api} does not answer (or refuses this page's origin): start it with ` +
      "`dtm node up`, which allows this app, and try again.");
  }
  if (!response.ok) {
    const reason = await response.json().then((body) => body.Message, () => `HTTP ${response.status}`);
    throw new AppError(`The content store refused the ${what}: ${reason}.`);
  }
  const answered = JSON.parse((await response.text()).trim().split("\n").at(-1)!).Hash;
  if (answered !== expected) {
    throw new AppError(`The content store stored the ${what} as ${answered}, not ${expected}: it does not import ` +
      "files as Kubo does by default; use another store.");
  }
  return expected;
}

/** A file's bytes by CID, checked against the CID (the store is trusted for availability only). */
export async function cat(api: string, cid: string, what: string): Promise<Uint8Array> {
  let response: Response;
  try {
    response = await fetch(`${api}/api/v0/cat?arg=${encodeURIComponent(cid)}`, { method: "POST" });
  } catch {
    throw new AppError(`The content store at ${api} does not answer: start it (\`dtm node up\`) and try again.`);
  }
  if (!response.ok) {
    const reason = await response.json().then((body) => body.Message, () => `HTTP ${response.status}`);
    throw new AppError(`The content store cannot give the ${what} ${cid}: ${reason}.`);
  }
  const data = new Uint8Array(await response.arrayBuffer());
  if (computeCid(data) !== cid) throw new AppError(`The content store answered other bytes than the ${what} ${cid}: use another store.`);
  return data;
}
