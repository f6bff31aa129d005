// Shared by the browser tests: Debian's Chromium through playwright-core, the server's URL,
// screenshots, and checks that fail with a clear message.
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

export const BASE = process.env.AETR_URL || 'http://127.0.0.1:9999';
export const SHOTS = process.env.AETR_SCREENSHOTS || join(process.cwd(), 'screenshots');
const EXECUTABLE = process.env.CHROMIUM || '/usr/bin/chromium';

/** Launches Chromium with a fresh profile; `colorScheme`: 'light' or 'dark'. */
export async function launch() {
  const profile = mkdtempSync(join(tmpdir(), 'aetr-chromium-'));
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: EXECUTABLE,
    headless: true,
    viewport: { width: 1440, height: 900 },
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--disable-dev-shm-usage',
    ],
  });
  const close = async () => {
    await browser.close();
    rmSync(profile, { recursive: true, force: true });
  };
  return { context: browser, close };
}

/** A new page that fails the test on a script error or a CSP violation. */
export async function page(context, { colorScheme = 'light' } = {}) {
  const p = await context.newPage();
  await p.emulateMedia({ colorScheme });
  p.problems = [];
  p.on('pageerror', (e) => p.problems.push(`page error: ${e.message}`));
  p.on('console', (m) => {
    // 400 and 422 are refusals that the editor shows next to their fields; 401, 404 and 409
    // are answers the pages handle.
    if (m.type() === 'error' && !/the server responded with a status of (40[0149]|422)/.test(m.text())) {
      p.problems.push(`console error: ${m.text()}`);
    }
  });
  return p;
}

export function assertNoProblems(p) {
  if (p.problems.length) throw new Error(`the page reported problems:\n${p.problems.join('\n')}`);
}

export async function screenshot(p, name) {
  mkdirSync(SHOTS, { recursive: true });
  const file = join(SHOTS, `${name}.png`);
  await p.screenshot({ path: file });
  console.log(`screenshot: ${file}`);
}

export function check(condition, message) {
  if (!condition) throw new Error(message);
}

/** Calls aetr's API from the test (not the browser), with AETR_TOKEN when it is set. */
export async function api(method, path, body) {
  const headers = body === undefined ? {} : { 'content-type': 'application/json' };
  if (process.env.AETR_TOKEN) headers.authorization = `Bearer ${process.env.AETR_TOKEN}`;
  const response = await fetch(`${BASE}/api/v1${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let parsed = text;
  try { parsed = JSON.parse(text); } catch { /* text */ }
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return parsed;
}

/** Runs the named steps in order, printing each; exits 1 on the first failure. */
export async function steps(list) {
  let failed = false;
  for (const [name, fn] of list) {
    const t = performance.now();
    try {
      await fn();
      console.log(`ok   ${name} (${Math.round(performance.now() - t)} ms)`);
    } catch (e) {
      console.log(`FAIL ${name}: ${e.stack || e}`);
      failed = true;
      break;
    }
  }
  return failed;
}

/** Replaces the text of the first CodeMirror editor in `scope` by typing, as a person would. */
export async function typeInEditor(p, scope, text) {
  const editor = scope.locator('.CodeMirror').first();
  await editor.click();
  await p.keyboard.press('Control+A');
  await p.keyboard.press('Delete');
  await p.keyboard.type(text);
}

/** Waits until `condition()` holds, checking every 50 ms; fails with `what` after `timeout` ms. */
export async function until(condition, what, timeout = 10000) {
  const end = Date.now() + timeout;
  while (!(await condition())) {
    if (Date.now() > end) throw new Error(`timed out after ${timeout} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * A service that the test plays, on 127.0.0.1: it answers 202 to every POST and keeps each in
 * `received` ({path, body, callback: its `aetr` URL}). Resolves to {received, url, close}.
 */
export async function recordingService() {
  const received = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      const url = new URL(req.url, 'http://service');
      received.push({ path: url.pathname, body, callback: url.searchParams.get('aetr') });
      res.writeHead(202).end();
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { received, url: `http://127.0.0.1:${server.address().port}`, close: () => server.close() };
}
