// With API tokens on (AETR_TOKEN is the server's token): the UI asks for a token once, says so
// when one is refused, keeps the one that works in the tab's sessionStorage, and sends it with
// every API call. The page itself needs no token.
import { api, assertNoProblems, BASE, check, launch, page, steps } from './browser.mjs';

const TOKEN = process.env.AETR_TOKEN;
check(TOKEN, 'AETR_TOKEN is not set');
const NAME = 'behind a token';
await api('PUT', '/steps', { name: NAME, stepType: 'Action', action: { type: 'no-op' } });

const { context, close } = await launch();
const p = await page(context);
const dialog = p.getByRole('dialog', { name: 'API token' });

const failed = await steps([
  ['the page loads without a token, and asks for one', async () => {
    const response = await p.goto(`${BASE}/steps`);
    check(response.status() === 200, `the page answered ${response.status()}`);
    await dialog.waitFor();
    check(await p.evaluate(() => document.activeElement?.id) === 'api-token', 'the token field has the focus');
  }],

  ['a wrong token is refused, and the prompt says so', async () => {
    await p.getByLabel('Token', { exact: true }).fill('not-the-token');
    await p.getByRole('button', { name: 'Sign in' }).click();
    await p.getByText('That token was refused. Enter another API token.').waitFor();
  }],

  ['the right token shows the steps, and stays in the tab', async () => {
    await p.getByLabel('Token', { exact: true }).fill(TOKEN);
    await p.getByRole('button', { name: 'Sign in' }).click();
    await p.getByText(NAME).first().waitFor();
    check(await p.evaluate(() => sessionStorage.getItem('aetr.apiToken')) === TOKEN, 'the token is in sessionStorage');
    check(await p.evaluate(() => localStorage.length) === 0, 'nothing is kept in localStorage');
    await p.reload();
    await p.getByText(NAME).first().waitFor();
    check(await dialog.count() === 0, 'no second prompt after a reload');
  }],

  ['a new browser session asks again', async () => {
    const { context: other, close: closeOther } = await launch();
    const q = await page(other);
    await q.goto(`${BASE}/runs`);
    await q.getByRole('dialog', { name: 'API token' }).waitFor();
    await closeOther();
  }],

  ['no page reported an error or a blocked script', async () => {
    assertNoProblems(p);
  }],
]);

await close();
process.exit(failed ? 1 : 0);
