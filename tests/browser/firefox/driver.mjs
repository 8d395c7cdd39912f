// Drives Debian's firefox-esr for the Python browser tests (tests/browser/firefox_support.py).
//
// One Firefox per process, over WebDriver BiDi with puppeteer-core (it never downloads a
// browser). Commands arrive as JSON lines on stdin: {"id", "cmd", ...args}; each gets one
// JSON line on stdout: {"id", "ok": true, "value"} or {"id", "ok": false, "error"}. Page
// events are lines without an id: {"event": "request" | "console" | "pageerror", ...}.
//
//   node driver.mjs PROFILE_DIR WIDTH HEIGHT LOCALE

import { createInterface } from "node:readline";
import puppeteer from "puppeteer-core";

const [profileDir, width, height, locale] = process.argv.slice(2);

// Every host but 127.0.0.1 goes to a closed port on loopback, and the background services
// that would call out are off: the page under test is the only thing that talks.
const DEAD_PROXY = { host: "127.0.0.1", port: 9 };
const PREFS = {
  "media.navigator.streams.fake": true,
  "media.navigator.permission.disabled": true,
  "media.peerconnection.ice.loopback": true,
  "media.peerconnection.ice.obfuscate_host_addresses": false,
  "media.peerconnection.ice.default_address_only": false,
  "media.autoplay.default": 0,
  "media.autoplay.blocking_policy": 0,
  "intl.accept_languages": locale,
  "intl.locale.requested": locale,
  "network.proxy.type": 1,
  "network.proxy.http": DEAD_PROXY.host,
  "network.proxy.http_port": DEAD_PROXY.port,
  "network.proxy.ssl": DEAD_PROXY.host,
  "network.proxy.ssl_port": DEAD_PROXY.port,
  "network.proxy.no_proxies_on": "127.0.0.1",
  "network.proxy.allow_hijacking_localhost": false,
  "network.captive-portal-service.enabled": false,
  "network.connectivity-service.enabled": false,
  "network.dns.disablePrefetch": true,
  "network.prefetch-next": false,
  "network.http.speculative-parallel-limit": 0,
  "browser.safebrowsing.malware.enabled": false,
  "browser.safebrowsing.phishing.enabled": false,
  "browser.safebrowsing.downloads.enabled": false,
  "browser.safebrowsing.blockedURIs.enabled": false,
  "browser.safebrowsing.provider.mozilla.updateURL": "",
  "app.normandy.enabled": false,
  "app.update.enabled": false,
  "datareporting.healthreport.uploadEnabled": false,
  "datareporting.policy.dataSubmissionEnabled": false,
  "toolkit.telemetry.enabled": false,
  "extensions.update.enabled": false,
  "extensions.getAddons.cache.enabled": false,
  "services.settings.server": "http://127.0.0.1:9/",
  "browser.region.network.url": "",
  "geo.provider.network.url": "",
  "media.gmp-manager.url": "",
  "media.gmp-gmpopenh264.enabled": false,
};

const browser = await puppeteer.launch({
  browser: "firefox",
  protocol: "webDriverBiDi",
  executablePath: "/usr/bin/firefox-esr",
  headless: true,
  userDataDir: profileDir,
  extraPrefsFirefox: PREFS,
  defaultViewport: { width: Number(width), height: Number(height) },
});
const page = (await browser.pages())[0] ?? (await browser.newPage());

/** @param {object} obj */
function write(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

page.on("request", (r) => write({ event: "request", url: r.url() }));
page.on("console", (m) => write({ event: "console", type: m.type(), text: m.text() }));
page.on("pageerror", (e) => write({ event: "pageerror", text: String(e) }));

/** Runs a function source in the page with one JSON argument, as Playwright's evaluate. */
async function evaluate(fn, arg) {
  return page.evaluate(
    (src, a) => {
      const value = (0, eval)(`(${src})`);
      return typeof value === "function" ? value(a) : value;
    },
    fn,
    arg ?? null,
  );
}

const commands = {
  goto: ({ url }) => page.goto(url, { waitUntil: "load" }).then(() => null),
  evaluate: ({ fn, arg }) => evaluate(fn, arg),
  click: ({ selector }) => page.click(selector).then(() => null),
  press: ({ key }) => page.keyboard.press(key).then(() => null),
  screenshot: ({ path }) => page.screenshot({ path }).then(() => null),
  viewport: ({ width: w, height: h }) => page.setViewport({ width: w, height: h }).then(() => null),
  close: async () => {
    await browser.close();
    return null;
  },
};

const lines = createInterface({ input: process.stdin });
write({ event: "ready" });
// Commands run concurrently (a test may wait on one page promise while it clicks).
for await (const line of lines) {
  const { id, cmd, ...args } = JSON.parse(line);
  const run = async () => {
    try {
      const value = await commands[cmd](args);
      write({ id, ok: true, value: value === undefined ? null : value });
    } catch (err) {
      write({ id, ok: false, error: String(err && err.stack ? err.stack : err) });
    }
  };
  if (cmd === "close") {
    await run();
    break;
  }
  run();
}
process.exit(0);
