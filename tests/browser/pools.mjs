// The pools page and an api action's Pool field in a real headless Chromium against a real aetr
// server (AETR_URL): the page opened from the nav; a pool with 0 slots refused with the server's
// error next to the slots field; `billing` with 1 slot listed. In the step editor, a pool that
// does not exist is refused next to the Pool field; both actions of a Parallel then name
// `billing` and are saved. A run started from the start form: the pool shows its one slot
// used and the other action waiting, and the service this script plays gets one POST at a
// time; each callback lets the next one in, and the run completes. The pool is changed to 2
// slots with its Edit button, and deleting it is refused (409) while the tree names it.
import { api, assertNoProblems, BASE, check, launch, page, recordingService, screenshot, steps, until } from './browser.mjs';

/** The service: answers 202 to every POST and keeps each, with its callback URL. */
const service = await recordingService();
const { received, url: SERVICE } = service;

async function callBack(call, body) {
  check(call.callback, `the POST carried a callback URL: ${JSON.stringify(call)}`);
  const r = await fetch(call.callback, { method: 'POST', body });
  check(r.status === 200, `the callback was answered ${r.status}`);
}

const { context, close } = await launch();
const p = await page(context);
let treeId;
let runId;

const form = () => p.locator('form[aria-labelledby="save-pool"]');
const row = () => p.locator('tr[data-pool="billing"]');
/** Waits until billing's row shows `used` ("1 of 1") and `waiting` ("1"). */
async function rowShows(used, waiting, timeout = 5000) {
  await row().locator('.pool-used-text', { hasText: new RegExp(`^${used}$`) }).waitFor({ timeout });
  await row().locator('.pool-waiting', { hasText: new RegExp(`^${waiting}$`) }).waitFor({ timeout });
}
const poolField = (child) => p.locator(`.step-card[data-path="children[${child}]"]`).getByLabel('Pool', { exact: true });
const save = () => p.getByRole('button', { name: 'Save', exact: true }).click();

const failed = await steps([
  ['the pools page opens from the nav', async () => {
    await p.goto(`${BASE}/steps`);
    await p.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Pools' }).click();
    await p.waitForURL(`${BASE}/pools`);
    await p.getByRole('heading', { name: 'Pools', level: 1 }).waitFor();
    check(await p.locator('nav a[data-section="pools"]').getAttribute('aria-current') === 'page', 'the nav marks the page');
    await p.getByText('No pools yet: create one above.').waitFor({ timeout: 5000 });
  }],

  ['a pool with 0 slots is refused next to the slots field', async () => {
    await form().getByLabel('Name').fill('billing');
    await form().getByLabel('Slots').fill('0');
    await form().getByRole('button', { name: 'Save pool' }).click();
    const error = p.locator('#pool-slots-errors li').first();
    await error.waitFor({ timeout: 5000 });
    const text = await error.textContent();
    check(text === 'slots: must be from 1 to 1000000, not 0', `the server's error is at the slots field: ${text}`);
    check(await form().getByLabel('Slots').getAttribute('aria-invalid') === 'true', 'the slots field is marked invalid');
    check(await form().getByLabel('Name').getAttribute('aria-invalid') === null, 'the name field is not');
    check(await p.locator('#pool-errors li').count() === 0, 'nothing at the top of the form');
    check((await api('GET', '/pools')).length === 0, 'no pool was created');
  }],

  ['billing with 1 slot is listed: 0 of 1 used, 0 waiting, no rate limit', async () => {
    await form().getByLabel('Slots').fill('1');
    await form().getByRole('button', { name: 'Save pool' }).click();
    await row().waitFor({ timeout: 5000 });
    await rowShows('0 of 1', '0');
    check(await p.locator('#pool-slots-errors li').count() === 0, 'the slots error is gone');
    check(await form().getByLabel('Slots').getAttribute('aria-invalid') === null, 'the slots field is no longer invalid');
    check((await row().locator('.pool-rate').textContent()).trim() === 'no limit', 'no rate limit');
    check((await row().locator('.pool-slots').textContent()).trim() === '1', 'one slot');
    const listed = await api('GET', '/pools');
    check(listed.length === 1 && listed[0].name === 'billing' && listed[0].slots === 1 && listed[0].perSecond === null,
      `as entered: ${JSON.stringify(listed)}`);
  }],

  ['in the step editor, a pool that does not exist is refused next to the Pool field', async () => {
    const root = await api('PUT', '/steps', {
      name: 'charges', stepType: 'Parallel', children: [
        { name: 'charge-a', stepType: 'Action', action: { type: 'api', url: `${SERVICE}/a` } },
        { name: 'charge-b', stepType: 'Action', action: { type: 'api', url: `${SERVICE}/b` } },
      ],
    });
    treeId = root.id;
    await p.goto(`${BASE}/steps/${treeId}`);
    await p.getByRole('heading', { name: 'charges', level: 1 }).waitFor();
    await p.locator('datalist option[value="billing"]').first().waitFor({ state: 'attached', timeout: 5000 });
    check(await poolField(0).getAttribute('list') === await p.locator('datalist').first().getAttribute('id'),
      'the Pool field suggests the pools');
    await poolField(0).fill('nope');
    await save();
    const refused = p.locator('.field-errors[data-path="children[0].action.pool"] li').first();
    await refused.waitFor({ timeout: 5000 });
    const text = await refused.textContent();
    check(text === 'no pool named "nope"; create it with PUT /api/v1/pools/nope', `the server's error is at the Pool field: ${text}`);
    const stored = await api('GET', `/steps/${treeId}`);
    check(stored.children.every((c) => c.action.pool === undefined), `nothing was saved: ${JSON.stringify(stored.children)}`);
  }],

  ['both actions name billing and are saved', async () => {
    await poolField(0).fill('billing');
    await poolField(1).fill('billing');
    await save();
    await p.locator('.save-state', { hasText: /^Saved$/ }).waitFor({ timeout: 5000 });
    const stored = await api('GET', `/steps/${treeId}`);
    check(stored.children.every((c) => c.action.pool === 'billing'), `both name billing: ${JSON.stringify(stored.children)}`);
    check(await poolField(1).inputValue() === 'billing', 'the saved tree shows the pool');
  }],

  ['a run: one action holds the slot, the other waits for it', async () => {
    const start = p.locator('form[aria-labelledby="start-run"]');
    await start.getByLabel('Input (JSON; anything else is sent as text)').fill('{}');
    await start.getByRole('button', { name: 'Start run' }).click();
    await p.waitForURL(/\/runs\/[0-9a-f-]{36}$/);
    runId = p.url().split('/').pop();
    await until(() => received.length >= 1, 'the service gets a POST');
    await p.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Pools' }).click();
    await p.waitForURL(`${BASE}/pools`);
    await rowShows('1 of 1', '1');
    check(received.length === 1, `one POST only: ${received.map((c) => c.path).join(', ')}`);
    const pool = await api('GET', '/pools/billing');
    check(pool.used === 1 && pool.waiting === 1, `the API agrees: ${JSON.stringify(pool)}`);
  }],

  ['its callback lets the other one in; the second callback completes the run', async () => {
    await callBack(received[0], 'ok');
    await until(() => received.length >= 2, 'the service gets the second POST');
    check(received[0].path !== received[1].path, `each action posted once: ${received.map((c) => c.path).join(', ')}`);
    await rowShows('1 of 1', '0');
    await callBack(received[1], 'ok');
    let run;
    await until(async () => { run = await api('GET', `/runs/${runId}`); return run.state === 'Complete'; },
      'the run completes');
    await rowShows('0 of 1', '0');
    check(received.length === 2, `two POSTs in all: ${received.length}`);
  }],

  ['the pool is changed to 2 slots with its Edit button', async () => {
    await row().getByRole('button', { name: 'Edit billing' }).click();
    check(await form().getByLabel('Name').inputValue() === 'billing', 'the form has its name');
    check(await form().getByLabel('Slots').inputValue() === '1', 'and its slots');
    check(await form().getByLabel(/^Per second/).inputValue() === '', 'and no rate');
    await form().getByLabel('Slots').fill('2');
    await form().getByRole('button', { name: 'Save pool' }).click();
    await row().locator('.pool-slots', { hasText: /^2$/ }).waitFor({ timeout: 5000 });
    await rowShows('0 of 2', '0');
    check((await api('GET', '/pools/billing')).slots === 2, 'the server has 2 slots');
    check(await p.locator('tr[data-pool]').count() === 1, 'still one pool');
  }],

  ['deleting it is refused while the tree names it', async () => {
    await row().getByRole('button', { name: /^Delete billing/ }).click();
    const dialog = p.getByRole('dialog', { name: 'Delete the pool billing?' });
    await dialog.waitFor();
    await dialog.getByRole('button', { name: 'Delete pool' }).click();
    const toast = p.locator('.toast-error').first();
    await toast.waitFor({ timeout: 5000 });
    const text = await toast.textContent();
    check(/^Not deleted: pool .*billing.* is named by the action of 2 step\(s\): .*; change them first$/.test(text)
      && text.includes('charge-a') && text.includes('charge-b'), `the 409 is shown, naming the steps: ${text}`);
    check(await row().count() === 1, 'the row stays');
    check((await api('GET', '/pools/billing')).name === 'billing', 'the pool stays');
    await screenshot(p, 'pools');
  }],

  ['no page reported an error or a blocked script', async () => {
    assertNoProblems(p);
  }],
]);

await close();
service.close();
process.exit(failed ? 1 : 0);
