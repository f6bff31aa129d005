// The web UI as a person uses it, in a real headless Chromium against a real aetr server
// (AETR_URL). This script plays the HTTP service that the tree's actions call, so that it
// decides when each callback comes.
//
//   create a tree in the editor (with a compile error shown next to its mapper) and start a run;
//   watch node colours change as the service calls back; open a node's details; a result with
//   <script> renders as text; retry after a failure; cancel; screenshots, light and dark.
import { createServer } from 'node:http';
import { api, assertNoProblems, BASE, check, launch, page, screenshot, steps, typeInEditor } from './browser.mjs';

/** The service: answers 202 to every POST and keeps what it got, for the test to call back. */
function startService() {
  const received = [];
  const waiting = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      const url = new URL(req.url, 'http://service');
      const call = { path: url.pathname, body, callback: url.searchParams.get('aetr') };
      res.writeHead(202).end();
      const w = waiting.findIndex((x) => x.path === call.path);
      if (w >= 0) waiting.splice(w, 1)[0].resolve(call);
      else received.push(call);
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => {
    const port = server.address().port;
    resolve({
      url: (path) => `http://127.0.0.1:${port}${path}`,
      /** The next call to `path`, within 10 s. */
      next(path) {
        const i = received.findIndex((x) => x.path === path);
        if (i >= 0) return Promise.resolve(received.splice(i, 1)[0]);
        return new Promise((res, rej) => {
          const entry = { path, resolve: res };
          waiting.push(entry);
          setTimeout(() => rej(new Error(`the service got no call to ${path} within 10 s`)), 10000);
        });
      },
      close: () => server.close(),
    });
  }));
}

async function callBack(call, outcome, body) {
  const url = outcome === 'fail' ? call.callback.replace('/runs/complete', '/runs/fail') : call.callback;
  const r = await fetch(url, { method: 'POST', body });
  check(r.status === 200, `the callback was answered ${r.status}`);
}

/** Waits until the row of the node named `name` shows `state`; returns how long it took. */
async function rowState(p, name, state, timeout = 5000) {
  const t = Date.now();
  await p.locator(`.vrow[data-name="${name}"][data-state="${state}"]`).first().waitFor({ timeout });
  return Date.now() - t;
}

const service = await startService();
const { context, close } = await launch();
const p = await page(context);
let treeUrl;
let runUrl;

const failed = await steps([
  ['a new user opens / and sees the steps page', async () => {
    await p.goto(`${BASE}/`);
    await p.getByRole('heading', { name: 'Steps', level: 1 }).waitFor();
    await p.getByLabel('Name', { exact: true }).waitFor();
  }],

  ['create a tree from the steps page', async () => {
    await p.getByLabel('Name', { exact: true }).fill('order-flow');
    await p.getByLabel('Root step').selectOption('Sequential');
    await p.getByRole('button', { name: 'Create tree' }).click();
    await p.getByRole('heading', { name: 'order-flow', level: 1 }).waitFor();
    treeUrl = p.url();
    check(/\/steps\/[0-9a-f-]{36}$/.test(treeUrl), `the tree's page has its own URL, not ${treeUrl}`);
  }],

  ['edit it: an action that calls the service, a second one with a mapper', async () => {
    const first = p.locator('.step-card[data-path="children[0]"]');
    await first.getByLabel('Step name', { exact: true }).fill('price');
    await first.getByLabel('Action', { exact: true }).selectOption('api');
    await first.getByLabel('URL', { exact: true }).fill(service.url('/price'));
    await p.getByRole('button', { name: 'Add action to order-flow' }).click();
    const second = p.locator('.step-card[data-path="children[1]"]');
    await second.getByLabel('Step name', { exact: true }).fill('invoice');
    await second.getByLabel('URL', { exact: true }).fill(service.url('/invoice'));
    await second.getByRole('button', { name: 'Add mapper' }).click();
    // A mapper that does not compile: the server's error shows next to it.
    await typeInEditor(p, second, 'function apply(d) { return d +; }');
    await p.getByRole('button', { name: 'Save', exact: true }).click();
    const error = second.locator('.field-errors li').first();
    await error.waitFor({ timeout: 5000 });
    const text = await error.textContent();
    check(/unexpected|expected|syntax/i.test(text), `the mapper's error is shown next to it: ${text}`);
    await typeInEditor(p, second, 'function apply(d) { return "invoice for " + d; }');
    // Reorder by drag and drop there and back, and switch the root to Parallel and back.
    await p.getByRole('button', { name: 'Move invoice up' }).click();
    check(await p.locator('.step-card[data-path="children[0]"] .step-name').inputValue() === 'invoice', 'invoice moved up');
    await p.locator('.step-card[data-path="children[1]"] .drag-handle').dragTo(p.locator('.step-card[data-path="children[0]"]'));
    check(await p.locator('.step-card[data-path="children[0]"] .step-name').inputValue() === 'price', 'price dragged back up');
    await p.getByLabel('Kind of order-flow').selectOption('Parallel');
    await p.getByLabel('Reducer of order-flow', { exact: true }).waitFor();
    await p.getByLabel('Kind of order-flow').selectOption('Sequential');
    await p.getByRole('button', { name: 'Save', exact: true }).click();
    await p.locator('.save-state', { hasText: /^Saved$/ }).waitFor({ timeout: 5000 });
    const id = treeUrl.split('/').pop();
    const saved = await api('GET', `/steps/${id}`);
    check(saved.children.map((c) => c.name).join(',') === 'price,invoice', `saved children: ${JSON.stringify(saved.children)}`);
    check(saved.children[1].mapper.js.includes('invoice for'), 'the mapper was saved');
    await p.evaluate(() => window.scrollTo(0, 0));
    await screenshot(p, 'tree-editor-light');
  }],

  ['start a run with an input, and watch its nodes change colour as the service calls back', async () => {
    await p.getByLabel(/^Input/).fill('{"items": 3}');
    await p.getByRole('button', { name: 'Start run' }).click();
    await p.waitForURL(/\/runs\/[0-9a-f-]{36}$/);
    runUrl = p.url();
    const price = await service.next('/price');
    check(price.body === '{"items": 3}' || price.body === '{"items":3}', `price got the input: ${price.body}`);
    await rowState(p, 'price', 'Executing');
    await rowState(p, 'invoice', 'Pending');
    await screenshot(p, 'run-in-flight-light');
    const result = JSON.stringify({ html: '<script>window.__pwned = 1</script><b>bold</b>', total: 42 });
    await callBack(price, 'complete', result);
    const took = await rowState(p, 'price', 'Complete');
    console.log(`     the row turned Complete ${took} ms after the callback`);
    // It polls every second; the rest is the machine's load (the whole test suite runs at once).
    check(took <= 4000, `the view updates within about a second (took ${took} ms)`);
    await rowState(p, 'invoice', 'Executing');
    const color = await p.locator('.vrow[data-name="price"] .dot').evaluate((el) => getComputedStyle(el).backgroundColor);
    const pending = await p.locator('.vrow[data-name="invoice"] .dot').evaluate((el) => getComputedStyle(el).backgroundColor);
    check(color !== pending, `Complete and Executing have different colours (${color}, ${pending})`);
  }],

  ['a node\'s details: input, result as text (never HTML), attempts, times', async () => {
    await p.getByRole('button', { name: 'price, Complete' }).click();
    const panel = p.locator('.node-panel');
    await panel.getByRole('heading', { name: 'price' }).waitFor();
    check(await p.evaluate(() => document.activeElement.id) === 'node-title', 'focus moves to the details');
    const result = panel.getByLabel('Result', { exact: true });
    const text = await result.textContent();
    check(text.includes('<script>window.__pwned = 1</script>'), `the result shows <script> as text: ${text}`);
    check(text.includes('\n  "total": 42'), 'JSON results are pretty-printed');
    check(await result.locator('script, b').count() === 0, 'no element was made from the result');
    check(await p.evaluate(() => window.__pwned) === undefined, 'the script in the result never ran');
    await panel.getByText('Pending for').waitFor();
    check(await panel.locator('table tbody tr').count() === 1, 'one attempt is listed');
    check(/input=|"items"/.test(await panel.getByLabel('Input', { exact: true }).textContent()), 'the input is shown');
    await screenshot(p, 'run-node-details-light');
  }],

  ['a failure fails the run; Retry (confirmed) sends the action again; the run completes', async () => {
    const invoice = await service.next('/invoice');
    check(invoice.body.includes('"total":42'), `invoice got price's result: ${invoice.body}`);
    await callBack(invoice, 'fail', 'invoice service is down');
    await p.locator('#run-state .badge', { hasText: 'Error' }).waitFor({ timeout: 5000 });
    await p.getByText('invoice service is down').first().waitFor();
    await rowState(p, 'invoice', 'Error');
    await screenshot(p, 'run-failed-light');
    await p.getByRole('button', { name: 'Retry run…' }).click();
    await p.getByRole('dialog').getByRole('button', { name: 'Retry run' }).click();
    const again = await service.next('/invoice');
    await callBack(again, 'complete', 'invoice #7');
    await p.locator('#run-state .badge', { hasText: 'Complete' }).waitFor({ timeout: 5000 });
    // The mapper on invoice's link made the run's result.
    await p.getByLabel('Run result').getByText('invoice for invoice #7').waitFor();
    await p.locator('#run-progress', { hasText: '2 of 2 actions complete' }).waitFor();
  }],

  ['the run\'s history lists what happened', async () => {
    await p.getByRole('tab', { name: 'History' }).click();
    await p.locator('.events tr.event-retried').waitFor({ timeout: 5000 });
    check(await p.locator('.events tr.event-callback').count() >= 3, 'callbacks are listed');
    await screenshot(p, 'run-history-light');
    await p.getByRole('tab', { name: 'Tree and timeline' }).click();
  }],

  ['cancel a run in flight, after a confirmation', async () => {
    const id = treeUrl.split('/').pop();
    const run = await api('POST', `/runs/step/${id}`, { input: 'second' });
    await service.next('/price');
    await p.goto(`${BASE}/runs/${run.id}`);
    await rowState(p, 'price', 'Executing');
    await p.getByRole('button', { name: 'Cancel run…' }).click();
    // Dismissing the dialog changes nothing.
    await p.getByRole('dialog').getByRole('button', { name: 'Cancel', exact: true }).click();
    check((await api('GET', `/runs/${run.id}?depth=0`)).state === 'Executing', 'not cancelled without confirmation');
    await p.getByRole('button', { name: 'Cancel run…' }).click();
    await p.getByRole('dialog').getByRole('button', { name: 'Cancel run' }).click();
    await p.locator('#run-state .badge', { hasText: 'Cancelled' }).waitFor({ timeout: 5000 });
    await rowState(p, 'price', 'Cancelled');
    check((await api('GET', `/runs/${run.id}?depth=0`)).state === 'Cancelled', 'the run is cancelled');
  }],

  ['an operator completes a stuck node by hand', async () => {
    const id = treeUrl.split('/').pop();
    const run = await api('POST', `/runs/step/${id}`, { input: 'third' });
    await service.next('/price');
    await p.goto(`${BASE}/runs/${run.id}`);
    await p.getByRole('button', { name: 'price, Executing' }).click();
    await p.locator('.node-panel').getByRole('button', { name: 'Complete…' }).click();
    await p.getByRole('dialog').getByLabel(/^Result/).fill('by hand');
    await p.getByRole('dialog').getByRole('button', { name: 'Complete' }).click();
    await rowState(p, 'price', 'Complete');
    const invoice = await service.next('/invoice');
    check(invoice.body === 'by hand', `the hand-made result moved on: ${invoice.body}`);
  }],

  ['a node that takes much longer than its siblings is flagged slow', async () => {
    const parts = [1, 2, 3, 4].map((i) => ({ name: `part-${i}`, stepType: 'Action', action: { type: 'api', url: service.url('/fan') } }));
    const fan = await api('PUT', '/steps', { name: 'fan-out', stepType: 'Parallel', children: parts });
    const run = await api('POST', `/runs/step/${fan.id}`, { input: 'x' });
    const calls = [];
    for (let i = 0; i < 4; i++) calls.push(await service.next('/fan'));
    await p.goto(`${BASE}/runs/${run.id}`);
    await p.locator('.vrow[data-state="Executing"]').nth(3).waitFor();
    for (const call of calls.slice(0, 3)) await callBack(call, 'complete', 'done');
    // Expected: three times the median of its finished siblings, and at least 2 s.
    const slow = p.locator('.vrow.slow');
    await slow.waitFor({ timeout: 8000 });
    check(await slow.count() === 1, 'only the one left behind is flagged');
    check(await slow.getAttribute('data-state') === 'Executing', 'the flagged node is the one still executing');
    await slow.getByText('slow').waitFor();
    await screenshot(p, 'run-slow-node-light');
    await callBack(calls[3], 'complete', 'late');
    await p.locator('#run-state .badge', { hasText: 'Complete' }).waitFor({ timeout: 5000 });
    check(await p.locator('.vrow.slow').count() === 0, 'a finished node is not flagged');
  }],

  ['add a stored step by reference, and give a Parallel parent a JS reducer', async () => {
    const fan = (await api('GET', '/steps?q=fan-out')).find((x) => x.name === 'fan-out');
    const price = (await api('GET', '/steps?q=price')).find((x) => x.name === 'price');
    await p.goto(`${BASE}/steps/${fan.id}`);
    await p.getByRole('heading', { name: 'fan-out', level: 1 }).waitFor();
    await p.getByRole('button', { name: '+ Stored step…' }).click();
    await p.getByRole('dialog').getByLabel('Step').selectOption({ label: 'price (Action)' });
    await p.getByRole('dialog').getByRole('button', { name: 'Add' }).click();
    await p.locator('.step-card[data-path="children[4]"]', { hasText: 'stored step, kept as it is' }).waitFor();
    await p.getByLabel('Reducer of fan-out', { exact: true }).selectOption('js');
    await typeInEditor(p, p.locator('.script-box', { has: p.getByLabel('Reducer of fan-out', { exact: true }) }), 'function apply(rs) { return rs.length; }');
    await p.getByRole('button', { name: 'Save', exact: true }).click();
    await p.locator('.save-state', { hasText: /^Saved$/ }).waitFor({ timeout: 5000 });
    const saved = await api('GET', `/steps/${fan.id}`);
    check(saved.children.length === 5 && saved.children[4].id === price.id, `price was added by reference: ${JSON.stringify(saved.children.map((c) => c.id))}`);
    check(saved.reducer.type === 'js' && saved.reducer.js.includes('rs.length'), `the reducer was saved: ${JSON.stringify(saved.reducer)}`);
  }],

  ['the runs list: newest first, live counts per state, filter by tree and state', async () => {
    await p.goto(`${BASE}/runs?stepId=${treeUrl.split('/').pop()}`);
    await p.locator('.tree-filter', { hasText: 'order-flow' }).waitFor();
    await p.locator('.runs-table tbody tr').nth(2).waitFor();
    const all = p.locator('.filter', { hasText: 'All' }).locator('.count');
    await p.waitForFunction(() => document.querySelector('.filter .count')?.textContent === '3');
    check(await all.textContent() === '3', 'three runs of this tree');
    const states = await p.locator('.runs-table tbody tr .badge').allTextContents();
    check(states.join() === 'Executing,Cancelled,Complete', `newest first: ${states}`);
    await screenshot(p, 'runs-light');
    await p.locator('.filter', { hasText: 'Cancelled' }).click();
    await p.waitForURL(/state=Cancelled/);
    await p.waitForFunction(() => document.querySelectorAll('.runs-table tbody tr').length === 1);
  }],

  ['dark mode follows the system setting', async () => {
    const dark = await page(context, { colorScheme: 'dark' });
    await dark.goto(treeUrl);
    await dark.getByRole('heading', { name: 'order-flow', level: 1 }).waitFor();
    const bg = await dark.evaluate(() => getComputedStyle(document.body).backgroundColor);
    check(bg === 'rgb(16, 19, 23)', `a dark background in dark mode, not ${bg}`);
    await dark.waitForTimeout(300);
    await screenshot(dark, 'tree-editor-dark');
    await dark.goto(runUrl);
    await dark.locator('.vrow[data-name="invoice"]').waitFor();
    await dark.getByRole('button', { name: 'price, Complete' }).click();
    await dark.locator('.node-panel h2').waitFor();
    await screenshot(dark, 'run-node-details-dark');
    await dark.goto(`${BASE}/runs`);
    await dark.locator('.runs-table tbody tr').first().waitFor();
    await screenshot(dark, 'runs-dark');
    await dark.goto(`${BASE}/steps`);
    await dark.locator('tbody tr').first().waitFor();
    await screenshot(dark, 'steps-dark');
    assertNoProblems(dark);
  }],

  ['the steps page searches by name, and the search is in the URL', async () => {
    await p.goto(`${BASE}/steps`);
    await p.locator('tbody tr').first().waitFor();
    await screenshot(p, 'steps-light');
    await p.getByLabel('Search').fill('fan-o');
    await p.waitForURL(/\/steps\?q=fan-o$/);
    await p.waitForFunction(() => [...document.querySelectorAll('tbody tr td:first-child')].map((t) => t.textContent).join() === 'fan-out');
    await p.getByLabel('Search').fill('no-such-step');
    await p.getByText('No step\'s name contains “no-such-step”.').waitFor();
  }],

  ['no page reported an error or a blocked script', async () => {
    assertNoProblems(p);
  }],
]);

await close();
service.close();
process.exit(failed ? 1 : 0);
