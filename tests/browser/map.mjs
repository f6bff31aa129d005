// The Map step type in a real headless Chromium against a real aetr server (AETR_URL): a
// Sequential's child switched to a Map in the editor (it takes exactly one child; the server's
// errors about its children, its items function and its max concurrency shown next to each),
// then a run over a list of 2,000 items: the Map's row counts its instances by state, they load
// a page at a time when opened, each shows its item, the details show what each got and the
// Map's options, and the run's progress counts the instances as its actions.
import { api, assertNoProblems, BASE, check, launch, page, screenshot, steps, typeInEditor } from './browser.mjs';

/** More nodes than the run page fetches whole (1,500), so the instances load in pages. */
const ITEMS = 2000;
const ITEMS_JS = 'function apply(d) { return JSON.parse(d).map((n) => ({ n })); }';

const { context, close } = await launch();
const p = await page(context);
let treeId;
let runId;

const save = () => p.getByRole('button', { name: 'Save', exact: true }).click();
/** The errors that the editor shows at the field of `path`, once there are some. */
async function errorsAt(path) {
  const first = p.locator(`.field-errors[data-path="${path}"] li`).first();
  await first.waitFor({ timeout: 5000 });
  return p.locator(`.field-errors[data-path="${path}"] li`).allTextContents();
}
const rowOf = (name) => p.locator(`.vrow[data-name="${name}"]`);

const failed = await steps([
  ['a new Map from the adders comes with its one child, and a collect reducer', async () => {
    const root = await api('PUT', '/steps', {
      name: 'per-order', stepType: 'Sequential', children: [
        { name: 'each', stepType: 'Sequential', children: [
          { name: 'handle', stepType: 'Action', action: { type: 'no-op' } },
          { name: 'extra', stepType: 'Action', action: { type: 'no-op' } },
        ] },
      ],
    });
    treeId = root.id;
    await p.goto(`${BASE}/steps/${treeId}`);
    await p.getByRole('heading', { name: 'per-order', level: 1 }).waitFor();
    await p.locator('.step-card[data-path=""] > .children-box > .adders').getByRole('button', { name: '+ Map' }).click();
    const added = p.locator('.step-card[data-path="children[1]"]');
    check(await added.getAttribute('class') === 'step-card step-Map', `a Map card was added: ${await added.getAttribute('class')}`);
    check(await added.locator('.step-card').count() === 1, 'with one child');
    check(await p.getByRole('button', { name: 'Add action to map-2' }).isDisabled(), 'a Map with its child offers to add no other');
    check(await p.getByLabel('Reducer of map-2').inputValue() === 'collect', 'its reducer is collect');
    check(await p.getByLabel('Max concurrency of map-2').inputValue() === '', 'no limit on its concurrency');
    await p.getByRole('button', { name: 'Remove map-2' }).click();
    check(await p.locator('.step-card[data-path="children[1]"]').count() === 0, 'removed again');
  }],

  ['switch a Sequential to a Map: it must keep exactly one child', async () => {
    await p.getByLabel('Kind of each').selectOption('Map');
    const each = p.locator('.step-card[data-path="children[0]"]');
    await each.getByText('Runs its one child once per item of its input list').waitFor();
    const note = each.locator('[data-note="one-child"]');
    check(/exactly one child: remove 1 of these 2/.test(await note.textContent()), `the editor says it has one too many: ${await note.textContent()}`);
    check(await p.getByRole('button', { name: 'Add action to each' }).isDisabled(), 'no adding to a Map that has its child');
    await save();
    const errors = await errorsAt('children[0].children');
    check(errors.some((e) => /exactly one child/.test(e)), `the server's error is next to the children: ${errors}`);
    await p.getByRole('button', { name: 'Remove extra' }).click();
    check(/its one child/.test(await note.textContent()), `with one child, it says so: ${await note.textContent()}`);
    check(await p.getByRole('button', { name: 'Add action to each' }).isDisabled(), 'still nothing to add');
  }],

  ['its items function\'s compile error and a bad max concurrency are shown next to them', async () => {
    const each = p.locator('.step-card[data-path="children[0]"]');
    await each.getByRole('button', { name: 'Add items function' }).click();
    const fn = p.locator('.script-box', { has: p.getByText('Items function: gets the input') });
    await typeInEditor(p, fn, 'function apply(d) { return JSON.parse(d).map((n) => ({ n }); }');
    await save();
    const compile = await errorsAt('children[0].map.items');
    check(compile.some((e) => /unexpected|expected|syntax/i.test(e)), `the function's error is next to it: ${compile}`);
    check(await p.locator('.field-errors[data-path="children[0].children"] li').count() === 0, 'the error about the children is gone');
    await typeInEditor(p, fn, ITEMS_JS);
    await p.getByLabel('Max concurrency of each').fill('0');
    await save();
    const limit = await errorsAt('children[0].map.maxConcurrency');
    check(limit.length > 0 && limit.every((e) => e.length > 0), `the max concurrency's error is next to it: ${limit}`);
    check(await p.locator('.field-errors[data-path="children[0].map.items"] li').count() === 0, 'the function compiles now');
    await screenshot(p, 'map-editor-errors-light');
  }],

  ['saved: GET /steps has the Map, and the editor shows it again from there', async () => {
    await p.getByLabel('Max concurrency of each').fill('50');
    await save();
    await p.locator('.save-state', { hasText: /^Saved$/ }).waitFor({ timeout: 5000 });
    const saved = await api('GET', `/steps/${treeId}`);
    const map = saved.children[0];
    check(map.stepType === 'Map', `saved as a Map: ${JSON.stringify(map)}`);
    check(map.map.items === ITEMS_JS, `its items function was saved: ${JSON.stringify(map.map)}`);
    check(map.map.maxConcurrency === 50, `its max concurrency was saved: ${JSON.stringify(map.map)}`);
    check(map.reducer.type === 'collect', `its reducer is collect: ${JSON.stringify(map.reducer)}`);
    check(map.children.length === 1 && map.children[0].name === 'handle', `its one child: ${JSON.stringify(map.children)}`);
    // The editor drew the saved tree again, from GET /steps/{id}.
    check(await p.getByLabel('Max concurrency of each').inputValue() === '50', 'the editor shows its max concurrency');
    const fn = p.locator('.script-box', { has: p.getByText('Items function: gets the input') });
    await fn.getByText('JSON.parse(d).map').waitFor();
    await screenshot(p, 'map-editor-light');
  }],

  [`a run over ${ITEMS} items: the Map's row counts its instances by state`, async () => {
    await p.getByLabel(/^Input/).fill(JSON.stringify(Array.from({ length: ITEMS }, (_, i) => i)));
    await p.getByRole('button', { name: 'Start run' }).click();
    await p.waitForURL(/\/runs\/[0-9a-f-]{36}$/);
    runId = p.url().split('/').pop();
    // The first draw of a run page, on a machine that may be running other tests.
    await rowOf('each').waitFor({ timeout: 15000 });
    const deadline = Date.now() + 120000;
    let root;
    for (;;) {
      root = await api('GET', `/runs/${runId}?depth=0`);
      if (root.state === 'Complete') break;
      check(root.state === 'Executing' || root.state === 'Pending', `the run ended ${root.state}: ${root.error}`);
      check(Date.now() < deadline, 'the run did not complete within 120 s');
      await new Promise((r) => setTimeout(r, 250));
    }
    const results = JSON.parse(root.result);
    check(results.length === ITEMS && results[7].n === 7 && results[ITEMS - 1].n === ITEMS - 1,
      `the run's result is the instances' results, in item order: ${root.result.slice(0, 80)}…`);
    await p.locator('#run-state .badge', { hasText: 'Complete' }).waitFor({ timeout: 5000 });
    // Opened again now that it has all its nodes: too many to fetch whole.
    await p.reload();
    const each = rowOf('each');
    await each.getByText(`${ITEMS.toLocaleString('en-US')} children`).waitFor({ timeout: 10000 });
    const histogram = await each.locator('.histogram').getAttribute('aria-label');
    check(histogram === `${ITEMS.toLocaleString('en-US')} Complete`, `the Map's row counts its instances by state: ${histogram}`);
    check(await each.getAttribute('aria-expanded') === 'false', 'a Map of many items starts closed');
    check(await rowOf('handle').count() === 0, 'no instance was drawn while it is closed');
  }],

  ['its instances load a page at a time, each with its item', async () => {
    await p.getByRole('button', { name: 'Expand each' }).click();
    const first = p.locator('.vrow[data-name="handle"][data-item="0"]');
    await first.waitFor({ timeout: 5000 });
    check(await first.getByText('item 0', { exact: true }).count() === 1, `the first instance shows its item: ${await first.textContent()}`);
    const loaded = () => p.evaluate(() => Math.round(document.querySelector('.vlist-spacer').offsetHeight / 30));
    // The root, the Map, its first page of 100 instances and the row that loads the next.
    check(await loaded() === 103, `one page of instances was loaded: ${await loaded()} rows`);
    check(await p.locator('.vrow').count() < 100, 'only the rows in view are drawn');
    // Scrolled to the end of the page, its "Show more" row loads the next.
    await p.locator('.vlist').evaluate((el) => { el.scrollTop = el.scrollHeight; });
    await p.waitForFunction(() => document.querySelector('.vlist-spacer').offsetHeight / 30 > 200, null, { timeout: 5000 });
    await p.locator('.vlist').evaluate((el) => { el.scrollTop = 150 * 30; });
    const later = p.locator('.vrow[data-name="handle"][data-item="150"]');
    await later.waitFor({ timeout: 5000 });
    check(await later.getByText('item 150', { exact: true }).count() === 1, `an instance of the second page shows its item: ${await later.textContent()}`);
    await screenshot(p, 'map-run-light');
  }],

  ['an instance\'s details show its item and its input; the Map\'s, its items function', async () => {
    await p.getByRole('button', { name: 'handle item 150, Complete' }).click();
    const panel = p.locator('.node-panel');
    await panel.getByRole('heading', { name: 'handle' }).waitFor();
    const index = await panel.locator('[data-fact="index"]').textContent();
    check(index === '150', `its index, its item: ${index}`);
    const input = JSON.parse(await panel.getByLabel('Input', { exact: true }).textContent());
    check(input.n === 150, `its input is its item: ${JSON.stringify(input)}`);
    await p.locator('.vlist').evaluate((el) => { el.scrollTop = 0; });
    await p.getByRole('button', { name: 'each, Complete' }).click();
    await panel.getByRole('heading', { name: 'each' }).waitFor();
    await panel.getByRole('heading', { name: 'Map' }).waitFor();
    check(await panel.locator('[data-fact="max-concurrency"]').textContent() === '50', 'its max concurrency');
    check(await panel.getByLabel('Items function', { exact: true }).textContent() === ITEMS_JS, 'its items function');
  }],

  ['the run\'s progress counts the instances as its actions', async () => {
    const all = ITEMS.toLocaleString('en-US');
    const progress = await p.locator('#run-progress').textContent();
    check(progress.startsWith(`${all} of ${all} actions complete`), `the progress counts the instances: ${progress}`);
  }],

  ['no page reported an error or a blocked script', async () => {
    assertNoProblems(p);
  }],
]);

await close();
process.exit(failed ? 1 : 0);
