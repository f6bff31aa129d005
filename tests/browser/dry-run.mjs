// A dry run and a cloned tree in a real headless Chromium against a real aetr server
// (AETR_URL). A checkout tree (charge, with a mapper; an hour's wait; ship; a person's
// approval) is dry run from its page with a result given for `charge` only: the run page marks
// it as a dry run, its mapper ran on the given result, `ship` completed with its input, the
// wait ended at once, and the approval still waits for a click. Approved, the run completes,
// and the service this script plays never got a request. The runs list leaves the dry run out
// until "Show dry runs". Then "Clone as new…" copies the tree under a new name, with new ids.
import { api, assertNoProblems, BASE, check, launch, page, recordingService, screenshot, steps } from './browser.mjs';

/** The service: it must never be called. */
const service = await recordingService();
const { received, url: SERVICE } = service;

const tree = {
  name: 'checkout', stepType: 'Sequential', children: [
    { name: 'charge', stepType: 'Action', action: { type: 'api', url: `${SERVICE}/charge` },
      mapper: { type: 'js', js: 'function apply(d) { return JSON.parse(d).id; }' } },
    { name: 'cool-off', stepType: 'Action', action: { type: 'wait', seconds: 3600 } },
    { name: 'ship', stepType: 'Action', action: { type: 'api', url: `${SERVICE}/ship` } },
    { name: 'approve', stepType: 'Action', action: { type: 'manual' } },
  ],
};

const { context, close } = await launch();
const p = await page(context);
let treeId;
let runId;

/** Waits until the run page's row of `name` shows `state`. */
async function rowState(name, state, timeout = 5000) {
  await p.locator(`.vrow[data-name="${name}"][data-state="${state}"]`).first().waitFor({ timeout });
}

const failed = await steps([
  ['"Dry run…" asks for the api actions\' results and starts a dry run', async () => {
    treeId = (await api('PUT', '/steps', tree)).id;
    await p.goto(`${BASE}/steps/${treeId}`);
    await p.getByLabel('Input (JSON; anything else is sent as text)').fill('{"order": 7}');
    await p.getByRole('button', { name: 'Dry run…' }).click();
    const dialog = p.getByRole('dialog');
    await dialog.getByRole('heading', { name: 'Dry run' }).waitFor();
    check(await dialog.getByLabel('charge: result').count() === 1, 'charge is asked for');
    check(await dialog.getByLabel('ship: result').count() === 1, 'ship is asked for');
    check(await dialog.getByLabel('approve: result').count() === 0, 'a manual action is not: a person decides');
    await dialog.getByLabel('charge: result').fill('{"id": "ch_42"}');
    await dialog.getByRole('button', { name: 'Start dry run' }).click();
    await p.waitForURL(/\/runs\/[0-9a-f-]+$/);
    runId = p.url().split('/').pop();
  }],

  ['the run page marks the dry run; scripts ran, the wait ended, the approval waits', async () => {
    await p.locator('.run-header .badge.dry-run', { hasText: 'Dry run' }).waitFor({ timeout: 5000 });
    await rowState('approve', 'Executing', 10000);
    for (const name of ['charge', 'cool-off', 'ship']) await rowState(name, 'Complete');
    const run = await api('GET', `/runs/${runId}`);
    check(run.dryRun === true, 'the API marks it too');
    const [charge, , ship] = run.children;
    check(charge.result === '{"id": "ch_42"}', `charge completed with the given result: ${charge.result}`);
    check(ship.input === 'ch_42' && ship.result === 'ch_42', `the mapper ran, and ship completed with its input: ${JSON.stringify(ship)}`);
    check((await p.title()).includes('(dry run)'), `the title says so: ${await p.title()}`);
    await screenshot(p, 'dry-run-light');
  }],

  ['approved, the dry run completes without a single request to the service', async () => {
    await p.getByRole('button', { name: 'approve, Executing' }).click();
    await p.locator('.node-panel').getByRole('button', { name: 'Approve…' }).click();
    const dialog = p.getByRole('dialog');
    await dialog.getByLabel('Result (raw text)').fill('approved');
    await dialog.getByRole('button', { name: 'Approve' }).click();
    await p.locator('#run-state .badge', { hasText: 'Complete' }).waitFor({ timeout: 5000 });
    check(received.length === 0, `the service got no request: ${received.map((c) => c.path).join(', ')}`);
  }],

  ['the runs list leaves the dry run out until "Show dry runs"', async () => {
    await p.goto(`${BASE}/runs?stepId=${treeId}`);
    await p.getByText('No runs here yet.', { exact: false }).waitFor({ timeout: 5000 });
    await p.getByRole('link', { name: 'Show dry runs' }).click();
    await p.waitForURL(`${BASE}/runs?stepId=${treeId}&dryRun=true`);
    await p.getByRole('heading', { name: 'Dry runs', level: 1 }).waitFor();
    const row = p.locator('tr', { has: p.getByRole('link', { name: `Run ${runId}` }) });
    await row.locator('.badge.dry-run').waitFor({ timeout: 5000 });
    await p.getByRole('link', { name: 'Show real runs' }).click();
    await p.waitForURL(`${BASE}/runs?stepId=${treeId}`);
  }],

  ['"Clone as new…" copies the tree under a new name, with new ids', async () => {
    await p.goto(`${BASE}/steps/${treeId}`);
    await p.getByRole('button', { name: 'Clone as new…' }).click();
    const dialog = p.getByRole('dialog');
    const name = dialog.getByLabel('Name of the copy');
    check(await name.inputValue() === 'checkout (copy)', `the copy's name is offered: ${await name.inputValue()}`);
    await name.fill('checkout v2');
    await dialog.getByRole('button', { name: 'Clone' }).click();
    await p.getByRole('heading', { name: 'checkout v2', level: 1 }).waitFor({ timeout: 5000 });
    const copyId = p.url().split('/').pop();
    check(copyId !== treeId, 'the page shows the copy');
    const [original, copy] = [await api('GET', `/steps/${treeId}`), await api('GET', `/steps/${copyId}`)];
    check(original.name === 'checkout', 'the original keeps its name');
    const ids = (t) => [t.id, ...t.children.map((c) => c.id)];
    check(ids(copy).every((id) => !ids(original).includes(id)), 'every step of the copy has a new id');
    check(JSON.stringify(copy.children.map((c) => [c.name, c.action, c.mapper])) === JSON.stringify(original.children.map((c) => [c.name, c.action, c.mapper])),
      'the copy has the same steps, actions and mappers');
  }],

  ['no page reported an error or a blocked script', async () => {
    assertNoProblems(p);
  }],
]);

await close();
service.close();
process.exit(failed ? 1 : 0);
