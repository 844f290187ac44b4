// What the page is told by whoever serves it (`config.json` next to index.html): the chains the
// suite is deployed on, as in deployments/*.yaml, and the content store's Kubo RPC API.
import { getAddress, type Address } from "viem";
import { AppError } from "./errors";

export interface Deployment {
  name: string; // the deployment file's stem, e.g. ethereum-local
  chainId: number;
  rpcUrl: string | null; // null: read through the wallet
  block: bigint; // the deployment's block; events are read from there
  market: Address;
  arbiter: Address;
}

export interface Config {
  deployments: Deployment[]; // the first is read before a wallet picks one
  ipfsApi: string | null;
}

interface RawDeployment {
  name: string; chain_id: number; rpc_url?: string | null; block: number; contracts: Record<string, string>;
}

export async function loadConfig(url = "config.json"): Promise<Config> {
  let raw: { deployments: RawDeployment[]; ipfs_api?: string | null };
  try {
    const response = await fetch(url, { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    raw = await response.json();
  } catch (cause) {
    throw new AppError(`Cannot read ${url} (${String(cause)}): serve the app with \`dtm node up\`, or ` +
      "write it with `dtm webapp export`.");
  }
  if (!raw.deployments?.length) {
    throw new AppError("config.json names no deployment: deploy the suite first (`dtm node up` or `ape run deploy`).");
  }
  return {
    ipfsApi: raw.ipfs_api ?? null,
    deployments: raw.deployments.map((d) => ({
      name: d.name,
      chainId: d.chain_id,
      rpcUrl: d.rpc_url ?? null,
      block: BigInt(d.block),
      market: getAddress(d.contracts.Market),
      arbiter: getAddress(d.contracts.Arbiter),
    })),
  };
}
