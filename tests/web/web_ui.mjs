// Drives the page of a running `relais serve --cluster` (over two nodes,
// started by web_ui.sh) in headless Chromium through puppeteer-core, as a
// user would: the page loads under its Content-Security-Policy without an
// error, asks for the API key once and keeps it, lists the model from
// /v1/models, streams a chat reply that grows on screen and ends equal to
// the server's own greedy answer, Stop ends a reply early, the Markdown
// renderer never turns model text into markup, and the cluster view shows
// both nodes with their layers and live figures. Screenshots go to OUT.
//
// usage: node web_ui.mjs URL API_KEY OUT_DIR   (prints TAP-like ok/FAIL lines)
import puppeteer from "puppeteer-core";
import fs from "node:fs";
import path from "node:path";

const [url, key, out] = process.argv.slice(2);
let pass = 0, fail = 0;
const ok = (cond, name, detail = "") => {
  if (cond) { pass++; console.log("ok - " + name); } else { fail++; console.log("FAIL - " + name + (detail ? ": " + detail : "")); }
};

const profile = fs.mkdtempSync(path.join(out, "profile-"));
const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--user-data-dir=" + profile],
});

// The server's greedy answer to a chat, without streaming, for comparison.
async function greedy(messages, maxTokens) {
  const r = await fetch(url + "/v1/chat/completions", {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: "Bearer " + key },
    body: JSON.stringify({ messages, max_tokens: maxTokens, temperature: 0 }),
  });
  return (await r.json()).choices[0].message.content;
}

// Sends text from the composer and waits until the reply is finished.
async function chat(page, text) {
  await page.type("#prompt", text);
  await page.click("#send");
  await page.waitForFunction(() => {
    const m = [...document.querySelectorAll(".message.assistant")].pop();
    return m && m.dataset.finish;
  }, { timeout: 60000 });
  return page.evaluate(() => {
    const m = [...document.querySelectorAll(".message.assistant")].pop();
    return { finish: m.dataset.finish, text: m.querySelector(".body").textContent, lens: window.lens || [] };
  });
}

try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1100, height: 680 });
  const problems = [];
  page.on("pageerror", (e) => problems.push("page error: " + e.message));
  page.on("console", (m) => {
    // the first /v1/models answers 401 until the key is given: expected
    if (m.type() === "error" && !/status of 401/.test(m.text())) problems.push("console: " + m.text());
  });
  const cdp = await page.createCDPSession();

  // ---- load: the key is asked once and kept ----
  const resp = await page.goto(url + "/", { waitUntil: "domcontentloaded" });
  ok(resp.status() === 200 && (await page.title()) === "relais", "the page loads at /");
  ok(/script-src 'self'/.test(resp.headers()["content-security-policy"] || ""), "served with a Content-Security-Policy");
  await page.waitForSelector("#key-dialog[open]", { timeout: 10000 });
  ok(true, "the page asks for the API key (the server has one)");
  await page.type("#key-input", key);
  await page.click("#key-ok");
  await page.waitForFunction(() => document.querySelector("#model").options.length > 0, { timeout: 10000 });
  const model = await page.$eval("#model", (s) => s.value);
  const served = (await (await fetch(url + "/v1/models", { headers: { Authorization: "Bearer " + key } })).json()).data[0].id;
  ok(model === served, "the model field is set from /v1/models", model + " vs " + served);
  ok((await page.evaluate(() => localStorage.getItem("relais.apiKey"))) === key, "the key is kept in localStorage");
  await page.reload({ waitUntil: "domcontentloaded" });
  await page.waitForFunction(() => document.querySelector("#model").options.length > 0, { timeout: 10000 });
  ok(!(await page.$("#key-dialog[open]")), "after a reload the key is not asked again");

  // ---- a streamed chat ----
  const system = "You tell short stories.";
  await page.$eval("#system", (e, v) => { e.value = v; }, system);
  await page.$eval("#temperature", (e) => { e.value = "0"; });
  await page.$eval("#max-tokens", (e) => { e.value = "80"; });
  // the reply's length each time the page changes it
  await page.evaluate(() => {
    window.lens = [];
    new MutationObserver(() => {
      const b = [...document.querySelectorAll(".message.assistant .body")].pop();
      if (b) window.lens.push(b.textContent.length);
    }).observe(document.getElementById("messages"), { childList: true, subtree: true, characterData: true });
  });
  // a slow link, so that the stream is seen arriving piece by piece
  await cdp.send("Network.emulateNetworkConditions", { offline: false, latency: 0, downloadThroughput: 4000, uploadThroughput: -1 });
  const prompt = "Once upon a time";
  const first = await chat(page, prompt);
  const want = await greedy([{ role: "system", content: system }, { role: "user", content: prompt }], 80);
  const growing = [...new Set(first.lens.filter((n) => n > 0))];
  ok(first.finish === "length" || first.finish === "stop", "the chat completes", "finish " + first.finish);
  ok(growing.length >= 3, "the reply is shown as it streams", growing.length + " distinct lengths on screen");
  const norm = (s) => s.replace(/\s+/g, " ").trim();
  ok(first.text.length > 0 && norm(first.text) === norm(want), "the streamed reply is the server's greedy answer",
     JSON.stringify(first.text).slice(0, 200) + " vs " + JSON.stringify(want).slice(0, 200));
  ok(/tokens\/s/.test(await page.$eval("#chat-stats", (e) => e.textContent)), "the reply's speed is shown");
  await page.screenshot({ path: path.join(out, "chat.png") });

  // ---- Stop ----
  await cdp.send("Network.emulateNetworkConditions", { offline: false, latency: 0, downloadThroughput: 1500, uploadThroughput: -1 });
  await page.$eval("#max-tokens", (e) => { e.value = "300"; });   // within the context of 512 with the history
  await page.type("#prompt", "Tell me about the sea");
  await page.click("#send");
  await page.waitForFunction(() => {
    const m = [...document.querySelectorAll(".message.assistant")].pop();
    return m.querySelector(".body").textContent.length > 0 || m.dataset.finish;
  }, { timeout: 30000 });
  ok(await page.$eval("#stop", (b) => !b.disabled), "Stop is enabled while a reply streams");
  await page.click("#stop");
  await page.waitForFunction(() => [...document.querySelectorAll(".message.assistant")].pop().dataset.finish, { timeout: 10000 });
  const stopped = await page.evaluate(() => [...document.querySelectorAll(".message.assistant")].pop().dataset.finish);
  ok(stopped === "stopped", "Stop ends the reply", "finish " + stopped);
  ok(await page.$eval("#send", (b) => !b.disabled), "after Stop a new message may be sent");
  await cdp.send("Network.emulateNetworkConditions", { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });

  // ---- Markdown: structure rendered, markup never ----
  const md = await page.evaluate(() => {
    const box = document.createElement("div");
    box.appendChild(Markdown.render("# Title\n**bold** and `x<y>` <img src=x onerror=\"window.pwned=1\">\n\n" +
      "- one\n- [link](javascript:alert(1))\n\n```c\nint main(void) { return 0; }\n</pre><script>window.pwned=1</script>\n```"));
    return {
      strong: box.querySelectorAll("strong").length, lis: box.querySelectorAll("li").length,
      code: (box.querySelector("pre.code code") || {}).textContent || "", lang: (box.querySelector("pre .lang") || {}).textContent,
      img: box.querySelectorAll("img").length, script: box.querySelectorAll("script").length,
      links: box.querySelectorAll("a").length, text: box.textContent,
    };
  });
  ok(md.strong === 1 && md.lis === 2 && md.lang === "c" && md.code.includes("int main(void)"),
     "Markdown: bold, lists and a fenced code block with its language", JSON.stringify(md));
  ok(md.img === 0 && md.script === 0 && md.text.includes("<img src=x") && md.code.includes("<script>"),
     "Markdown: HTML in model text shows as text, never as elements");
  ok(md.links === 0, "Markdown: a javascript: link is not made a link");
  ok(!(await page.evaluate(() => window.pwned)), "nothing of the model's text ran");

  // ---- the cluster view ----
  await page.click("#tab-cluster");
  await page.waitForFunction(() => document.querySelectorAll("#nodes tbody tr").length === 2, { timeout: 15000 });
  // a chat while the view polls: the next poll shows what it cost each node
  await page.click("#tab-chat");
  await page.click("#clear");
  await page.$eval("#max-tokens", (e) => { e.value = "300"; });
  await chat(page, "The little bird");
  await page.click("#tab-cluster");
  const live = await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll("#nodes tbody tr")];
    return rows.length === 2 && rows.every((tr) => parseFloat(tr.cells[5].textContent) > 0) &&
      rows.map((tr) => [...tr.cells].map((c) => c.textContent));
  }, { timeout: 10000 }).then((h) => h.jsonValue()).catch(() => null);
  const rows = live || await page.$$eval("#nodes tbody tr", (trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent)));
  console.log("# cluster view: " + JSON.stringify(rows));
  ok(live !== null, "after a chat each node shows its tokens/s, busy share and time per micro-batch");
  ok(rows.every((r) => /^\d+ %$/.test(r[6]) && parseFloat(r[7]) > 0), "busy share and ms per micro-batch are figures");
  ok(rows.length === 2 && rows[0][0] === "node1" && rows[1][0] === "node2", "the cluster view lists node1 and node2");
  ok(rows.every((r) => r[1] === "ready"), "both nodes are shown ready");
  const health = await (await fetch(url + "/health", { headers: { Authorization: "Bearer " + key } })).json();
  ok(rows.every((r, i) => r[2] === health.nodes[i].layers && r[2] !== "none"), "each node's layers as /health gives them",
     rows.map((r) => r[2]).join(", "));
  ok(rows.every((r) => /B$/.test(r[8]) && !/^0 B/.test(r[8])), "each node's traffic from /health");
  const summary = await page.$eval("#summary", (e) => e.textContent);
  ok(summary.includes(served) && /Generated \d+ tokens/.test(summary), "the summary names the model and the tokens generated");
  await page.screenshot({ path: path.join(out, "cluster.png") });

  ok(problems.length === 0, "no page error, no CSP violation, no failed request", problems.join(" | "));
} catch (e) {
  ok(false, "the page test ran to its end", e.stack);
} finally {
  await browser.close();
  fs.rmSync(profile, { recursive: true, force: true });
}
console.log(`# web: ${pass} passed, ${fail} failed`);
process.exit(fail ? 1 : 0);
