// Copies the few three.js modules the viewer imports from node_modules into static/vendor/ (served by the
// API at /v1/viewer/static/vendor/; hospital networks have no internet, so there is no CDN). Run by
// `make install` and by Dockerfile.api after `npm ci`.
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const three = join(here, 'node_modules', 'three');
const vendor = join(here, 'static', 'vendor', 'three');
const FILES = [
  'LICENSE',
  'build/three.module.js',
  'build/three.core.js',
  'examples/jsm/loaders/GLTFLoader.js',
  'examples/jsm/utils/BufferGeometryUtils.js',
  'examples/jsm/utils/SkeletonUtils.js',
  'examples/jsm/controls/OrbitControls.js',
];
if (!existsSync(three)) {
  console.error('three.js is not installed: run `npm ci` in service/viewer first');
  process.exit(1);
}
rmSync(vendor, { recursive: true, force: true });
for (const rel of FILES) {
  mkdirSync(dirname(join(vendor, rel)), { recursive: true });
  cpSync(join(three, rel), join(vendor, rel));
  if (rel.startsWith('examples/jsm/')) {
    // the addons import the bare specifier 'three': point it at the copied build (no import map, so the
    // pages need no inline script and keep a strict Content-Security-Policy)
    const depth = rel.split('/').length - 1;
    const build = '../'.repeat(depth) + 'build/three.module.js';
    const text = readFileSync(join(vendor, rel), 'utf8');
    const fixed = text.replaceAll("from 'three';", `from '${build}';`);
    if (fixed === text) throw new Error(`${rel}: no import from 'three' to rewrite (three.js layout changed?)`);
    writeFileSync(join(vendor, rel), fixed);
  }
}
console.log(`viewer: ${FILES.length} three.js files -> static/vendor/three`);
