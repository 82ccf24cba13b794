// Opens the API's Swagger UI (/v1/ui/ of the base URL in argv[2]) in headless Chromium, checks
// that it renders the operations of the API document, and runs "Try it out" on
// GET /v1/bundles/all (replica aws). Prints one JSON line: {operations, status, errors}.
// PLAYWRIGHT_CORE names the playwright-core module, CHROMIUM the browser.
const { chromium } = require(process.env.PLAYWRIGHT_CORE);

(async () => {
  const base = process.argv[2];
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox"],
  });
  const errors = [];
  try {
    const page = await browser.newPage();
    page.on("pageerror", (e) => errors.push(String(e)));
    page.on("console", (m) => {
      if (m.type() === "error") errors.push(m.text());
    });
    await page.goto(base + "/v1/ui", { waitUntil: "load" });
    await page.waitForSelector(".opblock", { timeout: 30000 });
    const url = page.url();
    const operations = await page.locator(".opblock").count();
    const op = page.locator("#operations-Bundles-enumerateBundles");
    await op.locator(".opblock-summary").first().click();
    await op.getByRole("button", { name: "Try it out" }).click();
    await op.locator('input[placeholder="replica"]').fill("aws");
    await op.getByRole("button", { name: "Execute" }).click();
    const status = op.locator(".live-responses-table tbody .response-col_status").first();
    await status.waitFor({ timeout: 30000 });
    const code = (await status.innerText()).trim();
    console.log(JSON.stringify({ url, operations, status: code, errors }));
  } finally {
    await browser.close();
  }
})().catch((e) => {
  console.error(String(e && e.stack ? e.stack : e));
  process.exit(1);
});
