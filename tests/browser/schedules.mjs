// The schedules page in a real headless Chromium against a real aetr server (AETR_URL): opened
// from the nav; a schedule with a bad cron expression, then a bad time zone, refused with the
// server's error next to each field; a good one (every 2 seconds) listed with its next fire
// time, whose last run shows up as a link to a completed run; then paused (no next fire time),
// resumed, and deleted after a confirmation.
import { api, assertNoProblems, BASE, check, launch, page, screenshot, steps } from './browser.mjs';

const { context, close } = await launch();
const p = await page(context);
let stepId;
let scheduleId;

const form = () => p.locator('form[aria-labelledby="create-schedule"]');
const row = () => p.locator(`tr[data-schedule-id="${scheduleId}"]`);
/** The first error listed next to the field `name`, once there is one. */
async function errorAt(name) {
  const first = p.locator(`#schedule-${name}-errors li`).first();
  await first.waitFor({ timeout: 5000 });
  return first.textContent();
}

const failed = await steps([
  ['the schedules page opens from the nav, its step picker listing the steps', async () => {
    stepId = (await api('PUT', '/steps', { name: 'heartbeat', stepType: 'Action', action: { type: 'no-op' } })).id;
    await p.goto(`${BASE}/steps`);
    await p.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Schedules' }).click();
    await p.waitForURL(`${BASE}/schedules`);
    await p.getByRole('heading', { name: 'Schedules', level: 1 }).waitFor();
    check(await p.locator('nav a[data-section="schedules"]').getAttribute('aria-current') === 'page', 'the nav marks the page');
    await p.getByText('No schedules yet: create one above.').waitFor({ timeout: 5000 });
    await form().getByLabel('Step', { exact: true }).selectOption({ label: 'heartbeat (Action)' });
  }],

  ['a bad cron expression is refused next to the cron field', async () => {
    await form().getByLabel('Cron expression').fill('61 * * * *');
    await form().getByRole('button', { name: 'Create schedule' }).click();
    const text = await errorAt('cron');
    check(/^cron: /.test(text), `the server's error is at the cron field: ${text}`);
    check(await form().getByLabel('Cron expression').getAttribute('aria-invalid') === 'true', 'the cron field is marked invalid');
    check(await p.locator('#schedule-errors li').count() === 0, 'nothing at the top of the form');
    check((await api('GET', '/schedules')).length === 0, 'no schedule was created');
  }],

  ['a bad time zone is refused next to the zone field', async () => {
    await form().getByLabel('Cron expression').fill('0 9 * * *');
    await form().getByLabel('Time zone').fill('Mars/Olympus');
    await form().getByRole('button', { name: 'Create schedule' }).click();
    const text = await errorAt('timezone');
    check(text === 'timezone: "Mars/Olympus" is not an IANA time zone name', `the server's error is at the zone field: ${text}`);
    check(await form().getByLabel('Time zone').getAttribute('aria-invalid') === 'true', 'the zone field is marked invalid');
    check(await p.locator('#schedule-cron-errors li').count() === 0, 'the cron error is gone');
    check(await form().getByLabel('Cron expression').getAttribute('aria-invalid') === null, 'the cron field is no longer invalid');
    check((await api('GET', '/schedules')).length === 0, 'no schedule was created');
  }],

  ['a good one (every 2 seconds) is listed, Active, with its next fire time', async () => {
    await form().getByLabel('Cron expression').fill('*/2 * * * * *');
    await form().getByLabel('Time zone').fill('Europe/Berlin');
    await form().getByLabel(/^Input of each run/).fill('{"beat": true}');
    await form().getByRole('button', { name: 'Create schedule' }).click();
    await p.locator('tr[data-schedule-id]').first().waitFor({ timeout: 5000 });
    check(await p.locator('#schedule-timezone-errors li').count() === 0, 'the zone error is gone');
    const listed = await api('GET', '/schedules');
    check(listed.length === 1, `one schedule: ${JSON.stringify(listed)}`);
    scheduleId = listed[0].id;
    check(listed[0].cron === '*/2 * * * * *' && listed[0].timezone === 'Europe/Berlin' && listed[0].stepId === stepId,
      `as entered: ${JSON.stringify(listed[0])}`);
    check(JSON.stringify(listed[0].input) === '{"beat":true}', `its input is JSON: ${JSON.stringify(listed[0].input)}`);
    await row().getByRole('link', { name: 'heartbeat' }).waitFor({ timeout: 5000 });
    check(await row().getByRole('link', { name: 'heartbeat' }).getAttribute('href') === `/steps/${stepId}`, 'the step links to its page');
    const when = await row().locator('td').nth(1).textContent();
    check(when.includes('*/2 * * * * *') && when.includes('Europe/Berlin'), `the cron expression and zone: ${when}`);
    check(await row().locator('.badge').textContent() === 'Active', 'it is Active');
    const next = await row().locator('.next-fire').textContent();
    check(/\d\d:\d\d:\d\d/.test(next) && /in |due/.test(next), `its next fire time, absolute and relative: ${next}`);
  }],

  ['its last run shows up as a link to a completed run', async () => {
    const link = row().locator('.last-run a[href^="/runs/"]');
    await link.waitFor({ timeout: 10000 });
    const href = await link.getAttribute('href');
    await link.click();
    await p.waitForURL(`${BASE}${href}`);
    await p.locator('#run-state .badge', { hasText: 'Complete' }).waitFor({ timeout: 10000 });
    const runId = href.split('/').pop();
    const runs = await api('GET', `/runs?scheduleId=${scheduleId}`);
    check(runs.some((r) => r.id === runId && r.scheduleId === scheduleId), `the run is the schedule's: ${JSON.stringify(runs.map((r) => r.id))}`);
  }],

  ['paused: the row says so and shows no next fire time', async () => {
    await p.goBack();
    await p.waitForURL(`${BASE}/schedules`);
    await row().getByRole('button', { name: /^Pause/ }).click();
    await row().locator('.badge', { hasText: 'Paused' }).waitFor({ timeout: 5000 });
    check((await row().locator('.next-fire').textContent()).trim() === '—', 'no next fire time');
    await row().getByRole('button', { name: /^Resume/ }).waitFor();
    const stored = await api('GET', `/schedules/${scheduleId}`);
    check(stored.enabled === false && stored.nextFireAt === null, `paused on the server: ${JSON.stringify(stored)}`);
    check(stored.cron === '*/2 * * * * *' && stored.timezone === 'Europe/Berlin' && JSON.stringify(stored.input) === '{"beat":true}',
      `the rest of its definition is kept: ${JSON.stringify(stored)}`);
    // Still paused after a refresh or two.
    await p.waitForTimeout(2500);
    check(await row().locator('.badge').textContent() === 'Paused', 'still Paused after a refresh');
  }],

  ['resumed: Active again, with a next fire time', async () => {
    await row().getByRole('button', { name: /^Resume/ }).click();
    await row().locator('.badge', { hasText: 'Active' }).waitFor({ timeout: 5000 });
    await row().locator('.next-fire', { hasText: /\d\d:\d\d:\d\d/ }).waitFor({ timeout: 5000 });
    const stored = await api('GET', `/schedules/${scheduleId}`);
    check(stored.enabled === true && stored.nextFireAt !== null, `resumed on the server: ${JSON.stringify(stored)}`);
    await screenshot(p, 'schedules');
  }],

  ['deleted after a confirmation: the row is gone, and so is the schedule', async () => {
    await row().getByRole('button', { name: /^Delete/ }).click();
    const dialog = p.getByRole('dialog', { name: 'Delete this schedule?' });
    await dialog.waitFor();
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    check(await row().count() === 1, 'cancelled: the row stays');
    await row().getByRole('button', { name: /^Delete/ }).click();
    await dialog.getByRole('button', { name: 'Delete schedule' }).click();
    await row().waitFor({ state: 'detached', timeout: 5000 });
    let status = 200;
    try {
      await api('GET', `/schedules/${scheduleId}`);
    } catch (e) {
      status = /: (\d{3}) /.exec(e.message)?.[1];
    }
    check(status === '404', `GET answers 404: ${status}`);
    await p.getByText('No schedules yet: create one above.').waitFor({ timeout: 5000 });
  }],

  ['no page reported an error or a blocked script', async () => {
    assertNoProblems(p);
  }],
]);

await close();
process.exit(failed ? 1 : 0);
