// Injected wallets: EIP-6963 discovery, with `window.ethereum` (EIP-1193) as the fallback.
import { defineChain, numberToHex, type Address, type EIP1193Provider, type Hash, type Hex } from "viem";
import type { Config, Deployment } from "./config";
import { AppError, UNKNOWN_CHAIN } from "./errors";

export interface WalletInfo { uuid: string; name: string; icon: string; rdns: string }
export interface Discovered { info: WalletInfo; provider: EIP1193Provider }

interface AnnounceEvent extends Event { detail: Discovered }

/** Wallets announced through EIP-6963, gathered for `waitMs`; `window.ethereum` if none announces. */
export async function discover(waitMs = 300): Promise<Discovered[]> {
  const found = new Map<string, Discovered>();
  const onAnnounce = (event: Event) => {
    const { info, provider } = (event as AnnounceEvent).detail ?? {};
    if (info?.uuid && provider) found.set(info.uuid, { info, provider });
  };
  window.addEventListener("eip6963:announceProvider", onAnnounce);
  window.dispatchEvent(new Event("eip6963:requestProvider"));
  await new Promise((resolve) => setTimeout(resolve, waitMs));
  window.removeEventListener("eip6963:announceProvider", onAnnounce);
  const injected = (window as { ethereum?: EIP1193Provider }).ethereum;
  if (found.size === 0 && injected) {
    found.set("injected", { info: { uuid: "injected", name: "Browser wallet", icon: "", rdns: "" }, provider: injected });
  }
  return [...found.values()];
}

export function viemChain(deployment: Deployment) {
  const rpc = deployment.rpcUrl ? [deployment.rpcUrl] : [];
  return defineChain({
    id: deployment.chainId,
    name: deployment.name,
    nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
    rpcUrls: { default: { http: rpc } },
  });
}

/** One connected wallet: its account, its chain and the deployment on that chain (if any). */
export class Wallet {
  account: Address;
  chainId: number;
  connected = true;
  onChange: () => void = () => {};

  private constructor(readonly config: Config, readonly source: Discovered, account: Address, chainId: number) {
    this.account = account;
    this.chainId = chainId;
    const provider = source.provider;
    provider.on?.("accountsChanged", (accounts: Address[]) => {
      if (accounts[0]) this.account = accounts[0];
      else this.connected = false; // the user disconnected this site in the wallet
      this.onChange();
    });
    provider.on?.("chainChanged", (chainId: string) => {
      this.chainId = Number(chainId);
      this.onChange();
    });
  }

  static async connect(config: Config, source: Discovered): Promise<Wallet> {
    const accounts = (await source.provider.request({ method: "eth_requestAccounts" })) as Address[];
    if (!accounts.length) throw new AppError(`${source.info.name} shared no account: unlock it, create an account, and connect again.`);
    const chainId = Number(await source.provider.request({ method: "eth_chainId" }));
    return new Wallet(config, source, accounts[0], chainId);
  }

  /** The deployment on the wallet's chain; undefined means the wallet is on the wrong network. */
  get deployment(): Deployment | undefined {
    return this.config.deployments.find((d) => d.chainId === this.chainId);
  }

  /** Asks the wallet to move to `target`'s chain (adding it first if the wallet does not know it). */
  async switchTo(target: Deployment): Promise<void> {
    const chainId = numberToHex(target.chainId);
    try {
      await this.source.provider.request({ method: "wallet_switchEthereumChain", params: [{ chainId }] });
    } catch (error) {
      if ((error as { code?: number }).code !== UNKNOWN_CHAIN || !target.rpcUrl) throw error;
      await this.source.provider.request({
        method: "wallet_addEthereumChain",
        params: [{ chainId, chainName: target.name, rpcUrls: [target.rpcUrl], nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 } }],
      });
    }
    this.chainId = Number(await this.source.provider.request({ method: "eth_chainId" }));
  }

  /** Has the wallet sign and send a call; resolves to its hash once the wallet has sent it. */
  async sendTransaction(to: Address, data: Hex, value: bigint): Promise<Hash> {
    return this.source.provider.request({
      method: "eth_sendTransaction",
      params: [{ from: this.account, to, data, value: numberToHex(value) }],
    });
  }
}
