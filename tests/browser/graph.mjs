// The graph view in a real headless Chromium against a real aetr server (AETR_URL). This script
// plays the HTTP service (it answers 202 and keeps each callback URL). A nested tree built with
// the API: on its step page, the graph draws every step, a Sequential's children left to right
// and a Parallel's, a Branch's and a Map's stacked; a click on a box shows its card in the
// editor, and edits redraw it. A run of it, followed on the run page's Graph tab: boxes change
// state as the service calls back, without a reload; the Branch's choice not taken is greyed
// out; the Map shows its instances; a click (or Enter) on a box opens its details. Then a Map of
// 10,000 instances: drawn as one box with its counts by state, and the time it took, printed.
import { api, assertNoProblems, BASE, check, launch, page, recordingService, screenshot, steps, until } from './browser.mjs';

const INSTANCES = 10000;
const LONG_NAME = 'notify-the-customer-by-email-and-by-text-message';

/** The service: answers 202 to every POST and keeps each, with its callback URL. */
const service = await recordingService();
const { received, url: SERVICE } = service;

/**
 * The service's answer to the POST to `path` (whose body was `input`, if given): `result`, or
 * (`fail`) an error.
 */
async function callBack(path, result, { input, fail = false } = {}) {
  const find = () => received.find((c) => c.path === path && (input === undefined || c.body === input));
  await until(find, `the service gets POST ${path} ${input ?? ''}`);
  const url = fail ? find().callback.replace('/runs/complete', '/runs/fail') : find().callback;
  const r = await fetch(url, { method: 'POST', body: result });
  check(r.status === 200, `the callback was answered ${r.status}`);
}

const { context, close } = await launch();
const p = await page(context);
let treeId;
let runId;

const apiStep = (name) => ({ name, stepType: 'Action', action: { type: 'api', url: `${SERVICE}/${name}` } });
const stepBox = (name) => p.locator(`.graph-card .gnode[data-name="${name}"]`);
const runBox = (name) => p.locator(`#tab-graph .gnode[data-name="${name}"]`);
/** Where the box of the `nth` node named `name` is on the page: {x, y, width, height}. */
const at = (box, nth = 0) => box.nth(nth).locator(':scope > .gbox').boundingBox();
/** Waits until the graph's box of `name` shows `state`. */
const runBoxIs = (name, state, nth = 0) => p.waitForFunction(([n, s, i]) => document
  .querySelectorAll(`#tab-graph .gnode[data-name="${n}"]`)[i]?.dataset.state === s, [name, state, nth], { timeout: 10000 });

/**
 * The screenshot `name` of `url` in dark mode, once `ready` (a selector) is on the page. The
 * dark page is then closed: a page in the background draws slowly, and so does the one after.
 */
async function darkScreenshot(url, ready, name) {
  const dark = await page(context, { colorScheme: 'dark' });
  await dark.goto(url);
  await dark.locator(ready).waitFor({ timeout: 5000 });
  await screenshot(dark, name);
  assertNoProblems(dark);
  await dark.close();
  await p.bringToFront();
}

const failed = await steps([
  ['the step page draws a nested tree as a graph', async () => {
    treeId = (await api('PUT', '/steps', {
      name: 'order-flow', stepType: 'Sequential', children: [
        apiStep('fetch'),
        { name: 'route', stepType: 'Branch', branch: { type: 'js', js: 'function apply(d) { return "express"; }' },
          children: [apiStep('standard'), apiStep('express')] },
        { name: 'each', stepType: 'Map', map: { items: 'function apply(d) { return [1, 2, 3]; }' }, children: [
          { name: 'handle', stepType: 'Sequential', children: [
            apiStep('price'),
            { name: LONG_NAME, stepType: 'Action', action: { type: 'no-op' } },
          ] },
        ] },
        { name: 'finish', stepType: 'Parallel', children: [
          { name: 'archive', stepType: 'Action', action: { type: 'wait', seconds: 1 } },
          { name: 'approve', stepType: 'Action', action: { type: 'manual' } },
          { name: 'audit', stepType: 'Action', action: { type: 'no-op' } },
        ] },
      ],
    })).id;
    await p.goto(`${BASE}/steps/${treeId}`);
    await p.getByRole('heading', { name: 'Graph' }).waitFor();
    for (const name of ['order-flow', 'fetch', 'route', 'standard', 'express', 'each', 'handle', 'price', LONG_NAME, 'finish', 'archive', 'approve', 'audit']) {
      check(await stepBox(name).count() === 1, `the graph has one box for ${name}: ${await stepBox(name).count()}`);
    }
    const kinds = { 'order-flow': 'Sequential', route: 'Branch', each: 'Map', handle: 'Sequential', finish: 'Parallel', fetch: 'Action' };
    for (const [name, kind] of Object.entries(kinds)) {
      check(await stepBox(name).getAttribute('data-kind') === kind, `${name} is drawn as a ${kind}`);
    }
    const subs = { fetch: 'api', archive: 'wait', approve: 'manual', audit: 'no-op' };
    for (const [name, type] of Object.entries(subs)) {
      const text = await stepBox(name).locator('.gsub').textContent();
      check(text === type, `the leaf ${name} says its action's type: ${text}`);
    }
  }],

  ['a Sequential\'s children go left to right with arrows; a Parallel\'s, a Branch\'s and a Map\'s are stacked', async () => {
    const [fetch, route, each, finish] = await Promise.all(['fetch', 'route', 'each', 'finish'].map((n) => at(stepBox(n))));
    check(fetch.x + fetch.width < route.x && route.x + route.width < each.x && each.x + each.width < finish.x,
      `the root's children go left to right: ${[fetch, route, each, finish].map((b) => Math.round(b.x))}`);
    const [price, longOne] = await Promise.all(['price', LONG_NAME].map((n) => at(stepBox(n))));
    check(price.x + price.width < longOne.x && Math.abs(price.y - longOne.y) < 1, 'the Map\'s Sequential child runs left to right too');
    const [standard, express] = await Promise.all(['standard', 'express'].map((n) => at(stepBox(n))));
    check(Math.abs(standard.x - express.x) < 1 && standard.y + standard.height < express.y, 'the Branch\'s choices are stacked');
    const finishes = await Promise.all(['archive', 'approve', 'audit'].map((n) => at(stepBox(n))));
    check(finishes.every((b, i) => i === 0 || (Math.abs(b.x - finishes[0].x) < 1 && b.y > finishes[i - 1].y + finishes[i - 1].height)),
      'the Parallel\'s children are stacked');
    const handle = await at(stepBox('handle'));
    check(handle.x > each.x && handle.x + handle.width < each.x + each.width && handle.y > each.y, 'the Map\'s one child is inside its frame');
    check(await stepBox('handle').locator('.gstack').count() === 2, 'the Map\'s child is drawn as a stack: once per item');
    const svg = p.locator('.graph-card svg');
    const arrows = await svg.locator('polyline[marker-end]').count();
    check(arrows === 3 + 2 + 1 + 1 + 3, `an arrow between each two children of a Sequential, and into each stacked child: ${arrows}`);
    check((await svg.locator('.gchoice').allTextContents()).join() === '0,1', 'the Branch\'s choices are numbered');
    const cut = await stepBox(LONG_NAME).locator('.gname').textContent();
    check(cut.endsWith('…') && cut.length < LONG_NAME.length, `a long name is cut: ${cut}`);
    check((await stepBox(LONG_NAME).locator('title').textContent()).startsWith(LONG_NAME), 'its tooltip has it whole');
  }],

  ['a click on a box shows its card in the editor; so does Enter', async () => {
    await stepBox('price').click();
    const card = p.locator('.step-card[data-path="children[2].children[0].children[0]"]');
    check(/graph-picked/.test(await card.getAttribute('class')), 'the price card is marked');
    check(await p.evaluate(() => document.activeElement.value) === 'price', 'its name field has the focus');
    check(/selected/.test(await stepBox('price').getAttribute('class')), 'the box is marked selected');
    await stepBox('audit').focus();
    await p.keyboard.press('Enter');
    check(await p.evaluate(() => document.activeElement.value) === 'audit', 'Enter on a box focuses its step\'s name');
    check(await p.locator('.step-card.graph-picked').count() === 1, 'only that card is marked');
  }],

  ['edits redraw the graph, and so does a save', async () => {
    await p.getByRole('button', { name: 'Add action to finish' }).click();
    await stepBox('action-4').waitFor({ timeout: 3000 });
    await p.getByRole('button', { name: 'Remove action-4' }).click();
    await stepBox('action-4').waitFor({ state: 'detached', timeout: 3000 });
    await p.locator('.step-card[data-path="children[3].children[2]"] .step-name').fill('audit-log');
    await stepBox('audit-log').waitFor({ timeout: 3000 });
    await p.getByRole('button', { name: 'Save', exact: true }).click();
    await p.locator('.save-state', { hasText: /^Saved$/ }).waitFor({ timeout: 5000 });
    await stepBox('audit-log').waitFor({ timeout: 3000 });
    check(await stepBox('audit').count() === 0, 'the old name is gone');
    check((await api('GET', `/steps/${treeId}`)).children[3].children[2].name === 'audit-log', 'saved');
    await p.evaluate(() => window.scrollTo(0, 0));
    await screenshot(p, 'step-graph-light');
    await darkScreenshot(`${BASE}/steps/${treeId}`, '.graph-card .gnode[data-name="audit-log"]', 'step-graph-dark');
  }],

  ['a run on the Graph tab: boxes change state as the service calls back, with no reload', async () => {
    runId = (await api('POST', `/runs/step/${treeId}`, { input: { order: 7 } })).id;
    await p.goto(`${BASE}/runs/${runId}`);
    await p.getByRole('tab', { name: 'Graph' }).click();
    await p.waitForURL(/\?view=graph$/);
    check(await p.locator('#tab-tree').isHidden(), 'the tree and timeline are hidden');
    await runBoxIs('fetch', 'Executing');
    check(/state-Executing/.test(await runBox('fetch').getAttribute('class')), 'fetch is coloured as Executing');
    await p.evaluate(() => { window.notReloaded = true; });
    await callBack('/fetch', 'fetched');
    await runBoxIs('fetch', 'Complete');
    check(/state-Complete/.test(await runBox('fetch').getAttribute('class')), 'fetch is coloured as Complete');
    await runBoxIs('express', 'Executing');
    await runBoxIs('standard', 'Skipped');
    const opacity = (name) => runBox(name).evaluate((el) => Number(getComputedStyle(el).opacity));
    check(await opacity('standard') < 0.8 && await opacity('express') === 1, 'the choice not taken is greyed out');
    check(await p.locator('#tab-graph .gedge.skipped').count() === 2, 'and its lines are dashed');
    await callBack('/express', 'express');
    await runBoxIs('express', 'Complete');
    check(await p.evaluate(() => window.notReloaded), 'the page was not reloaded');
  }],

  ['the Map shows its instances, stacked, each with its item', async () => {
    await until(async () => await runBox('handle').count() === 3, 'three instances are drawn');
    const items = await runBox('handle').evaluateAll((els) => els.map((el) => el.dataset.item));
    check(items.join() === '0,1,2', `each instance has its item: ${items}`);
    const boxes = await Promise.all([0, 1, 2].map((i) => at(runBox('handle'), i)));
    check(boxes[0].y + boxes[0].height < boxes[1].y && boxes[1].y + boxes[1].height < boxes[2].y, 'the instances are stacked');
    check((await runBox('handle').nth(1).locator('.gsub').textContent()).includes('item 1'), 'an instance\'s frame says its item');
    await runBoxIs('price', 'Executing', 2);
    await callBack('/price', 'priced', { input: '1' });
    await runBoxIs('handle', 'Complete', 0);
    await runBoxIs(LONG_NAME, 'Complete', 0);
  }],

  ['a click on a box, or Enter, opens its details', async () => {
    await runBox('fetch').click();
    await p.locator('#node-title', { hasText: /^fetch$/ }).waitFor({ timeout: 5000 });
    const fetchId = await runBox('fetch').getAttribute('data-key');
    check(new URL(p.url()).searchParams.get('node') === fetchId, `the URL names the node: ${p.url()}`);
    check(/selected/.test(await runBox('fetch').getAttribute('class')), 'the box is marked selected');
    await p.getByRole('button', { name: 'express, Complete' }).focus();
    await p.keyboard.press('Enter');
    await p.locator('#node-title', { hasText: /^express$/ }).waitFor({ timeout: 5000 });
    check(await p.evaluate(() => document.activeElement.id) === 'node-title', 'the details have the focus');
  }],

  ['in flight with mixed states, in light and dark', async () => {
    await callBack('/price', 'out of stock', { input: '3', fail: true });
    await runBoxIs('price', 'Error', 2);
    await runBoxIs('price', 'Executing', 1);
    await runBoxIs('archive', 'Pending');
    await p.getByRole('button', { name: 'Close the details' }).click();
    await screenshot(p, 'run-graph-light');
    // Opened with ?view=graph, the page shows the Graph tab.
    await darkScreenshot(`${BASE}/runs/${runId}?view=graph`, '#tab-graph .gnode[data-name="price"][data-state="Error"]', 'run-graph-dark');
  }],

  [`a Map of ${INSTANCES.toLocaleString('en-US')} instances is drawn as one box with its counts`, async () => {
    const tree = await api('PUT', '/steps', {
      name: 'bulk', stepType: 'Sequential', children: [
        { name: 'prepare', stepType: 'Action', action: { type: 'no-op' } },
        { name: 'each-number', stepType: 'Map', children: [{ name: 'square', stepType: 'Action', action: { type: 'no-op' } }] },
      ],
    });
    const run = await api('POST', `/runs/step/${tree.id}`, { input: Array.from({ length: INSTANCES }, (_, i) => i) });
    const deadline = Date.now() + 180000;
    for (;;) {
      const root = await api('GET', `/runs/${run.id}?depth=0`);
      if (root.state === 'Complete') break;
      check(root.state === 'Executing' || root.state === 'Pending', `the run ended ${root.state}: ${root.error}`);
      check(Date.now() < deadline, 'the run did not complete within 180 s');
      await new Promise((r) => setTimeout(r, 250));
    }
    // Once to warm the caches, as for the tree (large.mjs); then measured.
    for (let i = 0; i < 2; i++) {
      await p.goto(`${BASE}/runs/${run.id}?view=graph`);
      await p.waitForFunction(() => document.body.dataset.graphDrawnAt, null, { timeout: 20000 });
    }
    const drawMs = Number(await p.locator('#tab-graph').getAttribute('data-draw-ms'));
    const openedMs = Number(await p.evaluate(() => document.body.dataset.graphDrawnAt));
    console.log(`     drew the graph of a ${INSTANCES.toLocaleString('en-US')}-instance Map in ${drawMs} ms (layout and SVG; ${Math.round(openedMs)} ms from navigation start to the graph drawn)`);
    check(openedMs < 5000, `the graph was drawn within 5 s of opening the page: ${openedMs} ms`);
    const map = runBox('each-number');
    const label = await map.getAttribute('aria-label');
    check(label === `each-number, Complete, ${INSTANCES.toLocaleString('en-US')} instances, ${INSTANCES.toLocaleString('en-US')} Complete`,
      `the Map's box counts its instances by state: ${label}`);
    check(await map.locator('.gbar rect.state-Complete').count() === 1, 'with a bar of its states');
    const boxes = await p.locator('#tab-graph .gnode').count();
    check(boxes === 3, `only the root, prepare and the Map are drawn: ${boxes} boxes`);
    check(await runBox('square').count() === 0, 'no instance is drawn');
  }],

  ['no page reported an error or a blocked script', async () => {
    assertNoProblems(p);
  }],
]);

await close();
service.close();
process.exit(failed ? 1 : 0);
