// One job: progress while it runs; then the beating mesh (mesh.glb, three.js), the volume-time curve with ED/ES,
// EDV/ESV/SV/EF, each input view's masks with the fitted contour per frame (views.json), fit quality, warnings.
import * as THREE from './vendor/three/build/three.module.js';
import { GLTFLoader } from './vendor/three/examples/jsm/loaders/GLTFLoader.js';
import { OrbitControls } from './vendor/three/examples/jsm/controls/OrbitControls.js';
import {
  api, apiJson, askForKey, AuthError, el, fmtDuration, fmtNumber, getKey, progressBar, progressSummary, substageTable,
  webhookSummary,
} from './common.js';

const jobId = decodeURIComponent(location.pathname.split('/').slice(-2)[0]);
const $ = (id) => document.getElementById(id);
const state = { frame: 0, nFrames: 0, playing: true, mesh: null, report: null, views: [], ready: false };
window.echo4dViewer = state; // read by the browser test

function setText(id, text) { $(id).textContent = text; }

// ----------------------------------------------------------------------------- progress while it runs
async function poll() {
  let job;
  try {
    job = await apiJson(`/v1/jobs/${encodeURIComponent(jobId)}`);
  } catch (err) {
    if (err instanceof AuthError) return start('The key was refused; enter a valid API key.');
    setText('message', `Could not read the job: ${err.message}`);
    return setTimeout(poll, 5000);
  }
  setText('job-status', job.status);
  $('job-status').className = `status ${job.status}`;
  const box = $('progress');
  box.hidden = false;
  const webhook = webhookSummary(job);
  const table = job.substages && job.substages.length ? [substageTable(job)] : [];
  const webhookLine = webhook ? [el('p', { className: 'small', textContent: `Webhook: ${webhook}` })] : [];
  if (job.status === 'succeeded') {  // the run's sub-stages stay one click away
    const took = job.started_at && job.finished_at
      ? ` in ${fmtDuration((new Date(job.finished_at) - new Date(job.started_at)) / 1000)}` : '';
    const details = el('details', {}, [el('summary', { className: 'small', textContent: `Reconstructed${took}: sub-stages` }), ...table]);
    box.replaceChildren(details, ...webhookLine);
  } else {
    box.replaceChildren(
      el('p', {}, [progressBar(job), el('span', { textContent: ` ${job.progress.toFixed(0)} % ${progressSummary(job)}` })]),
      ...table, ...webhookLine,
    );
  }
  if (job.status === 'queued' || job.status === 'running') return setTimeout(poll, 1500);
  if (job.status !== 'succeeded') {
    const err = job.error ? `${job.error.code}: ${job.error.detail}` : job.status;
    setText('message', `The job ${job.status}: ${err}`);
    return;
  }
  await showResult(job);
}

// ----------------------------------------------------------------------------- the result
async function showResult(job) {
  const [report, glb, views] = await Promise.all([
    apiJson(job.artifacts['report.json'].href),
    api(job.artifacts['mesh.glb'].href).then((r) => r.arrayBuffer()),
    job.artifacts['views.json'] ? apiJson(job.artifacts['views.json'].href) : Promise.resolve(null),
  ]);
  state.report = report;
  state.nFrames = report.n_frames;
  $('result').hidden = false;
  if (report.quality) {
    const q = report.quality;
    $('quality').textContent = `· quality: ${q.level}`;
    $('quality').className = `quality ${q.level}`;
    $('quality').title = (q.reasons || []).join('\n');
  }
  setText('edv', fmtNumber(report.edv_ml, 1, 'mL'));
  setText('esv', fmtNumber(report.esv_ml, 1, 'mL'));
  setText('sv', fmtNumber(report.sv_ml, 1, 'mL'));
  setText('ef', fmtNumber(report.ef_percent, 1, '%'));
  const simpson = report.simpson_biplane;
  setText('simpson', simpson ? `Simpson biplane (method of disks, A4C + A2C masks): EDV ${fmtNumber(simpson.edv_ml, 1, 'mL')}, ` +
    `ESV ${fmtNumber(simpson.esv_ml, 1, 'mL')}, EF ${fmtNumber(simpson.ef_percent, 1, '%')}` : '');
  const warnings = [...(report.warnings || [])];
  if (report.quality && report.quality.reasons) warnings.push(...report.quality.reasons.map((r) => `quality: ${r}`));
  $('warnings').replaceChildren(...(warnings.length ? warnings : ['none']).map((w) => el('li', { textContent: w })));
  $('downloads').replaceChildren(...Object.entries(job.artifacts).map(([name, link]) => {
    const a = el('a', { href: '#', textContent: name });
    a.addEventListener('click', (e) => { e.preventDefault(); download(link.href, name); });
    return el('span', {}, [a, ' ']);
  }));
  drawCurve(report);
  buildViews(views, report);
  await buildMesh(glb);
  const slider = $('frame');
  slider.max = String(state.nFrames - 1);
  slider.addEventListener('input', () => { setPlaying(false); setFrame(Number(slider.value)); });
  $('play').addEventListener('click', () => setPlaying(!state.playing));
  setFrame(0);
  state.ready = true;
  document.body.dataset.ready = '1';
  play();
}

async function download(href, name) {
  const blob = await (await api(href)).blob();
  const url = URL.createObjectURL(blob);
  const a = el('a', { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// ----------------------------------------------------------------------------- mesh (three.js)
let renderer, scene, camera, controls;

async function buildMesh(glb) {
  const box = $('mesh');
  renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });
  renderer.setPixelRatio(Math.min(window.devicePixelRatio, 2));
  renderer.setSize(box.clientWidth, box.clientHeight);
  renderer.setClearColor(0x10141a);
  box.append(renderer.domElement);
  scene = new THREE.Scene();
  scene.add(new THREE.HemisphereLight(0xffffff, 0x303040, 1.6));
  const key = new THREE.DirectionalLight(0xffffff, 2.0);
  key.position.set(1, -1.5, 1);
  scene.add(key);
  const gltf = await new Promise((resolve, reject) => new GLTFLoader().parse(glb, '', resolve, reject));
  gltf.scene.traverse((node) => {
    if (node.isMesh && node.morphTargetInfluences) {
      state.mesh = node;
      node.material.side = THREE.DoubleSide;
    }
  });
  scene.add(gltf.scene);
  const bounds = new THREE.Box3().setFromObject(gltf.scene);
  const centre = bounds.getCenter(new THREE.Vector3());
  const extent = bounds.getSize(new THREE.Vector3());
  const size = extent.length();
  const aspect = box.clientWidth / box.clientHeight;
  camera = new THREE.PerspectiveCamera(35, aspect, size / 100, size * 10);
  camera.up.set(0, 0, 1); // the canonical LV frame: z is the long axis, apex at the bottom
  // far enough that the long axis (vertical on screen) and the width both fit, with a margin
  const across = Math.max(extent.x, extent.y);
  const fit = Math.max(extent.z, across / aspect) / 2 / Math.tan(THREE.MathUtils.degToRad(35 / 2));
  const direction = new THREE.Vector3(0.75, -0.9, 0.25).normalize();
  camera.position.copy(centre).addScaledVector(direction, 1.2 * fit + across / 2);
  controls = new OrbitControls(camera, renderer.domElement);
  controls.target.copy(centre);
  controls.update();
  controls.addEventListener('change', render);
  window.addEventListener('resize', () => {
    renderer.setSize(box.clientWidth, box.clientHeight);
    camera.aspect = box.clientWidth / box.clientHeight;
    camera.updateProjectionMatrix();
    render();
  });
}

function render() {
  if (renderer) renderer.render(scene, camera);
}

// ----------------------------------------------------------------------------- frames, playback
function setFrame(t) {
  state.frame = t;
  $('frame').value = String(t);
  const times = state.report.frame_times_s;
  const tag = t === state.report.ed_frame ? ' (ED)' : t === state.report.es_frame ? ' (ES)' : '';
  setText('frame-label', `frame ${t + 1}/${state.nFrames}${tag} · ${(times[t] * 1000).toFixed(0)} ms · ` +
    `${fmtNumber(state.report.volumes_ml[t], 1, 'mL')}`);
  if (state.mesh) {
    const w = state.mesh.morphTargetInfluences;
    w.fill(0);
    w[t] = 1; // mesh.glb: frame t is morph target t (one-hot)
  }
  moveCursor(t);
  for (const view of state.views) view.draw(t);
  document.body.dataset.frame = String(t);
  render();
}

function setPlaying(on) {
  state.playing = on;
  $('play').textContent = on ? 'Pause' : 'Play';
  if (on) play();
}

let last = 0;
function play() {
  const times = state.report.frame_times_s;
  const step = state.nFrames > 1 ? Math.max((times[state.nFrames - 1] - times[0]) / (state.nFrames - 1), 0.01) : 1;
  const tick = (now) => {
    if (!state.playing || state.nFrames < 2) return;
    if (now - last >= step * 1000) {
      last = now;
      setFrame((state.frame + 1) % state.nFrames);
    }
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}

// ----------------------------------------------------------------------------- volume curve (SVG)
const SVG = 'http://www.w3.org/2000/svg';
function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}
let cursor = null;
let xOf = null;

function drawCurve(report) {
  const box = $('curve');
  box.replaceChildren();
  const v = report.volumes_ml;
  const t = report.frame_times_s;
  const [x0, x1, y0, y1] = [48, 390, 170, 14];
  const vmin = Math.min(...v), vmax = Math.max(...v);
  const pad = Math.max((vmax - vmin) * 0.15, 1);
  const lo = vmin - pad, hi = vmax + pad;
  const tmax = t[t.length - 1] || 1;
  xOf = (i) => x0 + (x1 - x0) * (t[i] / tmax);
  const yOf = (val) => y0 + (y1 - y0) * ((val - lo) / (hi - lo));
  box.append(svg('line', { x1: x0, y1: y0, x2: x1, y2: y0, class: 'axis' }));
  box.append(svg('line', { x1: x0, y1: y0, x2: x0, y2: y1, class: 'axis' }));
  for (const val of [lo + pad, hi - pad]) {
    const label = svg('text', { x: x0 - 4, y: yOf(val) + 4, class: 'tick', 'text-anchor': 'end' });
    label.textContent = val.toFixed(0);
    box.append(label);
  }
  const unit = svg('text', { x: 4, y: 12, class: 'tick' });
  unit.textContent = 'mL';
  box.append(unit);
  const axis = svg('text', { x: x1, y: 192, class: 'tick', 'text-anchor': 'end' });
  axis.textContent = `time (s), 0–${tmax.toFixed(2)}`;
  box.append(axis);
  box.append(svg('polyline', { points: v.map((val, i) => `${xOf(i)},${yOf(val)}`).join(' '), class: 'curve' }));
  for (const [i, name] of [[report.ed_frame, 'ED'], [report.es_frame, 'ES']]) {
    box.append(svg('circle', { cx: xOf(i), cy: yOf(v[i]), r: 4, class: `mark ${name.toLowerCase()}` }));
    const label = svg('text', { x: xOf(i) + 6, y: yOf(v[i]) + (name === 'ED' ? -6 : 14), class: `mark-label ${name.toLowerCase()}` });
    label.textContent = `${name} ${v[i].toFixed(0)} mL`;
    box.append(label);
  }
  cursor = svg('line', { x1: x0, y1: y0, x2: x0, y2: y1, class: 'cursor' });
  box.append(cursor);
}

function moveCursor(i) {
  if (!cursor) return;
  cursor.setAttribute('x1', xOf(i));
  cursor.setAttribute('x2', xOf(i));
}

// ----------------------------------------------------------------------------- views: masks + fitted contour
function decode(counts, n) {
  const out = new Uint8Array(n);
  let pos = 0;
  for (let k = 0; k < counts.length; k++) {
    if (k % 2 === 1) out.fill(1, pos, pos + counts[k]);
    pos += counts[k];
  }
  return out;
}

function buildViews(doc, report) {
  const box = $('views');
  box.replaceChildren();
  state.views = [];
  const fits = Object.fromEntries((report.views || []).map((v) => [v.view, v]));
  if (!doc) {
    box.append(el('p', { className: 'small', textContent: 'This job has no views.json (it ran before the viewer ' +
      'data existed); per-view fit scores only.' }));
  }
  for (const view of doc ? doc.views : []) {
    const [h, w] = view.shape;
    const canvas = el('canvas', { width: w, height: h, className: 'view-canvas' });
    const ctx = canvas.getContext('2d');
    const image = ctx.createImageData(w, h);
    const fit = fits[view.view] || view;
    const dice = el('span', { className: 'small' });
    const fore = view.foreshortening_mm === null || view.foreshortening_mm === undefined ? ''
      : ` · apex miss ${view.foreshortening_mm.toFixed(1)} mm`;
    const card = el('figure', { className: 'view' }, [
      canvas,
      el('figcaption', {}, [
        el('strong', { textContent: view.view }),
        el('span', { className: 'small', textContent: ` Dice ED ${fmtNumber(fit.dice_ed, 3)}, mean ${fmtNumber(fit.dice_mean, 3)}${fore}` }),
        el('br'), dice,
      ]),
    ]);
    if (Math.min(fit.dice_ed, fit.dice_mean) < 0.9) card.classList.add('poor');
    box.append(card);
    state.views.push({
      name: view.view,
      draw(t) {
        const f = view.frames[Math.min(t, view.frames.length - 1)];
        const mask = decode(f.mask, w * h);
        const fitted = decode(f.fitted, w * h);
        const edge = new Uint8Array(w * h);
        const k = Math.max(1, Math.round(Math.max(w, h) / 240)); // line width in pixels, ~1 px on screen
        for (let i = 0; i < w * h; i++) {
          if (!fitted[i]) continue;
          const r = (i / w) | 0, c = i - r * w;
          if (c === 0 || c === w - 1 || r === 0 || r === h - 1 ||
              !fitted[i - 1] || !fitted[i + 1] || !fitted[i - w] || !fitted[i + w]) {
            for (let dr = 1 - k; dr < k; dr++) {
              for (let dc = 1 - k; dc < k; dc++) {
                const rr = r + dr, cc = c + dc;
                if (rr >= 0 && rr < h && cc >= 0 && cc < w) edge[rr * w + cc] = 1;
              }
            }
          }
        }
        const px = image.data;
        for (let i = 0; i < w * h; i++) {
          const o = i * 4;
          if (edge[i]) { px[o] = 255; px[o + 1] = 150; px[o + 2] = 30; } else if (mask[i]) {
            px[o] = 150; px[o + 1] = 160; px[o + 2] = 170;
          } else { px[o] = 20; px[o + 1] = 24; px[o + 2] = 30; }
          px[o + 3] = 255;
        }
        ctx.putImageData(image, 0, 0);
        dice.textContent = `frame ${t + 1}: source frame ${f.source_frame + 1}, Dice ${f.dice.toFixed(3)}`;
      },
    });
  }
}

// ----------------------------------------------------------------------------- start
async function start(note) {
  setText('job-id', jobId.slice(0, 8));
  document.title = `Echo4D · job ${jobId.slice(0, 8)}`;
  if (!getKey()) await askForKey($('key'), note);
  await poll();
}

start().catch((err) => { setText('message', `The viewer failed: ${err.message}`); });
