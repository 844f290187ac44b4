// Drives the web app in headless Chromium for one scenario of test_webapp.py:
//   node tests/webapp/browser.mjs SCENARIO < params.json
// and prints what the page showed as one JSON line; the Python test checks it against the chain.
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { installWallet } from "./wallet.mjs";

const scenario = process.argv[2];
const params = JSON.parse(readFileSync(0, "utf8"));
const TIMEOUT = 20_000;

const text = async (page, selector) => (await page.locator(selector).first().innerText()).trim();
/** The notice the page shows after an action, once it appears (the page hides the last one when an
 *  action starts). */
async function notice(page) {
  await page.locator("#notice:not([hidden])").waitFor({ timeout: TIMEOUT });
  return { kind: await page.locator("#notice").getAttribute("class"), text: await text(page, "#notice") };
}
async function changed(page, selector, before) {
  // the new text as seen when it changed (a re-render may blank the element for a moment)
  const seen = await page.waitForFunction(([s, b]) => {
    const now = document.querySelector(s)?.textContent?.trim();
    return now && now !== b ? now : false;
  }, [selector, before], { timeout: TIMEOUT });
  return seen.jsonValue();
}
async function cards(page) {
  const out = {};
  for (const id of ["bonded", "locked", "free", "unbonding", "credits", "escrow"]) out[id] = await text(page, `#${id} b`);
  return out;
}

async function rpc(method, args) {
  const response = await fetch(params.wallet.rpcUrl, { method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params: args }) });
  const body = await response.json();
  if (body.error) throw new Error(`${method}: ${body.error.message}`);
  return body.result;
}

async function shot(page, name) {
  mkdirSync(params.screenshots, { recursive: true });
  const path = join(params.screenshots, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

async function connect(page, wallet) {
  await page.goto(params.app_url);
  await page.locator("#connect").click({ timeout: TIMEOUT });
  if (wallet.chainId !== params.chain_id) {
    await page.locator("#wrong-network").waitFor({ timeout: TIMEOUT });
  } else {
    await page.locator("#network").waitFor({ timeout: TIMEOUT });
  }
}

const scenarios = {
  /** Connect on the wrong network, switch, read the market and a task, stake, unbond, withdraw. */
  async stake_and_unbond(page) {
    const seen = { screenshots: [] };
    const wallet = await installWallet(page, { ...params.wallet, chainId: 1, switchable: [params.chain_id] });
    await connect(page, wallet);
    seen.wrong_network = await text(page, "#wrong-network");
    seen.screenshots.push(await shot(page, "wrong-network"));
    await page.locator("#switch-network").click();
    seen.network = await text(page, "#network");
    seen.account = await page.locator("#account").getAttribute("title");

    await page.locator(`#tasks tr[data-task="${params.task_id}"]`).waitFor({ timeout: TIMEOUT });
    seen.task_row = await text(page, `#tasks tr[data-task="${params.task_id}"]`);
    seen.jackpot = await text(page, "#jackpot b");
    seen.jackpot_terms = await text(page, "#jackpot-terms");
    await page.check("#mine"); // this account posted nothing
    await page.locator(`#tasks tr[data-task="${params.task_id}"]`).waitFor({ state: "detached", timeout: TIMEOUT });
    seen.only_mine = await page.locator("#tasks tbody tr").allInnerTexts();
    await page.uncheck("#mine");
    seen.screenshots.push(await shot(page, "market"));

    await page.locator(`#tasks tr[data-task="${params.task_id}"] a`).click();
    await page.locator("#timeline tbody tr").first().waitFor({ timeout: TIMEOUT });
    seen.task_state = await text(page, "#task-state");
    seen.task_deadline = await text(page, "#task-deadline");
    seen.timeline = await page.locator("#timeline tbody tr").allInnerTexts();
    const first = seen.task_deadline;
    seen.task_deadline_later = await changed(page, "#task-deadline", first); // the countdown ticks
    seen.screenshots.push(await shot(page, "task"));

    await page.goto(params.app_url + "#/stake");
    await page.locator("#balances #bonded").waitFor({ timeout: TIMEOUT });
    seen.before = await cards(page);
    await page.fill("#deposit-amount", "2.5");
    await page.check("#role-solver");
    await page.check("#role-whistleblower");
    await page.click("#deposit");
    seen.deposit_notice = await notice(page);
    await changed(page, "#bonded b", seen.before.bonded);
    seen.roles = await text(page, "#roles");
    seen.after_deposit = await cards(page);

    await page.fill("#unbond-amount", "1");
    await page.click("#unbond");
    seen.unbond_notice = await notice(page);
    await changed(page, "#unbonding b", seen.after_deposit.unbonding);
    seen.after_unbond = await cards(page);
    seen.unbonding_countdown = await text(page, "#unbonding .countdown");
    seen.withdraw_enabled_before_delay = await page.locator("#withdraw-stake").isEnabled();
    seen.screenshots.push(await shot(page, "stake"));

    await rpc("evm_increaseTime", [3_601]); // past the unbonding delay
    await rpc("evm_mine", []);
    await page.locator("#withdraw-stake:enabled").waitFor({ timeout: TIMEOUT });
    await page.click("#withdraw-stake");
    seen.withdraw_notice = await notice(page);
    await changed(page, "#unbonding b", seen.after_unbond.unbonding);
    seen.after_withdraw = await cards(page);
    seen.activity = await page.locator("#activity tbody tr").allInnerTexts();

    // the CLI's task is past its expiry now: anyone may enforce it
    await page.goto(`${params.app_url}#/task/${params.task_id}`);
    await page.locator("#expire-task").click({ timeout: TIMEOUT });
    seen.expire_notice = await notice(page);
    seen.expired_state = await changed(page, "#task-state", "open");
    seen.requests = wallet.requests;
    return seen;
  },

  /** The wallet refuses to sign: the page says so and what to do. */
  async rejected_signature(page) {
    const wallet = await installWallet(page, { ...params.wallet, chainId: params.chain_id, switchable: [], reject: ["eth_sendTransaction"] });
    await connect(page, wallet);
    await page.goto(params.app_url + "#/stake");
    await page.locator("#balances #bonded").waitFor({ timeout: TIMEOUT });
    await page.fill("#deposit-amount", "1");
    await page.check("#role-solver");
    await page.click("#deposit");
    const seen = { notice: await notice(page), bonded: await text(page, "#bonded b") };
    seen.button_enabled = await page.locator("#deposit").isEnabled();
    await page.fill("#deposit-amount", "abc");
    await page.click("#deposit");
    await page.waitForFunction(() => document.querySelector("#notice")?.textContent?.includes("abc"), null, { timeout: TIMEOUT });
    seen.bad_amount = await notice(page);
    seen.screenshots = [await shot(page, "rejected")];
    await page.fill("#unbond-amount", "100");
    await page.click("#unbond");
    seen.refused = await notice(page);
    seen.requests = wallet.requests;
    return seen;
  },

  /** Switch a wallet to a chain it does not know, then post a task from the page: a schedule the
 *  chain would refuse first, then a good one. */
  async post_task(page) {
    const wallet = await installWallet(page, { ...params.wallet, chainId: 5, switchable: [] });
    await connect(page, wallet);
    await page.click("#switch-network"); // a chain this wallet does not know yet: the app adds it
    await page.locator("#network").waitFor({ timeout: TIMEOUT });
    await page.click('nav a[href="#/post"]');
    await page.fill("#post-steps", "45");
    await page.click("#post");
    const seen = { bad_steps: await notice(page) };
    await page.fill("#post-steps", String(params.steps));
    seen.screenshots = [await shot(page, "post")];
    await page.click("#post");
    seen.posted = await notice(page);
    await page.locator("#timeline tbody tr").first().waitFor({ timeout: TIMEOUT });
    seen.hash = await page.evaluate(() => location.hash);
    seen.task_state = await text(page, "#task-state");
    seen.screenshots.push(await shot(page, "posted"));

    await page.click("#cancel-task");
    seen.cancel_notice = await notice(page);
    seen.cancelled_state = await changed(page, "#task-state", "open");
    await page.click('nav a[href="#/stake"]');
    await page.locator("#withdraw-credits:enabled").waitFor({ timeout: TIMEOUT });
    seen.credits = await text(page, "#credits b");
    await page.click("#withdraw-credits");
    seen.withdraw_notice = await notice(page);
    seen.credits_after = await changed(page, "#credits b", seen.credits);
    seen.requests = wallet.requests;
    return seen;
  },

  /** Post a task on your own data file: a malformed file first (its error), then a CSV (its
   *  summary line); the held-out rows come back as a download. */
  async post_own_data(page) {
    const wallet = await installWallet(page, { ...params.wallet, chainId: params.chain_id, switchable: [] });
    await connect(page, wallet);
    await page.click('nav a[href="#/post"]');
    await page.setInputFiles("#post-file", { name: "bad.csv", mimeType: "text/csv", buffer: Buffer.from(params.bad_csv) });
    const seen = { bad_file: await notice(page) };
    await page.setInputFiles("#post-file", params.csv);
    await page.waitForFunction(() => document.querySelector("#post-data-summary")?.textContent, null, { timeout: TIMEOUT });
    seen.summary = await text(page, "#post-data-summary");
    seen.dataset_menu_disabled = await page.locator("#post-dataset").isDisabled();
    await page.fill("#post-steps", String(params.steps));
    seen.screenshots = [await shot(page, "post-own-data")];
    const [download] = await Promise.all([page.waitForEvent("download", { timeout: 60_000 }), page.click("#post")]);
    seen.download_name = download.suggestedFilename();
    await download.saveAs(params.holdout_out);
    seen.posted = await notice(page);
    await page.locator("#timeline tbody tr").first().waitFor({ timeout: TIMEOUT });
    seen.hash = await page.evaluate(() => location.hash);
    seen.requests = wallet.requests;
    return seen;
  },

  /** Post your own program (`dtm model export`'s net.json and init.safetensors) on the digits, or
   *  the model preset `params.preset` on its dataset, with `params.menus`' choices (once the summary
   *  line includes `params.summary_has`): its summary and price lines (with the
   *  suggested payment, unless `params.unpriced`: no recent task to price it by), the built-in
   *  datasets offered with the MLP and with it, then the task. */
  async post_program(page) {
    const wallet = await installWallet(page, { ...params.wallet, chainId: params.chain_id, switchable: [] });
    await connect(page, wallet);
    await page.click('nav a[href="#/post"]');
    await page.fill("#post-steps", String(params.steps));
    await page.selectOption("#post-k", String(params.k));
    const offered = () => page.$$eval("#post-dataset option", (options) => options.map((o) => o.value));
    const mlpDatasets = await offered();
    if (params.preset) {
      await page.selectOption("#post-model", params.preset);
      for (const [key, value] of Object.entries(params.menus ?? {})) await page.selectOption(`#post-${params.preset}-${key}`, value);
    } else {
      await page.setInputFiles("#post-program", params.program);
      await page.setInputFiles("#post-weights", params.weights);
    }
    await page.waitForFunction((has) => { const line = document.querySelector("#post-program-summary")?.textContent; return line && line.includes(has); }, params.summary_has ?? "", { timeout: TIMEOUT });
    const summary = await text(page, "#post-program-summary");
    // the price line of the program (its work a step is the summary's) with a suggested payment
    const step = summary.match(/([\d.]+ \w*FLOP) per step/)[1];
    await page.waitForFunction(([w, unpriced]) => document.querySelector("#post-price")?.textContent?.startsWith(`Work: ${w} a step`)
      && (unpriced || !document.querySelector("#post-use-price").hidden), [step, Boolean(params.unpriced)], { timeout: TIMEOUT });
    const seen = { summary, price: await text(page, "#post-price"),
      mlp_datasets: mlpDatasets, datasets: await offered(), dataset: await page.inputValue("#post-dataset"),
      mlp_fields_disabled: await page.locator("#post-hidden").isDisabled() && await page.locator("#post-lr").isDisabled() };
    if (!params.unpriced) {
      await page.click("#post-use-price");
      seen.payment = await page.inputValue("#post-payment");
    }
    await page.fill("#post-payment", "1");
    seen.screenshots = [await shot(page, params.preset ? "post-preset" : "post-program")];
    await page.click("#post");
    seen.posted = await notice(page);
    await page.locator("#timeline tbody tr").first().waitFor({ timeout: TIMEOUT });
    seen.hash = await page.evaluate(() => location.hash);
    seen.requests = wallet.requests;
    return seen;
  },

  /** Programs the page refuses, each with its line, sending nothing: weights of the wrong shapes,
   *  then a program whose input does not fit the data. */
  async refuse_program(page) {
    const wallet = await installWallet(page, { ...params.wallet, chainId: params.chain_id, switchable: [] });
    await connect(page, wallet);
    await page.click('nav a[href="#/post"]');
    await page.setInputFiles("#post-program", params.program);
    await page.setInputFiles("#post-weights", params.wrong_weights);
    const seen = { wrong_weights: await notice(page) };
    await page.click("#post");
    seen.wrong_weights_posting = await notice(page);
    await page.setInputFiles("#post-weights", params.weights);
    seen.wrong_data = await notice(page); // shown as the files are read, and again when posting
    await page.click("#post");
    seen.wrong_data_posting = await notice(page);
    seen.screenshots = [await shot(page, "refuse-program")];
    seen.requests = wallet.requests;
    return seen;
  },

  /** A task followed from open to finalised on its page (no wallet needed): the loss curve appears
   *  when the proof is published, is fetched once while the page refreshes on every block, and stays;
   *  then the weights, checked by the page and downloaded. */
  async follow_task(page) {
    const cats = []; // the content store's files the page asks for
    page.on("request", (request) => { if (request.url().includes("/api/v0/cat")) cats.push(new URL(request.url()).searchParams.get("arg")); });
    const state = () => text(page, "#task-state");
    const block = () => page.evaluate(() => Number(document.body.dataset.block));
    await page.goto(`${params.app_url}#/task/${params.task_id}`);
    await page.locator("#timeline tbody tr").first().waitFor({ timeout: TIMEOUT });
    const opened = { state: await state(), curves: await page.locator("#loss-curve").count() };
    writeFileSync(params.ready, "open"); // the test starts the solver now
    await page.locator("#loss-curve").waitFor({ timeout: params.wait_ms });
    const drawn = { state: await state(), block: await block(), cats: cats.length };
    await page.waitForFunction(() => document.querySelector("#task-state")?.textContent === "finalised", null, { timeout: params.wait_ms });
    await page.waitForFunction((b) => Number(document.body.dataset.block) >= b, (await block()) + 3, { timeout: TIMEOUT });
    const finalised = { block: await block(), cats: cats.length };
    const curve = await page.locator("#loss-curve");
    const [steps, losses] = [JSON.parse(await curve.getAttribute("data-steps")), JSON.parse(await curve.getAttribute("data-losses"))];
    const caption = await text(page, "#curve figcaption");
    const points = await page.locator("#loss-curve circle").count();
    const labels = await page.locator("#loss-curve text").allTextContents();
    const screenshots = [await shot(page, "loss-curve")];

    await page.locator("#get-result").click({ timeout: TIMEOUT });
    await page.locator("#download-weights").waitFor({ timeout: TIMEOUT });
    const checked = await text(page, "#result-checked");
    const [download] = await Promise.all([page.waitForEvent("download"), page.click("#download-weights")]);
    await download.saveAs(params.out);
    screenshots.push(await shot(page, "result"));
    await page.goto(`${params.app_url}#/`);
    await page.locator("#jackpot-activity tbody tr td:nth-child(2)").first().waitFor({ timeout: TIMEOUT });
    const jackpot = await page.locator("#jackpot-activity tbody tr").allInnerTexts();
    return { opened, drawn, finalised, cats, steps, losses, caption, points, labels, checked, jackpot, screenshots };
  },

  /** A proof whose checkpoint fails its committed root: the reason instead of a curve; a program
   *  task: the CLI command that draws its curve. */
  async curve_refused(page) {
    await page.goto(`${params.app_url}#/task/${params.task_id}`);
    await page.locator("#curve-error").waitFor({ timeout: TIMEOUT });
    const seen = { error: await text(page, "#curve-error"), curves: await page.locator("#loss-curve").count(),
      retry: await page.locator("#curve-retry").count(),
      screenshots: [await shot(page, "loss-curve-refused")] };
    await page.goto(`${params.app_url}#/task/${params.program_id}`);
    await page.locator("#curve-note").waitFor({ timeout: TIMEOUT });
    return { ...seen, program_note: await text(page, "#curve-note"), program_curves: await page.locator("#loss-curve").count() };
  },

  /** A group task with a proof: the page names the command that assembles its model. */
  async group_task(page) {
    await page.goto(`${params.app_url}#/task/${params.task_id}`);
    await page.locator("#curve-note").waitFor({ timeout: TIMEOUT });
    return { note: await text(page, "#curve-note"), curves: await page.locator("#loss-curve").count(),
      errors: await page.locator("#curve-error").count(), screenshots: [await shot(page, "group-task")] };
  },

  /** A store that answers other bytes for a file: the page refuses the result and says so. */
  async get_result_refused(page) {
    await page.goto(`${params.app_url}#/task/${params.task_id}`);
    await page.locator("#get-result").click({ timeout: TIMEOUT });
    await page.locator("#notice:not([hidden])").waitFor({ timeout: TIMEOUT });
    return { notice: await notice(page), downloads: await page.locator("#download-weights").count(),
      screenshots: [await shot(page, "result-refused")] };
  },

  /** No wallet, and a chain that does not answer. */
  async dead_chain(page) {
    await page.goto(params.app_url);
    await page.locator("#notice:not([hidden])").waitFor({ timeout: TIMEOUT });
    return { wallet_bar: await text(page, "#wallet"), notice: await notice(page), screenshots: [await shot(page, "dead-chain")] };
  },

  /** A cold first load: time until the task list shows, and what was transferred. */
  async first_load(page) {
    const client = await page.context().newCDPSession(page);
    await client.send("Network.enable");
    await client.send("Network.setCacheDisabled", { cacheDisabled: true });
    let transferred = 0;
    client.on("Network.loadingFinished", (event) => { transferred += event.encodedDataLength; });
    const started = Date.now();
    await page.goto(params.app_url);
    await page.locator("#tasks tr[data-task]").first().waitFor({ timeout: TIMEOUT });
    const tasks_shown_ms = Date.now() - started;
    const timing = await page.evaluate(() => {
      const nav = performance.getEntriesByType("navigation")[0];
      const app = performance.getEntriesByType("resource").find((r) => r.name.endsWith("/app.js"));
      return { dom_content_loaded_ms: nav.domContentLoadedEventEnd, load_ms: nav.loadEventEnd, app_js_bytes: app?.encodedBodySize ?? 0 };
    });
    return { tasks_shown_ms, transferred_bytes: transferred, ...timing, screenshots: [await shot(page, "first-load")] };
  },
};

const browser = await chromium.launch({
  executablePath: params.chromium ?? execFileSync("which", ["chromium"]).toString().trim(),
  args: ["--no-sandbox", "--disable-dev-shm-usage"], // root in a container: no sandbox, a small /dev/shm
  headless: true,
});
const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
const errors = [];
page.on("pageerror", (error) => errors.push(String(error)));
try {
  const seen = await scenarios[scenario](page);
  console.log(JSON.stringify({ ...seen, page_errors: errors }));
} catch (error) {
  await shot(page, `${scenario}-failed`).catch(() => {});
  console.error(`${scenario}: ${error.message}\npage errors: ${errors.join("\n") || "none"}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
