// Shared by the job list and the job page: the API key (sessionStorage, sent as X-API-Key, never in a URL),
// API calls, and the progress / webhook rendering both pages use.

const KEY_NAME = 'echo4d.apiKey';

export function getKey() {
  return sessionStorage.getItem(KEY_NAME);
}

export function forgetKey() {
  sessionStorage.removeItem(KEY_NAME);
}

export class AuthError extends Error {}

export async function api(path, options = {}) {
  const key = getKey();
  if (!key) throw new AuthError('no API key');
  const headers = new Headers(options.headers || {});
  headers.set('X-API-Key', key);
  const response = await fetch(path, { ...options, headers, cache: 'no-store', credentials: 'omit' });
  if (response.status === 401) {
    forgetKey();
    throw new AuthError('the API key was refused');
  }
  if (!response.ok) {
    let detail = `${response.status} ${response.statusText}`;
    try {
      const problem = await response.json();
      if (problem.detail) detail = `${problem.code || response.status}: ${problem.detail}`;
    } catch (_) { /* not JSON */ }
    throw new Error(detail);
  }
  return response;
}

export async function apiJson(path, options = {}) {
  return (await api(path, options)).json();
}

// Show the key form inside `container` until a key that the API accepts is entered; resolves then.
export function askForKey(container, message) {
  return new Promise((resolve) => {
    container.replaceChildren();
    const form = el('form', { className: 'keyform' });
    form.append(
      el('h2', { textContent: 'API key' }),
      el('p', { textContent: message || 'Enter your Echo4D API key (`echo4d serve` prints one on its first start; ' +
        '`echo4d admin create-key` makes more). It is kept in this browser tab only (session storage) and sent ' +
        'in the X-API-Key header.' }),
    );
    const input = el('input', { type: 'password', name: 'key', autocomplete: 'off', placeholder: 'e4d_…',
      required: true, id: 'api-key' });
    const button = el('button', { type: 'submit', textContent: 'Use this key' });
    const status = el('p', { className: 'error' });
    form.append(input, button, status);
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      sessionStorage.setItem(KEY_NAME, input.value.trim());
      try {
        await api('/v1/jobs?limit=1');
        container.replaceChildren();
        resolve();
      } catch (err) {
        status.textContent = err.message;
      }
    });
    container.append(form);
    input.focus();
  });
}

export function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (name === 'dataset') Object.assign(node.dataset, value);
    else if (name in node) node[name] = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child);
  return node;
}

export function fmtNumber(value, digits = 1, unit = '') {
  if (value === null || value === undefined || !Number.isFinite(value)) return '–';
  return `${value.toFixed(digits)}${unit ? ' ' + unit : ''}`;
}

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined) return 'unknown';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  return `${m} min ${String(s % 60).padStart(2, '0')} s`;
}

export function fmtTime(iso) {
  if (!iso) return '–';
  const d = new Date(iso);
  return d.toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'medium' });
}

const SUBSTAGE_LABEL = { encode: 'encode', shape_fit: 'shape fit', motion: 'motion', mesh: 'mesh', export: 'export' };

// "shape fit 350/800 · ETA 1 min 20 s": the running sub-stage and the job's remaining time.
export function progressSummary(job) {
  if (job.status === 'queued') return 'queued';
  if (job.status === 'succeeded') {
    const took = job.started_at && job.finished_at ? (new Date(job.finished_at) - new Date(job.started_at)) / 1000 : null;
    return took === null ? 'done' : `done in ${fmtDuration(took)}`;
  }
  if (job.status !== 'running') return job.stage ? `stopped at ${job.stage}` : '';
  const running = (job.substages || []).find((s) => s.status === 'running');
  const parts = [];
  if (running) {
    const steps = running.steps_total ? ` ${running.steps_done}/${running.steps_total}` : '';
    parts.push(`${SUBSTAGE_LABEL[running.name]}${steps}`);
  } else if (job.stage) {
    parts.push(job.stage);
  }
  parts.push(`ETA ${fmtDuration(job.eta_s)}`);
  return parts.join(' · ');
}

// A table of the sub-stages (steps, elapsed, ETA) for the job page.
export function substageTable(job) {
  const table = el('table', { className: 'substages' });
  table.append(el('tr', {}, ['sub-stage', 'status', 'steps', 'elapsed', 'ETA'].map((h) => el('th', { textContent: h }))));
  for (const s of job.substages || []) {
    const steps = s.steps_total ? `${s.steps_done} / ${s.steps_total}` : '–';
    table.append(el('tr', { className: s.status }, [
      el('td', { textContent: SUBSTAGE_LABEL[s.name] || s.name }),
      el('td', { textContent: s.status }),
      el('td', { textContent: steps }),
      el('td', { textContent: s.elapsed_s === null ? '–' : fmtDuration(s.elapsed_s) }),
      el('td', { textContent: s.status === 'done' ? '' : fmtDuration(s.eta_s) }),
    ]));
  }
  return table;
}

export function webhookSummary(job) {
  const w = job.webhook_delivery;
  if (!w) return '';
  if (w.state === 'delivered') return `delivered (${w.attempts} attempt${w.attempts === 1 ? '' : 's'})`;
  const bits = [`${w.state}, ${w.attempts} attempt${w.attempts === 1 ? '' : 's'}`];
  if (w.next_attempt_at) bits.push(`next ${fmtTime(w.next_attempt_at)}`);
  if (w.last_error) bits.push(`last error: ${w.last_error}`);
  return bits.join('; ');
}

export function progressBar(job) {
  const bar = el('progress', { max: 100, value: job.progress });
  bar.title = `${job.progress.toFixed(0)} %`;
  return bar;
}
