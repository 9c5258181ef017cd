// Starts `fp4serve serve` on a free port for a test file and stops it again.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const binary = process.env.FP4SERVE_BIN ?? resolve(repo, 'build/bin/fp4serve');

export class Server {
  constructor(child, port, name) {
    this.child = child;
    this.port = port;
    this.name = name;
    this.baseURL = `http://127.0.0.1:${port}`;
    this.exit = new Promise((done) => child.once('exit', (code, signal) => done({ code, signal })));
  }

  client(options = {}) {
    return new OpenAI({ baseURL: `${this.baseURL}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 60_000, ...options });
  }

  // Raw HTTP for what the SDK cannot send (broken JSON, invalid UTF-8, ...).
  async post(path, body, headers = {}) {
    const response = await fetch(this.baseURL + path, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...headers },
      body,
    });
    const text = await response.text();
    let json = null;
    try {
      json = JSON.parse(text);
    } catch {}
    return { status: response.status, headers: response.headers, text, json };
  }

  async get(path) {
    const response = await fetch(this.baseURL + path);
    return { status: response.status, text: await response.text() };
  }

  // The value of a metric's sample, optionally the one whose labels include `label`.
  async metric(name, label = '') {
    const { text } = await this.get('/metrics');
    const line = text.split('\n').find((l) => l.startsWith(name + '{') && l.includes(label));
    if (!line) throw new Error(`metric ${name} ${label} missing from /metrics`);
    return Number(line.split(' ').pop());
  }

  // Resident memory of the server process, from the kernel.
  rssBytes() {
    const status = readFileSync(`/proc/${this.child.pid}/status`, 'utf8');
    return Number(/VmRSS:\s+(\d+) kB/.exec(status)[1]) * 1024;
  }

  async stop() {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    return this.exit;
  }
}

// Starts the server with the deterministic fake model and waits until it answers.
export async function startServer(extraArgs = [], name = 'fake-v4') {
  return spawnServer(['--fake-model', ...extraArgs], name);
}

// The repository's default model (models/default), the real checkpoint.
export const defaultModelDir = resolve(repo, 'models/default');

// Starts the server on a real checkpoint directory and waits until it answers.
export async function startModelServer(modelDir, extraArgs = [], name = 'default') {
  return spawnServer([modelDir, ...extraArgs], name);
}

async function spawnServer(serveArgs, name) {
  const args = ['serve', ...serveArgs, '--host', '127.0.0.1', '--port', '0', '--served-model-name', name];
  // Under AddressSanitizer, freed memory sits in a quarantine (256 MB by
  // default) and would hide whether the server gave memory back; keep it small.
  // Other builds ignore the variable.
  const env = { ...process.env, ASAN_OPTIONS: [process.env.ASAN_OPTIONS, 'quarantine_size_mb=1'].filter(Boolean).join(':') };
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
  let log = '';
  child.stderr.on('data', (d) => (log += d));
  const port = await new Promise((resolvePort, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const m = /on http:\/\/[^:]+:(\d+)/.exec(out);
      if (m) resolvePort(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`fp4serve exited with ${code} before listening: ${log}${out}`)));
  });
  const server = new Server(child, port, name);
  for (let i = 0; i < 100; i++) {
    try {
      if ((await server.get('/health')).status === 200) return server;
    } catch {}
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('fp4serve did not become healthy');
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Polls `condition` (may be async) until it holds; fails the test after `ms`.
export async function waitFor(condition, what, ms = 3000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await condition()) return;
    await sleep(20);
  }
  throw new Error(`timed out waiting for ${what}`);
}

// The scripted-reply directive the fake model answers (src/runtime/engine_fake_model.h).
export const scripted = (text) => `[[fake-reply]]${text}[[/fake-reply]]`;
