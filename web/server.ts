// Serves the meeting web app (built by scripts/setup.d/30-web.sh into dist/web/public/) with a strict
// Content-Security-Policy: scripts, styles and the WebSocket only from this origin, media only
// from the browser's own streams, no frames, no inline code.
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';

/** The Content-Security-Policy of every web-app response. */
export const WEB_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "media-src 'self' blob: mediastream:",
  // 'self' covers ws:/wss: to the same host (CSP Level 3): the signalling endpoint.
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const ASSETS: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/index.html': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/app.css': { file: 'app.css', type: 'text/css; charset=utf-8' },
  // Issue 12: the E2EE worker the SDK starts (a same-origin module worker: CSP script-src 'self').
  '/worker.js': { file: 'worker.js', type: 'text/javascript; charset=utf-8' },
};

/**
 * An HTTP route handler for the web app: answers `/`, `/app.js` and `/app.css` and returns true,
 * or returns false for any other path. Files are read once, at the first request.
 */
export function webAppRoutes(dir = fileURLToPath(new URL('./public', import.meta.url))): (path: string, req: IncomingMessage, res: ServerResponse) => boolean {
  const cache = new Map<string, Buffer>();
  return (path, req, res) => {
    if (path === '/favicon.ico') {
      res.writeHead(204, { 'cache-control': 'max-age=86400' }).end();
      return true;
    }
    const asset = ASSETS[path];
    if (!asset) return false;
    let body = cache.get(asset.file);
    if (!body) {
      try {
        body = readFileSync(`${dir}/${asset.file}`);
      } catch {
        res.writeHead(503, { 'content-type': 'text/plain' }).end('web app not built: run npm run setup\n');
        return true;
      }
      cache.set(asset.file, body);
    }
    res.writeHead(200, {
      'content-type': asset.type,
      'content-length': body.length,
      'content-security-policy': WEB_CSP,
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
      'cross-origin-opener-policy': 'same-origin',
      'permissions-policy': 'camera=(self), microphone=(self), display-capture=(self)',
      'cache-control': asset.file === 'index.html' ? 'no-store' : 'no-cache',
    });
    res.end(req.method === 'HEAD' ? undefined : body);
    return true;
  };
}
