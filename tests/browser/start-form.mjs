// The start form in a real headless Chromium against a real aetr server (AETR_URL): a schema
// added to a step in the editor (text that is not JSON said so as it is typed, a schema that
// is not a JSON Schema refused by the server next to its field), saved; then the start form
// shows the schema, and an input that does not match gets the server's errors next to the
// input, naming each bad place, and starts no run; a good one starts it. A webhook URL that
// the URL rules refuse gets its error under it; a good one is told when the run ends (a
// service this script plays), and the run page shows the webhook delivered.
import { createServer } from 'node:http';
import { api, assertNoProblems, BASE, check, launch, page, steps, typeInEditor } from './browser.mjs';

/** A webhook receiver on a free port: every POST it gets, answered 200. */
const hooks = [];
const receiver = createServer((req, res) => {
  let body = '';
  req.on('data', (chunk) => { body += chunk; });
  req.on('end', () => { hooks.push({ headers: req.headers, body }); res.writeHead(200).end(); });
});
await new Promise((resolve) => receiver.listen(0, '127.0.0.1', resolve));
const HOOK = `http://127.0.0.1:${receiver.address().port}/hook`;

const { context, close } = await launch();
const p = await page(context);
let treeId;

const save = () => p.getByRole('button', { name: 'Save', exact: true }).click();
const schemaBox = () => p.locator('.step-card[data-path=""] > .schema-box');

const failed = await steps([
  ['a schema typed into the editor: not JSON yet, then not a JSON Schema, then saved', async () => {
    const root = await api('PUT', '/steps', {
      name: 'orders', stepType: 'Sequential', children: [
        { name: 'take', stepType: 'Action', action: { type: 'no-op' } },
      ],
    });
    treeId = root.id;
    await p.goto(`${BASE}/steps/${treeId}`);
    await p.getByRole('heading', { name: 'orders', level: 1 }).waitFor();
    await schemaBox().getByRole('button', { name: 'Add input schema' }).click();
    await typeInEditor(p, schemaBox(), '{"type": "object", "required": ["count"], "properties": {"count": {"type": "intger"');
    const local = await schemaBox().locator('.errors li').first().textContent();
    check(/^not JSON yet/.test(local), `the editor says the text is not JSON yet: ${local}`);
    await p.keyboard.type('}}}');
    check(await schemaBox().locator('.errors li').count() === 0, 'and stops saying so once it is');
    await save();
    const refused = p.locator('.field-errors[data-path="inputSchema"] li').first();
    await refused.waitFor({ timeout: 5000 });
    const text = await refused.textContent();
    check(/properties\.count\.type: not a valid JSON Schema/.test(text), `the server's error is at the schema: ${text}`);
    await typeInEditor(p, schemaBox(), '{"type": "object", "required": ["count"], "properties": {"count": {"type": "integer", "minimum": 1}}}');
    await save();
    await p.locator('.save-state', { hasText: 'Saved' }).waitFor();
    const stored = await api('GET', `/steps/${treeId}`);
    check(stored.inputSchema.properties.count.minimum === 1, `the schema is stored: ${JSON.stringify(stored.inputSchema)}`);
  }],

  ['the start form shows the schema and the server\'s errors next to the input', async () => {
    const form = p.locator('form[aria-labelledby="start-run"]');
    await form.getByText('The input must match this schema').click();
    check(/"minimum": 1/.test(await form.locator('.input-schema pre').textContent()), 'the schema is shown');
    const input = form.getByLabel('Input (JSON; anything else is sent as text)');
    await input.fill('{"count": 0, "extra": true}');
    await form.getByRole('button', { name: 'Start run' }).click();
    const error = form.locator('#run-input-errors li').first();
    await error.waitFor({ timeout: 5000 });
    const text = await error.textContent();
    check(text === 'input.count: 0 is less than the minimum of 1', `the error names the place: ${text}`);
    check(await input.getAttribute('aria-invalid') === 'true', 'the input is marked invalid');
    const runs = await api('GET', `/runs?stepId=${treeId}`);
    check(runs.length === 0, `no run was started: ${runs.length}`);
  }],

  ['a matching input starts the run', async () => {
    const form = p.locator('form[aria-labelledby="start-run"]');
    const input = form.getByLabel('Input (JSON; anything else is sent as text)');
    await input.fill('{"count": 2}');
    await form.getByRole('button', { name: 'Start run' }).click();
    await p.waitForURL(/\/runs\/[0-9a-f-]{36}$/);
    await p.locator('#run-state .badge', { hasText: 'Complete' }).waitFor({ timeout: 10000 });
  }],

  ['a webhook URL that the rules refuse is refused under it; a good one is told of the end', async () => {
    await p.goto(`${BASE}/steps/${treeId}`);
    const form = p.locator('form[aria-labelledby="start-run"]');
    await form.getByLabel('Input (JSON; anything else is sent as text)').fill('{"count": 3}');
    const hook = form.getByLabel('Webhook URL, told when the run ends (optional)');
    await hook.fill('http://169.254.169.254/latest/meta-data/');
    await form.getByRole('button', { name: 'Start run' }).click();
    const error = form.locator('#run-notify-errors li').first();
    await error.waitFor({ timeout: 5000 });
    check(/^notify\.url: refused by the action URL rules/.test(await error.textContent()), `under the URL: ${await error.textContent()}`);
    check(await hook.getAttribute('aria-invalid') === 'true', 'the URL is marked invalid');
    await hook.fill(HOOK);
    await form.getByRole('button', { name: 'Start run' }).click();
    await p.waitForURL(/\/runs\/[0-9a-f-]{36}$/);
    const runId = p.url().split('/').pop();
    const fact = p.locator('[data-fact="webhook"]');
    await fact.filter({ hasText: 'Delivered after 1 try' }).waitFor({ timeout: 10000 });
    check(hooks.length === 1, `one message: ${hooks.length}`);
    const message = JSON.parse(hooks[0].body);
    check(message.runId === runId && message.state === 'Complete', `the run's outcome: ${hooks[0].body}`);
    check(/^msg_/.test(hooks[0].headers['webhook-id']), 'with its webhook-id');
    await p.getByRole('tab', { name: 'History' }).click();
    await p.locator('.event-notified').first().waitFor({ timeout: 5000 });
  }],

  ['no page reported an error or a blocked script', async () => {
    assertNoProblems(p);
  }],
]);

await close();
receiver.close();
process.exit(failed ? 1 : 0);
