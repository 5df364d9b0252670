// A headless Chromium for the E2EE browser tests, driven over the DevTools protocol with `ws`
// (already a dependency), and a static server for dist/ on 127.0.0.1, so that the page loads
// the compiled SDK modules and the E2EE worker exactly as an application would.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { within } from '../helpers/util.js';

/** dist/ (this file is dist/test/browser/e2ee-chromium.js). */
const DIST = fileURLToPath(new URL('../../', import.meta.url));
const TYPES: Record<string, string> = { '.js': 'text/javascript', '.html': 'text/html', '.map': 'application/json' };

/** The Chromium binary: C4V_CHROMIUM, else the Debian package's. */
export const CHROMIUM = process.env.C4V_CHROMIUM ?? '/usr/bin/chromium';

/** Serves dist/ and the given extra pages on an ephemeral loopback port. */
export async function serveDist(pages: Record<string, string>): Promise<{ origin: string; close: () => Promise<void> }> {
  const server: Server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    if (pages[path] !== undefined) {
      res.writeHead(200, { 'content-type': 'text/html' }).end(pages[path]);
      return;
    }
    const file = normalize(join(DIST, path));
    if (!file.startsWith(DIST)) {
      res.writeHead(403).end();
      return;
    }
    try {
      if (!statSync(file).isFile()) throw new Error('not a file');
      res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' }).end(readFileSync(file));
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { origin: `http://127.0.0.1:${port}`, close: () => new Promise((r) => server.close(() => r())) };
}

/** One page in the browser. */
export interface Page {
  /** Evaluates an expression in the page, awaits it if it is a promise, and returns its JSON value. */
  evaluate<T>(expression: string, timeoutMs?: number): Promise<T>;
  /** A PNG screenshot of the page. */
  screenshot(): Promise<Buffer>;
}

/** A running headless Chromium. */
export class Chromium {
  readonly #proc: ChildProcess;
  readonly #ws: WebSocket;
  readonly #profile: string;
  #nextId = 1;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  private constructor(proc: ChildProcess, ws: WebSocket, profile: string) {
    this.#proc = proc;
    this.#ws = ws;
    this.#profile = profile;
    ws.on('message', (raw) => {
      const m = JSON.parse(raw.toString()) as { id?: number; result?: unknown; error?: { message: string } };
      if (m.id === undefined) return;
      const p = this.#pending.get(m.id);
      this.#pending.delete(m.id);
      if (m.error) p?.reject(new Error(m.error.message));
      else p?.resolve(m.result);
    });
  }

  /**
   * Starts Chromium headless with fake camera and microphone (a moving test pattern and a beep)
   * and WebRTC allowed on loopback. Waits for its DevTools endpoint.
   */
  static async launch(): Promise<Chromium> {
    const profile = mkdtempSync(join(tmpdir(), 'c4v-e2ee-chromium-'));
    const proc = spawn(
      CHROMIUM,
      [
        '--headless=new',
        '--no-sandbox',
        '--disable-gpu',
        '--no-first-run',
        '--disable-extensions',
        '--use-fake-device-for-media-stream',
        '--use-fake-ui-for-media-stream',
        '--allow-loopback-in-peer-connection',
        '--autoplay-policy=no-user-gesture-required',
        '--remote-debugging-port=0',
        `--user-data-dir=${profile}`,
        'about:blank',
      ],
      // Its own process group, so that close() ends the renderer and helper processes too: they
      // outlive a killed browser process and keep writing to the profile folder being deleted.
      { stdio: ['ignore', 'ignore', 'pipe'], detached: true },
    );
    const url = await within(
      new Promise<string>((resolve, reject) => {
        let err = '';
        proc.stderr!.on('data', (d: Buffer) => {
          err += d.toString();
          const m = err.match(/DevTools listening on (ws:\/\/\S+)/);
          if (m) resolve(m[1]!);
        });
        proc.once('error', reject);
        proc.once('exit', (code) => reject(new Error(`chromium exited (${code}) before DevTools was up: ${err.slice(-500)}`)));
      }),
      60_000,
      'Chromium to start',
    );
    const ws = new WebSocket(url, { perMessageDeflate: false });
    await within(new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject)), 10_000, 'DevTools connection');
    return new Chromium(proc, ws, profile);
  }

  #send(method: string, params: object = {}, sessionId?: string): Promise<unknown> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#ws.send(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }));
    });
  }

  /** Opens `url` in a new tab and waits until it has loaded. */
  async open(url: string): Promise<Page> {
    const { targetId } = (await this.#send('Target.createTarget', { url: 'about:blank' })) as { targetId: string };
    const { sessionId } = (await this.#send('Target.attachToTarget', { targetId, flatten: true })) as { sessionId: string };
    await this.#send('Page.enable', {}, sessionId);
    const loaded = new Promise<void>((resolve) => {
      const onMessage = (raw: WebSocket.RawData): void => {
        const m = JSON.parse(raw.toString()) as { method?: string; sessionId?: string };
        if (m.method === 'Page.loadEventFired' && m.sessionId === sessionId) {
          this.#ws.off('message', onMessage);
          resolve();
        }
      };
      this.#ws.on('message', onMessage);
    });
    await this.#send('Page.navigate', { url }, sessionId);
    await within(loaded, 30_000, `load of ${url}`);
    return {
      evaluate: async <T>(expression: string, timeoutMs = 60_000): Promise<T> => {
        const r = (await within(
          this.#send('Runtime.evaluate', { expression, awaitPromise: true, returnByValue: true }, sessionId),
          timeoutMs,
          `page evaluation of ${expression.slice(0, 60)}`,
        )) as { result: { value: T }; exceptionDetails?: { text: string; exception?: { description?: string } } };
        if (r.exceptionDetails) throw new Error(`in the page: ${r.exceptionDetails.exception?.description ?? r.exceptionDetails.text}`);
        return r.result.value;
      },
      screenshot: async () => {
        const r = (await this.#send('Page.captureScreenshot', { format: 'png' }, sessionId)) as { data: string };
        return Buffer.from(r.data, 'base64');
      },
    };
  }

  /** Ends the browser and removes its profile. */
  async close(): Promise<void> {
    this.#ws.close();
    if (this.#proc.exitCode === null) {
      const exited = new Promise((r) => this.#proc.once('exit', r));
      try {
        process.kill(-this.#proc.pid!, 'SIGKILL');
      } catch {
        this.#proc.kill('SIGKILL');
      }
      await exited;
    }
    // A helper process may still be flushing for a moment (ENOTEMPTY): retry rather than fail.
    rmSync(this.#profile, { recursive: true, force: true, maxRetries: 20, retryDelay: 100 });
  }
}
