// A test wallet: an EIP-1193 provider injected into the page and announced through EIP-6963, whose
// requests are answered here, in Node, signing with an Anvil dev key. Tests only; the app finds it
// the way it finds any injected wallet.
import { createWalletClient, defineChain, http, numberToHex } from "viem";
import { privateKeyToAccount } from "viem/accounts";

const SHIM = `(() => {
  const listeners = {};
  const provider = {
    async request(args) {
      const answer = await window.__testWallet(JSON.stringify(args));
      for (const [event, value] of answer.events || []) (listeners[event] || []).forEach((fn) => fn(value));
      if (answer.error) throw Object.assign(new Error(answer.error.message), { code: answer.error.code });
      return answer.result;
    },
    on(event, fn) { (listeners[event] ||= []).push(fn); },
    removeListener(event, fn) { listeners[event] = (listeners[event] || []).filter((f) => f !== fn); },
  };
  const detail = Object.freeze({
    info: { uuid: "5f8b4d2e-0000-4000-8000-000000000001", name: "Test wallet", rdns: "org.dtm.testwallet",
            icon: "data:image/svg+xml,<svg xmlns='http://www.w3.org/2000/svg'/>" },
    provider,
  });
  const announce = () => window.dispatchEvent(new CustomEvent("eip6963:announceProvider", { detail }));
  window.addEventListener("eip6963:requestProvider", announce);
  announce();
})();`;

const rejection = { code: 4001, message: "User rejected the request." };

/** Installs the wallet in `page`. `chainId` is the chain it starts on; `switchable` the chains it
 *  knows and can switch to (others are added through `wallet_addEthereumChain`); `reject` the
 *  methods it refuses as a user would (EIP-1193 error 4001). */
export async function installWallet(page, { key, rpcUrl, chainId, switchable, reject = [] }) {
  const account = privateKeyToAccount(key);
  const state = { chainId, connected: false, requests: [] };
  const signer = (id) => createWalletClient({
    account,
    chain: defineChain({ id, name: `chain ${id}`, nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 }, rpcUrls: { default: { http: [rpcUrl] } } }),
    transport: http(rpcUrl),
  });
  const forward = async (method, params) => {
    const response = await fetch(rpcUrl, { method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }) });
    const body = await response.json();
    if (body.error) return { error: body.error };
    return { result: body.result };
  };

  await page.exposeFunction("__testWallet", async (json) => {
    const { method, params = [] } = JSON.parse(json);
    state.requests.push(method);
    if (reject.includes(method)) return { error: rejection };
    switch (method) {
      case "eth_requestAccounts":
        state.connected = true;
        return { result: [account.address], events: [["accountsChanged", [account.address]]] };
      case "eth_accounts":
        return { result: state.connected ? [account.address] : [] };
      case "eth_chainId":
        return { result: numberToHex(state.chainId) };
      case "wallet_switchEthereumChain": {
        const wanted = Number(params[0].chainId);
        if (!switchable.includes(wanted)) return { error: { code: 4902, message: `Unrecognized chain ID ${params[0].chainId}.` } };
        state.chainId = wanted;
        return { result: null, events: [["chainChanged", numberToHex(wanted)]] };
      }
      case "wallet_addEthereumChain": { // EIP-3085: the wallet learns the chain and moves to it
        const added = Number(params[0].chainId);
        if (Number((await forward("eth_chainId", [])).result) !== added) return { error: { code: -32603, message: "The RPC URL serves another chain." } };
        switchable.push(added);
        state.chainId = added;
        return { result: null, events: [["chainChanged", numberToHex(added)]] };
      }
      case "eth_sendTransaction": {
        const [tx] = params;
        try {
          const hash = await signer(state.chainId).sendTransaction({
            to: tx.to, data: tx.data, value: tx.value ? BigInt(tx.value) : 0n, gas: tx.gas ? BigInt(tx.gas) : undefined,
          });
          return { result: hash };
        } catch (error) {
          return { error: { code: -32603, message: error.shortMessage ?? String(error) } };
        }
      }
      default:
        return forward(method, params);
    }
  });
  await page.addInitScript(SHIM);
  return state;
}
