// Drives Debian's chromium (playwright-core, never a downloaded browser) through the web viewer of a finished job:
// enters the key in the page, waits for the mesh, checks the WebGL canvas is not blank, moves the frame slider
// and checks the mesh and the view overlays change, takes a screenshot; with --sample, also presses "Run the
// sample case" on the job list page. Prints one JSON line with what it saw. Used by test_service_viewer.py and
// to make the README screenshots.
//
//   node tests/service/viewer_check.mjs --url http://127.0.0.1:8000 --job ID --key-file F [--shot out.png] [--sample]
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const require = createRequire(join(root, 'service', 'viewer', 'package.json'));
const { chromium } = require('playwright-core');

const args = {};
for (let i = 2; i < process.argv.length; i++) {
  const name = process.argv[i].replace(/^--/, '');
  const next = process.argv[i + 1];
  if (next === undefined || next.startsWith('--')) args[name] = true;
  else { args[name] = next; i++; }
}
const CHROMIUM = args.chromium || '/usr/bin/chromium';
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--use-angle=swiftshader', '--enable-unsafe-swiftshader'];
const key = readFileSync(args['key-file'], 'utf8').trim();
const base = args.url.replace(/\/$/, '');
const out = { ok: false };
const profile = mkdtempSync(join(tmpdir(), 'echo4d-chromium-'));
const started = Date.now();
let context;

function fail(message) {
  out.error = message;
  throw new Error(message);
}

// pixels of the WebGL canvas that differ from the clear colour, and a cheap hash of the image
async function canvasStats(page) {
  return page.evaluate(() => {
    const src = document.querySelector('#mesh canvas');
    const c = document.createElement('canvas');
    c.width = src.width; c.height = src.height;
    const ctx = c.getContext('2d');
    ctx.drawImage(src, 0, 0);
    const px = ctx.getImageData(0, 0, c.width, c.height).data;
    let lit = 0, hash = 0;
    for (let i = 0; i < px.length; i += 4) {
      const d = Math.abs(px[i] - 0x10) + Math.abs(px[i + 1] - 0x14) + Math.abs(px[i + 2] - 0x1a);
      if (d > 24) lit++;
      hash = (hash * 31 + px[i] + 7 * px[i + 1] + 13 * px[i + 2]) | 0;
    }
    const views = [...document.querySelectorAll('.view-canvas')].map((v) => v.toDataURL().length + ':' +
      v.toDataURL().slice(-40));
    return { lit, total: px.length / 4, hash, views };
  });
}

try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, args: FLAGS, ignoreDefaultArgs: ['--enable-automation'],
    viewport: { width: 1280, height: 900 },
  });
  const page = context.pages()[0] || await context.newPage();
  const foreign = [];
  const consoleErrors = [];
  page.on('request', (r) => { if (!r.url().startsWith(base) && !r.url().startsWith('blob:') && !r.url().startsWith('data:')) foreign.push(r.url()); });
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));

  if (args.sample || args['list-only-shot']) {
    await page.goto(`${base}/v1/viewer`);
    await page.fill('#api-key', key);
    await page.click('.keyform button');
    await page.waitForSelector('#sample:not([hidden])', { timeout: 10000 });
  }
  if (args['list-only-shot']) {
    await page.waitForSelector('#job-table tbody tr[data-id]', { timeout: 10000 });
    await page.screenshot({ path: args['list-only-shot'] });
  }
  if (args.sample) {
    await page.click('#sample');
    await page.waitForFunction(() => document.getElementById('message').dataset.jobId, null, { timeout: 10000 });
    out.sample_job = await page.evaluate(() => document.getElementById('message').dataset.jobId);
    await page.waitForSelector(`tr[data-id="${out.sample_job}"]`, { timeout: 10000 });
    out.list_rows = await page.locator('#job-table tbody tr').count();
  }

  const jobId = args.job === 'sample' ? out.sample_job : args.job;
  await page.goto(`${base}/v1/jobs/${jobId}/viewer`);
  if (await page.locator('#api-key').count()) {  // a new tab: the key is asked once per session
    await page.fill('#api-key', key);
    await page.click('.keyform button');
  }
  if (args['progress-shot']) {  // the job page while the reconstruction runs: sub-stages, steps, ETA
    await page.waitForSelector('.substages tr.running', { timeout: Number(args['timeout-ms'] || 20000) });
    await page.waitForTimeout(Number(args['progress-wait-ms'] || 0));
    await page.screenshot({ path: args['progress-shot'] });
    if (args['list-shot']) {
      await page.goto(`${base}/v1/viewer`);
      await page.waitForSelector('#job-table tbody tr');
      await page.waitForTimeout(500);
      await page.screenshot({ path: args['list-shot'] });
      await page.goto(`${base}/v1/jobs/${jobId}/viewer`);
    }
  }
  await page.waitForSelector('body[data-ready="1"]', { timeout: Number(args['timeout-ms'] || 20000) });
  out.url_has_key = page.url().includes(key);
  out.session_has_key = await page.evaluate((k) => sessionStorage.getItem('echo4d.apiKey') === k, key);
  const info = await page.evaluate(() => ({ n: window.echo4dViewer.nFrames, ed: window.echo4dViewer.report.ed_frame,
    es: window.echo4dViewer.report.es_frame, views: window.echo4dViewer.views.length }));
  out.n_frames = info.n;
  out.n_views = info.views;
  await page.click('#play');  // pause
  await page.locator('#frame').fill(String(info.ed));
  await page.waitForFunction((f) => document.body.dataset.frame === String(f), info.ed);
  const ed = await canvasStats(page);
  out.lit_fraction = ed.lit / ed.total;
  if (out.lit_fraction < 0.01) fail(`the mesh canvas is blank (${ed.lit} of ${ed.total} pixels lit)`);
  await page.locator('#frame').fill(String(info.es));
  await page.waitForFunction((f) => document.body.dataset.frame === String(f), info.es);
  const es = await canvasStats(page);
  out.frame_label = await page.textContent('#frame-label');
  out.mesh_changed = ed.hash !== es.hash;
  out.views_changed = ed.views.some((v, i) => v !== es.views[i]);
  if (info.n > 1 && info.ed !== info.es && !out.mesh_changed) fail('moving the slider from ED to ES did not change the mesh');
  out.metrics = await page.evaluate(() => ['edv', 'esv', 'sv', 'ef'].map((id) => document.getElementById(id).textContent));
  if (args['shot-frame'] !== undefined) {
    await page.locator('#frame').fill(String(args['shot-frame'] === true ? info.ed : args['shot-frame']));
  }
  if (args.shot) await page.screenshot({ path: args.shot, fullPage: true });
  out.foreign_requests = foreign;
  out.console_errors = consoleErrors;
  if (foreign.length) fail(`requests left the API origin: ${foreign.join(', ')}`);
  out.ok = true;
} catch (err) {
  out.ok = false;
  out.error = out.error || String(err && err.message ? err.message : err);
} finally {
  if (context) await context.close();
  rmSync(profile, { recursive: true, force: true });
  out.seconds = (Date.now() - started) / 1000;
  console.log(JSON.stringify(out));
  process.exitCode = out.ok ? 0 : 1;
}
