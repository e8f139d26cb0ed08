// End-to-end: the console in Debian's Chromium (playwright-core, no browser
// download), against veltrix-console and both services on real NATS and
// Redis. Started by services/console/tests/browser.rs, which seeds the
// data and passes the addresses and tokens:
//   CONSOLE_URL, ADMIN_TOKEN, READER_TOKEN, VELTRIXCTL, VELTRIX_COMMAND_URL,
//   VELTRIX_QUERY_URL, SCREENSHOTS (a directory), CHROMIUM (the browser).
// Exits 0 when every step passed; otherwise prints the failed step, saves
// failure.png beside the screenshots and exits 1.
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const url = env('CONSOLE_URL');
const shots = env('SCREENSHOTS');
mkdirSync(shots, { recursive: true });

/** veltrixctl as a user types it, with the admin's token. */
function ctl(...args) {
  return execFileSync(env('VELTRIXCTL'), args, {
    env: { ...process.env, VELTRIX_TOKEN: env('ADMIN_TOKEN') },
    encoding: 'utf8',
  });
}

function check(condition, what) {
  if (!condition) throw new Error(`check failed: ${what}`);
}

let step = 'start';
const begin = (name) => { step = name; console.log(`step: ${name}`); };
const browser = await chromium.launch({
  executablePath: env('CHROMIUM'),
  headless: true,
  args: ['--disable-dev-shm-usage', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
});
const context = await browser.newContext({ viewport: { width: 1360, height: 900 } });
const page = await context.newPage();
page.setDefaultTimeout(15000);
page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
page.on('console', (m) => { if (m.type() === 'error') console.error(`page console: ${m.text()}`); });
const shot = (name) => page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
const testid = (id) => page.locator(`[data-testid="${id}"]`);

async function signIn(p, token) {
  await p.goto(url);
  await p.locator('[data-testid="token"]').fill(token);
  await p.locator('[data-testid="sign-in-submit"]').click();
  await p.locator('[data-testid="identity"]').waitFor();
}

/** Replaces the text of the CodeMirror editor `id` as a user would. */
async function typeInto(id, text) {
  await page.locator(`[data-testid="${id}"] .cm-content`).click();
  await page.keyboard.press('Control+A');
  await page.keyboard.press('Delete');
  // Keystrokes, as a user types them (closeBrackets types through its own brackets).
  await page.keyboard.type(text);
}

try {
  begin('sign in');
  await page.goto(url);
  await testid('sign-in').waitFor();
  await shot('sign-in');
  await testid('token').fill('not-a-token');
  await testid('sign-in-submit').click();
  await page.locator('[role="alert"]').waitFor();
  await signIn(page, env('ADMIN_TOKEN'));
  check((await testid('identity').textContent()) === 'admin', 'the header names the caller');
  check((await testid('auth-off').count()) === 0, 'authentication is on');

  begin('browse the namespaces');
  await testid('ns-pay/prod').waitFor();
  check((await testid('ns-pay/staging').count()) === 1, 'staging is listed');
  check((await page.locator('h3', { hasText: 'pay/' }).count()) === 1, 'grouped by first segment');
  await shot('namespaces');
  await testid('ns-pay/prod').locator('a').click();
  await testid('keys').waitFor();
  check((await testid('key-limits').count()) === 1, 'the explorer lists limits');

  begin('search by value');
  await testid('search').fill('PRIMARY');
  await testid('search-submit').click();
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="keys"] tbody tr').length === 1);
  check((await testid('key-db/url').count()) === 1, 'only db/url holds "primary"');
  await shot('explorer');

  begin('edit with a reason');
  await page.goto(`${url}/#/key/pay%2Fprod/limits`);
  await testid('edit').click();
  await typeInto('editor', '{"rps": 200}');
  await testid('review').click();
  await testid('edit-diff').waitFor();
  check(await testid('save').isDisabled(), 'no save without a reason');
  await testid('reason').fill('raise the limit');
  await shot('key-edit-diff');
  await testid('save').click();
  await page.locator('[data-testid="key-history"] td', { hasText: 'raise the limit' }).waitFor();
  check((await testid('value').textContent()).includes('200'), 'the new value is shown');
  await shot('key');

  begin('history, live');
  await page.goto(`${url}/#/history/pay%2Fprod`);
  await page.locator('[data-testid="timeline"] li', { hasText: 'raise the limit' }).waitFor();
  await page.locator('[data-testid="live"]', { hasText: 'live' }).waitFor();
  const before = await page.locator('[data-testid="timeline"] li').count();
  ctl('put', 'pay/prod', 'limits', '{"rps": 300}', '--content-type', 'application/json', '--reason', 'from the command line');
  await page.locator('[data-testid="timeline"] li', { hasText: 'from the command line' }).waitFor();
  check((await page.locator('[data-testid="timeline"] li').count()) === before + 1, 'one new change set, no reload');
  await shot('history');

  begin('diff two revisions');
  const revisions = await page.locator('[data-testid="timeline"] li strong').allTextContents();
  await testid(`pick-${revisions[0]}`).check();
  await testid(`pick-${revisions[1]}`).check();
  await testid('revision-diff').locator('code', { hasText: 'limits' }).waitFor();
  await shot('history-diff');

  begin('roll back with a preview');
  const target = revisions[2];
  await testid(`rollback-${target}`).click();
  await testid('rollback-preview').locator('code', { hasText: 'limits' }).waitFor();
  await shot('rollback-preview');
  const dryRun = ctl('get', 'pay/prod', 'limits');
  check(dryRun.includes('300'), 'the preview changed nothing');
  await testid('rollback-reason').fill('back to the tested limit');
  await testid('rollback-confirm').click();
  await testid('rollback-done').waitFor();
  await page.locator('[data-testid="timeline"] li', { hasText: 'back to the tested limit' }).waitFor();
  check(ctl('get', 'pay/prod', 'limits').includes('100'), 'the rollback restored the value');

  begin('compare two namespaces and promote one key');
  await page.goto(`${url}/#/compare?a=pay%2Fstaging&b=pay%2Fprod`);
  await testid('diff-db/pool').waitFor();
  check((await testid('diff-feature/new').count()) === 1, 'two keys are missing in prod');
  await testid('tick-db/pool').check();
  await testid('promote-preview').click();
  await testid('promote-diff').locator('code', { hasText: 'db/pool' }).waitFor();
  check((await testid('promote-diff').locator('code', { hasText: 'feature/new' }).count()) === 0, 'only the ticked key');
  await testid('promote-reason').fill('pool size from staging');
  await shot('compare');
  await testid('promote-confirm').click();
  await testid('promote-done').waitFor();
  check(ctl('get', 'pay/prod', 'db/pool').includes('20'), 'promoted into prod');
  let missing = false;
  try { ctl('get', 'pay/prod', 'feature/new'); } catch { missing = true; }
  check(missing, 'the unticked key stayed out of prod');

  begin('a concurrent change is a conflict');
  await page.goto(`${url}/#/key/pay%2Fprod/limits`);
  await testid('edit').click();
  await typeInto('editor', '{"rps": 999}');
  ctl('put', 'pay/prod', 'limits', '{"rps": 150}', '--content-type', 'application/json', '--reason', 'someone else');
  await testid('review').click();
  await testid('reason').fill('my edit');
  await testid('save').click();
  await testid('conflict').waitFor();
  check(ctl('get', 'pay/prod', 'limits').includes('150'), 'the other change is not overwritten');
  await shot('conflict');

  begin('schemas and the fleet');
  await page.goto(`${url}/#/schemas/pay%2Fprod`);
  await testid('schema-limits').waitFor();
  await shot('schemas');
  await page.goto(`${url}/#/fleet/pay%2Fprod`);
  await testid('revision-status').waitFor();
  await shot('fleet');

  begin('a read-only caller');
  const readerContext = await browser.newContext({ viewport: { width: 1360, height: 900 } });
  const reader = await readerContext.newPage();
  reader.setDefaultTimeout(15000);
  await signIn(reader, env('READER_TOKEN'));
  await reader.goto(`${url}/#/key/pay%2Fprod/limits`);
  await reader.locator('[data-testid="value"]').waitFor();
  check((await reader.locator('[data-testid="edit"]').count()) === 0, 'no edit control for a reader');
  await reader.goto(`${url}/#/ns/pay%2Fprod`);
  await reader.locator('[data-testid="keys"]').waitFor();
  check((await reader.locator('[data-testid="new-key"]').count()) === 0, 'no new-key control for a reader');
  await reader.goto(`${url}/#/history/pay%2Fprod`);
  await reader.locator('[data-testid="timeline"] li').first().waitFor();
  check((await reader.locator('[data-testid^="rollback-"]').count()) === 0, 'no rollback control for a reader');
  // A forged write, with the session's own CSRF token: the service refuses it.
  const forged = await reader.evaluate(async () => {
    const session = await (await fetch('/api/session')).json();
    const r = await fetch('/api/key', {
      method: 'PUT',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': session.csrf },
      body: JSON.stringify({ namespace: 'pay/prod', key: 'limits', value: '{}', expected_revision: 0, reason: 'forged' }),
    });
    return { status: r.status, body: await r.json() };
  });
  check(forged.status === 403 && forged.body.code === 'permission_denied', `the forged write is refused: ${JSON.stringify(forged)}`);
  // And the cookie is invisible to the page's scripts.
  check((await reader.evaluate(() => document.cookie)) === '', 'the session cookie is HttpOnly');
  await readerContext.close();

  begin('sign out');
  await testid('sign-out').click();
  await testid('sign-in').waitFor();
  console.log('console e2e: every step passed');
  await browser.close();
} catch (error) {
  console.error(`console e2e failed at step "${step}": ${error?.stack ?? error}`);
  try { await shot('failure'); } catch (e) { console.error(`no failure screenshot: ${e}`); }
  await browser.close();
  process.exit(1);
}
