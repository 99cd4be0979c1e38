// The dashboard as a person uses it, in Debian's chromium, against a real
// `switchboard demo` (started by ../browser.rs, which passes SB_URL,
// SB_LOGIN, SB_TOKEN, SB_PID and SB_SCREENSHOTS).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const BASE = process.env.SB_URL;
const LOGIN = process.env.SB_LOGIN;
const TOKEN = process.env.SB_TOKEN;
const PID = Number(process.env.SB_PID);
const SHOTS = process.env.SB_SCREENSHOTS;
assert.ok(BASE && LOGIN && TOKEN && SHOTS, 'SB_URL, SB_LOGIN, SB_TOKEN and SB_SCREENSHOTS are set');

const step = (name) => console.log(`-- ${name}`);
async function rest(method, path, body) {
  const response = await fetch(BASE + '/api/v1' + path, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, data: text ? JSON.parse(text) : null, text };
}

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
  // launch() runs chromium on a fresh temporary profile (--user-data-dir)
  // of its own; passing one here is refused by Playwright.
});

// Every response body the browser receives, to search for secrets later.
const bodies = [];
const pending = [];
function record(context) {
  context.on('response', (response) => {
    const type = response.headers()['content-type'] ?? '';
    if (type.includes('text/event-stream')) return; // endless; events are checked through the log below
    pending.push(response.body().then((b) => bodies.push({ url: response.url(), body: b.toString('utf8') })).catch(() => {}));
  });
}

try {
  // ---- sign-in --------------------------------------------------------
  step('every page without a session redirects to sign-in');
  const anon = await browser.newContext();
  record(anon);
  const anonPage = await anon.newPage();
  for (const path of ['/', '/connections/new', '/jobs', '/events']) {
    await anonPage.goto(BASE + path);
    assert.equal(new URL(anonPage.url()).pathname, '/login', `${path} redirects to /login`);
  }
  const headers = (await anonPage.goto(BASE + '/login')).headers();
  assert.match(headers['content-security-policy'], /default-src 'self'; script-src 'self'.*object-src 'none'; frame-ancestors 'none'; base-uri 'none'/);
  assert.equal(headers['x-content-type-options'], 'nosniff');
  assert.equal(headers['referrer-policy'], 'no-referrer');

  step('a wrong token is refused with a clear message');
  await anonPage.getByLabel('Admin token').fill('sb_not-a-real-token');
  await anonPage.getByRole('button', { name: 'Sign in' }).click();
  await anonPage.getByText('This token is not valid').waitFor();
  assert.equal(new URL(anonPage.url()).pathname, '/login');

  step('an agent token cannot sign in');
  const someConnection = (await rest('GET', '/connections')).data[0].id;
  const agent = await rest('POST', '/agents', { name: 'browser-agent', connections: [someConnection] });
  assert.equal(agent.status, 201, agent.text);
  await anonPage.getByLabel('Admin token').fill(agent.data.token);
  await anonPage.getByRole('button', { name: 'Sign in' }).click();
  await anonPage.getByText('This is an agent token').waitFor();

  step('the printed login link signs in');
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  record(context);
  const page = await context.newPage();
  page.on('dialog', (d) => d.accept());
  await page.goto(LOGIN);
  assert.equal(new URL(page.url()).pathname, '/');
  await page.getByRole('heading', { name: 'Connections' }).waitFor();
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === 'sb_session');
  assert.ok(session, 'a session cookie is set');
  assert.equal(session.httpOnly, true);
  assert.equal(session.sameSite, 'Strict');
  await page.locator('#live[data-state="live"]').waitFor();

  step('the link does not work twice');
  await anonPage.goto(LOGIN);
  await anonPage.getByText('This login link was already used or has expired').waitFor();
  await anonPage.goto(BASE + '/');
  assert.equal(new URL(anonPage.url()).pathname, '/login');

  // ---- CSRF -------------------------------------------------------------
  step('state-changing requests without the CSRF token are refused');
  const before = (await rest('GET', '/connections')).data.length;
  const noToken = await page.evaluate(async () => {
    const r = await fetch('/ui/api/v1/connections', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ connector: 'echo', label: 'csrf-probe', settings: {} }) });
    return { status: r.status, body: await r.json() };
  });
  assert.equal(noToken.status, 403);
  assert.equal(noToken.body.code, 'csrf');
  const cookieOnly = await page.evaluate(async () => {
    const r = await fetch('/api/v1/connections', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ connector: 'echo', label: 'csrf-probe', settings: {} }) });
    return r.status;
  });
  assert.equal(cookieOnly, 401, 'the REST API does not accept the session cookie');
  // A page on another site posts a form at the dashboard.
  await context.route('http://attacker.test/**', (route) => route.fulfill({
    contentType: 'text/html',
    body: `<form id=f method=post action="${BASE}/ui/api/v1/connections/none/restart"></form><form id=g method=post action="${BASE}/logout"><input name=csrf value=guess></form>`,
  }));
  const evil = await context.newPage();
  await evil.goto('http://attacker.test/');
  const [crossSite] = await Promise.all([evil.waitForNavigation(), evil.evaluate(() => document.getElementById('f').submit())]);
  assert.ok([401, 403].includes(crossSite.status()), `cross-site POST refused (got ${crossSite.status()})`);
  await evil.goto('http://attacker.test/');
  await Promise.all([evil.waitForNavigation(), evil.evaluate(() => document.getElementById('g').submit())]);
  await evil.close();
  await context.unroute('http://attacker.test/**');
  assert.equal((await rest('GET', '/connections')).data.length, before, 'nothing was written');
  await page.goto(BASE + '/');
  await page.getByRole('heading', { name: 'Connections' }).waitFor(); // still signed in

  // ---- add an X connection from the generated form ------------------------
  step('add an X connection from the form generated from its schema');
  await page.getByRole('link', { name: 'Add a connection' }).first().click();
  await page.getByRole('link', { name: /^X/ }).click();
  await page.getByRole('heading', { name: 'Add X' }).waitFor();
  const form = page.locator('#new-connection');
  assert.equal(await form.locator('select[name="settings.auth"]').count(), 1, 'an enum is a select');
  assert.equal(await form.locator('input[type=checkbox][name="settings.mentions.enabled"]').count(), 1, 'a boolean is a checkbox');
  assert.equal(await form.locator('input[type=number][name="settings.mentions.interval_secs"]').count(), 1, 'an integer is a number');
  assert.equal(await form.locator('textarea[name="settings.search_watches"]').count(), 1, 'an array is JSON');
  assert.equal(await form.locator('input[type=password][name="secrets.oauth2_client_secret"]').count(), 1, 'a secret is write-only');
  await page.getByLabel('label').fill('browser-x');
  await page.locator('select[name="settings.auth"]').selectOption('oauth2');
  await page.locator('input[name="settings.client_id"]').fill('sim-client-id');
  await page.locator('input[name="secrets.oauth2_client_secret"]').fill('sim-client-secret');
  // Invalid settings first: the API's error appears next to its field.
  await page.locator('textarea[name="settings.search_watches"]').fill('[{"name": "not a valid name!", "query": "x"}]');
  await page.getByRole('button', { name: 'Add connection' }).click();
  const fieldError = page.locator('textarea[name="settings.search_watches"] ~ .field-error');
  await fieldError.filter({ hasText: /\S/ }).waitFor();
  console.log(`   field error shown: ${await fieldError.textContent()}`);
  assert.equal((await rest('GET', '/connections')).data.length, before, 'invalid settings write nothing');
  await page.locator('textarea[name="settings.search_watches"]').fill('');
  await page.getByRole('button', { name: 'Add connection' }).click();
  await page.waitForURL((url) => url.pathname === '/');
  const created = (await rest('GET', '/connections')).data.find((c) => c.label === 'browser-x');
  assert.ok(created, 'the connection exists');
  const card = page.locator(`#c-${created.id}`);
  await card.waitFor();

  step('Connect: approve in the X simulator popup, the card goes connected live');
  await page.evaluate(() => { window.__sameDocument = true; });
  const [popup] = await Promise.all([
    page.waitForEvent('popup'),
    card.getByRole('button', { name: 'Connect' }).click(),
  ]);
  await popup.waitForURL((url) => url.pathname.includes('authorize')).catch(async (e) => {
    throw new Error(`no consent page; the card says: ${await card.locator('.card-error').textContent()} (${e.message})`);
  });
  await popup.getByRole('button', { name: /authorize/i }).click();
  await popup.waitForURL((url) => url.pathname.startsWith('/oauth/'));
  await popup.getByRole('heading', { name: 'Connected' }).waitFor();
  const callbackAt = Date.now();
  await card.locator('.status[data-status="connected"]').waitFor();
  console.log(`   callback → card connected: ${Date.now() - callbackAt} ms`);
  assert.equal(await page.evaluate(() => window.__sameDocument), true, 'no reload');
  assert.equal((await rest('GET', '/health')).data.pid, PID, 'the same process serves it');
  await popup.close();

  step('replace a secret: connecting → connected live; the value never reaches the browser');
  const SECRET = 'rotated-' + randomBytes(12).toString('hex');
  await card.evaluate((el) => {
    window.__statuses = [];
    const status = el.querySelector('.status');
    // Both changes may land in one batch of records: each record's new
    // value is the next one's old value (the last one's is the current).
    new MutationObserver((records) => records.forEach((r, i) =>
      window.__statuses.push(records[i + 1]?.oldValue ?? status.dataset.status)))
      .observe(status, { attributes: true, attributeOldValue: true, attributeFilter: ['data-status'] });
  });
  await card.getByText('Replace a secret').click();
  await card.getByLabel('Secret', { exact: true }).selectOption('oauth2_client_secret');
  await card.getByLabel('New value').fill(SECRET);
  await card.getByRole('button', { name: 'Save secret' }).click();
  await page.waitForFunction(() => {
    const s = window.__statuses;
    const i = s.indexOf('connecting');
    return i >= 0 && s.indexOf('connected', i) > i;
  });
  console.log(`   statuses seen: ${await page.evaluate(() => window.__statuses.join(' → '))}`);
  assert.equal(await page.evaluate(() => window.__sameDocument), true, 'no reload');
  const dom = await page.evaluate(() => document.documentElement.outerHTML
    + [...document.querySelectorAll('input, textarea')].map((i) => i.value).join('\n'));
  assert.ok(!dom.includes(SECRET), 'the secret is not in the DOM');

  // ---- jobs and events ------------------------------------------------
  step('jobs: filters in the URL, detail');
  await page.getByRole('link', { name: 'Jobs', exact: true }).first().click();
  await page.getByRole('heading', { name: 'Jobs' }).waitFor();
  await page.locator('#q-state').selectOption('succeeded');
  await page.waitForURL(/state=succeeded/);
  const jobLink = page.locator('table.list a').first();
  await jobLink.click();
  await page.getByRole('heading', { name: 'Params' }).waitFor();
  const jobUrl = page.url();

  step('events: live tail, pause, trace');
  await page.goto(BASE + '/events');
  await page.locator('#live[data-state="live"]').waitFor();
  const echo = (await rest('GET', '/connections')).data.find((c) => c.label === 'demo-echo');
  await rest('POST', '/jobs', { connection_id: echo.id, action: 'echo.say', params: { message: 'from the browser test' } });
  await page.locator('li.event.fresh code', { hasText: 'job.' }).first().waitFor();
  await page.getByRole('button', { name: 'Pause' }).click();
  await rest('POST', '/jobs', { connection_id: echo.id, action: 'echo.say', params: { message: 'held while paused' } });
  await page.getByRole('button', { name: /Resume \(\d+ new\)/ }).waitFor();
  await page.getByRole('button', { name: /Resume/ }).click();
  await page.locator('li.event a').first().click();
  await page.getByRole('heading', { name: 'Trigger' }).waitFor();
  const traceUrl = page.url();

  // ---- nothing secret reached the browser --------------------------------
  await Promise.all(pending);
  for (const { url, body } of bodies) {
    assert.ok(!body.includes(SECRET), `the secret is not in the response from ${url}`);
    assert.ok(!body.includes('sim-client-secret'), `no secret value in the response from ${url}`);
  }
  const log = await rest('GET', '/events?after=0&limit=10000');
  assert.ok(!log.text.includes(SECRET), 'the secret is not in the event log (the live stream)');
  console.log(`   searched ${bodies.length} response bodies`);

  // ---- weight ---------------------------------------------------------
  step('a page load stays small');
  const sizes = [];
  const weigh = await browser.newContext();
  await weigh.addCookies(cookies);
  const weighPage = await weigh.newPage();
  weighPage.on('response', (r) => {
    if (!(r.headers()['content-type'] ?? '').includes('event-stream')) sizes.push(r.body().then((b) => b.length).catch(() => 0));
  });
  await weighPage.goto(BASE + '/', { waitUntil: 'load' });
  const bytes = (await Promise.all(sizes)).reduce((a, b) => a + b, 0);
  console.log(`   connections page: ${bytes} bytes in ${sizes.length} responses`);
  assert.ok(bytes < 150 * 1024, `a page load is under 150 KB (got ${bytes})`);
  await weigh.close();

  // ---- screenshots ------------------------------------------------------
  step(`screenshots into ${SHOTS}`);
  const newX = BASE + '/connections/new?connector=x';
  const pages = [['connections', BASE + '/'], ['add', BASE + '/connections/new'], ['add-x', newX],
    ['jobs', BASE + '/jobs'], ['job', jobUrl], ['events', BASE + '/events'], ['trace', traceUrl]];
  for (const width of [1440, 390]) {
    for (const scheme of ['light', 'dark']) {
      await page.setViewportSize({ width, height: 900 });
      await page.emulateMedia({ colorScheme: scheme });
      await anonPage.setViewportSize({ width, height: 900 });
      await anonPage.emulateMedia({ colorScheme: scheme });
      for (const [name, url] of pages) {
        await page.goto(url);
        await page.screenshot({ path: join(SHOTS, `${name}-${width}-${scheme}.png`), fullPage: true });
      }
      await anonPage.goto(BASE + '/login');
      await anonPage.screenshot({ path: join(SHOTS, `login-${width}-${scheme}.png`), fullPage: true });
    }
  }

  step('sign out');
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForURL((url) => url.pathname === '/login');
  await page.goto(BASE + '/');
  assert.equal(new URL(page.url()).pathname, '/login', 'the session ended');
  console.log('dashboard browser test passed');
} finally {
  await browser.close();
}
