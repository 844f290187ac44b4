// The market's web app: a wallet bar, views behind hash routes, a refresh on every new block.
import { loadConfig, type Config, type Deployment } from "./config";
import type { Context, View } from "./context";
import { clearNotice, h, notify } from "./dom";
import { AppError, describe } from "./errors";
import { short } from "./format";
import { Market } from "./market";
import { tickCountdowns } from "./views/countdown";
import { overview } from "./views/overview";
import { postPage } from "./views/post";
import { stakePage } from "./views/stake";
import { taskPage } from "./views/task";
import { discover, Wallet, type Discovered } from "./wallet";

const app = {
  config: null as Config | null,
  wallets: [] as Discovered[],
  wallet: null as Wallet | null,
  view: null as View | null,
  market: null as Market | null,
  lastBlock: -1n,
  readFailed: false,
};

function readDeployment(config: Config): Deployment {
  return app.wallet?.deployment ?? config.deployments[0];
}

function renderWallet(): void {
  const bar = document.getElementById("wallet")!;
  const config = app.config!;
  const wallet = app.wallet;
  if (!wallet) {
    if (!app.wallets.length) {
      bar.replaceChildren(h("span", { class: "muted", id: "no-wallet" }, "No wallet found: install a browser wallet to post, stake and withdraw; reading works without one."));
      return;
    }
    bar.replaceChildren(...app.wallets.map((w) =>
      h("button", { id: app.wallets.length === 1 ? "connect" : `connect-${w.info.rdns || w.info.uuid}`, onclick: () => connect(w) },
        `Connect ${w.info.name}`)));
    return;
  }
  const account = h("span", { class: "mono", id: "account", title: wallet.account }, short(wallet.account));
  if (wallet.deployment) {
    bar.replaceChildren(account, h("span", { class: "muted", id: "network" }, `${wallet.deployment.name} (${wallet.chainId})`));
    return;
  }
  const target = config.deployments[0];
  const names = config.deployments.map((d) => `${d.name} (chain ${d.chainId})`).join(", ");
  bar.replaceChildren(
    account,
    h("span", { id: "wrong-network" }, `Wrong network: your wallet is on chain ${wallet.chainId}; the market is on ${names}.`),
    h("button", { id: "switch-network", onclick: () => switchNetwork(target) }, `Switch to ${target.name}`),
  );
}

async function connect(source: Discovered): Promise<void> {
  try {
    const wallet = await Wallet.connect(app.config!, source);
    wallet.onChange = () => {
      if (!wallet.connected) app.wallet = null;
      renderWallet();
      route();
    };
    app.wallet = wallet;
    clearNotice();
  } catch (error) {
    notify(describe(error, "Connecting the wallet"));
  }
  renderWallet();
  route();
}

async function switchNetwork(target: Deployment): Promise<void> {
  try {
    await app.wallet!.switchTo(target);
    clearNotice();
  } catch (error) {
    notify(describe(error, `Switching to ${target.name}`));
  }
  renderWallet();
  route();
}

function route(): void {
  const config = app.config!;
  const root = document.getElementById("view")!;
  let market: Market;
  try {
    market = new Market(readDeployment(config), app.wallet ?? undefined);
  } catch (error) {
    root.replaceChildren(h("p", {}, describe(error, "Reading the market")));
    return;
  }
  const ctx: Context = { config, market, wallet: app.wallet?.deployment ? app.wallet : null };
  const path = location.hash.replace(/^#/, "") || "/";
  const task = path.match(/^\/task\/(\d+)$/);
  const pages: Record<string, (ctx: Context) => View> = { "/stake": stakePage, "/post": postPage };
  const view = task ? taskPage(ctx, BigInt(task[1])) : (pages[path] ?? overview)(ctx);
  app.view = view;
  app.market = market;
  app.lastBlock = -1n;
  root.replaceChildren(view.el);
  void refresh(market);
}

async function refresh(market: Market): Promise<void> {
  const view = app.view;
  try {
    const block = await market.blockNumber();
    if (block === app.lastBlock || view !== app.view) return;
    app.lastBlock = block;
    await view!.refresh();
    document.body.dataset.block = String(block);
    if (app.readFailed) clearNotice(); // the chain answers again
    app.readFailed = false;
  } catch (error) {
    app.readFailed = true;
    notify(describe(error, "Reading the market"));
  }
}

async function start(): Promise<void> {
  try {
    app.config = await loadConfig();
  } catch (error) {
    document.getElementById("view")!.replaceChildren(h("p", { id: "fatal" }, describe(error, "Loading")));
    return;
  }
  app.wallets = await discover();
  renderWallet();
  window.addEventListener("hashchange", route);
  route();
  setInterval(() => {
    tickCountdowns();
    if (app.market) void refresh(app.market);
  }, 1000);
}

void start().catch((error) => notify(error instanceof AppError ? error.message : describe(error, "Starting the app")));
