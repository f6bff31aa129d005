// The step types beyond Sequential and Parallel, in a real headless Chromium against a real
// aetr server (AETR_URL): a Branch built in the editor (its function's compile error shown next
// to it), its children not chosen greyed out as Skipped on the run page, a `wait` that shows
// when it ends, a `manual` action approved and rejected with the run page's buttons, and a
// finished run deleted.
import { api, assertNoProblems, BASE, check, launch, page, screenshot, steps, typeInEditor } from './browser.mjs';

const { context, close } = await launch();
const p = await page(context);
let treeId;

/** Waits until the row of the node named `name` shows `state`. */
async function rowState(name, state, timeout = 8000) {
  await p.locator(`.vrow[data-name="${name}"][data-state="${state}"]`).first().waitFor({ timeout });
}

const failed = await steps([
  ['build a Branch in the editor: its function is checked when saved', async () => {
    const root = await api('PUT', '/steps', {
      name: 'approval-flow', stepType: 'Sequential', children: [
        { name: 'route', stepType: 'Sequential', children: [
          { name: 'small', stepType: 'Action', action: { type: 'no-op' } },
          { name: 'large', stepType: 'Action', action: { type: 'no-op' } },
        ] },
        { name: 'pause', stepType: 'Action', action: { type: 'wait', seconds: 2 } },
        { name: 'approve', stepType: 'Action', action: { type: 'manual', callbackTimeoutSeconds: 3600 } },
      ],
    });
    treeId = root.id;
    await p.goto(`${BASE}/steps/${treeId}`);
    await p.getByRole('heading', { name: 'approval-flow', level: 1 }).waitFor();
    await p.getByLabel('Kind of route').selectOption('Branch');
    const route = p.locator('.step-card[data-path="children[0]"]');
    await route.getByText('Runs the one child its function names').waitFor();
    const fn = p.locator('.script-box', { has: p.getByText('Branch function: gets the input') });
    await typeInEditor(p, fn, 'function apply(d) { return d.length > 3 ? ; }');
    await p.getByRole('button', { name: 'Save', exact: true }).click();
    const error = route.locator('.field-errors li').first();
    await error.waitFor({ timeout: 5000 });
    check(/unexpected|expected|syntax/i.test(await error.textContent()), `the function's error is next to it: ${await error.textContent()}`);
    await typeInEditor(p, fn, 'function apply(d) { return d.length > 3 ? "large" : "small"; }');
    await p.getByRole('button', { name: 'Save', exact: true }).click();
    await p.locator('.save-state', { hasText: /^Saved$/ }).waitFor({ timeout: 5000 });
    const saved = await api('GET', `/steps/${treeId}`);
    check(saved.children[0].stepType === 'Branch', `saved as a Branch: ${JSON.stringify(saved.children[0])}`);
    check(saved.children[0].branch.js.includes('"large"'), 'its function was saved');
    check(saved.children[1].action.type === 'wait' && saved.children[2].action.type === 'manual', 'the wait and manual actions were kept');
  }],

  ['a run: the child not chosen is greyed out as Skipped, and the wait shows when it ends', async () => {
    await p.getByLabel(/^Input/).fill('ok');
    await p.getByRole('button', { name: 'Start run' }).click();
    await p.waitForURL(/\/runs\/[0-9a-f-]{36}$/);
    const trace = await p.locator('[data-fact="trace"]').textContent();
    check(trace === p.url().split('/').pop().replaceAll('-', ''), `the run's trace id is shown: ${trace}`);
    await rowState('large', 'Skipped');
    await rowState('small', 'Complete');
    const opacity = await p.locator('.vrow[data-name="large"]').evaluate((el) => Number(getComputedStyle(el).opacity));
    check(opacity < 0.8, `a Skipped row is greyed out (opacity ${opacity})`);
    await rowState('pause', 'Executing');
    const chip = p.locator('.vrow[data-name="pause"] [data-chip="wait"]');
    await chip.waitFor({ timeout: 3000 });
    check(/ends in/.test(await chip.textContent()), `the wait's row says when it ends: ${await chip.textContent()}`);
    await p.getByRole('button', { name: 'pause, Executing' }).click();
    const panel = p.locator('.node-panel');
    await panel.getByText('Ends', { exact: true }).waitFor();
    check(/\(in /.test(await panel.locator('[data-fact="due"]').textContent()), 'the details say when it ends');
    await screenshot(p, 'run-wait-and-skipped-light');
  }],

  ['the manual action waits for a decision; Approve (confirmed) completes it and the run', async () => {
    await rowState('approve', 'Executing', 10000);
    await p.locator('.vrow[data-name="approve"] [data-chip="manual"]').waitFor({ timeout: 3000 });
    await p.getByRole('button', { name: 'approve, Executing' }).click();
    const panel = p.locator('.node-panel');
    await panel.getByRole('heading', { name: 'Waiting for a decision' }).waitFor({ timeout: 5000 });
    check(await panel.getByText('Deadline').count() === 1, 'the decision\'s deadline is shown');
    await screenshot(p, 'run-manual-light');
    await panel.getByRole('button', { name: 'Approve…' }).click();
    const dialog = p.getByRole('dialog');
    await dialog.getByLabel('Result (raw text)').fill('approved by Ann');
    await dialog.getByRole('button', { name: 'Approve' }).click();
    await p.locator('#run-state .badge', { hasText: 'Complete' }).waitFor({ timeout: 5000 });
    await p.getByLabel('Run result').getByText('approved by Ann').waitFor();
  }],

  ['Reject fails the manual action, with the reason given', async () => {
    const run = await api('POST', `/runs/step/${treeId}`, { input: 'a large order' });
    await p.goto(`${BASE}/runs/${run.id}`);
    await rowState('small', 'Skipped');
    await rowState('approve', 'Executing', 10000);
    await p.getByRole('button', { name: 'approve, Executing' }).click();
    await p.locator('.node-panel').getByRole('button', { name: 'Reject…' }).click();
    const dialog = p.getByRole('dialog');
    await dialog.getByLabel('Why').fill('over budget');
    await dialog.getByRole('button', { name: 'Reject' }).click();
    await p.locator('#run-state .badge', { hasText: 'Error' }).waitFor({ timeout: 5000 });
    check((await api('GET', `/runs/${run.id}?depth=0`)).error === 'over budget', 'the run failed with the reason');
  }],

  ['a finished run is deleted, after a confirmation', async () => {
    const runUrl = p.url();
    const id = runUrl.split('/').pop();
    await p.getByRole('button', { name: 'Delete run…' }).click();
    await p.getByRole('dialog').getByRole('button', { name: 'Delete run' }).click();
    await p.waitForURL(/\/runs$/);
    const gone = await fetch(`${BASE}/api/v1/runs/${id}`);
    check(gone.status === 404, `the run is gone: ${gone.status}`);
  }],

  ['no page reported an error or a blocked script', async () => {
    assertNoProblems(p);
  }],
]);

await close();
process.exit(failed ? 1 : 0);
