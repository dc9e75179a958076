// The job list: the tenant's jobs (GET /v1/jobs) with status, sub-stage progress, ETA and webhook state, and
// the built-in sample case (POST /v1/studies with the sample bundle).
import {
  api, apiJson, askForKey, AuthError, el, fmtNumber, fmtTime, forgetKey, getKey, progressBar, progressSummary,
  webhookSummary,
} from './common.js';

const keyBox = document.getElementById('key');
const message = document.getElementById('message');
const section = document.getElementById('jobs');
const tbody = document.querySelector('#job-table tbody');
const sampleButton = document.getElementById('sample');
const forgetButton = document.getElementById('forget');
const moreButton = document.getElementById('more');
let nextCursor = null;
let timer = null;

function row(job) {
  const link = el('a', { href: `/v1/jobs/${encodeURIComponent(job.id)}/viewer`, textContent: job.id.slice(0, 8) });
  link.title = job.id;
  const progressCell = el('td', {}, [progressBar(job), el('span', { className: 'small', textContent: ' ' + progressSummary(job) })]);
  const quality = job.quality ? job.quality.level : '';
  const status = el('td', { className: `status ${job.status}`, textContent: job.status });
  if (job.error) status.title = `${job.error.code}: ${job.error.detail}`;
  return el('tr', { dataset: { id: job.id } }, [
    el('td', {}, [link]),
    el('td', { textContent: fmtTime(job.created_at) }),
    status,
    progressCell,
    el('td', { textContent: fmtNumber(job.summary.ef_percent, 1, '%') }),
    el('td', { className: `quality ${quality}`, textContent: quality }),
    el('td', { className: 'small', textContent: webhookSummary(job) }),
  ]);
}

async function load(append = false) {
  const url = append && nextCursor ? `/v1/jobs?limit=20&cursor=${encodeURIComponent(nextCursor)}` : '/v1/jobs?limit=20';
  const page = await apiJson(url);
  if (!append) tbody.replaceChildren();
  for (const job of page.items) tbody.append(row(job));
  nextCursor = page.next_cursor;
  moreButton.hidden = !page.next_cursor;
  if (!page.items.length && !append) {
    tbody.append(el('tr', {}, [el('td', { colSpan: 7, textContent: 'No jobs yet: run the sample case, or POST a study.' })]));
  }
  const active = page.items.some((j) => j.status === 'queued' || j.status === 'running');
  clearTimeout(timer);
  if (active && !append) timer = setTimeout(() => refresh(), 2000);
}

async function refresh(append = false) {
  try {
    await load(append);
    message.textContent = '';
  } catch (err) {
    if (err instanceof AuthError) return start('The key was refused; enter a valid API key.');
    message.textContent = `Could not list the jobs: ${err.message}`;
    clearTimeout(timer);
    timer = setTimeout(() => refresh(), 5000);
  }
}

async function runSample() {
  sampleButton.disabled = true;
  message.textContent = 'Posting the sample study…';
  try {
    const zip = await (await fetch('/v1/viewer/static/sample-study.zip', { cache: 'no-store' })).blob();
    const form = new FormData();
    form.append('file', new File([zip], 'sample-study.zip', { type: 'application/zip' }));
    const job = await (await api('/v1/studies', { method: 'POST', body: form })).json();
    message.textContent = `Sample case submitted as job ${job.id}.`;
    message.dataset.jobId = job.id;
    await refresh();
  } catch (err) {
    if (err instanceof AuthError) return start('The key was refused; enter a valid API key.');
    message.textContent = `The sample case could not be submitted: ${err.message}`;
  } finally {
    sampleButton.disabled = false;
  }
}

async function start(note) {
  section.hidden = true;
  sampleButton.hidden = true;
  forgetButton.hidden = true;
  if (!getKey()) await askForKey(keyBox, note);
  section.hidden = false;
  sampleButton.hidden = false;
  forgetButton.hidden = false;
  await refresh();
}

sampleButton.addEventListener('click', runSample);
moreButton.addEventListener('click', () => refresh(true));
forgetButton.addEventListener('click', () => { forgetKey(); clearTimeout(timer); start(); });
start();
