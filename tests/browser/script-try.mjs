// Trying a script on a node's real data, in a real headless Chromium against a real aetr server
// (AETR_URL). A tree's api action (the service this script plays calls back `{"n": 2}`) goes
// through a mapper that throws on it, so the run fails. On the run page, the failed node's
// "Try the mapper" opens the mapper in an editor with the node's real result as its input; Run
// shows the TypeError and leaves the run as it is; a fix with a syntax error shows the compile
// error on Run, and Save shows the server's 422 and saves nothing; the real fix returns the
// right result on Run, Save writes it into the tree, and "Retry on the latest definitions"
// completes the run with it. In dark colours, a Parallel's reducer is tried on its children's
// real outputs (the array in the input box), then on an edited input, and Escape closes it.
import { createServer } from 'node:http';
import { api, assertNoProblems, BASE, check, launch, page, screenshot, steps, typeInEditor, until } from './browser.mjs';

/** What the service calls back with: a JSON object without the `m` the mapper expects. */
const CALLED_BACK = '{"n": 2}';
const BROKEN = 'function apply(d) { return JSON.parse(d).m.x; }';
const NOT_JS = 'function apply(d) { return JSON.parse(d).n * ; }';
const FIXED = 'function apply(d) { return "n=" + JSON.parse(d).n; }';

/** The service: answers 202 to every POST, then calls back with CALLED_BACK. */
const service = createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    const callback = new URL(req.url, 'http://service').searchParams.get('aetr');
    res.writeHead(202).end();
    setTimeout(() => fetch(callback, { method: 'POST', body: CALLED_BACK }).catch(() => {}), 20);
  });
});
await new Promise((resolve) => service.listen(0, '127.0.0.1', resolve));
const SERVICE = `http://127.0.0.1:${service.address().port}`;

/** Waits until the run `id` is in `state`, and returns it. */
async function runIn(id, state) {
  let run;
  await until(async () => { run = await api('GET', `/runs/${id}?depth=0`); return run.state === state; },
    `the run is ${state}`);
  return run;
}

/** The text of the CodeMirror editor in `scope`. */
const editorText = (scope) => scope.locator('.CodeMirror').first().evaluate((el) => el.CodeMirror.getValue());

/** The verdict in the dialog, once it is `outcome` ('result' or 'error'): its text. */
async function outcomeOf(dialog, outcome) {
  const box = dialog.locator(`.try-outcome[data-outcome="${outcome}"]`);
  await box.waitFor({ timeout: 5000 });
  return (await box.textContent()).trim();
}

const { context, close } = await launch();
const p = await page(context);
let treeId;
let runId;
let before;
const dialog = () => p.getByRole('dialog', { name: /^Try the mapper/ });
const mapperOf = async () => (await api('GET', `/steps/${treeId}`)).children[1].mapper.js;

const failed = await steps([
  ['a run fails in the mapper on what its service called back', async () => {
    const root = await api('PUT', '/steps', {
      name: 'order-flow', stepType: 'Sequential', children: [
        { name: 'start', stepType: 'Action', action: { type: 'no-op' } },
        { name: 'fetch-order', stepType: 'Action', action: { type: 'api', url: `${SERVICE}/order` },
          mapper: { type: 'js', js: BROKEN } },
      ],
    });
    treeId = root.id;
    runId = (await api('POST', `/runs/step/${treeId}`, { input: '{}' })).id;
    const run = await runIn(runId, 'Error');
    check(/^mapper: /.test(run.error), `the run failed in the mapper: ${run.error}`);
    before = run;
  }],

  ['"Try the mapper" on the failed node opens it with the node\'s real result', async () => {
    await p.goto(`${BASE}/runs/${runId}`);
    await p.getByRole('button', { name: 'Show the node that failed' }).click();
    const panel = p.locator('.node-panel');
    await panel.getByRole('heading', { name: 'fetch-order' }).waitFor();
    await panel.getByRole('button', { name: 'Try the mapper' }).click();
    await dialog().waitFor();
    check(await editorText(dialog()) === BROKEN, `the editor holds the mapper: ${await editorText(dialog())}`);
    const input = dialog().getByLabel(/^Input: the node's result/);
    check(await input.inputValue() === CALLED_BACK, `the input is the real result: ${await input.inputValue()}`);
    check(!(await dialog().getByLabel('No input (null)').isChecked()), 'the result is not null');
    check(await p.evaluate(() => !!document.activeElement.closest('.try-dialog .CodeMirror')), 'the focus is in the editor');
  }],

  ['Run shows the TypeError, and the run is left as it was', async () => {
    await dialog().getByRole('button', { name: 'Run', exact: true }).click();
    const text = await outcomeOf(dialog(), 'error');
    check(/^✕ Failed in /.test(text) && /TypeError|cannot convert/i.test(text), `the error is shown: ${text}`);
    const status = dialog().getByRole('status', { name: 'What it gave' });
    check(await status.getAttribute('aria-live') === 'polite', 'it is announced');
    await screenshot(p, 'script-try-light');
    const run = await api('GET', `/runs/${runId}?depth=0`);
    check(run.state === 'Error' && run.error === before.error && run.completedAt === before.completedAt,
      `the run is unchanged: ${JSON.stringify(run)}`);
  }],

  ['a fix that is not JavaScript: Run shows its compile error, Save the server\'s 422, and nothing is saved', async () => {
    await typeInEditor(p, dialog(), NOT_JS);
    await dialog().getByRole('button', { name: 'Run', exact: true }).click();
    await until(async () => /unexpected|expected|syntax/i.test(await outcomeOf(dialog(), 'error')), 'the compile error is shown', 5000);
    await dialog().getByRole('button', { name: 'Save into the tree' }).click();
    const refused = dialog().locator('.try-save li').first();
    await refused.waitFor({ timeout: 5000 });
    const text = await refused.textContent();
    check(/^children\[1\]\.mapper\.js: .*(unexpected|expected)/i.test(text), `the server's 422 is shown: ${text}`);
    check(/Not saved/.test(await dialog().locator('.try-save').textContent()), 'it says it was not saved');
    check(await mapperOf() === BROKEN, 'the step is unchanged');
  }],

  ['the real fix returns the right result, on the real input and on an edited one', async () => {
    await typeInEditor(p, dialog(), FIXED);
    await dialog().getByRole('button', { name: 'Run', exact: true }).click();
    await until(async () => /n=2$/.test(await outcomeOf(dialog(), 'result')), 'the result n=2 is shown', 5000);
    check(/^✓ Returned in /.test(await outcomeOf(dialog(), 'result')), 'it says it returned');
    await dialog().getByLabel(/^Input: the node's result/).fill('{"n": 5}');
    await dialog().getByLabel(/^Input: the node's result/).press('Control+Enter');
    await until(async () => /n=5$/.test(await outcomeOf(dialog(), 'result')), 'Ctrl+Enter runs it on the edited input', 5000);
  }],

  ['Save writes it into the tree, and "Retry on the latest definitions" completes the run with it', async () => {
    await dialog().getByRole('button', { name: 'Save into the tree' }).click();
    await dialog().locator('.try-saved', { hasText: 'Saved into the step “order-flow”' }).waitFor({ timeout: 5000 });
    check(await mapperOf() === FIXED, `the step has the fix: ${await mapperOf()}`);
    check((await api('GET', `/runs/${runId}?depth=0`)).state === 'Error', 'the run is still failed');
    await dialog().getByRole('button', { name: 'Retry on the latest definitions' }).click();
    await dialog().waitFor({ state: 'detached', timeout: 5000 });
    const run = await runIn(runId, 'Complete');
    check(run.result === 'n=2', `the run completed with the fixed mapper's output: ${run.result}`);
    await p.locator('#run-state .badge', { hasText: 'Complete' }).waitFor({ timeout: 5000 });
    await p.getByLabel('Run result').getByText('n=2').waitFor({ timeout: 5000 });
  }],

  ['no page reported an error or a blocked script', async () => {
    assertNoProblems(p);
  }],
]);

const dark = failed ? null : await page(context, { colorScheme: 'dark' });
const darkFailed = failed || await steps([
  ['a Parallel\'s reducer is tried on its children\'s real outputs, then on an edited input', async () => {
    const root = await api('PUT', '/steps', {
      name: 'fan-out', stepType: 'Parallel',
      reducer: { type: 'js', js: 'function apply(rs) { return rs.map((r) => r === null ? "-" : r).join("+"); }' },
      children: [
        { name: 'a', stepType: 'Action', action: { type: 'no-op' }, mapper: { type: 'js', js: 'function apply(d) { return d + "!"; }' } },
        { name: 'b', stepType: 'Action', action: { type: 'no-op' }, mapper: { type: 'js', js: 'function apply(d) { return null; }' } },
      ],
    });
    const run = await api('POST', `/runs/step/${root.id}`, { input: 'x' });
    check((await runIn(run.id, 'Complete')).result === 'x!+-', 'the run completed');
    await dark.goto(`${BASE}/runs/${run.id}`);
    await dark.getByRole('button', { name: 'fan-out, Complete' }).click();
    const panel = dark.locator('.node-panel');
    await panel.getByRole('button', { name: 'Try the reducer' }).click();
    const box = dark.getByRole('dialog', { name: /^Try the reducer/ });
    await box.waitFor();
    const input = box.getByLabel(/^Input: the children's outputs/);
    await until(async () => (await input.inputValue()).startsWith('['), 'the children\'s outputs are read', 5000);
    check(JSON.stringify(JSON.parse(await input.inputValue())) === '["x!",null]', `the input is their outputs: ${await input.inputValue()}`);
    check(/x!\+-$/.test(await outcomeOf(box, 'result')), 'it was run on them');
    await screenshot(dark, 'script-try-dark');
    await input.fill('["p", "q", null]');
    await box.getByRole('button', { name: 'Run', exact: true }).click();
    await until(async () => /p\+q\+-$/.test(await outcomeOf(box, 'result')), 'the result of the edited input', 5000);
    await input.fill('not an array');
    await box.getByRole('button', { name: 'Run', exact: true }).click();
    await until(async () => /not a JSON array/.test(await outcomeOf(box, 'error')), 'a bad input is said to be one', 5000);
    check(await input.getAttribute('aria-invalid') === 'true', 'the input is marked invalid');
  }],

  ['Escape closes it, and the focus goes back to its button', async () => {
    await dark.keyboard.press('Escape');
    await dark.getByRole('dialog').waitFor({ state: 'detached', timeout: 3000 });
    check(await dark.evaluate(() => document.activeElement?.getAttribute('aria-label')) === 'Try the reducer', 'the focus is back on "Try the reducer"');
  }],

  ['no page reported an error or a blocked script', async () => {
    assertNoProblems(dark);
  }],
]);

await close();
service.close();
process.exit(failed || darkFailed ? 1 : 0);
